package heph

import (
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/heph-go/heph/internal/engine"
	herrs "github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/port"
	"github.com/heph-go/heph/internal/rules"
	"github.com/heph-go/heph/internal/shared"
	"github.com/heph-go/heph/wait"
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
	// PullPolicy says when a present image is pulled again; the zero value
	// is HEPH_PULL_POLICY's, else only when missing.
	PullPolicy PullPolicy
	// Platform, "os/arch[/variant]" (linux/arm64), is the platform to pull
	// and run; empty means the daemon's own.
	Platform string
	// ImageSubstitution, when set, rewrites Image before the pull and the
	// create (HEPH_REGISTRY_MIRROR then applies to what it returns); errors
	// show both names: "postgres:16 (as mirror.corp/library/postgres:16)".
	ImageSubstitution func(image string) string
	// Progress, when set, is told every few seconds how a pull that takes
	// more than a couple of seconds is going (layers, MB). It is called from
	// another goroutine, never after CreateContainer returns.
	Progress func(msg string)
	// StopTimeout is how long Container.Stop waits after SIGTERM before
	// SIGKILL; zero means DefaultStopTimeout.
	StopTimeout time.Duration
	// WaitStrategy, when set, is what Container.Start waits for before it
	// returns (see package wait); nil returns once the container runs.
	WaitStrategy wait.Strategy

	// internalLabels are heph's own labels (heph.test, …) added by layers
	// above the Orchestrator; they bypass the prefix check.
	internalLabels map[string]string
	// sharedKey, when set, makes the container the shared container of
	// this key: its fixed name, heph.shared instead of the session labels.
	sharedKey string
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

// NetworkConfig describes a network for Orchestrator.CreateNetwork.
type NetworkConfig struct {
	// Labels are added to the network. Keys may not start with "heph.".
	Labels map[string]string
	// Internal makes a network without a route to the outside world.
	Internal bool

	internalLabels map[string]string
	createTimeout  time.Duration // > 0: the create's own time, once its turn came (see createWindow)
}

// validate checks every field and returns all problems joined, each matching
// ErrInvalidConfig and naming the field and its value. It makes no Docker
// call.
func (c ContainerConfig) validate() error {
	mounts := make([]rules.Mount, len(c.Mounts))
	for i, m := range c.Mounts {
		mounts[i] = rules.Mount{Type: string(m.Type), Source: m.Source, Target: m.Target}
	}
	problems := rules.Config{
		Image: c.Image, Service: c.Service, Cmd: c.Cmd, Entrypoint: c.Entrypoint,
		Env: c.Env, Labels: c.Labels, WorkingDir: c.WorkingDir, User: c.User,
		ExposedPorts: c.ExposedPorts, HostPorts: c.HostPorts, Mounts: mounts,
		Networks: c.Networks, Platform: c.Platform, PullTimeout: c.PullTimeout, StopTimeout: c.StopTimeout,
	}.Check()
	if err := c.PullPolicy.check(); err != nil {
		problems = append(problems, invalid("PullPolicy", policyText(c.PullPolicy), err.Error()))
	}
	if c.WaitStrategy != nil {
		if err := wait.Validate(c.WaitStrategy); err != nil {
			problems = append(problems, &herrs.InvalidError{What: "WaitStrategy", Err: err})
		}
	}
	return errors.Join(problems...)
}

func (c NetworkConfig) validate() error {
	return errors.Join(rules.Labels("NetworkConfig.Labels", c.Labels)...)
}

// spec turns a validated config into the container to create, named name,
// its ports bound to bindIP ("" for every interface).
func (o *Orchestrator) spec(name, bindIP string, cfg ContainerConfig) engine.ContainerSpec {
	env := make([]string, 0, len(cfg.Env))
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		env = append(env, k+"="+cfg.Env[k])
	}
	hostPorts := map[port.Port]int{}
	for p, hp := range cfg.HostPorts {
		pp, _ := port.Parse(p) // validated
		hostPorts[pp] = hp
	}
	var ports []engine.PortSpec
	for _, p := range cfg.ExposedPorts {
		pp, _ := port.Parse(p) // validated
		ports = append(ports, engine.PortSpec{Port: pp, HostIP: bindIP, HostPort: hostPorts[pp]})
	}
	mounts := make([]engine.MountSpec, 0, len(cfg.Mounts))
	for _, m := range cfg.Mounts {
		ms := engine.MountSpec{Type: string(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
		if m.Type == MountVolume && m.Source != "" {
			// Applied only when the daemon creates the volume for this mount,
			// so a pre-existing volume is never claimed by the session.
			ms.VolumeLabels = shared.Labels(o.resourceLabels(), cfg.sharedKey)
		}
		mounts = append(mounts, ms)
	}
	s := engine.ContainerSpec{
		Name: name, Image: cfg.Image, Hostname: cfg.Service,
		Cmd: slices.Clone(cfg.Cmd), Entrypoint: slices.Clone(cfg.Entrypoint), Env: env,
		WorkingDir: cfg.WorkingDir, User: cfg.User,
		Labels: shared.Labels(o.resourceLabels(cfg.Labels, cfg.internalLabels, map[string]string{LabelService: cfg.Service}), cfg.sharedKey),
		Ports:  ports, Mounts: mounts, Platform: cfg.Platform,
	}
	if len(cfg.Networks) > 0 {
		s.Network, s.Aliases = cfg.Networks[0], []string{cfg.Service}
	}
	return s
}

// imageRequest is what c asks of its image.
func (c ContainerConfig) imageRequest() imageRequest {
	return imageRequest{
		asked: c.Image, substitute: c.ImageSubstitution, policy: c.PullPolicy,
		platform: c.Platform, timeout: c.PullTimeout, progress: c.Progress,
	}
}
