package wait_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/wait"
	"github.com/heph-go/heph/wait/waittest"
)

func TestForExit(t *testing.T) {
	t.Parallel()
	t.Run("exit 0", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		after(t, 20*time.Millisecond, func() { tg.Exit(0) })
		require.NoError(t, wait.Run(withTimeout(t, 5*time.Second), wait.ForExit(), tg), "Run does not fail fast under ForExit")
	})
	t.Run("expected code", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		after(t, 20*time.Millisecond, func() { tg.Exit(3) })
		require.NoError(t, wait.Run(withTimeout(t, 5*time.Second), wait.ForExit().WithExitCode(3), tg))
	})
	t.Run("already exited", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.Exit(0)
		require.NoError(t, wait.ForExit().Wait(withTimeout(t, 5*time.Second), tg))
	})
	t.Run("wrong code is permanent and names both", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.Log("migrating", "error: relation exists")
		tg.UpdateState(func(st *wait.State) { st.OOMKilled = true })
		after(t, 20*time.Millisecond, func() { tg.Exit(3) })
		took, err := runTimed(t, 5*time.Second, wait.ForExit(), tg)
		require.Less(t, took, time.Second)
		require.ErrorContains(t, err, "wait: ForExit(): failed after ")
		require.ErrorContains(t, err, "container exited with code 3 (OOM-killed), want 0")
		require.ErrorContains(t, err, "error: relation exists")
		require.NotErrorIs(t, err, wait.ErrExited, "the exit was expected: the failure is the code")
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		s := wait.ForExit()
		_, err := runTimed(t, shortTimeout, s, waittest.New())
		requireTimeout(t, err, s, "container still running")
	})
	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		after(t, 20*time.Millisecond, cancel)
		require.ErrorIs(t, wait.ForExit().Wait(ctx, waittest.New()), context.Canceled)
	})
	t.Run("WaitExit errors are retried", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.SetError(waittest.MethodWaitExit, errBoom)
		after(t, 20*time.Millisecond, func() { tg.SetError(waittest.MethodWaitExit, nil); tg.Exit(0) })
		require.NoError(t, wait.ForExit().Wait(withTimeout(t, 5*time.Second), tg))
		require.Greater(t, tg.Calls(waittest.MethodWaitExit), 1)
	})
}
