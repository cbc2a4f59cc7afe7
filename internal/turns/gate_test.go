//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package turns

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestGateAdmitsAWindowAcrossProcesses: two gates on one line stand for two
// processes; together they admit the window, in order.
func TestGateAdmitsAWindowAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	a, b := NewGateDir(dir, 2), NewGateDir(dir, 2)
	leave1, err := a.Enter(context.Background())
	require.NoError(t, err)
	leave2, err := a.Enter(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, b.Waiting())

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = b.Enter(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the other process holds the window")
	_, err = a.Enter(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "this process holds its own window")

	entered := make(chan func(), 1)
	go func() {
		leave, err := b.Enter(context.Background())
		if err != nil {
			leave = nil
		}
		entered <- leave
	}()
	leave1()
	leave3 := <-entered
	require.NotNil(t, leave3, "a place freed in the window goes to the waiter of the other process")
	leave2()
	leave3()
	require.Zero(t, b.Waiting())
}

func TestGateWithoutALineAdmitsTheProcesssWindow(t *testing.T) {
	g := newGate(nil, 1)
	leave, err := g.Enter(context.Background())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = g.Enter(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	leave()
	leave, err = g.Enter(context.Background())
	require.NoError(t, err)
	leave()
	require.Zero(t, g.Waiting())
}
