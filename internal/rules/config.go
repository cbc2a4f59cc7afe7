package rules

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/port"
)

// Mount is a mount as the Orchestrator's ContainerConfig gives it.
type Mount struct {
	Type           string // "bind", "volume" or "tmpfs"
	Source, Target string
}

// CheckMount returns the problem with one mount, naming the part at fault
// (".Source", ".Target", ".Type") and its value, or "", "" and nil.
func CheckMount(m Mount) (part string, value string, err error) {
	switch m.Type {
	case "bind":
		if err := HostPath(m.Source); err != nil {
			return ".Source", m.Source, err
		}
	case "volume":
		if m.Source != "" {
			if err := Volume(m.Source); err != nil {
				return ".Source", m.Source, err
			}
		}
	case "tmpfs":
		if m.Source != "" {
			return ".Source", m.Source, errors.New("must be empty for a tmpfs mount")
		}
	default:
		return ".Type", m.Type, errors.New("is not bind, volume or tmpfs")
	}
	if err := ContainerPath(m.Target); err != nil {
		return ".Target", m.Target, err
	}
	return "", "", nil
}

// Config is the part of a container's configuration these rules check,
// field by field as the Orchestrator's ContainerConfig names them.
type Config struct {
	Image, Service           string
	Cmd, Entrypoint          []string
	Env, Labels              map[string]string
	WorkingDir, User         string
	ExposedPorts             []string
	HostPorts                map[string]int
	Mounts                   []Mount
	Networks                 []string
	Platform                 string
	PullTimeout, StopTimeout time.Duration
}

// Check checks every field of c and returns all problems, each an
// errs.InvalidError naming the field and its value (an env value is never
// shown).
func (c Config) Check() []error {
	var problems []error
	bad := func(field string, value any, err error) {
		problems = append(problems, errs.Invalid(field, value, err.Error()))
	}
	if err := Image(c.Image); err != nil {
		bad("Image", c.Image, err)
	}
	if c.Service != "" {
		if err := Service(c.Service); err != nil {
			bad("Service", c.Service, err)
		}
	}
	if err := Args(c.Cmd); err != nil {
		bad("Cmd", len(c.Cmd), err)
	}
	if err := Args(c.Entrypoint); err != nil {
		bad("Entrypoint", len(c.Entrypoint), err)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		if err := EnvKey(k); err != nil {
			bad("Env key", EnvKeyShown(k), err)
		}
		if err := EnvValue(c.Env[k]); err != nil {
			bad("Env["+k+"]", "(value not shown)", err)
		}
	}
	if c.WorkingDir != "" {
		if err := WorkingDir(c.WorkingDir); err != nil {
			bad("WorkingDir", c.WorkingDir, err)
		}
	}
	if c.User != "" {
		if err := User(c.User); err != nil {
			bad("User", c.User, err)
		}
	}

	exposed := map[port.Port]bool{}
	for _, p := range c.ExposedPorts {
		pp, err := port.Parse(p)
		if err != nil {
			bad("ExposedPorts", p, err)
			continue
		}
		if exposed[pp] {
			bad("ExposedPorts", p, fmt.Errorf("is listed twice (as %s)", pp))
		}
		exposed[pp] = true
	}
	hostPorts := map[int]string{}
	for _, p := range slices.Sorted(maps.Keys(c.HostPorts)) {
		hp := c.HostPorts[p]
		pp, err := port.Parse(p)
		switch {
		case err != nil:
			bad("HostPorts key", p, err)
		case !exposed[pp]:
			bad("HostPorts key", p, errors.New("is not in ExposedPorts"))
		}
		if hp < 1 || hp > 65535 {
			bad("HostPorts["+p+"]", hp, errors.New("is outside 1-65535"))
		} else if other, dup := hostPorts[hp]; dup && err == nil && other != p {
			bad("HostPorts["+p+"]", hp, errors.New("is also asked for by "+other))
		}
		hostPorts[hp] = p
	}

	targets := map[string]bool{}
	for i, m := range c.Mounts {
		field := fmt.Sprintf("Mounts[%d]", i)
		if part, value, err := CheckMount(m); err != nil {
			bad(field+part, value, err)
			continue
		}
		if targets[path.Clean(m.Target)] {
			bad(field+".Target", m.Target, errors.New("is mounted twice"))
		}
		targets[path.Clean(m.Target)] = true
	}

	problems = append(problems, Labels("Labels", c.Labels)...)
	seenNet := map[string]bool{}
	for i, n := range c.Networks {
		switch err := NetworkName(n); {
		case err != nil:
			bad(fmt.Sprintf("Networks[%d]", i), n, err)
		case seenNet[n]:
			bad(fmt.Sprintf("Networks[%d]", i), n, errors.New("is listed twice"))
		}
		seenNet[n] = true
	}
	if c.PullTimeout < 0 {
		bad("PullTimeout", c.PullTimeout, errors.New("is negative"))
	}
	if c.Platform != "" {
		if err := Platform(c.Platform); err != nil {
			bad("Platform", c.Platform, err)
		}
	}
	if c.StopTimeout < 0 {
		bad("StopTimeout", c.StopTimeout, errors.New("is negative"))
	}
	return problems
}

// Labels checks the labels of the field named field and returns the
// problems, each an errs.InvalidError.
func Labels(field string, labels map[string]string) []error {
	var problems []error
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if err := LabelKey(k); err != nil {
			problems = append(problems, errs.Invalid(field+" key", k, err.Error()))
		}
		if err := LabelValue(labels[k]); err != nil {
			problems = append(problems, errs.Invalid(field+"["+k+"]", labels[k], err.Error()))
		}
	}
	return problems
}

// EnvKeyShown is an environment key as a message shows it: what follows a
// "=" in a key is a value put there by mistake, maybe a secret, so it is
// not shown.
func EnvKeyShown(k string) string {
	if name, _, ok := strings.Cut(k, "="); ok {
		return name + "=…"
	}
	return k
}
