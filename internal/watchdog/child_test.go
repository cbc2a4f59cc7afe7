package watchdog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/retry"
	"github.com/heph-go/heph/internal/sessions"
)

// The watchdog's side, in this process: the protocol reader, Serve over a
// fake daemon, the marks that make a process a watchdog, its environment.

// logger collects log lines; safe for concurrent use.
type logger struct {
	mu    sync.Mutex
	lines []string
}

func (l *logger) logf(f string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(f, a...))
}

func (l *logger) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func TestReadCommands(t *testing.T) {
	var log logger
	in := "session 4f1c0a52-9d5e-4d0b-8f7e-0c8e2f1b6a11\n" +
		"\n" + // blank: ignored
		"  session   4f1c0a52-9d5e-4d0b-8f7e-0c8e2f1b6a11  \r\n" + // the same again, padded, CRLF
		"keep 0123abcd\n" +
		"session with spaces\n" + // not an id: logged, ignored
		"4f1c0a52-9d5e-4d0b-8f7e-0c8e2f1b6a11\n" + // no verb
		"session a\"b\n" +
		"session " + strings.Repeat("x", 129) + "\n" + // too long
		"forget s1\n" + // unknown command
		"keep heph-net-1a2b3c4d\n" +
		"session custom_session.2" // last line without a newline still counts
	ids, keep, err := ReadCommands(strings.NewReader(in), log.logf)
	require.NoError(t, err)
	require.Equal(t, []string{"4f1c0a52-9d5e-4d0b-8f7e-0c8e2f1b6a11", "custom_session.2"}, ids, "distinct, in the order they came")
	require.Equal(t, map[string]bool{"0123abcd": true, "heph-net-1a2b3c4d": true}, keep)
	ignored := slices.DeleteFunc(log.all(), func(s string) bool { return !strings.HasPrefix(s, "ignored") })
	require.Len(t, ignored, 5)
	require.Contains(t, ignored, `ignored line "session a\"b": not a command`, "quoted, so a line cannot forge a log line")
	require.Contains(t, ignored, `ignored line "forget s1": unknown command`)
}

type failingReader struct{ r io.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("read |0: input/output error")
	}
	return n, err
}

func TestReadCommandsKeepsWhatCameBeforeAReadError(t *testing.T) {
	ids, _, err := ReadCommands(failingReader{strings.NewReader("session s1\nsession s2\n")}, func(string, ...any) {})
	require.ErrorContains(t, err, "input/output error")
	require.Equal(t, []string{"s1", "s2"}, ids)
}

func TestReadCommandsStopsAtAnOverlongLine(t *testing.T) {
	// A line beyond the scanner's 64 KiB ends the reading, as a read error
	// does; what came before counts.
	in := "session s1\n" + strings.Repeat("x", bufio.MaxScanTokenSize+1) + "\nsession s2\n"
	ids, _, err := ReadCommands(strings.NewReader(in), func(string, ...any) {})
	require.ErrorIs(t, err, bufio.ErrTooLong)
	require.Equal(t, []string{"s1"}, ids)
}

// fast is a removal policy for tests.
var fast = sessions.RetryPolicy{Backoff: retry.Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond}, MaxElapsed: time.Minute}

// of labels a resource with session s.
func of(s string) map[string]string {
	return map[string]string{labels.Managed: "true", labels.Session: s}
}

func names(rs []sessions.Resource) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, string(r.Kind)+" "+r.Name)
	}
	slices.Sort(out)
	return out
}

func TestServeRemovesTheAnnouncedSessionsAtEOF(t *testing.T) {
	ctx := context.Background()
	f := enginetest.NewFake()
	_, err := f.NetworkCreate(ctx, engine.NetworkSpec{Name: "net", Labels: of("s1")})
	require.NoError(t, err)
	_, err = f.ContainerCreate(ctx, engine.ContainerSpec{Name: "web", Image: "app", Labels: of("s1"), Network: "net"})
	require.NoError(t, err)
	_, err = f.ContainerCreate(ctx, engine.ContainerSpec{Name: "other", Image: "app", Labels: of("s2")})
	require.NoError(t, err)

	var log logger
	removed, kept, err := Serve(ctx, f, strings.NewReader("session s1\nnot a session\nsession s1\n"), fast, log.logf)
	require.NoError(t, err)
	require.Empty(t, kept)
	require.Equal(t, []string{"container web", "network net"}, names(removed))
	c, n, _ := f.Counts()
	require.Equal(t, 1, c, "a session not announced is not touched")
	require.Zero(t, n)
	require.Contains(t, log.all(), "parent gone; removing the resources of 1 session(s)")
}

func TestServeWithoutASessionMakesNoDockerCall(t *testing.T) {
	f := enginetest.NewFake()
	var log logger
	removed, kept, err := Serve(context.Background(), f, strings.NewReader("keep c1\n"), fast, log.logf)
	require.NoError(t, err)
	require.Empty(t, removed)
	require.Empty(t, kept)
	require.Empty(t, f.Calls(), "no session was announced: no Docker call at all")
	require.Contains(t, log.all(), "parent gone; no session was announced")
}

func TestServeKeepsWhatItIsTold(t *testing.T) {
	ctx := context.Background()
	f := enginetest.NewFake()
	keepID, err := f.ContainerCreate(ctx, engine.ContainerSpec{Name: "db", Image: "app", Labels: of("s1")})
	require.NoError(t, err)
	_, err = f.ContainerCreate(ctx, engine.ContainerSpec{Name: "web", Image: "app", Labels: of("s1")})
	require.NoError(t, err)
	removed, kept, err := Serve(ctx, f, strings.NewReader("session s1\nkeep "+keepID+"\n"), fast, func(string, ...any) {})
	require.NoError(t, err)
	require.Equal(t, []string{"container web"}, names(removed))
	require.Equal(t, []string{"container db"}, names(kept))
}

func TestServeTakesAReadErrorAsTheParentsEnd(t *testing.T) {
	ctx := context.Background()
	f := enginetest.NewFake()
	_, err := f.ContainerCreate(ctx, engine.ContainerSpec{Name: "web", Image: "app", Labels: of("s1")})
	require.NoError(t, err)
	var log logger
	removed, _, err := Serve(ctx, f, failingReader{strings.NewReader("session s1\n")}, fast, log.logf)
	require.NoError(t, err)
	require.Equal(t, []string{"container web"}, names(removed))
	require.Contains(t, strings.Join(log.all(), "\n"), "read from parent: read |0: input/output error (taken as the parent's end)")
}

func TestServeReportsWhatItCouldNotRemove(t *testing.T) {
	ctx := context.Background()
	f := enginetest.NewFake()
	_, err := f.ContainerCreate(ctx, engine.ContainerSpec{Name: "stuck", Image: "app", Labels: of("s1")})
	require.NoError(t, err)
	f.Hook = func(_ context.Context, call string, _ any) error {
		if call == "ContainerRemove" {
			return errors.New("device or resource busy")
		}
		return nil
	}
	p := fast
	p.MaxElapsed = 200 * time.Millisecond
	_, _, err = Serve(ctx, f, strings.NewReader("session s1\n"), p, func(string, ...any) {})
	require.ErrorContains(t, err, "still there: container stuck")
}

func TestIsWatchdog(t *testing.T) {
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	cfg := map[string]string{EnvConfig: `{"parent":1}`}
	cases := []struct {
		reason string
		args   []string
		env    map[string]string
		want   bool
	}{
		{"both marks: a watchdog", []string{"heph-watchdog", "parent=1"}, cfg, true},
		{"both marks, an empty config: a watchdog (that will refuse the config)", []string{"heph-watchdog"}, map[string]string{EnvConfig: ""}, true},
		{"argv[0] alone does nothing (a binary someone named heph-watchdog)", []string{"heph-watchdog", "parent=1"}, nil, false},
		{"HEPH_WATCHDOG alone does nothing (inherited by a program the watchdog's parent ran)", []string{"/usr/bin/app"}, cfg, false},
		{"argv[0] must be exactly the mark, not a path to it", []string{"/usr/local/bin/heph-watchdog"}, cfg, false},
		{"argv[0] must be exactly the mark, not padded", []string{"heph-watchdog "}, cfg, false},
		{"the mark as an argument is not argv[0]", []string{"app", "heph-watchdog"}, cfg, false},
		{"no argv at all", nil, cfg, false},
		{"neither mark", []string{"app"}, nil, false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, isWatchdog(tc.args, env(tc.env)), tc.reason)
	}
}

func TestChildEnv(t *testing.T) {
	env := childEnv([]string{"PATH=/bin", "GOCOVERDIR=/tmp/cov", "HEPH_WATCHDOG=old", "DOCKER_HOST=unix:///x", "EMPTY=", "HEPH_WATCHDOG_X=y"}, `{"parent":1}`)
	require.Equal(t, []string{"PATH=/bin", "DOCKER_HOST=unix:///x", "EMPTY=", "HEPH_WATCHDOG_X=y", `HEPH_WATCHDOG={"parent":1}`}, env,
		"no coverage profile for the watchdog, no inherited config; everything else as it is, in order")
	require.Equal(t, []string{`HEPH_WATCHDOG={}`}, childEnv(nil, "{}"))
}

func TestReadCommandsPendingCreatesLessTheSettledOnes(t *testing.T) {
	c, err := Read(strings.NewReader("session s1\npending n1\npending n2\npending n1\nsettled n2\npending n3\nsettled n9\n"), func(string, ...any) {})
	require.NoError(t, err)
	require.Equal(t, []string{"n1", "n3"}, c.Pending, "in the order they came, each once, the settled ones left out")
}

// TestServeWaitsForAPendingCreateToShowUp: the parent gave up on the create
// of heph-net-late and ended; the busy daemon makes the network only after
// the watchdog's first removal found nothing. The watchdog removes it.
func TestServeWaitsForAPendingCreateToShowUp(t *testing.T) {
	ctx := context.Background()
	f := enginetest.NewFake()
	_, err := f.ContainerCreate(ctx, engine.ContainerSpec{Name: "web", Image: "app", Labels: of("s1")})
	require.NoError(t, err)
	var log logger
	made := make(chan error, 1)
	go func() { // the daemon carries the create out once the watchdog waits for it
		waits := func() bool {
			return slices.ContainsFunc(log.all(), func(l string) bool { return strings.HasPrefix(l, "waiting for 1 pending create(s)") })
		}
		for start := time.Now(); !waits(); time.Sleep(time.Millisecond) {
			if time.Since(start) > time.Minute {
				made <- errors.New("the watchdog never waited for the pending create")
				return
			}
		}
		_, err := f.NetworkCreate(ctx, engine.NetworkSpec{Name: "heph-net-late", Labels: of("s1")})
		made <- err
	}()
	removed, kept, err := Serve(ctx, f, strings.NewReader("session s1\npending heph-net-late\npending heph-c-settled\nsettled heph-c-settled\n"), fast, log.logf)
	require.NoError(t, err)
	require.NoError(t, <-made)
	require.Empty(t, kept)
	require.Equal(t, []string{"container web", "network heph-net-late"}, names(removed))
	c, n, _ := f.Counts()
	require.Zero(t, c)
	require.Zero(t, n, "the late network is gone")
	require.Contains(t, log.all(), "waiting for 1 pending create(s) to show up: heph-net-late", "a settled create is not waited for")
}

func TestServeGivesUpOnAPendingCreateThatNeverShowsUp(t *testing.T) {
	defer func(g time.Duration) { PendingGrace = g }(PendingGrace)
	PendingGrace = 50 * time.Millisecond
	f := enginetest.NewFake()
	var log logger
	removed, _, err := Serve(context.Background(), f, strings.NewReader("session s1\npending heph-net-never\n"), fast, log.logf)
	require.NoError(t, err, "a create the daemon refused made nothing: no failure")
	require.Empty(t, removed)
	require.Contains(t, log.all(), "1 pending create(s) did not show up within 50ms: heph-net-never")
}
