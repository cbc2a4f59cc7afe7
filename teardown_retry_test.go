package heph

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/retry"
)

// TestATestsTeardownOutlastsADaemonRestart: the daemon does not answer the
// first removals (it restarts); the test's teardown tries again, removes
// everything once it answers, and says so in the test's log.
func TestATestsTeardownOutlastsADaemonRestart(t *testing.T) {
	h := newHarness(t)
	var refused atomic.Int64
	h.ft.run(func(t testing.TB) {
		NewContainer("app").WithName("web").Start(t)
		h.f.Hook = func(_ context.Context, call string, _ any) error {
			if (call == "ContainerRemove" || call == "NetworkRemove") && refused.Add(1) <= 3 {
				return enginetest.Unavailable("dial unix /var/run/docker.sock: connect: connection refused")
			}
			return nil
		}
	})
	require.Empty(t, h.ft.errors, "no failure")
	require.Equal(t, [3]int{0, 0, 0}, h.left(), "everything removed once the daemon answered")
	logs := h.ft.allLogs()
	require.Regexp(t, `heph: teardown: removed container heph-web-[0-9a-f]{8} after the daemon did not answer for \S+`, logs)
}

// TestATestsTeardownGivesUpOnADaemonThatStaysAway reports how long it
// tried.
func TestATestsTeardownGivesUpOnADaemonThatStaysAway(t *testing.T) {
	h := newHarness(t)
	old := retry.TeardownPatience
	retry.TeardownPatience = 300 * time.Millisecond
	t.Cleanup(func() { retry.TeardownPatience = old })
	h.ft.run(func(t testing.TB) {
		NewContainer("app").WithName("web").Start(t)
		h.f.Hook = func(_ context.Context, call string, _ any) error {
			if strings.HasSuffix(call, "Remove") {
				return enginetest.Unavailable("dial unix /var/run/docker.sock: connect: connection refused")
			}
			return nil
		}
	})
	require.Len(t, h.ft.errors, 2, "the container and the network")
	require.Regexp(t, `^heph: teardown: remove container "heph-web-[0-9a-f]{8}": dial unix /var/run/docker.sock: connect: connection refused \(the daemon did not answer \d+ tries over \S+\)$`, h.ft.errors[0])
	h.f.Hook = nil
	require.NoError(t, h.o.Teardown(context.Background()), "what is left is still tracked: the Orchestrator's Teardown removes it")
}
