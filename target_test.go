package heph

import (
	"context"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/wait"
)

// running returns a started container with its wait target.
func running(t *testing.T, cfg ContainerConfig) (*Container, target, *enginetest.Fake) {
	t.Helper()
	c, f := created(t, cfg)
	require.NoError(t, c.Start(context.Background()))
	return c, target{c}, f
}

func TestWaitStateMapsTheContainerInfo(t *testing.T) {
	t.Parallel()
	started := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	st := waitState(ContainerInfo{
		Status: StatusExited, ExitCode: 2, OOMKilled: true, Error: "oops", Started: started, Finished: started.Add(time.Second),
		Health: "unhealthy", HealthLog: []string{"refused"},
		Ports: map[string][]netip.AddrPort{
			"8080/tcp": {netip.MustParseAddrPort("127.0.0.1:49153"), netip.MustParseAddrPort("[::1]:49153")},
			"9/udp":    {},
		},
		Networks: map[string]NetworkEndpoint{"b-net": {IP: "172.19.0.2"}, "a-net": {IP: "172.18.0.2"}, "stopped": {}},
	})
	require.Equal(t, wait.State{
		Status: "exited", Running: false, ExitCode: 2, OOMKilled: true, Error: "oops",
		StartedAt: started, FinishedAt: started.Add(time.Second), Health: "unhealthy", HealthLog: []string{"refused"},
		Ports: map[string]int{"8080/tcp": 49153},    // a port without a binding is not published
		IPs:   []string{"172.18.0.2", "172.19.0.2"}, // by network name; none for a network without an address
	}, st)
	require.True(t, waitState(ContainerInfo{Status: StatusPaused}).Running)
}

func TestTargetOverTheSeam(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, tg, f := running(t, ContainerConfig{ExposedPorts: []string{"8080"}})

	host, err := tg.Host(ctx)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host)
	p, err := tg.MappedPort(ctx, "8080/tcp")
	require.NoError(t, err)
	require.Equal(t, 32768, p)
	_, err = tg.MappedPort(ctx, "9090")
	require.ErrorContains(t, err, "does not publish 9090/tcp")

	st, err := tg.State(ctx)
	require.NoError(t, err)
	require.Equal(t, "running", st.Status)
	require.True(t, st.Running)
	require.Equal(t, map[string]int{"8080/tcp": 32768}, st.Ports)

	f.WriteLog(c.ID(), "a\nb\nc\n")
	r, err := tg.Logs(ctx, wait.LogOptions{Tail: 2})
	require.NoError(t, err)
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.Equal(t, "b\nc\n", string(b))

	f.ExecFunc = func(string, []string) (engine.ExecResult, error) {
		return engine.ExecResult{ExitCode: 1, Stdout: []byte("no")}, nil
	}
	res, err := tg.Exec(ctx, []string{"pg_isready"})
	require.NoError(t, err)
	require.Equal(t, wait.ExecResult{ExitCode: 1, Stdout: []byte("no")}, res)
}

func TestWaitExitReturnsTheFinalState(t *testing.T) {
	t.Parallel()
	c, tg, f := running(t, ContainerConfig{})
	waiting := make(chan struct{})
	f.Hook = func(_ context.Context, call string, _ any) error {
		if call == "ContainerWait" {
			close(waiting)
		}
		return nil
	}
	type result struct {
		st  wait.State
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := tg.WaitExit(context.Background())
		done <- result{st, err}
	}()
	<-waiting
	f.Exit(c.ID(), 4)
	r := <-done
	require.NoError(t, r.err)
	st := r.st
	require.Equal(t, "exited", st.Status)
	require.Equal(t, 4, st.ExitCode)
	require.False(t, st.Running)

	f.Hook = nil
	st, err := tg.WaitExit(context.Background())
	require.NoError(t, err, "a container already stopped returns at once")
	require.Equal(t, 4, st.ExitCode)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = tg.WaitExit(ctx)
	require.ErrorIs(t, err, context.Canceled)

	require.NoError(t, c.Terminate(context.Background()))
	_, err = tg.WaitExit(context.Background())
	require.ErrorIs(t, err, ErrContainerNotFound)
	require.EqualError(t, err, `heph: wait for container "`+c.Name()+`": No such container: `+c.ID())
}

func TestHealthEvents(t *testing.T) {
	t.Parallel()
	c, tg, f := running(t, ContainerConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	events, err := tg.HealthEvents(ctx)
	require.NoError(t, err)

	f.Emit(engine.Event{Type: "container", Action: "health_status: starting", ID: "another container"})
	f.Emit(engine.Event{Type: "container", Action: "start", ID: c.ID()})
	f.Emit(engine.Event{Type: "container", Action: "health_status: unhealthy", ID: c.ID()})
	f.Emit(engine.Event{Type: "container", Action: "health_status:healthy", ID: c.ID()})
	require.Equal(t, "unhealthy", <-events, "only this container's health events")
	require.Equal(t, "healthy", <-events, "with or without a space after the colon")

	cancel()
	for range events {
	}
	// The channel closed when the context ended.

	events, err = tg.HealthEvents(context.Background())
	require.NoError(t, err)
	f.CutEvents()
	_, ok := <-events
	require.False(t, ok, "a broken event stream closes the channel: the strategy polls instead")
}

func TestForHealthCheckIsDrivenByEvents(t *testing.T) {
	t.Parallel()
	c, f := created(t, ContainerConfig{WaitStrategy: wait.ForHealthCheck()})
	f.SetHealth(c.ID(), "starting", "")
	f.Hook = func(_ context.Context, call string, _ any) error {
		if call == "ContainerInspect" { // the daemon reports the change as an event only
			f.Emit(engine.Event{Type: "container", Action: "health_status: healthy", ID: c.ID()})
		}
		return nil
	}
	require.NoError(t, c.Start(context.Background()))
	info, err := c.Inspect(context.Background())
	require.NoError(t, err)
	require.Equal(t, "starting", info.Health, "ready on the event, not on a poll of the state")
	require.Positive(t, f.CallCount("Events"))
}
