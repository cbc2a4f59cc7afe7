package wait_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/wait"
	"github.com/heph-go/heph/wait/waittest"
)

// TestRunFailsFastOnExit: a container that stops while a strategy waits
// fails the wait at once, naming the exit code and showing its last log
// line, whatever the strategy.
func TestRunFailsFastOnExit(t *testing.T) {
	t.Parallel()
	strategies := []wait.Strategy{
		wait.ForListeningPort("8080"),
		wait.ForHTTP("/healthz").WithPort("8080"),
		wait.ForLog("ready"),
		wait.ForHealthCheck(),
		wait.ForExec("true"),
		wait.ForFunc(func(ctx context.Context, _ wait.Target) error { <-ctx.Done(); return ctx.Err() }),
		wait.ForFunc(func(context.Context, wait.Target) error { return errBoom }).WithRetry(),
		wait.All(wait.ForLog("starting"), wait.ForLog("ready")),
		wait.Any(wait.ForLog("ready"), wait.ForListeningPort("8080")),
		wait.WithTimeout(time.Minute, wait.ForLog("ready")),
	}
	for _, s := range strategies {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			t.Parallel()
			tg := waittest.New()
			tg.SetHealth("starting")
			tg.SetExec(func(context.Context, []string) (wait.ExecResult, error) { return wait.ExecResult{ExitCode: 1}, nil })
			tg.Log("starting")
			var exitedAt time.Time
			after(t, 50*time.Millisecond, func() {
				tg.Log("panic: cannot open config")
				exitedAt = time.Now()
				tg.Exit(3)
			})
			_, err := runTimed(t, 10*time.Second, s, tg)
			failedAfter := time.Since(exitedAt)
			require.Error(t, err)
			require.Less(t, failedAfter, 100*time.Millisecond, "fails at once, not at the deadline")
			require.ErrorIs(t, err, wait.ErrExited)
			require.NotErrorIs(t, err, context.DeadlineExceeded)
			var we *wait.Error
			require.ErrorAs(t, err, &we)
			require.Equal(t, fmt.Sprint(s), we.Strategy)
			msg := err.Error()
			require.Contains(t, msg, "wait: "+fmt.Sprint(s)+": container exited with code 3 after ")
			require.Contains(t, msg, "\n  state: exited, exit code 3")
			require.Contains(t, msg, "\n    panic: cannot open config")
			require.Equal(t, []string{"starting", "panic: cannot open config"}, we.LogTail)
			require.Equal(t, 3, we.State.ExitCode)
		})
	}
}

func TestRunOOMKilled(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	tg.Log("allocating")
	after(t, 20*time.Millisecond, func() {
		tg.UpdateState(func(st *wait.State) { st.OOMKilled = true })
		tg.Exit(137)
	})
	_, err := runTimed(t, 10*time.Second, wait.ForListeningPort("8080"), tg)
	require.ErrorContains(t, err, "wait: ForListeningPort(8080/tcp): container exited with code 137 (OOM-killed) after ")
	require.ErrorContains(t, err, "state: exited, exit code 137, OOM-killed")
}

func TestRunNoFailFastWhenExitIsExpected(t *testing.T) {
	t.Parallel()
	for _, s := range []wait.Strategy{
		wait.ForExit(),
		wait.All(wait.ForLog("migrated"), wait.ForExit()),
		wait.Any(wait.ForExit(), wait.ForLog("never")),
		wait.WithTimeout(time.Minute, wait.ForExit()),
	} {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			t.Parallel()
			tg := waittest.New()
			after(t, 20*time.Millisecond, func() {
				tg.Log("migrated")
				tg.Exit(0)
			})
			require.NoError(t, wait.Run(withTimeout(t, 5*time.Second), s, tg))
			require.Equal(t, 1, tg.Calls(waittest.MethodWaitExit), "only ForExit calls WaitExit: Run does not watch the exit")
		})
	}
}

// TestRunTimeoutMessage checks the whole message of a timeout.
func TestRunTimeoutMessage(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	for i := range 30 {
		tg.Log(fmt.Sprintf("line %d", i))
	}
	tg.SetHealth("unhealthy", "pg_isready: no response")
	tg.Publish("5432", freePort(t))
	s := wait.ForListeningPort("5432")
	_, err := runTimed(t, shortTimeout, s, tg)
	we := requireTimeout(t, err, s, "connection refused")
	// At least the deadline (requireTimeout checks it); how much more depends on the load.
	want := `^wait: ForListeningPort\(5432/tcp\): timed out after \d+(\.\d+)?m?s: last error: dial tcp 127.0.0.1:\d+: connect: connection refused
  state: running, health unhealthy \(last check: "pg_isready: no response"\)
  last 20 log lines:
    line 10
(    line \d+\n){18}    line 29$`
	require.Regexp(t, regexp.MustCompile(want), err.Error())
	require.Len(t, we.LogTail, 20)
	require.Equal(t, "line 29", we.LogTail[19])
	require.NotNil(t, we.State)
	require.True(t, we.State.Running)
}

func TestRunCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	after(t, 20*time.Millisecond, cancel)
	err := wait.Run(ctx, wait.ForLog("ready"), waittest.New())
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, `wait: ForLog("ready"): canceled after `)
	require.ErrorContains(t, err, "\n  logs: (no output)")
}

func TestRunPermanentFailure(t *testing.T) {
	t.Parallel()
	s := wait.ForHealthCheck()
	took, err := runTimed(t, 5*time.Second, s, waittest.New())
	require.Less(t, took, time.Second)
	require.Regexp(t, `^wait: ForHealthCheck\(\): failed after \d+(µs|ms): the image has no HEALTHCHECK\n  state: running\n  logs: \(no output\)$`, err.Error())
	var we *wait.Error
	require.ErrorAs(t, err, &we)
	require.Nil(t, we.Err)
}

func TestRunInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    wait.Strategy
		want string
	}{
		{nil, "wait: invalid strategy: nil strategy"},
		{wait.ForLogRegexp("("), "wait: invalid strategy ForLogRegexp(\"(\"): bad regexp: error parsing regexp: missing closing ): `(`"},
		{wait.All(wait.ForLog("x"), nil), "wait: invalid strategy All(ForLog(\"x\"), <nil>): strategy 2 (<nil>): nil strategy"},
	}
	for _, tt := range tests {
		tg := waittest.New()
		err := wait.Run(context.Background(), tt.s, tg)
		require.EqualError(t, err, tt.want)
		require.ErrorIs(t, err, wait.ErrInvalid)
		for _, m := range []waittest.Method{waittest.MethodHost, waittest.MethodMappedPort, waittest.MethodLogs,
			waittest.MethodExec, waittest.MethodState, waittest.MethodWaitExit, waittest.MethodHealthEvents} {
			require.Zero(t, tg.Calls(m), "%s called for an invalid strategy", m)
		}
	}
}

// custom is a strategy of another package: no String, its own Validate.
type custom struct{ bad bool }

func (c custom) Wait(ctx context.Context, _ wait.Target) error { return errors.New("custom failure") }

func (c custom) Validate() error {
	if c.bad {
		return errors.New("custom: bad")
	}
	return nil
}

func TestRunCustomStrategy(t *testing.T) {
	t.Parallel()
	err := wait.Run(withTimeout(t, time.Second), custom{}, waittest.New())
	require.ErrorContains(t, err, "wait: wait_test.custom: failed after ")
	require.EqualError(t, wait.Run(context.Background(), custom{bad: true}, waittest.New()), "custom: bad")
	require.EqualError(t, wait.Validate(wait.All(custom{bad: true})),
		"wait: invalid strategy All(wait_test.custom): strategy 1 (wait_test.custom): custom: bad")
}

// TestRunStateUnavailable: the error still says what it can.
func TestRunStateUnavailable(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	tg.SetError(waittest.MethodState, errors.New("daemon gone"))
	tg.SetError(waittest.MethodLogs, errors.New("no logs"))
	_, err := runTimed(t, 50*time.Millisecond, wait.ForExit(), tg)
	require.ErrorContains(t, err, "\n  state: unknown: daemon gone\n  logs: unavailable: no logs")
}

// TestErrorUnwrap: errors.Is reaches both the reason and the cause.
func TestErrorUnwrap(t *testing.T) {
	t.Parallel()
	cause := errors.New("connection refused")
	err := error(&wait.Error{Strategy: "S", Waited: 30 * time.Second, Err: context.DeadlineExceeded, Cause: cause})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, cause)
	require.True(t, strings.HasPrefix(err.Error(), "wait: S: timed out after 30s: last error: connection refused"))
}

// TestRunExitThenRestart: the headline keeps the exit code the watcher saw
// even if the container was restarted since.
func TestRunExitThenRestart(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	tg.SetStateFunc(func(context.Context) (wait.State, error) {
		return wait.State{Status: "restarting", Running: true}, nil
	})
	after(t, 20*time.Millisecond, func() { tg.Exit(4) })
	_, err := runTimed(t, 5*time.Second, wait.ForLog("ready"), tg)
	require.ErrorContains(t, err, "container exited with code 4 after ")
	require.ErrorContains(t, err, "state: exited, exit code 4")
}
