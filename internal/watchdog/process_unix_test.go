//go:build unix

package watchdog

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/retry"
)

// TestWatchdogHoldsNoLeakedDescriptor leaks the write end of a pipe into
// the watchdog (no close-on-exec, as a shell, make or a CI runner may leave
// one) and checks that the watchdog does not hold it: once we close ours, the
// reader sees EOF at once, while the watchdog still runs. Not parallel: any
// process forked meanwhile would inherit the pipe too.
func TestWatchdogHoldsNoLeakedDescriptor(t *testing.T) {
	ep := serve(t, enginetest.NewFake())
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	_, _, errno := syscall.Syscall(syscall.SYS_FCNTL, w.Fd(), syscall.F_SETFD, 0)
	require.Zero(t, errno)

	wd := startWatchdog(t, ep)
	require.NoError(t, w.Close())

	got := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(r)
		got <- err
	}()
	select {
	case err := <-got:
		require.NoError(t, err, "EOF: nobody else holds the write end")
	case <-time.After(time.Minute):
		t.Fatal("the watchdog holds the leaked descriptor")
	}
	require.NoError(t, syscall.Kill(wd.cmd.Process.Pid, 0), "the watchdog still runs")
	require.True(t, wd.alive())
}

func TestWatchdogIgnoresTheTerminalsSignals(t *testing.T) {
	// Ctrl-C, a hangup or a CI job's SIGTERM end the parent; the watchdog
	// stays to clean up after it. SIGKILL stops it.
	t.Parallel()
	wd := startWatchdog(t, serve(t, enginetest.NewFake()))
	pid := wd.cmd.Process.Pid
	pgid, err := syscall.Getpgid(pid)
	require.NoError(t, err)
	require.Equal(t, pid, pgid, "its own process group: the terminal's Ctrl-C goes to ours")
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTERM} {
		require.NoError(t, syscall.Kill(pid, sig))
	}
	// The signals are pending before the next line is written; a process
	// that did not ignore them would die before it could act on the line.
	// So the line logged proves they were ignored.
	require.NoError(t, wd.tell("session", "s1"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, retry.Poll(ctx, retry.Policy{Initial: time.Millisecond, Max: 50 * time.Millisecond}, func(context.Context) error {
		if !wd.alive() {
			return retry.Permanent(errors.New("the watchdog died of a signal"))
		}
		log, err := os.ReadFile(wd.log)
		if err != nil {
			return err
		}
		if !strings.Contains(string(log), "watching session s1") {
			return errors.New("not read yet")
		}
		return nil
	}))
	require.True(t, wd.alive(), "ignored")
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	select {
	case <-wd.exited:
	case <-time.After(time.Minute):
		t.Fatal("SIGKILL did not stop it")
	}
	require.False(t, wd.alive())
}
