package wait_test

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/wait"
	"github.com/heph-go/heph/wait/waittest"
)

func TestForLogReady(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		strategy wait.LogStrategy
		lines    []string // written 5 ms apart
		raw      string   // then written as is, then the log ends
	}{
		{"substring in a later line", wait.ForLog("ready"), []string{"starting", "still starting", "server ready on :8080"}, ""},
		{"stderr and stdout are one stream", wait.ForLog("listening"), []string{"warn: no config", "listening"}, ""},
		{"second occurrence", wait.ForLog("ready").WithOccurrence(2), []string{"ready", "noise", "ready again"}, ""},
		{"a line with two occurrences counts once", wait.ForLog("ok").WithOccurrence(2), []string{"ok ok", "ok"}, ""},
		{"regexp anchored on the whole line", wait.ForLogRegexp(`^ready on port \d+$`), []string{"not ready on port 1", "ready on port 8080"}, ""},
		{"regexp without a literal prefix", wait.ForLogRegexp(`(?i)READY`), []string{"Ready."}, ""},
		{"literal regexp matches as a substring", wait.ForLogRegexp(`ready`), []string{"all ready"}, ""},
		{"CRLF line endings", wait.ForLogRegexp(`^ready$`), nil, "booting\r\nready\r\n"},
		{"last line without newline counts when the log ends", wait.ForLog("done"), []string{"working"}, "done"},
		{"regexp on a last line without newline", wait.ForLogRegexp(`^done$`), nil, "working\ndone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg := waittest.New()
			go func() {
				for _, l := range tt.lines {
					tg.Log(l) // while the strategy follows the log
				}
				tg.Write([]byte(tt.raw))
				tg.EndLog()
			}()
			require.NoError(t, tt.strategy.Wait(withTimeout(t, 5*time.Second), tg))
			require.Equal(t, 1, tg.Calls(waittest.MethodLogs), "the log is followed once")
		})
	}
}

func TestForLogEndsBeforeEnoughMatches(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	tg.Log("ready", "noise")
	after(t, 20*time.Millisecond, tg.EndLog)
	s := wait.ForLog("ready").WithOccurrence(3)
	start := time.Now()
	err := s.Wait(withTimeout(t, 5*time.Second), tg)
	require.EqualError(t, err, "log ended after 1 of 3 matching lines")
	require.Less(t, time.Since(start), time.Second, "gives up when the log ends, not at the deadline")
}

func TestForLogTimeout(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	tg.Log("ready", "booting")
	s := wait.ForLog("ready").WithOccurrence(2)
	_, err := runTimed(t, shortTimeout, s, tg)
	we := requireTimeout(t, err, s, "1 of 2 matching lines so far")
	require.Equal(t, []string{"ready", "booting"}, we.LogTail)
}

func TestForLogCancel(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	ctx, cancel := context.WithCancel(context.Background())
	after(t, 20*time.Millisecond, cancel)
	err := wait.ForLog("ready").Wait(ctx, tg)
	require.ErrorIs(t, err, context.Canceled)
	require.Contains(t, err.Error(), "0 of 1 matching lines so far")
}

func TestForLogOpenRetried(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	tg.SetError(waittest.MethodLogs, errBoom)
	tg.Log("ready")
	after(t, 30*time.Millisecond, func() { tg.SetError(waittest.MethodLogs, nil) })
	require.NoError(t, wait.ForLog("ready").Wait(withTimeout(t, 5*time.Second), tg))
	require.Greater(t, tg.Calls(waittest.MethodLogs), 1)
}

func TestForLogOpenFailsUntilTimeout(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	tg.SetError(waittest.MethodLogs, errBoom)
	s := wait.ForLog("ready")
	_, err := runTimed(t, shortTimeout, s, tg)
	requireTimeout(t, err, s, "open log: boom")
	require.ErrorIs(t, err, errBoom)
}

// TestForLogLongLines puts the match at every position around the read
// buffer's boundary of a line longer than the buffer, and at the end of a
// 1 MB line.
func TestForLogLongLines(t *testing.T) {
	t.Parallel()
	const needle = "needle"
	size := wait.LogBufferSize
	offsets := []int{0, 1, size - len(needle) - 1, size - len(needle), size - len(needle) + 1,
		size - 3, size - 1, size, size + 1, 2*size - 2, 1<<20 - len(needle)}
	strategies := []wait.LogStrategy{
		wait.ForLog(needle),
		wait.ForLogRegexp(`ne+dle`),
		wait.ForLogRegexp(`needle$`),
	}
	for _, off := range offsets {
		line := bytes.Repeat([]byte("x"), max(1<<20, off+len(needle)))
		copy(line[off:], needle)
		data := append(line, '\n')
		for _, s := range strategies {
			if strings.HasSuffix(s.String(), `$")`) && off+len(needle) != len(line) {
				continue
			}
			tg := waittest.New()
			tg.Write(data)
			tg.EndLog()
			require.NoError(t, s.Wait(withTimeout(t, 5*time.Second), tg), "%s with the match at %d", s, off)
		}
	}
	t.Run("no match in a long line", func(t *testing.T) {
		for _, s := range strategies {
			tg := waittest.New()
			tg.Write(append(bytes.Repeat([]byte("needl"), 1<<18), '\n'))
			tg.EndLog()
			require.EqualError(t, s.Wait(withTimeout(t, 5*time.Second), tg), "log ended after 0 of 1 matching lines", "%s", s)
		}
	})
	t.Run("occurrences in separate long lines", func(t *testing.T) {
		tg := waittest.New()
		line := bytes.Repeat([]byte("y"), 200<<10)
		copy(line[150<<10:], needle)
		for range 3 {
			tg.Write(append(line, '\n'))
		}
		tg.EndLog()
		require.NoError(t, wait.ForLog(needle).WithOccurrence(3).Wait(withTimeout(t, 5*time.Second), tg))
		require.Error(t, wait.ForLog(needle).WithOccurrence(4).Wait(withTimeout(t, 5*time.Second), tg))
	})
}

// TestForLogRegexpLineLimit: a regexp sees the first 4 MiB of a line.
func TestForLogRegexpLineLimit(t *testing.T) {
	t.Parallel()
	line := bytes.Repeat([]byte("x"), wait.MaxRegexpLine+100)
	copy(line[wait.MaxRegexpLine+10:], "late")
	copy(line[wait.MaxRegexpLine-10:], "early")
	tg := waittest.New()
	tg.Write(append(line, '\n'))
	tg.EndLog()
	ctx := withTimeout(t, 10*time.Second)
	require.NoError(t, wait.ForLogRegexp(`ea+rly`).Wait(ctx, tg))
	require.Error(t, wait.ForLogRegexp(`la+te`).Wait(ctx, tg))
	require.NoError(t, wait.ForLog("late").Wait(ctx, tg), "a substring is found anywhere")
}

// TestForLogLinearCost feeds ~50 MB through the fake log and checks that
// ForLog takes time proportional to one plain read of the same stream.
func TestForLogLinearCost(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MB")
	}
	const size = 50 << 20
	line := []byte(strings.Repeat("filler 0000000001 ", 6)[:99] + "\n")
	data := bytes.Repeat(line, size/len(line))
	tg := waittest.New()
	tg.Write(data)
	tg.Log("READY on port 8080")

	ctx := withTimeout(t, time.Minute)
	plain := func() time.Duration {
		start := time.Now()
		rc, err := tg.Logs(ctx, wait.LogOptions{})
		require.NoError(t, err)
		defer rc.Close()
		sc := bufio.NewScanner(rc)
		n := 0
		for sc.Scan() {
			n++
		}
		require.NoError(t, sc.Err())
		require.Equal(t, size/len(line)+1, n)
		return time.Since(start)
	}
	timed := func(s wait.Strategy) time.Duration {
		start := time.Now()
		require.NoError(t, s.Wait(ctx, tg))
		return time.Since(start)
	}
	best := func(f func() time.Duration) time.Duration {
		d := f()
		for range 2 {
			d = min(d, f())
		}
		return d
	}
	base := best(plain)
	for _, tt := range []struct {
		s      wait.Strategy
		factor float64
		reason string
	}{
		{wait.ForLog("READY"), 3, "chunks are searched whole"},
		{wait.ForLogRegexp(`^READY on port \d+$`), 3, "only lines containing the literal go to the regexp"},
		{wait.ForLogRegexp(`(?i)^ready on`), 10, "no case-sensitive literal: every line goes to the regexp, still linear"},
	} {
		got := best(func() time.Duration { return timed(tt.s) })
		ratio := float64(got) / float64(base)
		t.Logf("%s: %s for %d MB, a plain bufio scan: %s (%.2fx)", tt.s, got, size>>20, base, ratio)
		require.Less(t, ratio, tt.factor, "%s: %s", tt.s, tt.reason)
	}
}

// TestForLogUnfinishedLine: a substring counts as soon as it arrives; a
// regexp needs the whole line.
func TestForLogUnfinishedLine(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	tg.Write([]byte("booting\nserver rea"))
	after(t, 10*time.Millisecond, func() { tg.Write([]byte("dy, pid 1")) }) // no newline, the log stays open
	require.NoError(t, wait.ForLog("ready").Wait(withTimeout(t, 5*time.Second), tg))

	s := wait.ForLogRegexp(`^server ready, pid \d+$`)
	_, err := runTimed(t, shortTimeout, s, tg)
	requireTimeout(t, err, s, "0 of 1 matching lines so far")
	tg.Write([]byte("\n"))
	require.NoError(t, s.Wait(withTimeout(t, 5*time.Second), tg))
}
