package heph

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heph-go/heph/internal/archive"
	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/logtext"
	"github.com/heph-go/heph/internal/port"
	"github.com/heph-go/heph/internal/redact"
	"github.com/heph-go/heph/internal/rules"
	"github.com/heph-go/heph/internal/shared"
	"github.com/heph-go/heph/wait"
)

// Container is a container heph created: by ContainerRequest.Start or Run
// (started and ready), or by Orchestrator.CreateContainer (created, not yet
// started). Its methods are safe for concurrent use. A container started
// with Start is removed when its test ends; any other is removed by
// Terminate, or by its Orchestrator's Teardown.
type Container struct {
	o       *Orchestrator
	id      string
	name    string
	service string
	opts    startOptions
	t       testing.TB     // nil but for Start
	secrets redact.Secrets // its secret env values: masked in what heph prints

	mu    sync.Mutex
	host  string
	ports map[string]int // container port → host port, as last inspected

	termMu     sync.Mutex // serialises Terminate
	terminated bool
	release    func(context.Context) error // undoes WithPerTest's setup
	attach     *shared.Attachment          // a shared container's networks: Terminate leaves them
	logsSince  time.Time                   // when a shared container was taken
}

// startOptions are what a container keeps of its request.
type startOptions struct {
	strategy       wait.Strategy // nil: ready once running
	startupTimeout time.Duration // 0: none
	stopTimeout    time.Duration // 0: DefaultStopTimeout
	graceful       bool          // Terminate stops (stopTimeout) before removing
}

// ID returns the container's ID.
func (c *Container) ID() string { return c.id }

// Name returns the container's name, heph-<service>-<8 hex>.
func (c *Container) Name() string { return c.name }

// Service returns the service name: the container's hostname and its alias
// on its networks.
func (c *Container) Service() string { return c.service }

// Host returns the host where the container's published ports are reached:
// 127.0.0.1 for a local daemon, the daemon's host otherwise.
func (c *Container) Host() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.host
}

// MappedPort returns the host port that port ("8080/tcp", or "8080" for
// TCP) is published on. For a port the container does not publish it
// returns 0 and, for a container started with Start, marks the test failed
// (t.Errorf) with a message naming the port and the ports it does publish.
func (c *Container) MappedPort(port string) int {
	hp, err := c.mappedPort(port)
	if err != nil {
		if c.t != nil {
			c.t.Errorf("%v", err)
		}
		return 0
	}
	return hp
}

func (c *Container) mappedPort(p string) (int, error) {
	pp, err := port.Parse(p)
	if err != nil {
		return 0, errs.Op("container", c.name, nil, invalid("port", p, err.Error()))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if hp, ok := c.ports[pp.String()]; ok {
		return hp, nil
	}
	exposed := slices.Sorted(maps.Keys(c.ports))
	if len(exposed) == 0 {
		return 0, fmt.Errorf("heph: container %s does not publish %s: it publishes no port (use WithExposedPorts)", c.name, pp)
	}
	return 0, fmt.Errorf("heph: container %s does not publish %s: it publishes %s (use WithExposedPorts)", c.name, pp, strings.Join(exposed, ", "))
}

// Endpoint returns "host:port" for a published container port, ready to
// dial. For a port the container does not publish it returns "" and, like
// MappedPort, marks a Start-ed container's test failed.
func (c *Container) Endpoint(port string) string {
	hp := c.MappedPort(port)
	if hp == 0 {
		return ""
	}
	return net.JoinHostPort(c.Host(), strconv.Itoa(hp))
}

// Inspect returns the container's current state.
func (c *Container) Inspect(ctx context.Context) (ContainerInfo, error) {
	return c.o.InspectContainer(ctx, c.id)
}

// logs returns the container's output, demultiplexed.
func (c *Container) logs(ctx context.Context, opts engine.LogOptions) (io.ReadCloser, error) {
	if opts.Tail < 0 {
		return nil, invalid("log tail", opts.Tail, "is negative")
	}
	r, err := c.o.api.ContainerLogs(ctx, c.id, opts)
	if err != nil {
		return nil, wrap("read logs of container", c.name, err, ErrContainerNotFound)
	}
	return r, nil
}

// Logs returns everything the container has written so far, stdout and
// stderr demultiplexed, in the order the daemon recorded them (Docker reads
// the two from separate pipes, so only the order within each is certain).
func (c *Container) Logs(ctx context.Context) (string, error) {
	r, err := c.logs(ctx, engine.LogOptions{})
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return string(b), fmt.Errorf("heph: read logs of container %q: %w", c.name, err)
	}
	return string(b), nil
}

// FollowLogs streams the container's output (stdout and stderr as Logs)
// from the start until the container stops or ctx ends. The caller closes
// the stream.
func (c *Container) FollowLogs(ctx context.Context) (io.ReadCloser, error) {
	return c.logs(ctx, engine.LogOptions{Follow: true})
}

// ExecResult is the outcome of a command run in a container.
type ExecResult struct {
	// ExitCode is the command's exit code.
	ExitCode int
	// Stdout and Stderr are what the command wrote, demultiplexed.
	Stdout, Stderr []byte
}

// Exec runs cmd in the running container (no shell: cmd[0] is the program),
// waits for it to finish and returns its exit code and output. A non-zero
// exit code is not an error; failing to run the command is (a program that
// does not exist in the image, a container that is not running).
func (c *Container) Exec(ctx context.Context, cmd ...string) (ExecResult, error) {
	shown := redact.Args(cmd) // what an error may say of cmd
	if len(cmd) == 0 || cmd[0] == "" {
		return ExecResult{}, invalid("Exec cmd", strings.Join(shown, " "), "is empty")
	}
	if err := rules.Args(cmd); err != nil {
		return ExecResult{}, invalid("Exec cmd", shown[0], err.Error())
	}
	r, err := c.o.api.Exec(ctx, c.id, cmd)
	if err != nil {
		return ExecResult{}, c.secrets.And(redact.ArgSecrets(cmd)).Error(wrap("exec "+fmt.Sprintf("%q", shown[0])+" in container", c.name, err, ErrContainerNotFound))
	}
	return ExecResult(r), nil
}

// CopyToContainer copies the host file or directory hostPath so that it
// becomes containerPath (absolute) in the container, running or not.
// Missing parent directories are created; modes are kept, ownership becomes
// root's.
func (c *Container) CopyToContainer(ctx context.Context, hostPath, containerPath string) error {
	if err := rules.ContainerPath(containerPath); err != nil {
		return invalid("containerPath", containerPath, err.Error())
	}
	if _, err := os.Lstat(hostPath); err != nil {
		return invalid("hostPath", hostPath, err.Error())
	}
	return c.putArchive(ctx, "copy "+fmt.Sprintf("%q", hostPath)+" into container", func(tw *tar.Writer) error {
		return archive.WriteTree(tw, hostPath, strings.TrimPrefix(path.Clean(containerPath), "/"), nil)
	})
}

// copyFiles writes WithFile files into the container.
func (c *Container) copyFiles(ctx context.Context, files []archive.File) error {
	return c.putArchive(ctx, "copy files into container", func(tw *tar.Writer) error { return archive.WriteFiles(tw, files) })
}

// putArchive streams a tar written by fill into the container's root: the
// daemon creates missing parent directories.
func (c *Container) putArchive(ctx context.Context, op string, fill func(*tar.Writer) error) error {
	r := archive.Stream(fill)
	defer r.Close()
	return wrap(op, c.name, c.o.api.CopyTo(ctx, c.id, "/", r), ErrContainerNotFound)
}

// CopyFromContainer copies the file or directory containerPath out of the
// container so that it becomes hostPath (its missing parent directories are
// made). Regular files, directories, symbolic and hard links are copied with
// their modes; nothing is ever written outside hostPath: an archive entry
// named outside it, or below a symbolic link, is refused with an error
// (what was extracted before it stays), and a link is never followed.
func (c *Container) CopyFromContainer(ctx context.Context, containerPath, hostPath string) error {
	if err := rules.ContainerPath(containerPath); err != nil {
		return invalid("containerPath", containerPath, err.Error())
	}
	op := "copy " + fmt.Sprintf("%q", containerPath) + " from container"
	r, err := c.o.api.CopyFrom(ctx, c.id, containerPath)
	if err != nil {
		return wrap(op, c.name, err, ErrContainerNotFound)
	}
	defer r.Close()
	return wrap(op, c.name, archive.Extract(r, hostPath), nil)
}

// Stop stops the container gracefully: SIGTERM, then SIGKILL after the
// WithGracefulStop duration (or ContainerConfig.StopTimeout), else
// DefaultStopTimeout. The container keeps existing; Start runs it again.
// Stopping a stopped container is not an error. ctx should outlive the
// timeout.
func (c *Container) Stop(ctx context.Context) error {
	timeout := c.opts.stopTimeout
	if timeout == 0 && !c.opts.graceful {
		timeout = DefaultStopTimeout
	}
	return wrap("stop container", c.name, c.o.api.ContainerStop(ctx, c.id, timeout), ErrContainerNotFound)
}

// Start starts the container (created, or stopped) and waits with its wait
// strategy until it is ready, bounded by its startup timeout. Docker may
// publish its ports on new host ports: MappedPort and Endpoint return the
// new ones afterwards.
func (c *Container) Start(ctx context.Context) error {
	if c.opts.startupTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.startupTimeout)
		defer cancel()
	}
	if err := c.o.api.ContainerStart(ctx, c.id); err != nil {
		return c.secrets.Error(wrap("start container", c.name, err, ErrContainerNotFound))
	}
	return c.secrets.Error(c.ready(ctx))
}

// ready refreshes the published ports and runs the wait strategy.
func (c *Container) ready(ctx context.Context) error {
	info, err := c.Inspect(ctx)
	if err != nil {
		return err
	}
	c.setPorts(info)
	if c.opts.strategy == nil {
		return nil
	}
	return wait.Run(ctx, c.opts.strategy, target{c})
}

func (c *Container) setPorts(info ContainerInfo) {
	ports := make(map[string]int, len(info.Ports))
	for p, bs := range info.Ports {
		if len(bs) > 0 {
			ports[p] = int(bs[0].Port())
		}
	}
	c.mu.Lock()
	c.ports = ports
	c.mu.Unlock()
}

// Terminate removes the container (force, with its anonymous volumes, after
// a graceful stop when WithGracefulStop asked for one), after the release
// of WithPerTest. A shared container (ContainerRequest.Shared) is not
// removed: Terminate lets it go — the release, then it leaves this test's
// networks — and its holders' idle time removes it. It is idempotent:
// terminating a removed container does nothing.
func (c *Container) Terminate(ctx context.Context) error {
	c.termMu.Lock()
	defer c.termMu.Unlock()
	if c.terminated {
		return nil
	}
	var released error
	if c.release != nil {
		if released, c.release = c.release(ctx), nil; released != nil {
			released = fmt.Errorf("heph: release of container %s (WithPerTest): %w", c.name, released)
		}
	}
	if c.attach != nil {
		err := c.attach.Leave(ctx)
		c.terminated = err == nil
		return errors.Join(released, err)
	}
	if c.opts.graceful {
		if err := c.Stop(ctx); err != nil && !isNotFound(err) {
			return errors.Join(released, err)
		}
	}
	if err := c.o.RemoveContainer(ctx, c.id); err != nil && !isNotFound(err) {
		return errors.Join(released, err)
	}
	c.terminated = true
	return released
}

// describe returns the container's state and its last n log lines, for
// failure messages, its secrets masked.
func (c *Container) describe(ctx context.Context, n int) string {
	return c.secrets.String(c.state(ctx, n))
}

// state returns the container's state and its last n log lines.
func (c *Container) state(ctx context.Context, n int) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var b strings.Builder
	info, err := c.Inspect(ctx)
	if err != nil {
		fmt.Fprintf(&b, "container %s (service %s): state unknown: %s\n", c.name, c.service, errs.Strip(err.Error()))
		return b.String()
	}
	fmt.Fprintf(&b, "container %s (service %s, image %s): %s", c.name, c.service, info.Image, stateSummary(info))
	lines, err := c.tail(ctx, n)
	if err != nil {
		err = errors.New(errs.Strip(err.Error()))
	}
	logtext.Block(&b, lines, err)
	return b.String()
}

// stateSummary says "running", "exited with code 3 (OOM-killed)", …
func stateSummary(info ContainerInfo) string {
	s := string(info.Status)
	if info.Status == StatusExited || info.Status == StatusDead {
		s += fmt.Sprintf(" with code %d", info.ExitCode)
	}
	if info.OOMKilled {
		s += " (OOM-killed)"
	}
	if info.Error != "" {
		s += " (error: " + info.Error + ")"
	}
	if info.Health != "" {
		s += ", health " + info.Health
		if n := len(info.HealthLog); n > 0 {
			s += ": " + info.HealthLog[n-1]
		}
	}
	return s
}

// tail returns the container's last n log lines (each cut at logtext.Max).
func (c *Container) tail(ctx context.Context, n int) ([]string, error) {
	r, err := c.logs(ctx, engine.LogOptions{Tail: n})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return logtext.Tail(r)
}
