//go:build integration

// Package scale_test is the child program of heph's scale benchmark (see
// internal/scalebench, `make bench-scale`): one process of N, running
// HEPH_SCALE_TESTS parallel tests, each starting two containers that must
// reach each other and (with per-test networks) must not reach another
// test's. It lives under testdata so that go test ./... does not run it.
package scale_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/subnet"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/heph-go/heph/wait"
)

// Environment the benchmark sets.
const (
	envMode    = "HEPH_SCALE_MODE"    // "network" (each test its own) or "bridge" (Docker's default bridge)
	envTests   = "HEPH_SCALE_TESTS"   // parallel tests in this process
	envOut     = "HEPH_SCALE_OUT"     // file this process writes its results to, one JSON object a line
	envStartup = "HEPH_SCALE_STARTUP" // the startup timeout, a Go duration ("" for heph's default)
)

// Result is one line of the results file: a test, or (Test == -1) the
// process's counters.
type Result struct {
	Test                  int
	ReadyMillis           float64 // from the test's start to both containers ready
	Passed                bool
	Own, Pooled, Overlaps int64 // networks on heph's subnets, on the pools; subnets another process took first
	PoolRetries           int64
}

var (
	outMu sync.Mutex
	out   *os.File
)

func write(r Result) {
	outMu.Lock()
	defer outMu.Unlock()
	b, _ := json.Marshal(r)
	fmt.Fprintf(out, "%s\n", b)
}

func TestMain(m *testing.M) {
	var err error
	if out, err = os.OpenFile(os.Getenv(envOut), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "the child of the scale benchmark: %s must name a file: %v\n", envOut, err)
		os.Exit(2)
	}
	code := m.Run()
	write(Result{Test: -1, Own: subnet.Counters.Own.Load(), Pooled: subnet.Counters.Pooled.Load(),
		Overlaps: subnet.Counters.Overlaps.Load(), PoolRetries: subnet.Counters.PoolRetries.Load()})
	out.Close()
	os.Exit(testenv.Check(code))
}

// peers is what the tests of this process know of each other: each one's
// second container, once started. Every test waits for all before it probes
// a neighbour, so all of them run at once.
type peers struct {
	mu      sync.Mutex
	b       map[int]peer
	left    int
	started chan struct{}
}

type peer struct{ name, ip string }

func (p *peers) arrive(i int, b peer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.name != "" {
		p.b[i] = b
	}
	if p.left--; p.left == 0 {
		close(p.started)
	}
}

func TestScale(t *testing.T) {
	mode := os.Getenv(envMode)
	n, err := strconv.Atoi(os.Getenv(envTests))
	if err != nil || n < 2 || (mode != "network" && mode != "bridge") {
		t.Fatalf("run by the scale benchmark: %s=network|bridge, %s=<tests, at least 2>", envMode, envTests)
	}
	server := heph.NewContainer(testenv.Image(t)).WithCmd("-http", ":8080").
		WithWaitStrategy(wait.ForLog("testapp: listening "))
	if d := os.Getenv(envStartup); d != "" {
		timeout, err := time.ParseDuration(d)
		if err != nil {
			t.Fatalf("%s=%q: %v", envStartup, d, err)
		}
		server = server.WithStartupTimeout(timeout)
	}
	all := &peers{b: map[int]peer{}, left: n, started: make(chan struct{})}
	for i := range n {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			var once sync.Once
			arrive := func(b peer) { once.Do(func() { all.arrive(i, b) }) }
			defer arrive(peer{}) // also when the test fails before it started
			began := time.Now()
			var a, b *heph.Container
			var net, target string
			if mode == "network" {
				cs := heph.StartAll(t, server.WithName("a"), server.WithName("b"))
				a, b, net, target = cs[0], cs[1], heph.TestNetwork(t).Name(), "b"
			} else {
				a, b = runBoth(t, server.WithName("a"), server.WithName("b"))
				net = "bridge"
			}
			ready := time.Since(began)
			defer func() {
				write(Result{Test: i, ReadyMillis: float64(ready) / float64(time.Millisecond), Passed: !t.Failed()})
			}()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			info, err := b.Inspect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ip := info.Networks[net].IP
			if ip == "" {
				t.Fatalf("b has no address on %s: %v", net, info.Networks)
			}
			if target == "" {
				target = ip // the default bridge resolves no names
			}
			res := execIn(t, a, "/testapp", "fetch", "http://"+target+":8080/hostname")
			if res.ExitCode != 0 || strings.TrimSpace(string(res.Stdout)) != "b" {
				t.Fatalf("a did not reach its sibling b at %s: exit %d: %s%s", target, res.ExitCode, res.Stdout, res.Stderr)
			}
			arrive(peer{name: b.Name(), ip: ip})
			select {
			case <-all.started:
			case <-time.After(5 * time.Minute):
				t.Fatal("the other tests of this process did not start within 5 minutes")
			}
			if mode != "network" {
				return // the default bridge isolates nothing
			}
			all.mu.Lock()
			other, ok := all.b[(i+1)%n]
			all.mu.Unlock()
			if !ok {
				t.Fatalf("test %d did not start: no neighbour to probe", (i+1)%n)
			}
			// Blocked at least once (see testenv.Isolated: Docker's own
			// rules open a window on every network create).
			blocked, reached := testenv.Isolated(func() bool {
				return execIn(t, a, "/testapp", "dial", other.ip+":8080", "-timeout", "300ms").ExitCode == 0
			})
			if !blocked {
				t.Errorf("a reached test %d's container at %s %d times of %d", (i+1)%n, other.ip, reached, testenv.IsolationTries)
			}
			if res := execIn(t, a, "/testapp", "resolve", other.name, "-timeout", "500ms"); res.ExitCode == 0 {
				t.Errorf("another test's container name %s resolves: %s", other.name, res.Stdout)
			}
		})
	}
}

// runBoth starts a and b at once on Docker's default bridge (as StartAll
// does on the test's network); they are removed when the test ends.
func runBoth(t *testing.T, ra, rb heph.ContainerRequest) (a, b *heph.Container) {
	t.Helper()
	o, err := heph.DefaultOrchestrator()
	if err != nil {
		t.Fatal(err)
	}
	var errA, errB error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a, errA = ra.Run(context.Background(), o) }()
	go func() { defer wg.Done(); b, errB = rb.Run(context.Background(), o) }()
	wg.Wait()
	for _, c := range []*heph.Container{a, b} {
		if c != nil {
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				if err := c.Terminate(ctx); err != nil {
					t.Error(err)
				}
			})
		}
	}
	if errA != nil || errB != nil {
		t.Fatal(errors.Join(errA, errB))
	}
	return a, b
}

func execIn(t *testing.T, c *heph.Container, cmd ...string) heph.ExecResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := c.Exec(ctx, cmd...)
	if err != nil {
		t.Fatalf("exec %v in %s: %v", cmd, c.Name(), err)
	}
	return res
}
