package sessions

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// Linux: the start time and state in /proc/<pid>/stat.

func TestProcessStateAllowsForTheTruncatedCreationTime(t *testing.T) {
	// heph.created has whole seconds and the process's start time has
	// ticks: a process that started up to 2 s after the label's time is
	// still the one that made it; later than that, its pid was reused.
	state, started, ok := procStat(os.Getpid())
	require.True(t, ok)
	require.Contains(t, []string{"R", "S"}, state, "this process runs")
	require.WithinDuration(t, time.Now(), started, 24*time.Hour, "the start time is read from boot time and ticks")
	require.False(t, started.After(time.Now()))

	for _, tc := range []struct {
		created time.Time
		want    ProcessState
		reason  string
	}{
		{started.Add(time.Second), ProcessAlive, "made its resources after it started"},
		{started.Truncate(time.Second), ProcessAlive, "the label's whole seconds"},
		{started.Add(-time.Second), ProcessAlive, "within the 2 s allowance"},
		{started.Add(-3 * time.Second), ProcessGone, "started 3 s after the resources were made: another process"},
	} {
		require.Equal(t, tc.want, processState(os.Getpid(), tc.created), tc.reason)
	}
}

func TestProcessStateOfAZombie(t *testing.T) {
	// A child that has exited but is not reaped yet is a zombie: its pid
	// exists, the process does not run.
	cmd := exec.Command("true")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Wait() }) // reap it
	waitExitedNotReaped(t, cmd.Process.Pid)

	require.NoError(t, syscall.Kill(cmd.Process.Pid, 0), "the pid still exists")
	state, _, ok := procStat(cmd.Process.Pid)
	require.True(t, ok)
	require.Equal(t, "Z", state)
	require.Equal(t, ProcessGone, processState(cmd.Process.Pid, time.Now().Add(-time.Hour)))
}

// waitExitedNotReaped blocks until the child pid has exited, leaving it a
// zombie: waitid(P_PID, pid, WEXITED|WNOWAIT).
func waitExitedNotReaped(t *testing.T, pid int) {
	t.Helper()
	const (
		pPID    = 1
		wExited = 4
		wNoWait = 0x1000000
	)
	var siginfo [128]byte
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid), uintptr(unsafe.Pointer(&siginfo[0])), wExited|wNoWait, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		require.Zero(t, errno, "waitid")
		return
	}
}

func TestProcStatReadsAnOddCommand(t *testing.T) {
	// The command name sits in parentheses and may hold spaces and
	// parentheses itself: the fields are read after the last ')'.
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	body, err := os.ReadFile(sleep)
	require.NoError(t, err)
	odd := filepath.Join(t.TempDir(), "a) b (c")
	require.NoError(t, os.WriteFile(odd, body, 0o755))
	cmd := exec.Command(odd, "60")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "stat"))
	require.NoError(t, err)
	require.Contains(t, string(raw), "(a) b (c)", "the kernel shows the odd name as it is")
	state, started, ok := procStat(cmd.Process.Pid)
	require.True(t, ok)
	require.Contains(t, []string{"R", "S", "D"}, state)
	require.WithinDuration(t, time.Now(), started, time.Hour, "the start time comes from the right field")
	require.Equal(t, ProcessAlive, processState(cmd.Process.Pid, time.Now()))
}

func TestProcStatOfNoProcess(t *testing.T) {
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	_, _, ok := procStat(cmd.Process.Pid)
	require.False(t, ok, "a reaped process has no /proc entry")
}

func TestBootTime(t *testing.T) {
	boot, err := bootTime()
	require.NoError(t, err)
	require.True(t, boot.Before(time.Now()))
	require.True(t, boot.After(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)))
}
