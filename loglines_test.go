package heph

import (
	"fmt"
	"strings"
	"testing"

	"github.com/heph-go/heph/internal/logtext"
	"github.com/stretchr/testify/require"
)

// TestLogsToTestGoOnAfterAnOverlongLine: a line over 1 MiB used to end
// HEPH_LOGS streaming silently (bufio.Scanner's limit).
func TestLogsToTestGoOnAfterAnOverlongLine(t *testing.T) {
	h := newHarness(t)
	t.Setenv(EnvLogs, "1")
	h.ft.run(func(t testing.TB) {
		c := NewContainer("app").WithName("web").Start(t)
		h.f.WriteLog(c.ID(), "before\n"+strings.Repeat("y", 3<<20)+"\nafter the long line\n")
	})
	logs := h.ft.allLogs()
	require.Contains(t, logs, "[web] before")
	require.Contains(t, logs, fmt.Sprintf(" … [line cut by heph: %d more bytes]", 3<<20-logtext.Max))
	require.Contains(t, logs, "[web] after the long line", "the stream went on")
	require.Less(t, len(logs), 2*logtext.Max, "the long line was cut")
}
