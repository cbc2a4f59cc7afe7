package heph

import (
	"fmt"
	"io/fs"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/heph-go/heph/wait"
)

// DefaultStartupTimeout bounds a container's start — create, start and the
// wait strategy — when WithStartupTimeout is not used. The image pull is
// bounded separately (WithPullTimeout).
const DefaultStartupTimeout = 60 * time.Second

// ContainerRequest describes a container to start in a test. Make one with
// NewContainer and refine it with the With… methods. A ContainerRequest is
// an immutable value: every With… returns a new request (maps and slices
// copied) and leaves its receiver as it was, so one request can be a
// template shared by parallel tests, each branching its own variant.
//
// Invalid arguments to With… methods are recorded, not reported at once:
// Start (or Run) refuses the request before any Docker call with an error
// that names the option and the value.
type ContainerRequest struct {
	cfg            ContainerConfig
	files          []fileSpec
	strategy       wait.Strategy
	startupTimeout time.Duration
	gracefulStop   time.Duration // used when graceful
	graceful       bool
	networks       []*Network
	logsToTest     bool
	errs           []error
}

// fileSpec is a file WithFile copies into the container before it starts.
type fileSpec struct {
	path    string
	content []byte
	mode    fs.FileMode
}

// NewContainer starts a request for a container running image (pulled when
// it is not present locally). Its service name — hostname and network alias —
// is derived from the image name unless WithName sets one.
func NewContainer(image string) ContainerRequest {
	r := ContainerRequest{cfg: ContainerConfig{Image: image}, startupTimeout: DefaultStartupTimeout}
	if err := (ContainerConfig{Image: image}).validate(); err != nil {
		r.errs = append(r.errs, optionError("NewContainer", image, strings.TrimPrefix(firstReason(err), `Image `+quote(image)+": ")))
	}
	return r
}

// optionError is an ErrInvalidConfig naming a builder option and its
// argument.
func optionError(option string, value any, reason string) error {
	return fmt.Errorf("%w: %s(%s): %s", ErrInvalidConfig, option, quote(value), reason)
}

// firstReason returns the message of the first of possibly joined
// ErrInvalidConfig errors, without the sentinel's prefix.
func firstReason(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return strings.TrimPrefix(msg, ErrInvalidConfig.Error()+": ")
}

// clone returns a deep copy: the receiver's maps and slices are never
// shared with the result, so a With… on the copy cannot change the original.
func (r ContainerRequest) clone() ContainerRequest {
	c := r
	c.cfg.Cmd = slices.Clone(r.cfg.Cmd)
	c.cfg.Entrypoint = slices.Clone(r.cfg.Entrypoint)
	c.cfg.Env = maps.Clone(r.cfg.Env)
	c.cfg.ExposedPorts = slices.Clone(r.cfg.ExposedPorts)
	c.cfg.HostPorts = maps.Clone(r.cfg.HostPorts)
	c.cfg.Mounts = slices.Clone(r.cfg.Mounts)
	c.cfg.Labels = maps.Clone(r.cfg.Labels)
	c.cfg.Networks = slices.Clone(r.cfg.Networks)
	c.files = slices.Clone(r.files)
	c.networks = slices.Clone(r.networks)
	c.errs = slices.Clone(r.errs)
	return c
}

func (r ContainerRequest) fail(option string, value any, reason string) ContainerRequest {
	r.errs = append(r.errs, optionError(option, value, reason))
	return r
}

// WithName sets the service name: the container's hostname and its alias on
// its networks, and part of its name (heph-<service>-<8 hex>). It must be a
// host name label: 1-63 lower-case letters, digits and '-'.
func (r ContainerRequest) WithName(service string) ContainerRequest {
	r = r.clone()
	if !hostnameLabel.MatchString(service) {
		return r.fail("WithName", service, hostnameRule)
	}
	r.cfg.Service = service
	return r
}

// WithEnv sets an environment variable.
func (r ContainerRequest) WithEnv(key, value string) ContainerRequest {
	r = r.clone()
	switch {
	case key == "":
		return r.fail("WithEnv", key, "the key is empty")
	case strings.ContainsAny(key, "=\x00"):
		return r.fail("WithEnv", key, `the key must not contain "=" or NUL`)
	case strings.ContainsRune(value, 0):
		return r.fail("WithEnv", key, "the value must not contain NUL")
	}
	if r.cfg.Env == nil {
		r.cfg.Env = map[string]string{}
	}
	r.cfg.Env[key] = value
	return r
}

// WithExposedPorts publishes container ports ("8080/tcp", "53/udp", or
// "8080" for TCP) on random host ports, bound to 127.0.0.1 when the daemon
// is local. Container.Endpoint gives the address to dial.
func (r ContainerRequest) WithExposedPorts(ports ...string) ContainerRequest {
	r = r.clone()
	for _, p := range ports {
		pp, err := parsePort(p)
		if err != nil {
			r = r.fail("WithExposedPorts", p, err.Error())
			continue
		}
		r = r.expose(pp)
	}
	return r
}

func (r ContainerRequest) expose(p port) ContainerRequest {
	for _, e := range r.cfg.ExposedPorts {
		if ep, _ := parsePort(e); ep == p {
			return r
		}
	}
	r.cfg.ExposedPorts = append(r.cfg.ExposedPorts, p.String())
	return r
}

// WithHostPort publishes containerPort on a fixed host port instead of a
// random one (exposing it if needed). Fixed ports collide between parallel
// tests; prefer random ones and Container.Endpoint.
func (r ContainerRequest) WithHostPort(containerPort string, hostPort int) ContainerRequest {
	r = r.clone()
	pp, err := parsePort(containerPort)
	if err != nil {
		return r.fail("WithHostPort", containerPort, err.Error())
	}
	if hostPort < 1 || hostPort > 65535 {
		return r.fail("WithHostPort", hostPort, "the host port is outside 1-65535")
	}
	r = r.expose(pp)
	if r.cfg.HostPorts == nil {
		r.cfg.HostPorts = map[string]int{}
	}
	r.cfg.HostPorts[pp.String()] = hostPort
	return r
}

// WithCmd replaces the image's CMD.
func (r ContainerRequest) WithCmd(args ...string) ContainerRequest {
	r = r.clone()
	r.cfg.Cmd = slices.Clone(args)
	return r
}

// WithEntrypoint replaces the image's ENTRYPOINT.
func (r ContainerRequest) WithEntrypoint(args ...string) ContainerRequest {
	r = r.clone()
	r.cfg.Entrypoint = slices.Clone(args)
	return r
}

// WithLabel adds a label. Keys starting with "heph." are reserved.
func (r ContainerRequest) WithLabel(key, value string) ContainerRequest {
	r = r.clone()
	switch {
	case strings.TrimSpace(key) == "":
		return r.fail("WithLabel", key, "the key is empty")
	case strings.HasPrefix(key, labelPrefix):
		return r.fail("WithLabel", key, `the "heph." prefix is reserved for heph`)
	}
	if r.cfg.Labels == nil {
		r.cfg.Labels = map[string]string{}
	}
	r.cfg.Labels[key] = value
	return r
}

// WithBindMount mounts the host path hostPath (absolute) at containerPath.
func (r ContainerRequest) WithBindMount(hostPath, containerPath string) ContainerRequest {
	return r.mount("WithBindMount", Mount{Type: MountBind, Source: hostPath, Target: containerPath})
}

// WithReadOnlyBindMount is WithBindMount, read-only.
func (r ContainerRequest) WithReadOnlyBindMount(hostPath, containerPath string) ContainerRequest {
	return r.mount("WithReadOnlyBindMount", Mount{Type: MountBind, Source: hostPath, Target: containerPath, ReadOnly: true})
}

// WithVolume mounts the named volume name at containerPath. A volume that
// does not exist is created, labelled with the session, and removed with it;
// an existing volume is used and kept.
func (r ContainerRequest) WithVolume(name, containerPath string) ContainerRequest {
	return r.mount("WithVolume", Mount{Type: MountVolume, Source: name, Target: containerPath})
}

// WithTmpfs mounts an in-memory file system at containerPath.
func (r ContainerRequest) WithTmpfs(containerPath string) ContainerRequest {
	return r.mount("WithTmpfs", Mount{Type: MountTmpfs, Target: containerPath})
}

func (r ContainerRequest) mount(option string, m Mount) ContainerRequest {
	r = r.clone()
	switch {
	case m.Type == MountBind && !filepath.IsAbs(m.Source):
		return r.fail(option, m.Source, "the host path must be absolute")
	case m.Type == MountVolume && !volumeName.MatchString(m.Source):
		return r.fail(option, m.Source, "is not a valid volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)")
	case !path.IsAbs(m.Target) || path.Clean(m.Target) == "/":
		return r.fail(option, m.Target, "the container path must be absolute and not /")
	}
	for _, e := range r.cfg.Mounts {
		if path.Clean(e.Target) == path.Clean(m.Target) {
			return r.fail(option, m.Target, "something is already mounted there")
		}
	}
	r.cfg.Mounts = append(r.cfg.Mounts, m)
	return r
}

// WithFile writes a file with the given content and permission bits at
// containerPath (absolute) before the container starts; missing parent
// directories are created.
func (r ContainerRequest) WithFile(containerPath string, content []byte, mode fs.FileMode) ContainerRequest {
	r = r.clone()
	switch {
	case !path.IsAbs(containerPath) || strings.HasSuffix(containerPath, "/"):
		return r.fail("WithFile", containerPath, "must be an absolute file path in the container")
	case mode&^fs.ModePerm != 0:
		return r.fail("WithFile", containerPath, fmt.Sprintf("mode %v has more than permission bits", mode))
	}
	r.files = append(r.files, fileSpec{path: path.Clean(containerPath), content: slices.Clone(content), mode: mode})
	return r
}

// WithWorkingDir sets the working directory (absolute).
func (r ContainerRequest) WithWorkingDir(dir string) ContainerRequest {
	r = r.clone()
	if !path.IsAbs(dir) {
		return r.fail("WithWorkingDir", dir, "must be an absolute path")
	}
	r.cfg.WorkingDir = dir
	return r
}

// WithUser runs the container as user ("name", "uid", "name:group" or
// "uid:gid").
func (r ContainerRequest) WithUser(user string) ContainerRequest {
	r = r.clone()
	if !userSpec.MatchString(user) {
		return r.fail("WithUser", user, `want "user", "uid", "user:group" or "uid:gid"`)
	}
	r.cfg.User = user
	return r
}

// WithWaitStrategy sets what "ready" means: Start returns only once s is
// satisfied (see package wait). Without one, Start returns as soon as the
// container runs. Bad strategy arguments are reported at Start.
func (r ContainerRequest) WithWaitStrategy(s wait.Strategy) ContainerRequest {
	r = r.clone()
	if s == nil {
		return r.fail("WithWaitStrategy", "nil", "the strategy is nil")
	}
	if err := validateStrategy(s); err != nil {
		return r.fail("WithWaitStrategy", s, err.Error())
	}
	r.strategy = s
	return r
}

// WithStartupTimeout bounds the whole start — create, copy files, start and
// wait until ready — at d (default DefaultStartupTimeout). It also bounds the
// retries when Docker's network address pools are exhausted.
func (r ContainerRequest) WithStartupTimeout(d time.Duration) ContainerRequest {
	r = r.clone()
	if d <= 0 {
		return r.fail("WithStartupTimeout", d, "must be positive")
	}
	r.startupTimeout = d
	return r
}

// WithPullTimeout bounds the image pull (default DefaultPullTimeout).
func (r ContainerRequest) WithPullTimeout(d time.Duration) ContainerRequest {
	r = r.clone()
	if d <= 0 {
		return r.fail("WithPullTimeout", d, "must be positive")
	}
	r.cfg.PullTimeout = d
	return r
}

// WithNetwork also joins n (besides the test's own network), with the
// service name as alias.
func (r ContainerRequest) WithNetwork(n *Network) ContainerRequest {
	r = r.clone()
	if n == nil {
		return r.fail("WithNetwork", "nil", "the network is nil")
	}
	r.networks = append(r.networks, n)
	return r
}

// WithGracefulStop makes teardown stop the container gracefully — SIGTERM,
// then SIGKILL after d — before removing it, for example so a Go binary can
// write its GOCOVERDIR coverage. Without it teardown force-removes at once.
func (r ContainerRequest) WithGracefulStop(d time.Duration) ContainerRequest {
	r = r.clone()
	if d < 0 {
		return r.fail("WithGracefulStop", d, "is negative")
	}
	r.graceful, r.gracefulStop = true, d
	return r
}

// WithLogsToTest streams the container's output into t.Log, each line
// prefixed with the service name, until the test ends (HEPH_LOGS=1 does this
// for every container).
func (r ContainerRequest) WithLogsToTest() ContainerRequest {
	r = r.clone()
	r.logsToTest = true
	return r
}

// Service returns the service name the container will have.
func (r ContainerRequest) Service() string {
	if r.cfg.Service != "" {
		return r.cfg.Service
	}
	return ServiceFromImage(r.cfg.Image)
}

// String describes the request for messages: image and service.
func (r ContainerRequest) String() string {
	return fmt.Sprintf("%s (service %q)", r.cfg.Image, r.Service())
}

// validateStrategy reports a strategy's bad arguments, for strategies that
// can tell (every strategy of package wait can).
func validateStrategy(s wait.Strategy) error {
	if v, ok := s.(interface{ Validate() error }); ok {
		return v.Validate()
	}
	return nil
}
