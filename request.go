package heph

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"time"

	"github.com/heph-go/heph/internal/archive"
	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/port"
	"github.com/heph-go/heph/internal/rules"
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
	cfg        ContainerConfig
	build      *buildSource // FromDockerfile
	goPackage  *goSource    // FromGoPackage
	files      []archive.File
	opts       startOptions
	networks   []*Network
	logsToTest bool
	shared     bool
	provided   string // the image a shared take pulled or built already
	perTest    func(context.Context, *Container) (func(context.Context) error, error)
	errs       []error
}

// NewContainer starts a request for a container running image (pulled when
// it is not present locally). Its service name — hostname and network alias —
// is derived from the image name unless WithName sets one.
func NewContainer(image string) ContainerRequest {
	r := ContainerRequest{cfg: ContainerConfig{Image: image}, opts: startOptions{startupTimeout: DefaultStartupTimeout}}
	if err := rules.Image(image); err != nil {
		return r.fail("NewContainer", image, err)
	}
	return r
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

// fail records that option was given a bad value, for Start to report.
func (r ContainerRequest) fail(option string, value any, reason error) ContainerRequest {
	r.errs = append(r.errs, errs.Option(option, value, reason.Error()))
	return r
}

// WithName sets the service name: the container's hostname and its alias on
// its networks, and part of its name (heph-<service>-<8 hex>). It must be a
// host name label: 1-63 lower-case letters, digits and '-'.
func (r ContainerRequest) WithName(service string) ContainerRequest {
	r = r.clone()
	if err := rules.Service(service); err != nil {
		return r.fail("WithName", service, err)
	}
	r.cfg.Service = service
	return r
}

// WithEnv sets an environment variable.
func (r ContainerRequest) WithEnv(key, value string) ContainerRequest {
	r = r.clone()
	if err := errors.Join(rules.EnvKey(key), rules.EnvValue(value)); err != nil {
		return r.fail("WithEnv", rules.EnvKeyShown(key), err) // the key only: the value may be a secret
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
		pp, err := port.Parse(p)
		if err != nil {
			r = r.fail("WithExposedPorts", p, err)
			continue
		}
		r = r.expose(pp)
	}
	return r
}

func (r ContainerRequest) expose(p port.Port) ContainerRequest {
	for _, e := range r.cfg.ExposedPorts {
		if ep, _ := port.Parse(e); ep == p {
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
	pp, err := port.Parse(containerPort)
	if err != nil {
		return r.fail("WithHostPort", containerPort, err)
	}
	if hostPort < 1 || hostPort > 65535 {
		return r.fail("WithHostPort", hostPort, errors.New("the host port is outside 1-65535"))
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
	if err := rules.Args(args); err != nil {
		return r.fail("WithCmd", len(args), err)
	}
	r.cfg.Cmd = slices.Clone(args)
	return r
}

// WithEntrypoint replaces the image's ENTRYPOINT.
func (r ContainerRequest) WithEntrypoint(args ...string) ContainerRequest {
	r = r.clone()
	if err := rules.Args(args); err != nil {
		return r.fail("WithEntrypoint", len(args), err)
	}
	r.cfg.Entrypoint = slices.Clone(args)
	return r
}

// WithLabel adds a label. Keys starting with "heph." are reserved.
func (r ContainerRequest) WithLabel(key, value string) ContainerRequest {
	r = r.clone()
	if err := errors.Join(rules.LabelKey(key), rules.LabelValue(value)); err != nil {
		return r.fail("WithLabel", key, err)
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
	if m.Type == MountVolume && m.Source == "" {
		return r.fail(option, m.Source, errors.New("the volume name is empty"))
	}
	if _, value, err := rules.CheckMount(rules.Mount{Type: string(m.Type), Source: m.Source, Target: m.Target}); err != nil {
		return r.fail(option, value, err)
	}
	for _, e := range r.cfg.Mounts {
		if path.Clean(e.Target) == path.Clean(m.Target) {
			return r.fail(option, m.Target, errors.New("something is already mounted there"))
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
	if err := rules.FilePath(containerPath); err != nil {
		return r.fail("WithFile", containerPath, err)
	}
	if mode&^fs.ModePerm != 0 {
		return r.fail("WithFile", containerPath, fmt.Errorf("mode %v has more than permission bits", mode))
	}
	r.files = append(r.files, archive.File{Path: path.Clean(containerPath), Content: slices.Clone(content), Mode: mode})
	return r
}

// WithWorkingDir sets the working directory (absolute).
func (r ContainerRequest) WithWorkingDir(dir string) ContainerRequest {
	r = r.clone()
	if err := rules.WorkingDir(dir); err != nil {
		return r.fail("WithWorkingDir", dir, err)
	}
	r.cfg.WorkingDir = dir
	return r
}

// WithUser runs the container as user ("name", "uid", "name:group" or
// "uid:gid").
func (r ContainerRequest) WithUser(user string) ContainerRequest {
	r = r.clone()
	if err := rules.User(user); err != nil {
		return r.fail("WithUser", user, err)
	}
	r.cfg.User = user
	return r
}

// WithWaitStrategy sets what "ready" means: Start returns only once s is
// satisfied (see package wait). Without one, Start returns as soon as the
// container runs. Bad strategy arguments are reported at Start.
func (r ContainerRequest) WithWaitStrategy(s wait.Strategy) ContainerRequest {
	r = r.clone()
	if err := wait.Validate(s); err != nil {
		// The error names the strategy and its bad arguments.
		r.errs = append(r.errs, &errs.InvalidError{What: "WithWaitStrategy", Err: err})
		return r
	}
	r.opts.strategy = s
	return r
}

// WithStartupTimeout bounds the whole start — create, copy files, start and
// wait until ready — at d (default DefaultStartupTimeout). It also bounds the
// retries when Docker's network address pools are exhausted.
func (r ContainerRequest) WithStartupTimeout(d time.Duration) ContainerRequest {
	r = r.clone()
	if d <= 0 {
		return r.fail("WithStartupTimeout", d, errors.New("must be positive"))
	}
	r.opts.startupTimeout = d
	return r
}

// WithPullTimeout bounds the image pull (default DefaultPullTimeout).
func (r ContainerRequest) WithPullTimeout(d time.Duration) ContainerRequest {
	r = r.clone()
	if d <= 0 {
		return r.fail("WithPullTimeout", d, errors.New("must be positive"))
	}
	r.cfg.PullTimeout = d
	return r
}

// WithPullPolicy says when a present image is pulled again (see
// PullPolicy): PullPolicy{Always: true} at every start,
// PullPolicy{OlderThan: 24 * time.Hour} when the local copy is older than
// that. Without it HEPH_PULL_POLICY decides, else the image is pulled only
// when missing. It does not apply to FromDockerfile and FromGoPackage. A
// policy with both fields, or a negative OlderThan, fails Start with
// ErrInvalidConfig.
func (r ContainerRequest) WithPullPolicy(p PullPolicy) ContainerRequest {
	r = r.clone()
	if err := p.check(); err != nil {
		return r.fail("WithPullPolicy", policyText(p), err)
	}
	r.cfg.PullPolicy = p
	return r
}

// WithPlatform pulls, builds and runs the image for platform
// "os/arch[/variant]" ("linux/arm64", "linux/arm/v7") instead of the
// daemon's own; the daemon must be able to run it (emulation). A local
// image of another platform is pulled again. A malformed platform fails
// Start with ErrInvalidConfig.
func (r ContainerRequest) WithPlatform(platform string) ContainerRequest {
	r = r.clone()
	if err := rules.Platform(platform); err != nil {
		return r.fail("WithPlatform", platform, err)
	}
	r.cfg.Platform = platform
	return r
}

// WithImageSubstitution rewrites the image name before the pull and the
// create — to pull "postgres:16" from a proxy registry, or to pin a tag —
// with f, which gets the name as given and returns the one to use.
// HEPH_REGISTRY_MIRROR then applies to f's result. Messages show both:
// "postgres:16 (as mirror.corp/library/postgres:16)". A name f returns that
// is not a valid reference fails Start with ErrInvalidConfig.
func (r ContainerRequest) WithImageSubstitution(f func(image string) string) ContainerRequest {
	r = r.clone()
	if f == nil {
		return r.fail("WithImageSubstitution", "nil", errors.New("the function is nil"))
	}
	r.cfg.ImageSubstitution = f
	return r
}

// WithNetwork also joins n (besides the test's own network), with the
// service name as alias.
func (r ContainerRequest) WithNetwork(n *Network) ContainerRequest {
	r = r.clone()
	if n == nil {
		return r.fail("WithNetwork", "nil", errors.New("the network is nil"))
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
		return r.fail("WithGracefulStop", d, errors.New("is negative"))
	}
	r.opts.graceful, r.opts.stopTimeout = true, d
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

// Shared makes the request shared: every test — of this package, of any
// package of the same `go test` run, or of a later run on this machine —
// that starts an equal request gets the same container, created once.
// Equal is by content: the image's content ID (a tag pushed again is a new
// container), command, entrypoint, env, ports, mounts, files, labels, user,
// working dir, platform and service name; not the wait strategy. Start runs
// the wait strategy each time, joins the container to the test's network
// under its service name and leaves it when the test ends. No session owns
// it: the watchdog of the last process holding it removes it HEPH_SHARED_IDLE
// (default 15s; "keep": never) after that process ended, however it ended.
// One that exited, is unhealthy or lost a published port is replaced, not
// handed out. Isolation is the caller's (WithPerTest). With WithGracefulStop
// Start fails with ErrInvalidConfig.
func (r ContainerRequest) Shared() ContainerRequest {
	r = r.clone()
	r.shared = true
	return r
}

// WithPerTest runs setup each time a test takes the container, once it is
// ready and on the test's network — to make what that test needs: a
// schema, a database — and the release setup returns (nil: none) when the
// test lets it go (teardown, Terminate), before the container leaves the
// network or is removed. A setup error fails the start; a release error is
// reported with t.Errorf (returned by Terminate). Shared or not.
func (r ContainerRequest) WithPerTest(setup func(ctx context.Context, c *Container) (release func(context.Context) error, err error)) ContainerRequest {
	r = r.clone()
	if setup == nil {
		return r.fail("WithPerTest", "nil", errors.New("the function is nil"))
	}
	r.perTest = setup
	return r
}

// service returns the service name the container will have.
func (r ContainerRequest) service() string {
	if r.cfg.Service != "" {
		return r.cfg.Service
	}
	return rules.ServiceFromImage(r.cfg.Image)
}

// String describes the request for messages: its image (or what it is built
// from) and service name, "postgres:16 (service "db")".
func (r ContainerRequest) String() string {
	what := r.cfg.Image
	switch {
	case r.build != nil:
		what = "the image of the Dockerfile in " + r.build.dir
	case r.goPackage != nil:
		what = "Go package " + r.goPackage.pkg
	}
	return fmt.Sprintf("%s (service %q)", what, r.service())
}
