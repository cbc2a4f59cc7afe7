//go:build unix

package sessions

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// processState on the real process table.

func TestProcessState(t *testing.T) {
	require.Equal(t, ProcessAlive, processState(os.Getpid(), time.Now()), "this process")
	require.Equal(t, ProcessAlive, processState(os.Getpid(), time.Time{}), "no creation time: existence is enough")
	require.Equal(t, ProcessUnknown, processState(0, time.Now()), "no pid")
	require.Equal(t, ProcessUnknown, processState(-1, time.Now()), "kill(-1) would mean every process: never asked")

	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	require.Equal(t, ProcessGone, processState(cmd.Process.Pid, time.Now()), "an exited, reaped process")

	if _, err := os.Stat("/proc/self/stat"); err == nil {
		require.Equal(t, ProcessGone, processState(os.Getpid(), time.Now().Add(-24*time.Hour)),
			"a process that started after the session was made holds a reused pid")
	}
}
