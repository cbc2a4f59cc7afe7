package wait_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/wait"
	"github.com/heph-go/heph/wait/waittest"
)

// execAfter returns an exec function that fails with exit code 1 n times,
// then answers res; it records the commands.
func execAfter(n int, res wait.ExecResult, cmds *atomic.Value) func(context.Context, []string) (wait.ExecResult, error) {
	var calls atomic.Int32
	return func(_ context.Context, cmd []string) (wait.ExecResult, error) {
		cmds.Store(cmd)
		if calls.Add(1) <= int32(n) {
			return wait.ExecResult{ExitCode: 1, Stderr: []byte("no response")}, nil
		}
		return res, nil
	}
}

func TestForExec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		strategy wait.ExecStrategy
		res      wait.ExecResult
		ready    bool
		last     string
	}{
		{"exit 0 after retries", wait.ForExec("pg_isready", "-U", "app"), wait.ExecResult{}, true, ""},
		{"expected exit code", wait.ForExec("check").WithExitCode(3), wait.ExecResult{ExitCode: 3}, true, ""},
		{"output matcher", wait.ForExec("cat", "/ready").WithOutputMatcher(func(b []byte) bool { return bytes.Equal(b, []byte("yes")) }),
			wait.ExecResult{Stdout: []byte("yes")}, true, ""},
		{"wrong exit code", wait.ForExec("check"), wait.ExecResult{ExitCode: 2}, false,
			`exit code 2, want 0 (stdout: "", stderr: "")`},
		{"output rejected", wait.ForExec("cat").WithOutputMatcher(func(b []byte) bool { return false }),
			wait.ExecResult{Stdout: []byte("no")}, false, `stdout rejected by the output matcher (stdout: "no")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg := waittest.New()
			var cmds atomic.Value
			tg.SetExec(execAfter(2, tt.res, &cmds))
			if tt.ready {
				require.NoError(t, tt.strategy.Wait(withTimeout(t, 5*time.Second), tg))
				require.Equal(t, 3, tg.Calls(waittest.MethodExec))
				return
			}
			_, err := runTimed(t, shortTimeout, tt.strategy, tg)
			requireTimeout(t, err, tt.strategy, tt.last)
		})
	}
	t.Run("the command is passed intact", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		var cmds atomic.Value
		tg.SetExec(execAfter(0, wait.ExecResult{}, &cmds))
		args := []string{"sh", "-c", "exit 0"}
		s := wait.ForExec(args...)
		args[0] = "changed"
		require.NoError(t, s.Wait(withTimeout(t, 5*time.Second), tg))
		require.Equal(t, []string{"sh", "-c", "exit 0"}, cmds.Load(), "ForExec copies its arguments")
	})
	t.Run("exec errors are retried", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		s := wait.ForExec("true")
		_, err := runTimed(t, shortTimeout, s, tg)
		requireTimeout(t, err, s, "exec: waittest: no exec function")
	})
	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		var cmds atomic.Value
		tg.SetExec(execAfter(1000, wait.ExecResult{}, &cmds))
		ctx, cancel := context.WithCancel(context.Background())
		after(t, 20*time.Millisecond, cancel)
		require.ErrorIs(t, wait.ForExec("true").Wait(ctx, tg), context.Canceled)
	})
}
