package heph

import (
	"context"
	"io"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/heph-go/heph/wait"
)

// waitFor runs a wait strategy against a container: package wait's Run adds
// the fail-fast on exit and the state and log tail to errors.
func waitFor(ctx context.Context, s wait.Strategy, c *Container) error {
	return wait.Run(ctx, s, target{c})
}

// target adapts a Container to wait.Target.
type target struct{ c *Container }

var _ wait.Target = target{}

func (t target) Host(context.Context) (string, error) { return t.c.Host(), nil }

func (t target) MappedPort(_ context.Context, port string) (int, error) {
	return t.c.mappedPort(port)
}

func (t target) Logs(ctx context.Context, opts wait.LogOptions) (io.ReadCloser, error) {
	return t.c.o.Logs(ctx, t.c.id, LogOptions{Follow: opts.Follow, Tail: opts.Tail})
}

func (t target) Exec(ctx context.Context, cmd []string) (wait.ExecResult, error) {
	r, err := t.c.o.Exec(ctx, t.c.id, cmd...)
	return wait.ExecResult{ExitCode: r.ExitCode, Stdout: r.Stdout, Stderr: r.Stderr}, err
}

func (t target) State(ctx context.Context) (wait.State, error) {
	info, err := t.c.o.InspectContainer(ctx, t.c.id)
	if err != nil {
		return wait.State{}, err
	}
	return waitState(info), nil
}

func waitState(info ContainerInfo) wait.State {
	s := wait.State{
		Status:     info.Status.String(),
		Running:    info.Running(),
		ExitCode:   info.ExitCode,
		OOMKilled:  info.OOMKilled,
		Error:      info.Error,
		StartedAt:  info.Started,
		FinishedAt: info.Finished,
		Ports:      map[string]int{},
	}
	if h := info.Health; h != nil {
		s.Health = h.Status
		for _, l := range h.Log {
			s.HealthLog = append(s.HealthLog, strings.TrimSpace(l.Output))
		}
	}
	for p, bs := range info.Ports {
		if len(bs) > 0 {
			s.Ports[p] = bs[0].HostPort
		}
	}
	names := make([]string, 0, len(info.Networks))
	for n := range info.Networks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if ip := info.Networks[n].IP; ip != "" {
			s.IPs = append(s.IPs, ip)
		}
	}
	return s
}

// WaitExit blocks on Docker's wait API until the container is not running.
func (t target) WaitExit(ctx context.Context) (wait.State, error) {
	if err := t.c.o.waitNotRunning(ctx, t.c.id); err != nil {
		return wait.State{}, err
	}
	return t.State(ctx)
}

// HealthEvents follows Docker's health_status events for the container.
func (t target) HealthEvents(ctx context.Context) (<-chan string, error) {
	return t.c.o.healthEvents(ctx, t.c.id)
}

// waitNotRunning returns once the container is not running (at once for a
// stopped one).
func (o *Orchestrator) waitNotRunning(ctx context.Context, id string) error {
	res := o.api.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-res.Result:
		return nil
	case err := <-res.Error:
		return wrap("wait for container", o.nameOf(id), err, ErrContainerNotFound)
	case <-ctx.Done():
		return wrap("wait for container", o.nameOf(id), ctx.Err(), nil)
	}
}

// healthEvents delivers the container's health status changes until ctx
// ends, then closes the channel.
func (o *Orchestrator) healthEvents(ctx context.Context, id string) (<-chan string, error) {
	ev := o.api.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).
		Add("type", "container").Add("container", id).Add("event", "health_status")})
	out := make(chan string)
	go func() {
		defer close(out)
		for {
			select {
			case m, ok := <-ev.Messages:
				if !ok {
					return
				}
				// "health_status: healthy" (newer daemons may add the status to the filter name too).
				status := strings.TrimSpace(strings.TrimPrefix(string(m.Action), "health_status:"))
				select {
				case out <- status:
				case <-ctx.Done():
					return
				}
			case <-ev.Err: // the stream ended: the strategy polls the state instead
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
