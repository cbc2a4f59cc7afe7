//go:build integration

package wait_test

// Benchmarks of package wait against real containers (go test -tags
// integration -run '^$' -bench . -benchtime 20x ./wait/). Each reports its
// own metrics, measured in the same run; ns/op is the whole life of the
// container(s) of one iteration and says little.

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/heph-go/heph/wait"
)

// BenchmarkReadinessLatency measures, per strategy, the time from the
// moment the app is ready — its own time stamp when it starts listening or
// prints its line — to the moment the strategy reports ready. That moment
// is taken when the strategy's Wait returns inside heph's start (a wrapper
// records it), which isolates the wait from the rest of Start; the moment
// Run (Start without a test) returns is reported too ("ms-start-returned"):
// it adds only the return from wait.Run.
//
// Each iteration starts one container on Docker's default bridge whose app
// becomes ready 500 ms after it starts, so that the wait is polling when it
// does. Metrics: ms-after-ready-median and -p90 (the acceptance target is a
// median ≤ 30 ms), ms-start-returned-median, over the iterations whose wait
// began before the app was ready (late-starts counts the others: a wait
// that begins late measures the start, not the strategy). "ForListeningPort-proxy" is
// ForListeningPort forced onto its fallback path through Docker's userland
// proxy (used when the container's own address is unreachable, e.g. Docker
// Desktop), for comparison; it is not the path used on a local Linux daemon.
func BenchmarkReadinessLatency(b *testing.B) {
	img := testenv.Image(b)
	o := testenv.Orchestrator(b)
	cases := []struct {
		name   string
		cmd    []string
		ports  []string
		prefix string // the app's line with the ready time stamp
		s      func() wait.Strategy
	}{
		{"ForListeningPort", []string{"-tcp", ":9000", "-tcp-delay", "500ms"}, []string{"9000"},
			"testapp: listening tcp ", func() wait.Strategy { return wait.ForListeningPort("9000") }},
		{"ForHTTP", []string{"-http", ":8080", "-http-delay", "500ms"}, []string{"8080"},
			"testapp: listening http ", func() wait.Strategy { return wait.ForHTTP("/healthz") }},
		{"ForLog", []string{"-log-delay", "500ms", "-log", "READY", "-stamp"}, nil,
			"READY", func() wait.Strategy { return wait.ForLog("READY") }},
		{"ForListeningPort-proxy", []string{"-tcp", ":9000", "-tcp-delay", "500ms"}, []string{"9000"},
			"testapp: listening tcp ", func() wait.Strategy { return proxyOnly("9000") }},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var afterReady, afterStart []float64
			late := 0
			for range b.N {
				s := stamp(tc.s())
				req := heph.NewContainer(img).WithName("latency").WithCmd(tc.cmd...).WithWaitStrategy(s)
				if len(tc.ports) > 0 {
					req = req.WithExposedPorts(tc.ports...)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				c, err := req.Run(ctx, o)
				returned := time.Now().UnixNano()
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				log, err := readLogs(c)
				terminate(b, c)
				if err != nil {
					b.Fatal(err)
				}
				ts := appStamps(log, tc.prefix)
				if len(ts) == 0 {
					b.Fatalf("no %q line in the log:\n%s", tc.prefix, cut(log))
				}
				if s.began.Load() >= ts[0] {
					// The wait began after the app was ready: its delay is
					// not a readiness latency; left out of the figures.
					late++
					continue
				}
				afterReady = append(afterReady, msBetween(ts[0], s.ended.Load()))
				afterStart = append(afterStart, msBetween(ts[0], returned))
			}
			if len(afterReady) == 0 {
				b.Fatalf("%s: in all %d iterations the wait began after the app was ready: nothing measured", tc.name, b.N)
			}
			r, st := summarize(afterReady), summarize(afterStart)
			b.ReportMetric(r.median, "ms-after-ready-median")
			b.ReportMetric(r.p90, "ms-after-ready-p90")
			b.ReportMetric(st.median, "ms-start-returned-median")
			b.ReportMetric(float64(late), "late-starts")
			b.Logf("%s: ready − app ready: %v; Run returned − app ready: %v; left out: %d of %d iterations whose wait began after the app was ready",
				tc.name, r, st, late, b.N)
		})
	}
}

// BenchmarkForLog50MB compares ForLog with reading the same log once
// through the raw SDK, on one container that wrote 50 MB of 100-byte lines
// then READY, and keeps running. The daemon keeps only the last files of a
// json-file log (max-size × max-file), so both read what is still there
// (metric MB-read). Per iteration, in alternating order:
//
//   - sdk: ContainerLogs without follow, demultiplexed with stdcopy, to EOF;
//   - forlog: wait.Run(ForLog("READY")) against heph's wait.Target for the
//     container, which follows the log (it ends when READY, the last line, is
//     found).
//
// ForLog follows the log; the same work through the raw SDK is
// sdk-follow: ContainerLogs with follow, demultiplexed, until READY. Metric
// forlog/sdk-follow is the ratio of their total times (the comparison of
// like with like); forlog/sdk compares with one read to EOF without follow
// (target ≤ 2), and sdk-follow/sdk shows what the daemon's follow mode
// costs by itself. target-read/sdk-follow is heph's Target.Logs followed
// and read in 64 KiB chunks until READY, with no matching (heph's
// demultiplexing).
func BenchmarkForLog50MB(b *testing.B) {
	o := testenv.Orchestrator(b)
	cli := testenv.Docker(b)
	var box targetBox
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	c, err := heph.NewContainer(testenv.Image(b)).WithName("chatty").
		WithCmd("-log-bytes", "50MB", "-log-after", "READY").
		WithWaitStrategy(wait.All(wait.ForLog("READY"), box.capture())).Run(ctx, o)
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	defer terminate(b, c)
	tg := box.get(b)

	// Warm up the daemon's and the kernel's caches.
	_, sdkBytes := sdkReadLog(b, cli, c.ID())

	var sdk, forlog, sdkFollow, targetRead time.Duration
	var forlogBytes int64
	b.ResetTimer()
	for i := range b.N {
		steps := []func(){
			func() {
				d, n := sdkReadLog(b, cli, c.ID())
				sdk += d
				if n != sdkBytes {
					b.Fatalf("the SDK read %d bytes, then %d: the log changed", sdkBytes, n)
				}
			},
			func() {
				ct := &countingTarget{Target: tg}
				d, err := runFor(time.Minute, wait.ForLog("READY"), ct)
				if err != nil {
					b.Fatal(err)
				}
				forlog += d
				forlogBytes = ct.bytes.Load()
			},
			func() { sdkFollow += sdkFollowUntil(b, cli, c.ID(), []byte("READY")) },
			func() { targetRead += targetReadUntil(b, tg, []byte("READY")) },
		}
		for k := range steps { // rotated: each goes first in turn
			steps[(i+k)%len(steps)]()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(forlog)/float64(sdkFollow), "forlog/sdk-follow")
	b.ReportMetric(float64(forlog)/float64(sdk), "forlog/sdk")
	b.ReportMetric(float64(sdkFollow)/float64(sdk), "sdk-follow/sdk")
	b.ReportMetric(float64(targetRead)/float64(sdkFollow), "target-read/sdk-follow")
	b.ReportMetric(float64(sdkBytes)/1e6, "MB-read")
	n := time.Duration(b.N)
	b.Logf("per read of %.1f MB (ForLog read %.1f MB): sdk %v, ForLog %v, sdk follow %v, Target.Logs follow %v",
		float64(sdkBytes)/1e6, float64(forlogBytes)/1e6, sdk/n, forlog/n, sdkFollow/n, targetRead/n)
}

// sdkFollowUntil follows the container's log through the raw SDK until a
// chunk contains marker, and returns how long it took.
func sdkFollowUntil(b *testing.B, cli *client.Client, id string, marker []byte) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	rc, err := cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	w := &markerWriter{marker: marker}
	_, err = stdcopy.StdCopy(w, w, rc)
	if !errors.Is(err, errFound) {
		b.Fatalf("follow the log: %v", err)
	}
	return time.Since(start)
}

// targetReadUntil follows the log through the wait.Target heph gives
// strategies, reading 64 KiB chunks until one contains marker.
func targetReadUntil(b *testing.B, tg wait.Target, marker []byte) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	rc, err := tg.Logs(ctx, wait.LogOptions{Follow: true})
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := rc.Read(buf)
		if bytes.Contains(buf[:n], marker) {
			return time.Since(start)
		}
		if err != nil {
			b.Fatalf("follow the log: %v", err)
		}
	}
}

var errFound = errors.New("marker found")

// markerWriter fails with errFound once a write contains marker (a log
// frame is one line).
type markerWriter struct{ marker []byte }

func (w *markerWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, w.marker) {
		return len(p), errFound
	}
	return len(p), nil
}
