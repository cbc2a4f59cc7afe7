//go:build unix

package heph

import (
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWatchdogHoldsNoLeakedDescriptor leaks the write end of a pipe into
// the watchdog (no close-on-exec, as a shell, make or a CI runner may leave
// one) and checks that the watchdog does not hold it: once we close ours, the
// reader sees EOF at once, while the watchdog still runs. Not parallel: any
// process forked meanwhile would inherit the pipe too.
func TestWatchdogHoldsNoLeakedDescriptor(t *testing.T) {
	ep := serveFakeEngine(t, &fakeEngine{resources: map[string]fakeResource{}})
	exe, err := os.Executable()
	require.NoError(t, err)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	_, _, errno := syscall.Syscall(syscall.SYS_FCNTL, w.Fd(), syscall.F_SETFD, 0)
	require.Zero(t, errno)

	wd, err := startWatchdogExe(exe, exe, ep, 10*time.Second)
	require.NoError(t, err)
	defer os.Remove(wd.log)
	defer wd.stop()
	require.NoError(t, w.Close())

	got := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(r)
		got <- err
	}()
	select {
	case err := <-got:
		require.NoError(t, err, "EOF: nobody else holds the write end")
	case <-time.After(5 * time.Second):
		t.Fatal("the watchdog holds the leaked descriptor")
	}
	require.NoError(t, syscall.Kill(wd.cmd.Process.Pid, 0), "the watchdog still runs")
}
