package heph

import (
	"context"
	"io"
	"maps"
	"slices"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/wait"
)

// target adapts a Container to wait.Target, through the Docker seam.
type target struct{ c *Container }

var _ wait.Target = target{}

func (t target) Host(context.Context) (string, error) { return t.c.Host(), nil }

func (t target) MappedPort(_ context.Context, port string) (int, error) {
	return t.c.mappedPort(port)
}

func (t target) Logs(ctx context.Context, opts wait.LogOptions) (io.ReadCloser, error) {
	return t.c.logs(ctx, engine.LogOptions{Follow: opts.Follow, Tail: opts.Tail})
}

func (t target) Exec(ctx context.Context, cmd []string) (wait.ExecResult, error) {
	r, err := t.c.Exec(ctx, cmd...)
	return wait.ExecResult(r), err
}

func (t target) State(ctx context.Context) (wait.State, error) {
	info, err := t.c.Inspect(ctx)
	if err != nil {
		return wait.State{}, err
	}
	return waitState(info), nil
}

func waitState(info ContainerInfo) wait.State {
	s := wait.State{
		Status:     string(info.Status),
		Running:    info.Running(),
		ExitCode:   info.ExitCode,
		OOMKilled:  info.OOMKilled,
		Error:      info.Error,
		StartedAt:  info.Started,
		FinishedAt: info.Finished,
		Health:     info.Health,
		HealthLog:  info.HealthLog,
		Ports:      map[string]int{},
	}
	for p, bs := range info.Ports {
		if len(bs) > 0 {
			s.Ports[p] = int(bs[0].Port())
		}
	}
	for _, n := range slices.Sorted(maps.Keys(info.Networks)) {
		if ip := info.Networks[n].IP; ip != "" {
			s.IPs = append(s.IPs, ip)
		}
	}
	return s
}

// WaitExit blocks on Docker's wait API until the container is not running.
func (t target) WaitExit(ctx context.Context) (wait.State, error) {
	if err := t.c.o.api.ContainerWait(ctx, t.c.id); err != nil {
		return wait.State{}, wrap("wait for container", t.c.name, err, ErrContainerNotFound)
	}
	return t.State(ctx)
}

// HealthEvents follows Docker's health_status events for the container. When
// the event stream breaks the channel closes and the strategy polls the
// state instead.
func (t target) HealthEvents(ctx context.Context) (<-chan string, error) {
	return engine.HealthStatuses(ctx, t.c.o.api, t.c.id), nil
}
