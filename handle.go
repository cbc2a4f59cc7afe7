package heph

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Container is a running container started by ContainerRequest.Start or Run.
// Its methods are safe for concurrent use. A container started with Start is
// removed when its test ends; one started with Run is removed by Terminate.
type Container struct {
	o       *Orchestrator
	id      string
	name    string
	service string
	req     ContainerRequest
	t       testing.TB // nil for Run

	mu    sync.Mutex
	host  string
	ports map[string]int // container port → host port, as last inspected

	termMu     sync.Mutex // serialises Terminate
	terminated bool
}

// ID returns the container's ID.
func (c *Container) ID() string { return c.id }

// Name returns the container's name, heph-<service>-<8 hex>.
func (c *Container) Name() string { return c.name }

// Service returns the service name: the container's hostname and its alias
// on its networks.
func (c *Container) Service() string { return c.service }

// String returns the container's name.
func (c *Container) String() string { return c.name }

// Host returns the host where the container's published ports are reached:
// 127.0.0.1 for a local daemon, the host of a tcp:// DOCKER_HOST otherwise.
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

func (c *Container) mappedPort(port string) (int, error) {
	pp, err := parsePort(port)
	if err != nil {
		return 0, fmt.Errorf("heph: container %s: %w", c.name, invalid("port", port, err.Error()))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if hp, ok := c.ports[pp.String()]; ok {
		return hp, nil
	}
	exposed := make([]string, 0, len(c.ports))
	for p := range c.ports {
		exposed = append(exposed, p)
	}
	sort.Strings(exposed)
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

// Ports returns every published container port with its host port.
func (c *Container) Ports() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.ports)
}

// IP returns the container's address on the named network, "" when it is
// not on it or not running.
func (c *Container) IP(ctx context.Context, network string) (string, error) {
	info, err := c.Inspect(ctx)
	if err != nil {
		return "", err
	}
	return info.Networks[network].IP, nil
}

// Inspect returns the container's current state.
func (c *Container) Inspect(ctx context.Context) (ContainerInfo, error) {
	return c.o.InspectContainer(ctx, c.id)
}

// Logs returns everything the container has written so far, stdout and
// stderr demultiplexed, in the order the daemon recorded them.
func (c *Container) Logs(ctx context.Context) (string, error) {
	r, err := c.o.Logs(ctx, c.id, LogOptions{})
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
	return c.o.Logs(ctx, c.id, LogOptions{Follow: true})
}

// Exec runs cmd in the container (no shell: cmd[0] is the program) and
// returns its exit code and output. A non-zero exit code is not an error.
func (c *Container) Exec(ctx context.Context, cmd ...string) (ExecResult, error) {
	return c.o.Exec(ctx, c.id, cmd...)
}

// CopyToContainer copies the host file or directory hostPath so that it
// becomes containerPath in the container (missing parents are created).
func (c *Container) CopyToContainer(ctx context.Context, hostPath, containerPath string) error {
	return c.o.CopyToContainer(ctx, c.id, hostPath, containerPath)
}

// CopyFromContainer copies the file or directory containerPath out of the
// container so that it becomes hostPath (whose parent must exist).
func (c *Container) CopyFromContainer(ctx context.Context, containerPath, hostPath string) error {
	return c.o.CopyFromContainer(ctx, c.id, containerPath, hostPath)
}

// Stop stops the container gracefully: SIGTERM, then SIGKILL after the
// WithGracefulStop duration, or DefaultStopTimeout (StopTimeout overrides
// both). The container keeps existing; Start runs it again.
func (c *Container) Stop(ctx context.Context, opts ...StopOption) error {
	if c.req.graceful {
		opts = append([]StopOption{StopTimeout(c.req.gracefulStop)}, opts...)
	}
	return c.o.StopContainer(ctx, c.id, opts...)
}

// Start starts a stopped container again and waits with the request's wait
// strategy until it is ready, bounded by its startup timeout. Docker may
// publish its ports on new host ports: MappedPort and Endpoint return the
// new ones afterwards.
func (c *Container) Start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.req.startupTimeout)
	defer cancel()
	if err := c.o.StartContainer(ctx, c.id); err != nil {
		return err
	}
	return c.ready(ctx)
}

// ready refreshes the published ports and runs the wait strategy.
func (c *Container) ready(ctx context.Context) error {
	info, err := c.o.InspectContainer(ctx, c.id)
	if err != nil {
		return err
	}
	c.setPorts(info)
	if c.req.strategy == nil {
		return nil
	}
	return waitFor(ctx, c.req.strategy, c)
}

func (c *Container) setPorts(info ContainerInfo) {
	ports := make(map[string]int, len(info.Ports))
	for p, bs := range info.Ports {
		if len(bs) > 0 {
			ports[p] = bs[0].HostPort
		}
	}
	c.mu.Lock()
	c.ports = ports
	c.mu.Unlock()
}

// Terminate removes the container (force, with its anonymous volumes, after
// a graceful stop when WithGracefulStop asked for one). It is idempotent:
// terminating a removed container does nothing.
func (c *Container) Terminate(ctx context.Context) error {
	c.termMu.Lock()
	defer c.termMu.Unlock()
	if c.terminated {
		return nil
	}
	if c.req.graceful {
		if err := c.o.StopContainer(ctx, c.id, StopTimeout(c.req.gracefulStop)); err != nil && !isNotFound(err) {
			return err
		}
	}
	if err := c.o.RemoveContainer(ctx, c.id); err != nil && !isNotFound(err) {
		return err
	}
	c.terminated = true
	return nil
}

// describe returns the container's state and its last n log lines, for
// failure messages.
func (c *Container) describe(ctx context.Context, n int) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var b strings.Builder
	info, err := c.o.InspectContainer(ctx, c.id)
	if err != nil {
		fmt.Fprintf(&b, "container %s (service %s): state unknown: %v\n", c.name, c.service, err)
		return b.String()
	}
	fmt.Fprintf(&b, "container %s (service %s, image %s): %s", c.name, c.service, info.Image, stateSummary(info))
	if lines, err := c.tail(ctx, n); err != nil {
		fmt.Fprintf(&b, "\n  (logs unavailable: %v)", err)
	} else if len(lines) == 0 {
		b.WriteString("\n  (no output)")
	} else {
		fmt.Fprintf(&b, "\n  last %d log lines:", len(lines))
		for _, l := range lines {
			b.WriteString("\n  | " + l)
		}
	}
	return b.String()
}

// stateSummary says "running", "exited with code 3 (OOM-killed)", …
func stateSummary(info ContainerInfo) string {
	s := info.Status.String()
	if info.Status == StatusExited || info.Status == StatusDead {
		s += fmt.Sprintf(" with code %d", info.ExitCode)
	}
	if info.OOMKilled {
		s += " (OOM-killed)"
	}
	if info.Error != "" {
		s += " (error: " + info.Error + ")"
	}
	if info.Health != nil {
		s += ", health " + info.Health.Status
		if n := len(info.Health.Log); n > 0 {
			s += ": " + strings.TrimSpace(info.Health.Log[n-1].Output)
		}
	}
	return s
}

// tail returns the container's last n log lines.
func (c *Container) tail(ctx context.Context, n int) ([]string, error) {
	r, err := c.o.Logs(ctx, c.id, LogOptions{Tail: n})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	text := strings.TrimRight(string(b), "\n")
	if text == "" {
		return nil, err
	}
	return strings.Split(text, "\n"), err
}
