package waittest_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/wait"
	"github.com/heph-go/heph/wait/waittest"
)

func readAll(t *testing.T, tg *waittest.Target, opts wait.LogOptions) string {
	t.Helper()
	rc, err := tg.Logs(context.Background(), opts)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return string(b)
}

func TestLogsTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		log  string
		tail int
		want string
	}{
		{"a\nb\nc\n", 0, "a\nb\nc\n"},
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc\n", 3, "a\nb\nc\n"},
		{"a\nb\nc\n", 10, "a\nb\nc\n"},
		{"a\nb\nc", 1, "c"},
		{"a\nb\nc", 2, "b\nc"},
		{"", 5, ""},
		{"\n\n", 1, "\n"},
	}
	for _, tt := range tests {
		tg := waittest.New()
		tg.Write([]byte(tt.log))
		require.Equal(t, tt.want, readAll(t, tg, wait.LogOptions{Tail: tt.tail}), "%q tail %d", tt.log, tt.tail)
	}
}

func TestLogsFollow(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	tg.Log("one")
	rc, err := tg.Logs(context.Background(), wait.LogOptions{Follow: true})
	require.NoError(t, err)
	defer rc.Close()
	snapshot := readAll(t, tg, wait.LogOptions{}) // without Follow: what is there now
	require.Equal(t, "one\n", snapshot)
	go func() {
		tg.Log("two")
		tg.Exit(0) // ends the log
		tg.Log("dropped")
	}()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.Equal(t, "one\ntwo\n", string(b))
}

func TestLogsFollowCancel(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := tg.Logs(ctx, wait.LogOptions{Follow: true})
	require.NoError(t, err)
	time.AfterFunc(10*time.Millisecond, cancel)
	_, err = io.ReadAll(rc)
	require.ErrorIs(t, err, context.Canceled)

	rc, err = tg.Logs(context.Background(), wait.LogOptions{Follow: true})
	require.NoError(t, err)
	time.AfterFunc(10*time.Millisecond, func() { rc.Close() })
	_, err = io.ReadAll(rc)
	require.Error(t, err, "Close unblocks a Read")
}

func TestExitAndState(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	ctx := context.Background()
	st, err := tg.State(ctx)
	require.NoError(t, err)
	require.Equal(t, "running", st.Status)
	require.True(t, st.Running)

	done := make(chan wait.State)
	go func() {
		st, err := tg.WaitExit(ctx)
		if err != nil {
			panic(err)
		}
		done <- st
	}()
	tg.UpdateState(func(st *wait.State) { st.OOMKilled = true })
	tg.Exit(137)
	tg.Exit(1) // ignored
	st = <-done
	require.Equal(t, "exited", st.Status)
	require.False(t, st.Running)
	require.Equal(t, 137, st.ExitCode)
	require.True(t, st.OOMKilled)
	st, err = tg.WaitExit(ctx)
	require.NoError(t, err)
	require.Equal(t, 137, st.ExitCode, "returns at once after Exit")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = waittest.New().WaitExit(cctx)
	require.ErrorIs(t, err, context.Canceled)
}

func TestStateIsACopy(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	tg.Publish("8080", 1)
	tg.SetIPs("10.0.0.2")
	st, _ := tg.State(context.Background())
	st.Ports["8080/tcp"] = 2
	st.IPs[0] = "x"
	st2, _ := tg.State(context.Background())
	require.Equal(t, map[string]int{"8080/tcp": 1}, st2.Ports)
	require.Equal(t, []string{"10.0.0.2"}, st2.IPs)

	tg.SetStateFunc(func(context.Context) (wait.State, error) { return wait.State{Status: "paused"}, nil })
	st3, _ := tg.State(context.Background())
	require.Equal(t, "paused", st3.Status)
}

func TestPorts(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	tg.Publish("8080", 32768)
	tg.Publish("53/UDP", 32769)
	ctx := context.Background()
	p, err := tg.MappedPort(ctx, "8080/tcp")
	require.NoError(t, err)
	require.Equal(t, 32768, p)
	p, err = tg.MappedPort(ctx, "53/udp")
	require.NoError(t, err)
	require.Equal(t, 32769, p)
	_, err = tg.MappedPort(ctx, "9090")
	require.EqualError(t, err, "waittest: port 9090/tcp is not published")
	h, err := tg.Host(ctx)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", h)
}

func TestHealthEvents(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	ctx, cancel := context.WithCancel(context.Background())
	events, err := tg.HealthEvents(ctx)
	require.NoError(t, err)
	tg.SetHealth("starting")
	tg.SetHealth("unhealthy", "refused")
	tg.SetHealth("healthy", "ok")
	require.Equal(t, "starting", <-events)
	require.Equal(t, "unhealthy", <-events)
	require.Equal(t, "healthy", <-events)
	st, _ := tg.State(context.Background())
	require.Equal(t, "healthy", st.Health)
	require.Equal(t, []string{"refused", "ok"}, st.HealthLog)
	cancel()
	for range events {
		// drain until closed
	}
}

func TestSetErrorAndCalls(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	boom := errors.New("boom")
	tg.SetError(waittest.MethodExec, boom)
	_, err := tg.Exec(context.Background(), []string{"x"})
	require.ErrorIs(t, err, boom)
	tg.SetError(waittest.MethodExec, nil)
	_, err = tg.Exec(context.Background(), []string{"x"})
	require.EqualError(t, err, "waittest: no exec function")
	tg.SetExec(func(_ context.Context, cmd []string) (wait.ExecResult, error) {
		return wait.ExecResult{Stdout: []byte(cmd[0])}, nil
	})
	res, err := tg.Exec(context.Background(), []string{"hi"})
	require.NoError(t, err)
	require.Equal(t, "hi", string(res.Stdout))
	require.Equal(t, 3, tg.Calls(waittest.MethodExec))
}

// TestConcurrentUse exercises every method from many goroutines (run with
// -race).
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tg.Log("line")
			tg.Publish("8080", i)
			tg.SetHealth("starting", "x")
			_, _ = tg.State(ctx)
			_, _ = tg.MappedPort(ctx, "8080")
			rc, err := tg.Logs(ctx, wait.LogOptions{Tail: 2})
			if err == nil {
				_, _ = io.ReadAll(rc)
				rc.Close()
			}
			hctx, hcancel := context.WithCancel(ctx)
			ev, _ := tg.HealthEvents(hctx)
			hcancel()
			for range ev {
				// drain until closed
			}
		}()
	}
	wg.Wait()
	tg.Exit(0)
}
