package wait_test

import (
	"context"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/wait"
	"github.com/heph-go/heph/wait/waittest"
)

// TestLogEndedWaitsForTheExitReport: a log that ended means the container's
// output closed; on a loaded machine Docker reports the exit well after
// that (seen: more than the 250 ms grace of other failures). The wait is
// reported as an exit, not as "log ended", when the report comes within
// the log's longer grace.
func TestLogEndedWaitsForTheExitReport(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	tg.Log("starting")
	tg.EndLog() // the output closed; the exit is reported later
	after(t, 800*time.Millisecond, func() { tg.Exit(3) })
	s := wait.ForLog("never printed")
	_, err := runTimed(t, 30*time.Second, s, tg)
	require.ErrorIs(t, err, wait.ErrExited, "the exit reported 800 ms after the log's end")
	var we *wait.Error
	require.ErrorAs(t, err, &we)
	require.NotNil(t, we.State)
	require.Equal(t, 3, we.State.ExitCode)
	require.ErrorContains(t, we.Cause, "log ended after 0 of 1 matching lines")
}

// TestCutProbeKeepsTheLastReason: the probe the deadline cuts short says
// only "context deadline exceeded"; the error keeps the reason the probe
// before it gave (internal/retry's Poll does it for every strategy).
func TestCutProbeKeepsTheLastReason(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	tg.SetIPs("127.0.0.1")
	tg.Publish("8080", freePort(t))
	var n atomic.Int32
	s := wait.ForListeningPort("8080").WithDirectTimeout(time.Minute).
		WithDialer(func(ctx context.Context, network, addr string) (net.Conn, error) {
			if n.Add(1) == 1 {
				return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
			}
			<-ctx.Done() // in flight when the deadline comes
			return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
		})
	_, err := runTimed(t, shortTimeout, s, tg)
	we := requireTimeout(t, err, s, "connection refused")
	require.ErrorIs(t, we.Cause, syscall.ECONNREFUSED)
	require.Equal(t, int32(2), n.Load())
}
