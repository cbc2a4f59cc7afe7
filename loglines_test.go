package heph

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

func TestLogLines(t *testing.T) {
	long := strings.Repeat("x", maxLogLine+5000)
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"lines", "a\nb\n", []string{"a", "b"}},
		{"a last line without newline", "a\nb", []string{"a", "b"}},
		{"blank lines and CRLF", "a\r\n\nb\r\n", []string{"a", "", "b"}},
		{"nothing", "", nil},
		{"a line over the bound is cut, and the stream goes on", "before\n" + long + "\nafter\n",
			[]string{"before", long[:maxLogLine] + " … [line cut by heph: 5000 more bytes]", "after"}},
		{"a last line over the bound", long, []string{long[:maxLogLine] + " … [line cut by heph: 5000 more bytes]"}},
		{"exactly the bound", long[:maxLogLine] + "\nz", []string{long[:maxLogLine], "z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			// One byte at a time, then all at once: chunking changes nothing.
			for _, r := range []io.Reader{iotest.OneByteReader(strings.NewReader(tc.in)), strings.NewReader(tc.in)} {
				got = nil
				n, err := logLines(r, func(l string) { got = append(got, l) })
				require.NoError(t, err)
				require.Equal(t, len(got), n)
				require.Equal(t, tc.want, got)
			}
		})
	}
	broken := errors.New("connection reset")
	n, err := logLines(io.MultiReader(strings.NewReader("a\nb"), iotest.ErrReader(broken)), func(string) {})
	require.ErrorIs(t, err, broken, "a read error is returned")
	require.Equal(t, 2, n, "after the lines read before it")
}

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
	require.Contains(t, logs, fmt.Sprintf(" … [line cut by heph: %d more bytes]", 3<<20-maxLogLine))
	require.Contains(t, logs, "[web] after the long line", "the stream went on")
	require.Less(t, len(logs), 2*maxLogLine, "the long line was cut")
}
