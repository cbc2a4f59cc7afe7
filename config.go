package heph

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
)

// ContainerConfig describes a container for Orchestrator.CreateContainer.
// The zero value of every field but Image is valid.
type ContainerConfig struct {
	// Image is the image reference ("postgres:16", "127.0.0.1:5000/app:dev").
	// It is pulled when it is not present locally.
	Image string
	// Service is the container's service name: its hostname, its alias on
	// its networks, and part of its name (heph-<service>-<8 hex>). It must be
	// a valid host name label. Empty means derived from the image name.
	Service string
	// Cmd replaces the image's CMD; Entrypoint replaces its ENTRYPOINT.
	Cmd, Entrypoint []string
	// Env sets environment variables.
	Env map[string]string
	// WorkingDir, when set, is an absolute path in the container.
	WorkingDir string
	// User is "user", "uid", "user:group" or "uid:gid".
	User string
	// ExposedPorts lists container ports to publish, as "8080/tcp",
	// "53/udp" or "8080" (TCP). Each is published on a random host port,
	// bound to 127.0.0.1 when the daemon is local.
	ExposedPorts []string
	// HostPorts asks for a fixed host port for some of the ExposedPorts
	// (container port → host port).
	HostPorts map[string]int
	// Mounts lists bind mounts, named volumes and tmpfs mounts.
	Mounts []Mount
	// Labels are added to the container. Keys may not start with "heph.".
	Labels map[string]string
	// Networks lists networks (name or ID) the container joins with its
	// service name as alias. Empty means Docker's default bridge, where
	// aliases do not exist.
	Networks []string
	// PullTimeout bounds the image pull; zero means DefaultPullTimeout.
	PullTimeout time.Duration

	// internalLabels are heph's own labels (heph.test, …) added by layers
	// above the Orchestrator; they bypass the prefix check.
	internalLabels map[string]string
}

// MountType says what a Mount mounts.
type MountType string

// Mount types.
const (
	// MountBind mounts a host path (Source, absolute) at Target.
	MountBind MountType = "bind"
	// MountVolume mounts a named volume (Source; created if missing, and then
	// labelled and removed with the session) at Target. An empty Source is an
	// anonymous volume, removed with the container.
	MountVolume MountType = "volume"
	// MountTmpfs mounts an in-memory file system at Target; Source is empty.
	MountTmpfs MountType = "tmpfs"
)

// Mount is one mount of a container.
type Mount struct {
	// Type is bind, volume or tmpfs.
	Type MountType
	// Source is the absolute host path (bind), the volume name (volume,
	// empty for an anonymous volume) or empty (tmpfs).
	Source string
	// Target is the absolute path in the container.
	Target string
	// ReadOnly mounts it read-only.
	ReadOnly bool
}

// port is a parsed container port.
type port struct {
	num   int
	proto string
}

func (p port) String() string { return strconv.Itoa(p.num) + "/" + p.proto }

// parsePort parses "8080", "8080/tcp", "53/udp" or "9/sctp".
func parsePort(s string) (port, error) {
	num, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	}
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return port{}, fmt.Errorf("protocol %q is not tcp, udp or sctp", proto)
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return port{}, fmt.Errorf("%q is not a port number", num)
	}
	if n < 1 || n > 65535 {
		return port{}, fmt.Errorf("port %d is outside 1-65535", n)
	}
	return port{num: n, proto: proto}, nil
}

// NormalizePort returns a container port in the canonical "8080/tcp" form,
// or an error matching ErrInvalidConfig when it is malformed.
func NormalizePort(p string) (string, error) {
	pp, err := parsePort(p)
	if err != nil {
		return "", invalid("port", p, err.Error())
	}
	return pp.String(), nil
}

// hostnameRule says what hostnameLabel accepts, for error messages.
const hostnameRule = "is not a valid host name: use 1-63 lower-case letters, digits and '-', not starting or ending with '-'"

var (
	hostnameLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	volumeName    = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)
	userSpec      = regexp.MustCompile(`^[a-zA-Z0-9_.][a-zA-Z0-9_.-]*(:[a-zA-Z0-9_.][a-zA-Z0-9_.-]*)?$`)
)

// ServiceFromImage derives a service name from an image reference: the last
// path element of the repository, lower-cased, with every run of characters
// not allowed in a host name replaced by "-" ("docker.io/library/postgres:16"
// gives "postgres", "heph-build/testapp:abc" gives "testapp").
func ServiceFromImage(image string) string {
	name := image
	if ref, err := reference.ParseNormalizedNamed(image); err == nil {
		name = reference.Path(ref)
	} else {
		name, _, _ = strings.Cut(name, "@")
		if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
			name = name[:i]
		}
	}
	name = path.Base(name)
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.TrimRight(b.String(), "-")
	if len(s) > 40 {
		s = strings.TrimRight(s[:40], "-")
	}
	if s == "" {
		s = "svc"
	}
	return s
}

// validate checks every field and returns all problems joined, each matching
// ErrInvalidConfig and naming the field and its value. It makes no Docker
// call.
func (c ContainerConfig) validate() error {
	var errs []error
	bad := func(field string, value any, reason string) {
		errs = append(errs, invalid(field, value, reason))
	}

	switch {
	case strings.TrimSpace(c.Image) == "":
		bad("Image", c.Image, "is empty")
	default:
		if _, err := reference.ParseNormalizedNamed(c.Image); err != nil {
			bad("Image", c.Image, "is not a valid image reference: "+err.Error())
		}
	}
	if c.Service != "" && !hostnameLabel.MatchString(c.Service) {
		bad("Service", c.Service, hostnameRule)
	}
	for _, k := range sortedKeys(c.Env) {
		switch {
		case k == "":
			bad("Env key", k, "is empty")
		case strings.ContainsAny(k, "=\x00"):
			bad("Env key", k, `must not contain "=" or NUL`)
		}
		if strings.ContainsRune(c.Env[k], 0) {
			bad("Env["+k+"]", c.Env[k], "must not contain NUL")
		}
	}
	if c.WorkingDir != "" && !path.IsAbs(c.WorkingDir) {
		bad("WorkingDir", c.WorkingDir, "must be an absolute path")
	}
	if c.User != "" && !userSpec.MatchString(c.User) {
		bad("User", c.User, `must be "user", "uid", "user:group" or "uid:gid"`)
	}

	exposed := map[string]bool{}
	for _, p := range c.ExposedPorts {
		pp, err := parsePort(p)
		if err != nil {
			bad("ExposedPorts", p, err.Error())
			continue
		}
		if exposed[pp.String()] {
			bad("ExposedPorts", p, "is listed twice (as "+pp.String()+")")
		}
		exposed[pp.String()] = true
	}
	hostPorts := map[int]string{}
	for _, p := range sortedKeys(c.HostPorts) {
		hp := c.HostPorts[p]
		pp, err := parsePort(p)
		switch {
		case err != nil:
			bad("HostPorts key", p, err.Error())
		case !exposed[pp.String()]:
			bad("HostPorts key", p, "is not in ExposedPorts")
		}
		if hp < 1 || hp > 65535 {
			bad("HostPorts["+p+"]", hp, "is outside 1-65535")
		} else if other, dup := hostPorts[hp]; dup && err == nil && other != p {
			bad("HostPorts["+p+"]", hp, "is also asked for by "+other)
		}
		hostPorts[hp] = p
	}

	targets := map[string]bool{}
	for i, m := range c.Mounts {
		field := fmt.Sprintf("Mounts[%d]", i)
		switch m.Type {
		case MountBind:
			switch {
			case m.Source == "":
				bad(field+".Source", m.Source, "is empty (a bind mount needs a host path)")
			case !filepath.IsAbs(m.Source):
				bad(field+".Source", m.Source, "must be an absolute host path")
			}
		case MountVolume:
			if m.Source != "" && !volumeName.MatchString(m.Source) {
				bad(field+".Source", m.Source, "is not a valid volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)")
			}
		case MountTmpfs:
			if m.Source != "" {
				bad(field+".Source", m.Source, "must be empty for a tmpfs mount")
			}
		default:
			bad(field+".Type", string(m.Type), "is not bind, volume or tmpfs")
		}
		switch {
		case m.Target == "":
			bad(field+".Target", m.Target, "is empty")
		case !path.IsAbs(m.Target):
			bad(field+".Target", m.Target, "must be an absolute path in the container")
		case m.Target == "/":
			bad(field+".Target", m.Target, "must not be the root directory")
		case targets[path.Clean(m.Target)]:
			bad(field+".Target", m.Target, "is mounted twice")
		}
		targets[path.Clean(m.Target)] = true
	}

	for _, k := range sortedKeys(c.Labels) {
		switch {
		case strings.TrimSpace(k) == "":
			bad("Labels key", k, "is empty")
		case strings.HasPrefix(k, labelPrefix):
			bad("Labels key", k, `uses the "heph." prefix, which is reserved for heph`)
		}
	}
	seenNet := map[string]bool{}
	for i, n := range c.Networks {
		switch {
		case strings.TrimSpace(n) == "":
			bad(fmt.Sprintf("Networks[%d]", i), n, "is empty")
		case seenNet[n]:
			bad(fmt.Sprintf("Networks[%d]", i), n, "is listed twice")
		}
		seenNet[n] = true
	}
	if c.PullTimeout < 0 {
		bad("PullTimeout", c.PullTimeout, "is negative")
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
