package wait_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/wait"
	"github.com/heph-go/heph/wait/waittest"
)

// recorder makes ForFunc strategies that record their calls and how their
// context ended.
type recorder struct {
	mu     sync.Mutex
	order  []string
	ctxErr map[string]error
}

// step returns a strategy named name that returns err after d (nil d:
// blocks until its context ends, then records why).
func (r *recorder) step(name string, d time.Duration, err error) wait.Strategy {
	return wait.ForFunc(func(ctx context.Context, _ wait.Target) error {
		r.mu.Lock()
		r.order = append(r.order, name)
		r.mu.Unlock()
		if d < 0 {
			<-ctx.Done()
			r.mu.Lock()
			if r.ctxErr == nil {
				r.ctxErr = map[string]error{}
			}
			r.ctxErr[name] = ctx.Err()
			r.mu.Unlock()
			return ctx.Err()
		}
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

func TestAll(t *testing.T) {
	t.Parallel()
	t.Run("each in order", func(t *testing.T) {
		t.Parallel()
		var r recorder
		s := wait.All(r.step("a", 5*time.Millisecond, nil), r.step("b", 0, nil), r.step("c", 0, nil))
		require.NoError(t, s.Wait(withTimeout(t, 5*time.Second), waittest.New()))
		require.Equal(t, []string{"a", "b", "c"}, r.order)
	})
	t.Run("stops at the first failure, naming it", func(t *testing.T) {
		t.Parallel()
		var r recorder
		tg := waittest.New()
		tg.Log("ready")
		tg.EndLog()
		s := wait.All(wait.ForLog("ready"), wait.ForLog("migrated"), r.step("c", 0, nil))
		err := s.Wait(withTimeout(t, 5*time.Second), tg)
		require.EqualError(t, err, `ForLog("migrated"): log ended after 0 of 1 matching lines`)
		require.Empty(t, r.order)
	})
	t.Run("shares the deadline", func(t *testing.T) {
		t.Parallel()
		var r recorder
		// Steps of 800 ms and 10 s under one 1 s deadline: shared, it ends
		// near 1 s; a deadline per step would give the second a fresh 1 s
		// and end after 1.8 s. The bound, 1.6 s, leaves a loaded machine
		// 600 ms of slack.
		s := wait.All(r.step("a", 800*time.Millisecond, nil), r.step("b", 10*time.Second, nil))
		took, err := runTimed(t, time.Second, s, waittest.New())
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, took, 1600*time.Millisecond)
		require.Contains(t, err.Error(), "timed out after")
	})
	t.Run("the timeout names the step", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.Log("ready")
		s := wait.All(wait.ForLog("ready"), wait.ForLog("migrated"))
		_, err := runTimed(t, shortTimeout, s, tg)
		requireTimeout(t, err, s, `ForLog("migrated"): 0 of 1 matching lines so far`)
	})
	t.Run("empty is ready", func(t *testing.T) {
		require.NoError(t, wait.All().Wait(context.Background(), waittest.New()))
	})
}

func TestAny(t *testing.T) {
	t.Parallel()
	t.Run("first success cancels the rest", func(t *testing.T) {
		t.Parallel()
		var r recorder
		s := wait.Any(r.step("slow1", -1, nil), r.step("fast", 10*time.Millisecond, nil), r.step("slow2", -1, nil))
		require.NoError(t, s.Wait(withTimeout(t, 5*time.Second), waittest.New()))
		r.mu.Lock()
		defer r.mu.Unlock()
		require.ElementsMatch(t, []string{"slow1", "fast", "slow2"}, r.order)
		require.ErrorIs(t, r.ctxErr["slow1"], context.Canceled, "the losers' context is cancelled before Any returns")
		require.ErrorIs(t, r.ctxErr["slow2"], context.Canceled)
	})
	t.Run("a failure does not stop the others", func(t *testing.T) {
		t.Parallel()
		var r recorder
		s := wait.Any(r.step("bad", 0, errBoom), r.step("good", 20*time.Millisecond, nil))
		require.NoError(t, s.Wait(withTimeout(t, 5*time.Second), waittest.New()))
	})
	t.Run("all failing joins every error", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.EndLog()
		e2 := errors.New("second")
		var r recorder
		s := wait.Any(wait.ForLog("a"), r.step("f", 0, e2))
		err := s.Wait(withTimeout(t, 5*time.Second), tg)
		require.ErrorIs(t, err, e2)
		require.ErrorContains(t, err, `ForLog("a"): log ended after 0 of 1 matching lines`)
		require.ErrorContains(t, err, "ForFunc(wait_test.(*recorder).step.func1): second")
	})
	t.Run("timeout joins every last error", func(t *testing.T) {
		t.Parallel()
		s := wait.Any(wait.ForLog("a"), wait.ForLog("b"))
		_, err := runTimed(t, shortTimeout, s, waittest.New())
		we := requireTimeout(t, err, s, `ForLog("a"): 0 of 1 matching lines so far`)
		require.Contains(t, we.Cause.Error(), `ForLog("b"): 0 of 1 matching lines so far`)
	})
}

func TestWithTimeout(t *testing.T) {
	t.Parallel()
	t.Run("bounds its strategy only", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		after(t, 100*time.Millisecond, func() { tg.Log("ready") })
		s := wait.Any(wait.WithTimeout(20*time.Millisecond, wait.ForLog("never")), wait.ForLog("ready"))
		require.NoError(t, s.Wait(withTimeout(t, 5*time.Second), tg))
	})
	t.Run("its deadline is a timeout", func(t *testing.T) {
		t.Parallel()
		s := wait.WithTimeout(50*time.Millisecond, wait.ForLog("never"))
		took, err := runTimed(t, 5*time.Second, s, waittest.New())
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, took, time.Second)
		require.ErrorContains(t, err, `wait: WithTimeout(50ms, ForLog("never")): timed out after `)
		require.ErrorContains(t, err, "last error: 0 of 1 matching lines so far")
	})
	t.Run("the outer deadline still applies", func(t *testing.T) {
		t.Parallel()
		s := wait.WithTimeout(time.Hour, wait.ForLog("never"))
		_, err := runTimed(t, shortTimeout, s, waittest.New())
		requireTimeout(t, err, s, "0 of 1 matching lines so far")
	})
}
