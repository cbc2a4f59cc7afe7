package wait_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/wait"
	"github.com/heph-go/heph/wait/waittest"
)

func checkDB(context.Context, wait.Target) error { return nil }

func TestForFunc(t *testing.T) {
	t.Parallel()
	notYet := errors.New("not yet")
	t.Run("called once", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		s := wait.ForFunc(func(context.Context, wait.Target) error { calls.Add(1); return notYet })
		err := s.Wait(withTimeout(t, 5*time.Second), waittest.New())
		require.ErrorIs(t, err, notYet)
		require.Equal(t, int32(1), calls.Load(), "without WithRetry the function is the whole wait")
	})
	t.Run("success", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, wait.ForFunc(checkDB).Wait(withTimeout(t, time.Second), waittest.New()))
	})
	t.Run("a blocking function cut by the deadline", func(t *testing.T) {
		t.Parallel()
		s := wait.ForFunc(func(ctx context.Context, _ wait.Target) error {
			<-ctx.Done()
			return fmt.Errorf("ping: %w", ctx.Err())
		})
		_, err := runTimed(t, shortTimeout, s, waittest.New())
		requireTimeout(t, err, s, "ping: context deadline exceeded")
	})
	t.Run("WithRetry polls until nil", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		s := wait.ForFunc(func(context.Context, wait.Target) error {
			if calls.Add(1) < 4 {
				return notYet
			}
			return nil
		}).WithRetry()
		require.NoError(t, s.Wait(withTimeout(t, 5*time.Second), waittest.New()))
		require.Equal(t, int32(4), calls.Load())
	})
	t.Run("WithRetry timeout reports the last error", func(t *testing.T) {
		t.Parallel()
		s := wait.ForFunc(func(context.Context, wait.Target) error { return notYet }).WithRetry()
		_, err := runTimed(t, shortTimeout, s, waittest.New())
		requireTimeout(t, err, s, "not yet")
		require.ErrorIs(t, err, notYet)
	})
	for _, perm := range []struct {
		name string
		wrap func(error) error
	}{{"wait.Permanent", wait.Permanent}, {"backoff.Permanent", backoff.Permanent}} {
		t.Run("WithRetry stops at "+perm.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			bad := errors.New("bad password")
			s := wait.ForFunc(func(context.Context, wait.Target) error {
				calls.Add(1)
				return perm.wrap(fmt.Errorf("login: %w", bad))
			}).WithRetry()
			took, err := runTimed(t, 5*time.Second, s, waittest.New())
			require.ErrorIs(t, err, bad)
			require.Less(t, took, time.Second)
			require.Equal(t, int32(1), calls.Load())
			var pe *backoff.PermanentError
			require.False(t, errors.As(err, &pe), "the wrapper is removed")
			require.Contains(t, err.Error(), "failed after")
			require.Contains(t, err.Error(), "login: bad password")
		})
	}
	t.Run("Permanent(nil) is nil", func(t *testing.T) {
		require.NoError(t, wait.Permanent(nil))
	})
	t.Run("String names the function", func(t *testing.T) {
		require.Equal(t, "ForFunc(wait_test.checkDB)", wait.ForFunc(checkDB).String())
		require.Equal(t, "ForFunc(wait_test.checkDB).WithRetry()", wait.ForFunc(checkDB).WithRetry().String())
		require.Equal(t, "ForFunc(nil)", wait.ForFunc(nil).String())
	})
}
