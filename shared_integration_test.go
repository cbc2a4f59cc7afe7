//go:build integration

package heph_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
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

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/daemon"
	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/retry"
	"github.com/heph-go/heph/internal/shared"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/heph-go/heph/wait"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
)

// sharedWeb is a shared testapp serving HTTP on 8080, with a service name
// and an environment of its own so that no other test's request equals it.
func sharedWeb(t *testing.T) (r heph.ContainerRequest, service string) {
	service = "sh" + randomHex(3)
	return heph.NewContainer(testenv.Image(t)).WithName(service).WithEnv("RUN", randomHex(6)).
		WithCmd("-http", ":8080").WithExposedPorts("8080").WithWaitStrategy(wait.ForHTTP("/healthz")).Shared(), service
}

// engineAPI connects to the daemon through heph's seam.
func engineAPI(t testing.TB) engine.API {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	api, _, err := daemon.Connect(ctx, daemon.OSEnv())
	require.NoError(t, err)
	t.Cleanup(func() { _ = api.Close() })
	return api
}

// expireNow returns a function that records the shared container of c;
// when the test ends, this process lets each recorded one go and removes it
// if no other process holds it (the leak check would, at the end of the
// package). Other tests' shared containers are not touched.
func expireNow(t *testing.T) func(c *heph.Container) *heph.Container {
	api := engineAPI(t)
	var mu sync.Mutex
	keys := map[string]bool{}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		host, _ := os.Hostname()
		store, err := shared.Open()
		require.NoError(t, err)
		for key := range keys {
			shared.Process.Release(store, key)
			if _, err := (shared.Expiry{API: api, Store: store, Host: host}).Expire(ctx, key, shared.Unheld); err != nil {
				t.Errorf("expire shared %s: %v", key[:12], err)
			}
		}
	})
	return func(c *heph.Container) *heph.Container {
		info, err := c.Inspect(context.Background())
		require.NoError(t, err)
		mu.Lock()
		keys[info.Labels["heph.shared"]] = true
		mu.Unlock()
		return c
	}
}

// execIn runs the test app's subcommand in c and returns its exit code and
// output.
func execIn(t *testing.T, c *heph.Container, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.Exec(ctx, append([]string{"/testapp"}, args...)...)
	require.NoError(t, err)
	return r.ExitCode, strings.TrimSpace(string(r.Stdout) + string(r.Stderr))
}

func TestSharedReachableByServiceNameOnlyWhileHeld(t *testing.T) {
	t.Parallel()
	track := expireNow(t)
	ctx := context.Background()
	db, service := sharedWeb(t)

	// A network that outlives the tests below, and a client on it.
	o := testenv.Orchestrator(t)
	outside, err := o.CreateNetwork(ctx, heph.NetworkConfig{})
	require.NoError(t, err)
	client, err := heph.NewContainer(testenv.Image(t)).WithName("outsider").WithCmd("-http", ":8080").
		WithNetwork(outside).WithWaitStrategy(wait.ForLog("testapp: listening")).Run(ctx, o)
	require.NoError(t, err)
	url := "http://" + service + ":8080/hostname"

	var id, testNet string
	t.Run("Holder", func(t *testing.T) {
		c := track(db.WithNetwork(outside).Start(t))
		id = c.ID()
		own := heph.NewContainer(testenv.Image(t)).WithName("client").WithCmd("-http", ":8080").Start(t)
		testNet = heph.TestNetwork(t).Name()
		code, out := execIn(t, own, "fetch", url)
		require.Equal(t, 0, code, "the test's own container reaches the shared one by its service name: %s", out)
		require.Equal(t, service, out)
		code, out = execIn(t, client, "fetch", url)
		require.Equal(t, 0, code, "so does a container on a network the test joined it to: %s", out)
	})

	info, err := o.InspectContainer(ctx, id)
	require.NoError(t, err)
	require.Equal(t, heph.StatusRunning, info.Status, "the test's end did not remove it")
	require.NotContains(t, info.Networks, testNet, "it left the ended test's network")
	require.NotContains(t, info.Networks, outside.Name(), "and the network the test joined it to")
	code, out := execIn(t, client, "fetch", "-timeout", "1s", url)
	require.NotEqual(t, 0, code, "the ended test's network no longer reaches it: %s", out)

	t.Run("NextHolder", func(t *testing.T) {
		c := track(db.Start(t))
		require.Equal(t, id, c.ID(), "the next test takes the same container")
		own := heph.NewContainer(testenv.Image(t)).WithName("client").WithCmd("-http", ":8080").Start(t)
		code, out := execIn(t, own, "fetch", url)
		require.Equal(t, 0, code, out)
	})
}

func TestSharedNewContentNewContainer(t *testing.T) {
	t.Parallel()
	track := expireNow(t)
	docker := testenv.Docker(t)
	ctx := context.Background()
	tag := "heph-test/retag-" + randomHex(4) + ":v1"
	_, err := docker.ImageTag(ctx, client.ImageTagOptions{Source: testenv.Image(t), Target: tag})
	require.NoError(t, err)
	t.Cleanup(func() { testenv.RemoveImage(t, docker, tag) })

	base := heph.NewContainer(tag).WithName("sh"+randomHex(3)).WithEnv("MODE", "a").
		WithFile("/etc/app.conf", []byte("x=1"), 0o644).WithCmd("-http", ":8080").WithExposedPorts("8080").
		WithWaitStrategy(wait.ForHTTP("/healthz")).Shared()
	ids := map[string]string{}
	take := func(name string, r heph.ContainerRequest) string {
		var id string
		t.Run(name, func(t *testing.T) { id = track(r.Start(t)).ID() })
		return id
	}
	first := take("Base", base)
	ids[first] = "Base"
	require.Equal(t, first, take("Again", base), "an identical request reuses it")
	for _, tc := range []struct {
		name string
		r    heph.ContainerRequest
	}{
		{"EnvValue", base.WithEnv("MODE", "b")},
		{"FileContent", base.WithFile("/etc/app.conf", []byte("x=2"), 0o644)},
	} {
		id := take(tc.name, tc.r)
		require.NotContains(t, ids, id, "%s gives a new container (it took %s's)", tc.name, ids[id])
		ids[id] = tc.name
	}
	// The tag moves to an image of other content: a new container, although
	// the request (tag and all) is the same.
	_, err = docker.ImageTag(ctx, client.ImageTagOptions{Source: testenv.HealthImage(t), Target: tag})
	require.NoError(t, err)
	retagged := take("Retagged", base)
	require.NotContains(t, ids, retagged, "a tag moved to new content gives a new container")
}

func TestSharedCrashedIsReplaced(t *testing.T) {
	t.Parallel()
	track := expireNow(t)
	docker := testenv.Docker(t)
	db, _ := sharedWeb(t)
	var first string
	t.Run("First", func(t *testing.T) { first = track(db.Start(t)).ID() })
	// It crashes between two tests.
	_, err := docker.ContainerKill(context.Background(), first, client.ContainerKillOptions{Signal: "KILL"})
	require.NoError(t, err)
	t.Run("Next", func(t *testing.T) {
		c := track(db.Start(t))
		require.NotEqual(t, first, c.ID(), "the crashed container was replaced")
		body, err := testenv.Fetch("http://" + c.Endpoint("8080") + "/healthz")
		require.NoError(t, err)
		require.Equal(t, "healthy", body, "the next test passes on the new one")
	})
	_, err = docker.ContainerInspect(context.Background(), first, client.ContainerInspectOptions{})
	require.Error(t, err, "the crashed one is gone")
}

// ---- Several processes ------------------------------------------------

// sharedChild is a running copy of testdata/sharedchild.
type sharedChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []string
	seen  chan struct{} // signalled at every line
	done  chan struct{}
	err   error
	ended time.Time
}

var sharedChildBin = struct {
	once sync.Once
	path string
	err  error
}{}

// buildSharedChild compiles testdata/sharedchild once per test process.
func buildSharedChild(t *testing.T) string {
	t.Helper()
	sharedChildBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "heph-sharedchild-")
		if err != nil {
			sharedChildBin.err = err
			return
		}
		out := filepath.Join(dir, "sharedchild.test")
		cmd := exec.Command("go", "test", "-c", "-tags", "integration", "-o", out, "./testdata/sharedchild")
		if b, err := cmd.CombinedOutput(); err != nil {
			sharedChildBin.err = fmt.Errorf("build testdata/sharedchild: %v\n%s", err, b)
			return
		}
		sharedChildBin.path = out
	})
	require.NoError(t, sharedChildBin.err)
	return sharedChildBin.path
}

// startSharedChild runs bin with env added and waits until its tests wait
// for the go file.
func startSharedChild(t *testing.T, bin string, env ...string) *sharedChild {
	t.Helper()
	c := launchSharedChild(t, bin, env...)
	c.await(t, "waiting", 1, 2*time.Minute)
	return c
}

// launchSharedChild runs bin with env added.
func launchSharedChild(t *testing.T, bin string, env ...string) *sharedChild {
	t.Helper()
	cmd := exec.Command(bin, "-test.run", "^TestShared$", "-test.v", "-test.parallel", "64")
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	c := &sharedChild{cmd: cmd, stdin: stdin, seen: make(chan struct{}, 1), done: make(chan struct{})}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		if t.Failed() {
			t.Logf("child %d said:\n%s", cmd.Process.Pid, c.output())
		}
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
			select {
			case c.seen <- struct{}{}:
			default:
			}
		}
		c.err = cmd.Wait()
		c.ended = time.Now()
		close(c.done)
	}()
	return c
}

func (c *sharedChild) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n")
}

// with returns the fields of the lines that start with word.
func (c *sharedChild) with(word string) [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]string
	for _, l := range c.lines {
		if f := strings.Fields(l); len(f) > 0 && f[0] == word {
			out = append(out, f)
		}
	}
	return out
}

// await waits until the child printed n lines starting with word.
func (c *sharedChild) await(t *testing.T, word string, n int, d time.Duration) [][]string {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if got := c.with(word); len(got) >= n {
			return got
		}
		select {
		case <-c.seen:
		case <-c.done:
			if got := c.with(word); len(got) >= n {
				return got
			}
			t.Fatalf("child %d ended (%v) before %d %q lines:\n%s", c.cmd.Process.Pid, c.err, n, word, c.output())
		case <-deadline.C:
			t.Fatalf("child %d: no %d %q lines after %s:\n%s", c.cmd.Process.Pid, n, word, d, c.output())
		}
	}
}

// wait waits for the child to end and requires that it passed.
func (c *sharedChild) wait(t *testing.T, d time.Duration) time.Time {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(d):
		t.Fatalf("child %d still runs after %s:\n%s", c.cmd.Process.Pid, d, c.output())
	}
	require.NoError(t, c.err, "child %d:\n%s", c.cmd.Process.Pid, c.output())
	return c.ended
}

// containerEvents follows the daemon's create and destroy events of
// containers with service's heph.service label.
type containerEvents struct {
	mu      sync.Mutex
	creates []time.Time
	destroy []time.Time
	changed chan struct{}
}

func followContainerEvents(t *testing.T, api engine.API, service string) *containerEvents {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	msgs, errs := api.Events(ctx, engine.Filter{}.Add("type", "container").Add("label", heph.LabelService+"="+service))
	ev := &containerEvents{changed: make(chan struct{}, 1)}
	ready := make(chan struct{})
	go func() {
		close(ready)
		for m := range msgs {
			ev.mu.Lock()
			switch m.Action {
			case "create":
				ev.creates = append(ev.creates, m.Time)
			case "destroy":
				ev.destroy = append(ev.destroy, m.Time)
			}
			ev.mu.Unlock()
			select {
			case ev.changed <- struct{}{}:
			default:
			}
		}
		<-errs
	}()
	<-ready
	return ev
}

func (ev *containerEvents) counts() (creates, destroys int) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return len(ev.creates), len(ev.destroy)
}

// awaitDestroy waits for the n-th destroy event and returns its time.
func (ev *containerEvents) awaitDestroy(t *testing.T, n int, d time.Duration) time.Time {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		ev.mu.Lock()
		if len(ev.destroy) >= n {
			at := ev.destroy[n-1]
			ev.mu.Unlock()
			return at
		}
		ev.mu.Unlock()
		select {
		case <-ev.changed:
		case <-deadline.C:
			t.Fatalf("no %d destroy event within %s", n, d)
		}
	}
}

// watchdogOf returns the pid of the watchdog whose parent is pid (0: none).
func watchdogOf(pid int) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		if string(b) == "heph-watchdog\x00parent="+strconv.Itoa(pid)+"\x00" {
			n, _ := strconv.Atoi(strings.Split(d, "/")[2])
			return n
		}
	}
	return 0
}

// durations returns the microsecond fields at index i of lines as
// durations, sorted.
func durations(lines [][]string, i int) []time.Duration {
	var ds []time.Duration
	for _, l := range lines {
		us, _ := strconv.ParseInt(l[i], 10, 64)
		ds = append(ds, time.Duration(us)*time.Microsecond)
	}
	slices.Sort(ds)
	return ds
}

func TestSharedEightProcessesAtOnce(t *testing.T) {
	t.Parallel()
	// The processes of one store (one user, one runtime directory) share one
	// container; processes each with a store of their own (other users)
	// get one each, which no other's expiry can remove.
	for _, ownStores := range []bool{false, true} {
		name := map[bool]string{false: "OneStore", true: "OwnStores"}[ownStores]
		t.Run(name, func(t *testing.T) { eightAtOnce(t, ownStores) })
	}
}

func eightAtOnce(t *testing.T, ownStores bool) {
	const procs, tests = 8, 4
	const idle = 3 * time.Second
	bin := buildSharedChild(t)
	service := "sh" + randomHex(3)
	ev := followContainerEvents(t, engineAPI(t), service)
	goFile := filepath.Join(t.TempDir(), "go")
	env := []string{"SHAREDCHILD_IMAGE=" + testenv.Image(t), "SHAREDCHILD_SERVICE=" + service, "SHAREDCHILD_RUN=" + randomHex(6),
		"SHAREDCHILD_GO=" + goFile, "SHAREDCHILD_MODE=pass", "SHAREDCHILD_TESTS=" + strconv.Itoa(tests), shared.EnvIdle + "=" + idle.String()}

	children := make([]*sharedChild, procs)
	for i := range children {
		own := env
		if ownStores {
			own = append(slices.Clone(env), "XDG_RUNTIME_DIR="+t.TempDir())
		}
		children[i] = launchSharedChild(t, bin, own...)
	}
	for _, c := range children {
		c.await(t, "waiting", 1, 2*time.Minute)
	}
	began := time.Now()
	require.NoError(t, os.WriteFile(goFile, nil, 0o600)) // every test of every child asks now

	var last time.Time
	var took, reached [][]string
	for _, c := range children {
		if end := c.wait(t, 3*time.Minute); end.After(last) {
			last = end
		}
		took = append(took, c.with("took")...)
		reached = append(reached, c.with("reached")...)
	}
	require.Len(t, took, procs*tests)
	require.Len(t, reached, procs*tests, "every test reached it")
	want := 1
	if ownStores {
		want = procs
		for _, c := range children {
			took := c.with("took")
			for _, l := range took {
				require.Equal(t, took[0][2], l[2], "the tests of one process got the same container")
			}
		}
	} else {
		for _, l := range took {
			require.Equal(t, took[0][2], l[2], "every test got the same container")
		}
	}
	for _, l := range reached {
		require.Equal(t, service, l[2], "and reached it over its published port")
	}
	creates, destroys := ev.counts()
	require.Equal(t, want, creates, "containers created")
	require.Equal(t, 0, destroys, "none was removed while the processes ran")

	// The last process has ended: each container stays for the idle time,
	// then its last holder's watchdog removes it.
	gone := ev.awaitDestroy(t, want, idle+time.Minute)
	after := gone.Sub(last)
	require.GreaterOrEqual(t, after, idle-100*time.Millisecond, "not removed before the idle time")
	ds := durations(took, 4)
	t.Logf("%s: %d processes x %d tests at once: %d container(s) created; asking to ready: min %s, median %s, max %s; all %d reached it %s after the go; removed %s after the last process ended (idle %s)",
		t.Name(), procs, tests, want, ds[0].Round(time.Millisecond), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond),
		len(reached), last.Sub(began).Round(time.Millisecond), after.Round(time.Millisecond), idle)
}

func TestSharedHolderKilled(t *testing.T) {
	t.Parallel()
	const idle = 2 * time.Second
	bin := buildSharedChild(t)
	service := "sh" + randomHex(3)
	ev := followContainerEvents(t, engineAPI(t), service)
	env := []string{"SHAREDCHILD_IMAGE=" + testenv.Image(t), "SHAREDCHILD_SERVICE=" + service, "SHAREDCHILD_RUN=" + randomHex(6),
		"SHAREDCHILD_MODE=hold", "SHAREDCHILD_TESTS=2", "SHAREDCHILD_NET=1", shared.EnvIdle + "=" + idle.String()}
	var children []*sharedChild
	for range 3 {
		c := startSharedChild(t, bin, env...)
		c.await(t, "ready", 1, 2*time.Minute)
		children = append(children, c)
	}
	killed, rest := children[0], children[1:]
	killedNets := killed.await(t, "net", 2, time.Minute)
	id := killed.with("took")[0][2]
	wd := watchdogOf(killed.cmd.Process.Pid)
	require.NotZero(t, wd, "the holder has a watchdog")
	require.NoError(t, killed.cmd.Process.Signal(syscall.SIGKILL))
	<-killed.done
	// Its watchdog has judged the lease: held by the others, so it leaves.
	awaitGone(t, wd, idle+time.Minute)
	creates, destroys := ev.counts()
	require.Equal(t, [2]int{1, 0}, [2]int{creates, destroys}, "the container stays for the live holders")
	docker := testenv.Docker(t)
	info, err := docker.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	require.NoError(t, err)
	for _, n := range killedNets {
		require.NotContains(t, info.Container.NetworkSettings.Networks, n[2], "the watchdog detached it from the killed holder's network")
		_, err := docker.NetworkInspect(context.Background(), n[2], client.NetworkInspectOptions{})
		require.Error(t, err, "and removed that network")
	}
	for i, c := range rest {
		_, err := io.WriteString(c.stdin, "ping 1\n")
		require.NoError(t, err)
		pongs := c.await(t, "pong", 2, time.Minute)
		for _, p := range pongs {
			require.Equal(t, "ok", p[3], "holder %d still reaches it", i)
		}
	}
	var last time.Time
	for _, c := range rest {
		require.NoError(t, c.stdin.Close())
	}
	for _, c := range rest {
		if end := c.wait(t, time.Minute); end.After(last) {
			last = end
		}
	}
	gone := ev.awaitDestroy(t, 1, idle+time.Minute)
	t.Logf("a holder killed with SIGKILL: its watchdog left the container to the 2 live holders, which still reached it; removed %s after the last of them ended (idle %s)",
		gone.Sub(last).Round(time.Millisecond), idle)
}

// awaitGone waits until the process pid has exited.
func awaitGone(t *testing.T, pid int, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := retry.Poll(ctx, retry.Policy{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond}, func(context.Context) error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("process %d still runs", pid)
		}
		return nil
	})
	require.NoError(t, err)
}

func TestSharedLaterRunReuses(t *testing.T) {
	t.Parallel()
	bin := buildSharedChild(t)
	service := "sh" + randomHex(3)
	api := engineAPI(t)
	ev := followContainerEvents(t, api, service)
	env := []string{"SHAREDCHILD_IMAGE=" + testenv.Image(t), "SHAREDCHILD_SERVICE=" + service, "SHAREDCHILD_RUN=" + randomHex(6),
		"SHAREDCHILD_MODE=pass", "SHAREDCHILD_TESTS=1", shared.EnvIdle + "=1m"}
	run := func() []string {
		c := startSharedChild(t, bin, env...)
		c.wait(t, 2*time.Minute)
		took := c.with("took")
		require.Len(t, took, 1)
		return took[0]
	}
	first := run()
	t.Cleanup(func() { // the idle time is a minute: remove it now
		store, err := shared.Open()
		require.NoError(t, err)
		host, _ := os.Hostname()
		st, err := shared.Expiry{API: api, Store: store, Host: host}.Expire(context.Background(), first[3], shared.Unheld)
		require.NoError(t, err)
		require.Equal(t, shared.Removed, st.State)
	})
	second := run()
	require.Equal(t, first[2], second[2], "the later run, within the idle time, took the same container")
	creates, destroys := ev.counts()
	require.Equal(t, [2]int{1, 0}, [2]int{creates, destroys})
	full, reuse := durations([][]string{first}, 4)[0], durations([][]string{second}, 4)[0]
	t.Logf("a later run within the idle time: Start to ready %s (the first run's, which created it: %s; ratio %.3f)",
		reuse.Round(10*time.Microsecond), full.Round(time.Millisecond), float64(reuse)/float64(full))
	require.Less(t, reuse, full/2, "reusing is much cheaper than creating")
}

// BenchmarkSharedTake: Start to ready of a shared container that a later
// run finds within its idle time (a lease written afresh, as a new process
// writes it; one inspect under the shared lock; the wait strategy; no
// network: the test has no other container), against the full start of
// one that must be created — a request of new content each time — in the
// same run.
func BenchmarkSharedTake(b *testing.B) {
	img := testenv.Image(b)
	api := engineAPI(b)
	store, err := shared.Open()
	if err != nil {
		b.Fatal(err)
	}
	host, _ := os.Hostname()
	req := func(run string) heph.ContainerRequest {
		return heph.NewContainer(img).WithName("benchshared").WithEnv("RUN", run).WithCmd("-http", ":8080").
			WithExposedPorts("8080").WithWaitStrategy(wait.ForHTTP("/healthz")).Shared()
	}
	expire := func(c *heph.Container) {
		info, err := c.Inspect(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		key := info.Labels["heph.shared"]
		shared.Process.Release(store, key)
		if _, err := (shared.Expiry{API: api, Store: store, Host: host}).Expire(context.Background(), key, shared.Unheld); err != nil {
			b.Fatal(err)
		}
	}
	take := func(r heph.ContainerRequest) (time.Duration, *heph.Container) {
		t := newIterTB(b)
		start := time.Now()
		c := r.Start(t)
		took := time.Since(start)
		t.finish()
		return took, c
	}
	kept := req(randomHex(6))
	_, warm := take(kept) // created once: the later runs find it
	b.Cleanup(func() { expire(warm) })
	b.ResetTimer()
	var full, reuse time.Duration
	for i := 0; i < b.N; i++ {
		d, c := take(req(randomHex(6)))
		full += d
		expire(c)
		info, _ := warm.Inspect(context.Background())
		shared.Process.Release(store, info.Labels["heph.shared"]) // a later run holds no lease yet
		d, c = take(kept)
		if c.ID() != warm.ID() {
			b.Fatalf("a later run got %s, not %s", c.ID(), warm.ID())
		}
		reuse += d
	}
	b.ReportMetric(float64(full.Microseconds())/1000/float64(b.N), "create-ms/op")
	b.ReportMetric(float64(reuse.Microseconds())/1000/float64(b.N), "reuse-ms/op")
	b.ReportMetric(float64(reuse)/float64(full), "reuse/create")
}
