//go:build unix

// Package reaperchild runs heph's reaper tests: real processes that make heph
// resources and then die in every way a test process can die, while the
// parent test checks that their watchdog removed everything.
//
// The child program is the test binary of testdata/reaperchild (built with
// go test -c -tags integration by Build; under testdata, go test ./... never
// runs it). Started by Start with
// HEPH_REAPERCHILD=<mode>, its only test, TestChild, makes resources with a
// fresh Orchestrator, prints
//
//	session <id>
//	watchdog <pid of its watchdog, 0 with HEPH_REAPER=off>
//	ready
//
// and then, depending on the mode:
//
//	pass   one container, started and torn down; it prints nothing else and
//	       the test passes (for timing a normal go test run).
//	hold-one  one container, created and not started, held until its stdin
//	       is closed, then torn down (the lightest live session).
//	late-create  a network create whose context ends before the daemon's
//	       answer (DOCKER_HOST pointing at a proxy that holds it back), then
//	       an exit at once, without teardown.
//	hold   a network, three started containers (one with -ignore-sigterm,
//	       one with a named volume) and blocks until its stdin is closed,
//	       then tears everything down and passes. Kill it to test the
//	       watchdog: SIGKILL, SIGINT, or -test.timeout.
//	fatal  as hold, but on stdin EOF it calls t.Fatal without teardown.
//	panic  as hold, but on stdin EOF it panics without teardown.
//
// Without HEPH_REAPERCHILD, TestChild fails: it only runs when started here.
package reaperchild

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/heph-go/heph"
	"github.com/moby/moby/client"
)

// EnvMode selects the child's mode.
const EnvMode = "HEPH_REAPERCHILD"

// Build compiles the child program into a directory of t's and returns its
// path. The build runs once per test binary for every caller with the same
// directory; tests that want to share it pass it on.
func Build(t testing.TB) string {
	t.Helper()
	start := time.Now()
	out := filepath.Join(t.TempDir(), "reaperchild.test")
	cmd := exec.Command("go", "test", "-c", "-tags", "integration", "-o", out, ".")
	cmd.Dir = sourceDir()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the reaper child: %v\n%s", err, b)
	}
	t.Logf("built the reaper child in %s", time.Since(start).Round(time.Millisecond))
	return out
}

// sourceDir is testdata/reaperchild, where the child program lives.
func sourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "reaperchild")
}

// Child is a running child program.
type Child struct {
	Cmd      *exec.Cmd
	Mode     string
	Session  string
	Watchdog int // pid of its watchdog; 0 when it runs without one

	stdin  io.WriteCloser
	stderr *syncBuffer
	done   chan struct{}
	err    error // Cmd.Wait's, once done is closed
	exited time.Time
}

// Start runs bin (from Build) in mode with the extra environment variables
// and test flags, in a process group of its own (so that a signal to the
// group reaches it and not the test), and waits until it says ready. It
// fails the test if the child exits or is not ready within a minute. The
// child is killed when the test ends if it still runs.
func Start(t testing.TB, bin, mode string, env []string, flags ...string) *Child {
	t.Helper()
	return StartIn(t, nil, bin, mode, env, flags...)
}

// StartIn is Start with the child run by the command wrap (its program and
// arguments, before bin's: unshare --pid --fork … runs it in a pid
// namespace of its own); nil runs bin itself.
func StartIn(t testing.TB, wrap []string, bin, mode string, env []string, flags ...string) *Child {
	t.Helper()
	args := append([]string{"-test.run", "^TestChild$", "-test.v"}, flags...)
	argv := append(append(append([]string{}, wrap...), bin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), EnvMode+"="+mode), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &Child{Cmd: cmd, Mode: mode, stdin: stdin, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the reaper child: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
	})

	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var readyErr = errors.New("the child exited before it was ready")
		for sc.Scan() {
			line := sc.Text()
			c.stderr.WriteString(line + "\n") // everything in one transcript
			switch k, v, _ := strings.Cut(line, " "); k {
			case "session":
				c.Session = v
			case "watchdog":
				c.Watchdog, _ = strconv.Atoi(v)
			case "ready":
				ready <- nil
				readyErr = nil
			}
		}
		if readyErr != nil {
			ready <- readyErr
		}
		c.err = cmd.Wait()
		c.exited = time.Now()
		close(c.done)
	}()
	select {
	case err := <-ready:
		if err != nil {
			<-c.done
			t.Fatalf("reaper child (%s): %v: %v\n%s", mode, err, c.err, c.stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("reaper child (%s) not ready after a minute:\n%s", mode, c.stderr.String())
	}
	return c
}

// Signal sends sig to the child's process group, as a terminal does.
func (c *Child) Signal(sig syscall.Signal) error {
	return syscall.Kill(-c.Cmd.Process.Pid, sig)
}

// Release closes the child's stdin: a hold child then tears down and
// passes, a fatal or panic child fails.
func (c *Child) Release() error { return c.stdin.Close() }

// Wait waits up to d for the child to exit and returns when it exited and
// its Wait error. It fails the test if the child still runs after d.
func (c *Child) Wait(t testing.TB, d time.Duration) (time.Time, error) {
	t.Helper()
	select {
	case <-c.done:
		return c.exited, c.err
	case <-time.After(d):
		t.Fatalf("reaper child (%s) still runs after %s:\n%s", c.Mode, d, c.stderr.String())
		return time.Time{}, nil
	}
}

// Output is everything the child printed.
func (c *Child) Output() string { return c.stderr.String() }

// Resources returns "kind name" for every container, network and volume
// labelled with session, sorted by kind as listed.
func Resources(ctx context.Context, c *client.Client, session string) ([]string, error) {
	f := make(client.Filters).Add("label", heph.LabelSession+"="+session)
	var out []string
	cs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, err
	}
	for _, x := range cs.Items {
		out = append(out, "container "+strings.TrimPrefix(x.Names[0], "/")+" "+string(x.State))
	}
	ns, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	for _, x := range ns.Items {
		out = append(out, "network "+x.Name)
	}
	vs, err := c.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	for _, x := range vs.Items {
		out = append(out, "volume "+x.Name)
	}
	return out, nil
}

// WaitGone polls (with backoff) until nothing labelled with session is left
// and returns how long that took, or fails the test after within with what
// is left.
func WaitGone(t testing.TB, c *client.Client, session string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var left []string
	err := backoff.Retry(func() error {
		var err error
		left, err = Resources(ctx, c, session)
		if err != nil {
			return err
		}
		if len(left) > 0 {
			return fmt.Errorf("%d left", len(left))
		}
		return nil
	}, backoff.WithContext(poll(), ctx))
	if err != nil {
		t.Fatalf("session %s: still on the daemon after %s: %v: %s", session, within, err, strings.Join(left, ", "))
	}
	return time.Since(start)
}

// WaitProcessGone polls until pid has exited (a zombie counts as exited) and
// returns how long that took, or fails the test after within.
func WaitProcessGone(t testing.TB, pid int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	err := backoff.Retry(func() error {
		if Running(pid) {
			return fmt.Errorf("process %d still runs", pid)
		}
		return nil
	}, backoff.WithContext(poll(), ctx))
	if err != nil {
		t.Fatalf("%v after %s", err, within)
	}
	return time.Since(start)
}

func poll() backoff.BackOff {
	return backoff.NewExponentialBackOff(backoff.WithInitialInterval(20*time.Millisecond), backoff.WithMaxInterval(250*time.Millisecond), backoff.WithMaxElapsedTime(0))
}

// Running reports whether pid exists and is not a zombie.
func Running(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no /proc (macOS): it exists
	}
	i := bytes.LastIndexByte(data, ')')
	return i < 0 || i+2 >= len(data) || data[i+2] != 'Z'
}

// Watchdogs returns the pids of the running watchdogs whose parent is pid
// (their command line starts with "heph-watchdog"), from /proc, or from ps
// where there is no /proc.
func Watchdogs(parent int) []int {
	var pids []int
	for _, p := range processes() {
		if p.ppid == parent && strings.HasPrefix(p.args, "heph-watchdog ") && Running(p.pid) {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

type process struct {
	pid, ppid int
	args      string
}

func processes() []process {
	entries, err := os.ReadDir("/proc")
	if err != nil || len(entries) == 0 {
		return psProcesses()
	}
	var out []process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		out = append(out, process{pid: pid, ppid: ppid, args: strings.ReplaceAll(string(cmdline), "\x00", " ")})
	}
	return out
}

func psProcesses() []process {
	b, err := exec.Command("ps", "-A", "-o", "pid=,ppid=,args=").Output()
	if err != nil {
		return nil
	}
	var out []process
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		pid, err1 := strconv.Atoi(f[0])
		ppid, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil {
			out = append(out, process{pid: pid, ppid: ppid, args: strings.Join(f[2:], " ")})
		}
	}
	return out
}

// TakeWatchdogLog returns the log the watchdog of the process parent kept in
// os.TempDir (a watchdog keeps it only when it removed something or failed)
// and deletes it.
func TakeWatchdogLog(parent int) (string, error) {
	paths, err := filepath.Glob(filepath.Join(os.TempDir(), "heph-watchdog-"+strconv.Itoa(parent)+"-*.log"))
	if err != nil {
		return "", err
	}
	if len(paths) != 1 {
		return "", fmt.Errorf("%d watchdog logs of process %d: %v", len(paths), parent, paths)
	}
	b, err := os.ReadFile(paths[0])
	if err != nil {
		return "", err
	}
	return string(b), os.Remove(paths[0])
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.WriteString(s)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
