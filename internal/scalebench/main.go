// Command scalebench is heph's scale benchmark (`make bench-scale`): N test
// processes × M parallel tests each — as `go test ./...` runs packages — on
// one daemon. Every test starts two containers that must reach each other
// (by name, on the test's own network) and, on per-test networks, must not
// reach another test's. For comparison it runs the same tests with the
// containers on Docker's default bridge (no network per test, no names, no
// isolation), in the same run.
//
// For each run it reports the wall time, the start-to-ready time of the
// tests (p50, p99, max), how many passed, the networks created (on heph's
// subnets and on the daemon's pools), the retries (subnets another process
// took first, creates retried on exhausted pools) and what was left on the
// daemon when they ended and once their watchdogs had time to remove it.
// The child program is testdata/scale.
//
//	go run ./internal/scalebench -procs 4,8 -tests 25
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/testenv"
)

// result mirrors testdata/scale's Result.
type result struct {
	Test                  int
	ReadyMillis           float64
	Passed                bool
	Own, Pooled, Overlaps int64
	PoolRetries           int64
}

type summary struct {
	procs, tests, passed, failedProcs int
	mode                              string
	wall                              time.Duration
	p50, p99, max                     time.Duration
	procMax                           []time.Duration // each process's slowest test
	own, pooled, overlaps, retries    int64
	atExit, leftovers                 int // resources left when the processes ended; still there after their watchdogs
}

func main() {
	procsFlag := flag.String("procs", "4,8", "numbers of processes, comma-separated: one run each")
	tests := flag.Int("tests", 25, "parallel tests in each process")
	modes := flag.String("modes", "network,bridge", `"network" (a network per test) and/or "bridge" (Docker's default bridge)`)
	startup := flag.String("startup", "", "the tests' startup timeout (a Go duration; empty: heph's default)")
	subnets := flag.String("subnets", os.Getenv(heph.EnvSubnets), "HEPH_SUBNETS for the test processes")
	keep := flag.String("logs", "", "directory to keep the processes' output in (default: a temporary one, removed)")
	flag.Parse()
	if err := run(*procsFlag, *tests, *modes, *startup, *subnets, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "scalebench:", err)
		os.Exit(1)
	}
}

func run(procsFlag string, tests int, modes, startup, subnets, logs string) error {
	var procs []int
	for _, s := range strings.Split(procsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-procs %q: want numbers of processes, comma-separated", procsFlag)
		}
		procs = append(procs, n)
	}
	dir := logs
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "heph-scalebench-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	began := time.Now()
	if _, err := testenv.BuildImage(); err != nil {
		return fmt.Errorf("build the test image: %w", err)
	}
	bin := filepath.Join(dir, "scale.test")
	build := exec.Command("go", "test", "-c", "-tags", "integration", "-o", bin, "./testdata/scale")
	build.Dir = moduleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build testdata/scale: %v\n%s", err, out)
	}
	fmt.Printf("built the test image and the child program in %s\n\n", time.Since(began).Round(time.Millisecond))

	var rows []summary
	for _, n := range procs {
		for _, mode := range strings.Split(modes, ",") {
			s, err := runOnce(dir, bin, strings.TrimSpace(mode), n, tests, startup, subnets)
			if err != nil {
				return err
			}
			rows = append(rows, s)
			fmt.Printf("%s: %d×%d: %d/%d passed in %s; each process's slowest start to ready: %v\n",
				s.mode, n, tests, s.passed, s.procs*s.tests, s.wall.Round(time.Millisecond), s.procMax)
		}
	}
	fmt.Printf("\n%-8s | %-6s | %-6s | %-9s | %-8s | %-8s | %-8s | %-29s | %-8s | %s\n",
		"mode", "tests", "passed", "wall", "p50", "p99", "max", "networks (own / pools)", "retries", "left at exit / after")
	for _, s := range rows {
		fmt.Printf("%-8s | %d×%-3d | %-6d | %-9s | %-8s | %-8s | %-8s | %-29s | %-8s | %s\n",
			s.mode, s.procs, s.tests, s.passed, s.wall.Round(100*time.Millisecond), s.p50.Round(10*time.Millisecond),
			s.p99.Round(10*time.Millisecond), s.max.Round(10*time.Millisecond),
			fmt.Sprintf("%d (%d / %d)", s.own+s.pooled, s.own, s.pooled),
			fmt.Sprintf("%d+%d", s.overlaps, s.retries), fmt.Sprintf("%d / %d", s.atExit, s.leftovers))
	}
	fmt.Println("\nretries: subnets another process took first + creates retried on exhausted pools")
	for _, s := range rows {
		if s.passed != s.procs*s.tests || s.failedProcs > 0 || s.leftovers > 0 {
			return fmt.Errorf("%s %d×%d: %d of %d tests passed, %d processes failed, %d resources left (logs in %s)",
				s.mode, s.procs, s.tests, s.passed, s.procs*s.tests, s.failedProcs, s.leftovers, dir)
		}
	}
	return nil
}

// runOnce runs procs processes of tests parallel tests each, in mode.
func runOnce(dir, bin, mode string, procs, tests int, startup, subnets string) (summary, error) {
	s := summary{mode: mode, procs: procs, tests: tests}
	var (
		mu   sync.Mutex
		pids []int
		wg   sync.WaitGroup
	)
	start := time.Now()
	for p := range procs {
		name := fmt.Sprintf("%s-%dx%d-%d", mode, procs, tests, p)
		outFile := filepath.Join(dir, name+".jsonl")
		logFile, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			return s, err
		}
		cmd := exec.Command(bin, "-test.run", "^TestScale$", "-test.parallel", strconv.Itoa(tests), "-test.timeout", "30m", "-test.v")
		cmd.Env = append(os.Environ(), "HEPH_SCALE_MODE="+mode, "HEPH_SCALE_TESTS="+strconv.Itoa(tests),
			"HEPH_SCALE_OUT="+outFile, "HEPH_SCALE_STARTUP="+startup, heph.EnvSubnets+"="+subnets)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			logFile.Close()
			return s, err
		}
		pids = append(pids, cmd.Process.Pid)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cmd.Wait()
			logFile.Close()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.failedProcs++
				fmt.Printf("  %s: %v (see %s)\n", name, err, logFile.Name())
			}
		}()
	}
	wg.Wait()
	s.wall = time.Since(start)

	var ready []time.Duration
	for p := range procs {
		rs, err := readResults(filepath.Join(dir, fmt.Sprintf("%s-%dx%d-%d.jsonl", mode, procs, tests, p)))
		if err != nil {
			return s, err
		}
		slowest := time.Duration(0)
		for _, r := range rs {
			if r.Test < 0 {
				s.own += r.Own
				s.pooled += r.Pooled
				s.overlaps += r.Overlaps
				s.retries += r.PoolRetries
				continue
			}
			if r.Passed {
				s.passed++
			}
			d := time.Duration(r.ReadyMillis * float64(time.Millisecond))
			ready = append(ready, d)
			slowest = max(slowest, d)
		}
		s.procMax = append(s.procMax, slowest.Round(100*time.Millisecond))
	}
	slices.Sort(ready)
	if len(ready) > 0 {
		s.p50, s.p99, s.max = ready[len(ready)/2], ready[(len(ready)*99)/100], ready[len(ready)-1]
	}
	left, err := leftovers(pids)
	if err != nil {
		return s, err
	}
	s.atExit = left
	// What the processes left at their end is their watchdogs' to remove
	// (creates the busy daemon carried out late, removals cut short):
	// leftovers are what is still there once they had time to.
	for deadline := time.Now().Add(watchdogTime); left > 0 && time.Now().Before(deadline); {
		time.Sleep(2 * time.Second)
		if left, err = leftovers(pids); err != nil {
			return s, err
		}
	}
	s.leftovers = left
	return s, nil
}

// watchdogTime bounds the wait for the processes' watchdogs: their removal
// (2 min) and their look for creates still pending (3 min), and a margin.
const watchdogTime = 6 * time.Minute

func readResults(path string) ([]result, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // the process died before it wrote anything
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []result
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// leftovers counts the heph.managed containers, networks and volumes the
// processes pids left on the daemon.
func leftovers(pids []int) (int, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return 0, err
	}
	n := 0
	for _, pid := range pids {
		f := make(client.Filters).Add("label", heph.LabelManaged+"=true", heph.LabelPID+"="+strconv.Itoa(pid))
		cs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
		if err != nil {
			return 0, err
		}
		ns, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: f})
		if err != nil {
			return 0, err
		}
		vs, err := c.VolumeList(ctx, client.VolumeListOptions{Filters: f})
		if err != nil {
			return 0, err
		}
		n += len(cs.Items) + len(ns.Items) + len(vs.Items)
	}
	return n, nil
}

// moduleRoot is the directory of heph's go.mod.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
