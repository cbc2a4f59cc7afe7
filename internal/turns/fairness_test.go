//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package turns

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heph-go/heph/internal/retry"
)

// BenchmarkFairness measures what the line is for: processes × tests racing
// for a scarce pool of slots (Docker's 30 default address pools), each
// test holding its slot a while, then the next test of the process asking
// for one at once, as go test runs them. Each strategy runs in real
// processes (this test binary, re-executed) for a fixed time:
//
//   - backoff: heph's earlier way, retry with jittered exponential backoff
//     (50 ms to 1 s) until a slot is free;
//   - random: randomized backoff with a bounded wait (10 ms to 200 ms, full
//     jitter), so no waiter sleeps long;
//   - line<N>: a new test takes a slot directly only when nobody waits in
//     the line; otherwise, and when it finds none free, it joins the line
//     and tries only once among the first N waiters.
//
// It reports the longest wait of any test (max-wait-s), the p50 and p99
// waits, and the spread of the processes' longest waits (the fairness of
// interest: no process should wait out a startup timeout while another
// keeps winning). Run it with
//
//	go test -run '^$' -bench Fairness -benchtime 1x ./internal/turns
func BenchmarkFairness(b *testing.B) {
	for _, strategy := range []string{"backoff", "random", "line1", "line4", "line8"} {
		b.Run(strategy, func(b *testing.B) {
			for range b.N {
				r := race(b, simConfig{Strategy: strategy, Procs: 8, Tests: 12, Slots: 30,
					Run: 20 * time.Second, HoldMin: 200 * time.Millisecond, HoldMax: 600 * time.Millisecond})
				b.ReportMetric(r.max.Seconds(), "max-wait-s")
				b.ReportMetric(float64(r.p50.Milliseconds()), "p50-wait-ms")
				b.ReportMetric(float64(r.p99.Milliseconds()), "p99-wait-ms")
				b.ReportMetric(r.minProcMax.Seconds(), "min-proc-max-wait-s")
				b.ReportMetric(float64(r.acquired), "slots-taken")
				b.Logf("%s: %d slots taken; wait p50 %s p99 %s max %s; longest wait per process %v", strategy, r.acquired,
					r.p50, r.p99, r.max, r.procMax)
			}
		})
	}
}

// envWorker makes the test binary a worker of the fairness race; its value
// is the JSON of a simConfig.
const envWorker = "HEPH_TURNS_FAIRNESS_WORKER"

type simConfig struct {
	Strategy         string
	Procs, Tests     int
	Slots            int
	SlotDir, LineDir string
	Run              time.Duration
	HoldMin, HoldMax time.Duration
	StartAt          time.Time
}

type simResult struct {
	acquired      int
	p50, p99, max time.Duration
	procMax       []time.Duration
	minProcMax    time.Duration
}

func race(b *testing.B, cfg simConfig) simResult {
	b.Helper()
	dir := b.TempDir()
	cfg.SlotDir, cfg.LineDir = filepath.Join(dir, "slots"), filepath.Join(dir, "line")
	if err := os.Mkdir(cfg.SlotDir, 0o700); err != nil {
		b.Fatal(err)
	}
	for i := range cfg.Slots {
		if err := os.WriteFile(filepath.Join(cfg.SlotDir, strconv.Itoa(i)), nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	cfg.StartAt = time.Now().Add(time.Second) // every worker is up by then
	js, _ := json.Marshal(cfg)
	var mu sync.Mutex
	var all []time.Duration
	var procMax []time.Duration
	var wg sync.WaitGroup
	for range cfg.Procs {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envWorker+"="+string(js))
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var waits []time.Duration
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				ms, err := strconv.ParseFloat(sc.Text(), 64)
				if err == nil {
					waits = append(waits, time.Duration(ms*float64(time.Millisecond)))
				}
			}
			if err := cmd.Wait(); err != nil {
				b.Errorf("worker: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			all = append(all, waits...)
			procMax = append(procMax, slices.Max(append(waits, 0)))
		}()
	}
	wg.Wait()
	slices.Sort(all)
	slices.Sort(procMax)
	r := simResult{acquired: len(all), procMax: procMax}
	if len(all) > 0 {
		r.p50, r.p99, r.max = all[len(all)/2], all[len(all)*99/100], all[len(all)-1]
		r.minProcMax = procMax[0]
	}
	return r
}

// worker runs cfg.Tests loops for cfg.Run: take a slot, hold it, give it
// back; it prints each wait in milliseconds, one a line. A test still
// waiting when the time is up prints how long it waited so far.
func worker() int {
	var cfg simConfig
	if err := json.Unmarshal([]byte(os.Getenv(envWorker)), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	line, err := OpenDir(cfg.LineDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	time.Sleep(time.Until(cfg.StartAt))
	end := cfg.StartAt.Add(cfg.Run)
	ctx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range cfg.Tests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				f := acquire(ctx, cfg, line)
				wait := time.Since(start)
				mu.Lock()
				fmt.Printf("%.3f\n", float64(wait)/float64(time.Millisecond))
				mu.Unlock()
				if f == nil {
					return
				}
				time.Sleep(cfg.HoldMin + rand.N(cfg.HoldMax-cfg.HoldMin))
				f.Close()
			}
		}()
	}
	wg.Wait()
	return 0
}

// acquire takes a free slot the strategy's way; nil when ctx ended first.
func acquire(ctx context.Context, cfg simConfig, line *Line) *os.File {
	var got *os.File
	try := func(context.Context) error {
		for _, i := range rand.Perm(cfg.Slots) {
			f, err := os.Open(filepath.Join(cfg.SlotDir, strconv.Itoa(i)))
			if err != nil {
				return retry.Permanent(err)
			}
			if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
				got = f
				return nil
			}
			f.Close()
		}
		return fmt.Errorf("no slot free")
	}
	switch cfg.Strategy {
	case "backoff":
		_ = retry.Poll(ctx, retry.Policy{Initial: 50 * time.Millisecond, Max: time.Second, Jitter: 0.3}, try)
	case "random":
		_ = retry.Poll(ctx, retry.Policy{Initial: 10 * time.Millisecond, Max: 200 * time.Millisecond, Jitter: 1}, try)
	default: // "line<window>"
		window, _ := strconv.Atoi(strings.TrimPrefix(cfg.Strategy, "line"))
		if !line.Busy() && try(ctx) == nil {
			return got
		}
		turn, err := line.Join(ctx, window)
		if err != nil {
			return nil
		}
		defer turn.Done()
		_ = retry.Poll(ctx, headPoll, try)
	}
	return got
}

// headPoll is how often the head of the line tries again (as heph's pooled
// network create does).
var headPoll = retry.Policy{Initial: 20 * time.Millisecond, Max: 250 * time.Millisecond, Jitter: 0.3}
