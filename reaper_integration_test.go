//go:build integration

package heph_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/reaperchild"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/stretchr/testify/require"
)

// TestWatchdogReaper runs real child processes (internal/reaperchild's test
// binary) that make heph resources and die in every way a test process
// dies, and checks that their watchdogs remove exactly their resources.
func TestWatchdogReaper(t *testing.T) {
	t.Parallel()
	began := time.Now()
	testenv.Image(t) // built once here, before the children look for it
	bin := reaperchild.Build(t)
	t.Cleanup(func() { t.Logf("TestWatchdogReaper took %s", time.Since(began).Round(time.Millisecond)) })

	t.Run("KilledChild", func(t *testing.T) {
		t.Parallel()
		testKilledChildren(t, bin)
	})
	t.Run("NoSlowdown", func(t *testing.T) {
		t.Parallel()
		testNoSlowdown(t, bin)
	})
}

// testKilledChildren: each case starts a child holding 3 containers, a
// network and a volume, kills it one way, and requires every resource of
// its session gone within 30 s (a couple of seconds when quiet; the
// watchdog's own retries last two minutes) and its watchdog gone, while a
// bystander child's session, running throughout, stays untouched.
func testKilledChildren(t *testing.T, bin string) {
	began := time.Now()
	docker := testenv.Docker(t)
	ctx := context.Background()

	bystander := reaperchild.Start(t, bin, "hold", nil)
	before, err := reaperchild.Resources(ctx, docker, bystander.Session)
	require.NoError(t, err)
	require.Len(t, before, 5, "3 containers, a network and a volume: %v", before)

	cases := []struct {
		name  string
		mode  string
		flags []string
		kill  func(*reaperchild.Child) error // nil: the child dies by itself
		exit  string                         // Wait's error
		says  string                         // in the child's output
	}{
		// The child must be ready (a network, 3 containers) before its
		// timeout fires: 30 s is ample under the suite's load.
		{name: "GoTestTimeout", mode: "hold", flags: []string{"-test.timeout=30s"}, exit: "exit status 2", says: "panic: test timed out after 30s"},
		{name: "SIGKILL", mode: "hold", kill: func(c *reaperchild.Child) error { return c.Cmd.Process.Kill() }, exit: "signal: killed"},
		{name: "SIGINTToTheProcessGroup", mode: "hold", kill: func(c *reaperchild.Child) error { return c.Signal(syscall.SIGINT) }, exit: "signal: interrupt"},
		{name: "TFatal", mode: "fatal", kill: (*reaperchild.Child).Release, exit: "exit status 1", says: "failing on purpose, without teardown"},
		{name: "Panic", mode: "panic", kill: (*reaperchild.Child).Release, exit: "exit status 2", says: "panic: panicking on purpose, without teardown"},
	}
	slots := make(chan struct{}, 2) // at most 2 victims (and their networks) at once, besides the bystander
	t.Run("Cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				slots <- struct{}{}
				defer func() { <-slots }()

				child := reaperchild.Start(t, bin, tc.mode, nil, tc.flags...)
				require.NotZero(t, child.Watchdog, "the child has a watchdog")
				mine, err := reaperchild.Resources(ctx, docker, child.Session)
				require.NoError(t, err)
				require.Len(t, mine, 5, "%v", mine)

				killed := time.Now()
				if tc.kill != nil {
					require.NoError(t, tc.kill(child))
				}
				exited, werr := child.Wait(t, time.Minute) // the go test timeout case takes 30 s
				require.Error(t, werr)
				require.Equal(t, tc.exit, werr.Error(), "%s", child.Output())
				require.Contains(t, child.Output(), tc.says)

				gone := reaperchild.WaitGone(t, docker, child.Session, 30*time.Second)
				wdGone := reaperchild.WaitProcessGone(t, child.Watchdog, 30*time.Second)
				what := "the kill"
				if tc.kill == nil {
					what = "it was ready"
				}
				t.Logf("%s: the child exited %s after %s; its 5 resources were gone %s after it exited; its watchdog %d exited %s after that",
					tc.name, exited.Sub(killed).Round(time.Millisecond), what, gone.Round(time.Millisecond), child.Watchdog, wdGone.Round(time.Millisecond))

				log, err := reaperchild.TakeWatchdogLog(child.Cmd.Process.Pid)
				require.NoError(t, err, "the watchdog keeps its log when it removed something")
				require.Contains(t, log, "parent gone; removing the resources of 1 session(s)")
				require.Contains(t, log, "done: removed 5 resources")

				now, err := reaperchild.Resources(ctx, docker, bystander.Session)
				require.NoError(t, err)
				require.Equal(t, before, now, "the running session's resources are untouched")
				require.True(t, reaperchild.Running(bystander.Watchdog), "the bystander's watchdog still runs")
			})
		}
	})

	// The bystander ends normally: its own teardown removes everything and
	// its watchdog, finding nothing, exits within a second or two.
	require.NoError(t, bystander.Release())
	exited, werr := bystander.Wait(t, time.Minute)
	require.NoError(t, werr, "%s", bystander.Output())
	left, err := reaperchild.Resources(ctx, docker, bystander.Session)
	require.NoError(t, err)
	require.Empty(t, left, "the bystander tore down")
	reaperchild.WaitProcessGone(t, bystander.Watchdog, 30*time.Second)
	wdGone := time.Since(exited)
	t.Logf("bystander: exited cleanly; its watchdog %d, with nothing to do, was gone %s later", bystander.Watchdog, wdGone.Round(time.Millisecond))
	// A second or two when quiet; the bound is an eighth of the two minutes
	// a watchdog with something to remove keeps retrying.
	require.Less(t, wdGone, 15*time.Second, "gone once it found nothing to do")
	_, err = reaperchild.TakeWatchdogLog(bystander.Cmd.Process.Pid)
	require.Error(t, err, "a watchdog with nothing to do deletes its log")
	t.Logf("KilledChild took %s", time.Since(began).Round(time.Millisecond))
}

var watchdogLine = regexp.MustCompile(`(?m)^watchdog (\d+)$`)

// testNoSlowdown runs a passing child test (one container, torn down) as
// go test runs a test binary — its stdout and stderr are pipes, and Run
// returns only when every writer has closed them — with the watchdog on and
// off, alternately. With the watchdog on, the run ends while the watchdog
// still runs (it holds none of the run's pipes), and the wall times compare.
func testNoSlowdown(t *testing.T, bin string) {
	run := func(reaper string) (took time.Duration, watchdog int, aliveAtEnd bool) {
		t.Helper()
		cmd := exec.Command(bin, "-test.run", "^TestChild$", "-test.v")
		cmd.Env = append(os.Environ(), reaperchild.EnvMode+"=pass", heph.EnvReaper+"="+reaper)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		took = time.Since(start)
		require.NoError(t, err, "%s", out.String())
		m := watchdogLine.FindStringSubmatch(out.String())
		require.NotNil(t, m, "%s", out.String())
		watchdog, _ = strconv.Atoi(m[1])
		return took, watchdog, reaperchild.Running(watchdog)
	}
	const rounds = 3
	best := map[string]time.Duration{}
	var all []string
	for i := 0; i < rounds; i++ {
		for _, reaper := range []string{"on", "off"} {
			took, pid, alive := run(reaper)
			all = append(all, reaper+" "+took.Round(time.Millisecond).String())
			if reaper == "off" {
				require.Zero(t, pid, "no watchdog with HEPH_REAPER=off")
			} else {
				require.NotZero(t, pid, "a watchdog with the reaper on")
				require.True(t, alive, "the run ended while its watchdog still ran: go test does not wait for it")
				gone := reaperchild.WaitProcessGone(t, pid, 30*time.Second)
				// A second or two when quiet; an eighth of the two minutes a
				// watchdog with something to remove keeps retrying.
				require.Less(t, gone, 15*time.Second, "a watchdog with nothing to do is gone once it found nothing")
				all[len(all)-1] += " (watchdog gone " + gone.Round(time.Millisecond).String() + " later)"
			}
			if b, ok := best[reaper]; !ok || took < b {
				best[reaper] = took
			}
		}
	}
	t.Logf("go test run of a passing test with one container: reaper on %s, off %s (best of %d; runs: %s)",
		best["on"].Round(time.Millisecond), best["off"].Round(time.Millisecond), rounds, strings.Join(all, ", "))
	limit := best["off"]*3/2 + 500*time.Millisecond
	require.LessOrEqual(t, best["on"], limit, "the watchdog must not hold the run up")
}
