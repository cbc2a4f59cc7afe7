package wait_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/wait"
	"github.com/heph-go/heph/wait/waittest"
)

func TestForHealthCheck(t *testing.T) {
	t.Parallel()
	t.Run("already healthy", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.SetHealth("healthy")
		require.NoError(t, wait.ForHealthCheck().Wait(withTimeout(t, 5*time.Second), tg))
		require.Equal(t, 1, tg.Calls(waittest.MethodState))
	})
	t.Run("starting, unhealthy, then healthy: it can recover", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.SetHealth("starting")
		after(t, 10*time.Millisecond, func() { tg.SetHealth("unhealthy", "connection refused") })
		after(t, 40*time.Millisecond, func() { tg.SetHealth("healthy", "ok") })
		require.NoError(t, wait.ForHealthCheck().Wait(withTimeout(t, 5*time.Second), tg))
		require.Equal(t, 1, tg.Calls(waittest.MethodHealthEvents), "event-driven: one subscription")
	})
	t.Run("no HEALTHCHECK is permanent", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		s := wait.ForHealthCheck()
		took, err := runTimed(t, 5*time.Second, s, tg)
		require.Less(t, took, time.Second)
		require.ErrorContains(t, err, "wait: ForHealthCheck(): failed after ")
		require.ErrorContains(t, err, ": the image has no HEALTHCHECK")
		require.NotErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("stays unhealthy: the timeout quotes the last check", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.SetHealth("starting")
		after(t, 10*time.Millisecond, func() { tg.SetHealth("unhealthy", "dial tcp :5432: connection refused\n") })
		s := wait.ForHealthCheck()
		_, err := runTimed(t, shortTimeout, s, tg)
		we := requireTimeout(t, err, s, `health is unhealthy: last check: "dial tcp :5432: connection refused"`)
		require.Contains(t, err.Error(), `state: running, health unhealthy (last check: "dial tcp :5432: connection refused")`)
		require.Equal(t, "unhealthy", we.State.Health)
	})
	t.Run("an event ahead of the state keeps the last check's output", func(t *testing.T) {
		t.Parallel()
		// Podman: heph reports the status of a check it ran as an event,
		// and the state read just after may not show that check yet (no
		// log, or another status). The error still quotes the last output
		// seen, with the newest status.
		tg := waittest.New()
		tg.SetHealth("starting", "stat /tmp/healthy: no such file or directory")
		var lagging atomic.Bool
		tg.SetStateFunc(func(context.Context) (wait.State, error) {
			if lagging.Load() {
				return wait.State{Status: "running", Running: true, Health: "starting"}, nil
			}
			return wait.State{Status: "running", Running: true, Health: "starting",
				HealthLog: []string{"stat /tmp/healthy: no such file or directory"}}, nil
		})
		after(t, 10*time.Millisecond, func() {
			lagging.Store(true)
			tg.SetHealth("unhealthy")
		})
		s := wait.ForHealthCheck()
		_, err := runTimed(t, shortTimeout, s, tg)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, `last error: health is starting: last check: "stat /tmp/healthy: no such file or directory"`)
		require.GreaterOrEqual(t, tg.Calls(waittest.MethodState), 2, "the event was followed by a look at the state")
	})
	t.Run("subscription failures are retried", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.SetHealth("starting")
		tg.SetError(waittest.MethodHealthEvents, errBoom)
		after(t, 20*time.Millisecond, func() {
			tg.SetError(waittest.MethodHealthEvents, nil)
			tg.SetHealth("healthy")
		})
		require.NoError(t, wait.ForHealthCheck().Wait(withTimeout(t, 5*time.Second), tg))
		require.Greater(t, tg.Calls(waittest.MethodHealthEvents), 1)
	})
	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.SetHealth("starting")
		ctx, cancel := context.WithCancel(context.Background())
		after(t, 20*time.Millisecond, cancel)
		err := wait.ForHealthCheck().Wait(ctx, tg)
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorContains(t, err, "health is starting")
	})
}
