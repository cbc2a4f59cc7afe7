//go:build integration

package heph_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/heph-go/heph/wait"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
)

// concurrently runs n subtests of t at once. They do not call t.Parallel,
// so go test's -parallel limit (GOMAXPROCS by default) does not serialise
// them: every one runs on its own goroutine at the same time.
func concurrently(t *testing.T, n int, body func(t *testing.T, i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(fmt.Sprint(i), func(t *testing.T) { body(t, i) })
		}()
	}
	wg.Wait()
}

func execOut(t *testing.T, c *heph.Container, cmd ...string) heph.ExecResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.Exec(ctx, cmd...)
	require.NoError(t, err)
	return res
}

// TestTestsEachOnTheirOwnNetwork: 4 tests × 3 containers at once; each
// container reaches its siblings by service name and cannot reach the
// containers of another test, by address or by name. (`make stress` runs
// 20 tests; `make bench-scale` hundreds.)
func TestTestsEachOnTheirOwnNetwork(t *testing.T) {
	t.Parallel()
	testsOnTheirOwnNetworks(t, 4)
}

// testsOnTheirOwnNetworks runs tests tests × 3 containers at once.
func testsOnTheirOwnNetworks(t *testing.T, tests int) {
	server := heph.NewContainer(testenv.Image(t)).
		WithCmd("-http", ":8080").
		WithExposedPorts("8080").
		WithWaitStrategy(wait.ForListeningPort("8080"))

	type started struct {
		b   *heph.Container
		net string
	}
	var mu sync.Mutex
	all := make([]started, tests)
	// Every test starts its containers, then waits for all the others, so
	// that each can probe a neighbour's; none tears down before all checked.
	started3, checked := newBarrier(tests), newBarrier(tests)

	start := time.Now()
	concurrently(t, tests, func(t *testing.T, i int) {
		var startedOnce, checkedOnce sync.Once // arrive once each, also when the test fails early
		defer startedOnce.Do(started3.arrive)
		defer checkedOnce.Do(checked.arrive)
		net := heph.TestNetwork(t)
		cs := heph.StartAll(t, server.WithName("a"), server.WithName("b"), server.WithName("c"))
		a, b, c := cs[0], cs[1], cs[2]
		mu.Lock()
		all[i] = started{b: b, net: net.Name()}
		mu.Unlock()
		startedOnce.Do(started3.arrive)
		started3.wait()

		for _, from := range []*heph.Container{a, b, c} {
			for _, to := range []string{"a", "b", "c"} {
				res := execOut(t, from, "/testapp", "fetch", "http://"+to+":8080/hostname")
				require.Equal(t, 0, res.ExitCode, "%s reaches %s: %s", from.Service(), to, res.Stderr)
				require.Equal(t, to, strings.TrimSpace(string(res.Stdout)))
			}
		}

		mu.Lock()
		other := all[(i+1)%tests]
		mu.Unlock()
		if other.b == nil {
			t.Fatalf("test %d did not start", (i+1)%tests)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		info, err := other.b.Inspect(ctx)
		require.NoError(t, err)
		ip := info.Networks[other.net].IP
		require.NotEmpty(t, ip)
		// The positive control: the same dial, with the same timeout, to a
		// sibling's address on this test's network connects, so a timeout
		// below means blocked, not slow.
		mine, err := b.Inspect(ctx)
		require.NoError(t, err)
		res := execOut(t, a, "/testapp", "dial", mine.Networks[net.Name()].IP+":8080", "-timeout", isolationDial)
		require.Equal(t, 0, res.ExitCode, "the control: a sibling on the same network is reached within %s: %s", isolationDial, res.Stderr)
		// Blocked at least once (see testenv.Isolated: Docker's own rules
		// open a window on every network create); a breach connects every time.
		blocked, reached := testenv.Isolated(func() bool {
			return execOut(t, a, "/testapp", "dial", ip+":8080", "-timeout", isolationDial).ExitCode == 0
		})
		require.True(t, blocked, "test %d's container reached test %d's container at %s %d times of %d", i, (i+1)%tests, ip, reached, testenv.IsolationTries)
		res = execOut(t, a, "/testapp", "resolve", other.b.Name(), "-timeout", "2s")
		require.NotEqual(t, 0, res.ExitCode, "another test's container name must not resolve: %s", res.Stdout)
		checkedOnce.Do(checked.arrive)
		checked.wait()
	})
	t.Logf("%d tests × 3 containers, started, checked and torn down in %s", tests, time.Since(start))
}

// isolationDial is the connect timeout of the isolation checks: ample for a
// reachable container on a loaded machine (the control proves it).
const isolationDial = "1s"

// barrier lets n goroutines wait for each other: each arrives once.
type barrier struct {
	mu   sync.Mutex
	n    int
	done chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, done: make(chan struct{})} }

func (b *barrier) arrive() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n == 0 {
		return
	}
	b.n--
	if b.n == 0 {
		close(b.done)
	}
}

func (b *barrier) wait() { <-b.done }

func TestStopAndStartKeepTheHandlesPortsRight(t *testing.T) {
	t.Parallel()
	c := heph.NewContainer(testenv.Image(t)).WithCmd("-http", ":8080").WithExposedPorts("8080").
		WithWaitStrategy(wait.ForHTTP("/healthz").WithPort("8080")).Start(t)
	ctx := context.Background()
	before := c.MappedPort("8080")
	require.Equal(t, "ok", get(t, "http://"+c.Endpoint("8080")+"/"))

	require.NoError(t, c.Stop(ctx))
	info, err := c.Inspect(ctx)
	require.NoError(t, err)
	require.Equal(t, heph.StatusExited, info.Status)

	require.NoError(t, c.Start(ctx))
	after := c.MappedPort("8080")
	info, err = c.Inspect(ctx)
	require.NoError(t, err)
	require.Equal(t, int(info.Ports["8080/tcp"][0].Port()), after, "the handle knows the port Docker chose this time")
	t.Logf("host port before the restart %d, after %d", before, after)
	resp, err := http.Get("http://" + c.Endpoint("8080") + "/")
	require.NoError(t, err, "ready right after Start: no retry needed")
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestCopyADirectoryInAndOut(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	files := map[string]string{"a.txt": "alpha", "sub/b.txt": "bravo", "sub/deeper/c.bin": "\x00\x01\x02", "empty": ""}
	for name, content := range files {
		p := filepath.Join(src, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o640))
	}
	require.NoError(t, os.Chmod(filepath.Join(src, "a.txt"), 0o755))
	require.NoError(t, os.Mkdir(filepath.Join(src, "emptydir"), 0o700))
	require.NoError(t, os.Symlink("a.txt", filepath.Join(src, "link")))

	c := heph.NewContainer(testenv.Image(t)).WithCmd("-http", ":8080").
		WithFile("/etc/app/config.yaml", []byte("key: value\n"), 0o600).Start(t)
	ctx := context.Background()
	require.NoError(t, c.CopyToContainer(ctx, src, "/data/in"))
	ls := execOut(t, c, "/testapp", "ls", "/data/in")
	require.Equal(t, 0, ls.ExitCode, string(ls.Stderr))
	require.Contains(t, string(ls.Stdout), "sub/deeper/c.bin 3")
	require.Contains(t, string(ls.Stdout), "link 5 Lrwxrwxrwx -> a.txt")
	cat := execOut(t, c, "/testapp", "cat", "/etc/app/config.yaml")
	require.Equal(t, "key: value\n", string(cat.Stdout), "WithFile wrote the file before start, parents created")

	out := filepath.Join(t.TempDir(), "out")
	require.NoError(t, c.CopyFromContainer(ctx, "/data/in", out))
	require.Equal(t, tree(t, src), tree(t, out), "the directory round-trips: names, contents, modes, links")

	one := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, c.CopyFromContainer(ctx, "/etc/app/config.yaml", one))
	b, err := os.ReadFile(one)
	require.NoError(t, err)
	require.Equal(t, "key: value\n", string(b))
	st, err := os.Stat(one)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o600), st.Mode().Perm())
}

// tree lists a directory: relative path, mode, content or link target.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		require.NoError(t, err)
		line := rel + " " + info.Mode().String()
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			require.NoError(t, err)
			line += " -> " + target
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			line += " " + string(b)
		}
		if rel != "." {
			out = append(out, line)
		}
		return nil
	}))
	sort.Strings(out)
	return out
}

func TestExecAndLogs(t *testing.T) {
	t.Parallel()
	c := heph.NewContainer(testenv.Image(t)).WithName("talker").
		WithCmd("-log", "to stdout", "-stderr", "to stderr", "-log-after", "done").
		WithWaitStrategy(wait.All(wait.ForLog("done"), wait.ForLog("to stderr"))).Start(t)
	ctx := context.Background()
	logs, err := c.Logs(ctx)
	require.NoError(t, err)
	// Demultiplexed: no frame headers. Docker reads stdout and stderr from
	// two pipes, so only the order within one stream is certain.
	require.Contains(t, logs, "to stdout\n")
	require.Contains(t, logs, "to stderr\n")
	require.Less(t, strings.Index(logs, "to stdout"), strings.Index(logs, "done"))
	require.NotContains(t, logs, "\x01\x00\x00\x00")

	res := execOut(t, c, "/testapp", "echo-stderr", "oops")
	require.Equal(t, 0, res.ExitCode)
	require.Equal(t, "oops\n", string(res.Stderr))
	require.Empty(t, res.Stdout)
	res = execOut(t, c, "/testapp", "exit", "7")
	require.Equal(t, 7, res.ExitCode, "a non-zero exit code is a result, not an error")
	res = execOut(t, c, "/no/such/program")
	require.Contains(t, []int{126, 127}, res.ExitCode, "the runtime's code for a program it cannot run")
	require.Contains(t, string(res.Stdout)+string(res.Stderr), "no such file")

	res = execOut(t, c, "/testapp", "resolve", "talker")
	require.Equal(t, 0, res.ExitCode, "its own service name resolves on the test network: %s", res.Stderr)
	require.NotEmpty(t, strings.TrimSpace(string(res.Stdout)))
	require.Equal(t, "127.0.0.1", c.Host())
}

func TestRunAndTerminateWithoutATest(t *testing.T) {
	t.Parallel()
	o := testenv.Orchestrator(t)
	ctx := context.Background()
	net, err := o.CreateNetwork(ctx, heph.NetworkConfig{})
	require.NoError(t, err)
	c, err := heph.NewContainer(testenv.Image(t)).WithName("svc").WithCmd("-http", ":8080").WithExposedPorts("8080").
		WithNetwork(net).WithWaitStrategy(wait.ForListeningPort("8080")).Run(ctx, o)
	require.NoError(t, err)
	require.Equal(t, "ok", get(t, "http://"+c.Endpoint("8080")+"/"))
	require.NoError(t, c.Terminate(ctx))
	require.NoError(t, c.Terminate(ctx), "idempotent")
	require.NoError(t, net.Remove(ctx))
	_, err = c.Inspect(ctx)
	require.ErrorIs(t, err, heph.ErrContainerNotFound)

	// A start that fails removes what it made.
	_, err = heph.NewContainer(testenv.Image(t)).WithCmd("-exit", "3", "-log", "bye").
		WithWaitStrategy(wait.ForListeningPort("8080")).WithExposedPorts("8080").Run(ctx, o)
	require.Error(t, err)
	require.ErrorIs(t, err, wait.ErrExited)
	var we *wait.Error
	require.ErrorAs(t, err, &we)
	require.NotNil(t, we.State, "the error carries the container's state")
	require.Equal(t, 3, we.State.ExitCode, "the exit code is the app's: %v", err)
	require.Contains(t, err.Error(), "container exited with code 3 after ")
	require.Contains(t, err.Error(), "bye", "the error quotes the last log line")
	require.Empty(t, sessionContainers(t, o), "the failed container was removed")
}

// TestStartFailureCarriesStateAndLogs: a container that exits while being
// waited for fails Start at once with its exit code and last log lines.
func TestStartFailureReportsExitAndLogs(t *testing.T) {
	t.Parallel()
	out := childTest(t, "TestChildExits", nil)
	require.Contains(t, out, "exited with code 3")
	require.Contains(t, out, "config file missing")
}

// childTest runs one test of testdata/childtests as a subprocess `go test`
// and returns its output; the child is expected to fail.
func childTest(t *testing.T, name string, env []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-v", "-run", "^"+name+"$", "./testdata/childtests")
	cmd.Env = append(os.Environ(), "HEPH_TESTAPP_IMAGE="+testenv.Image(t))
	cmd.Env = append(cmd.Env, env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Run()
	t.Logf("go test -run %s (a subprocess) took %s", name, time.Since(start))
	require.Error(t, err, "the child test fails on purpose:\n%s", buf.String())
	return buf.String()
}

func TestAFailedTestShowsItsContainers(t *testing.T) {
	t.Parallel()
	out := childTest(t, "TestChildFails", nil)
	require.Contains(t, out, "the child test fails here")
	require.Regexp(t, `heph: container heph-web-[0-9a-f]{8} \(service web, image [^)]+\): running`, out)
	require.Contains(t, out, "| web says hello", "the container's last log lines")
	require.Regexp(t, `heph: container heph-worker-[0-9a-f]{8} \(service worker, image [^)]+\): exited with code 0`, out)
	require.NotContains(t, out, "panic")
}

func TestKeepFailedLeavesThemAndSaysHowToRemoveThem(t *testing.T) {
	t.Parallel()
	out := childTest(t, "TestChildFails", []string{"HEPH_KEEP=failed"})
	require.Contains(t, out, "HEPH_KEEP=failed: keeping what TestChildFails made")
	require.Contains(t, out, "remove them with: docker rm -f heph-")

	raw := testenv.Docker(t)
	ctx := context.Background()
	f := make(client.Filters).Add("label", heph.LabelTest+"=TestChildFails")
	// The kept containers outlive the child process (and its watchdog).
	var names []string
	cs, err := raw.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	require.NoError(t, err)
	for _, c := range cs.Items {
		if strings.Contains(out, strings.TrimPrefix(c.Names[0], "/")) {
			names = append(names, c.ID)
		}
	}
	require.Len(t, names, 2, "both containers were kept")
	ns, err := raw.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	require.NoError(t, err)
	var netID string
	for _, n := range ns.Items {
		if strings.Contains(out, n.Name) {
			netID = n.ID
		}
	}
	require.NotEmpty(t, netID, "the network was kept")
	for _, id := range names {
		_, err := raw.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		require.NoError(t, err)
	}
	_, err = raw.NetworkRemove(ctx, netID, client.NetworkRemoveOptions{})
	require.NoError(t, err)
}

// TestLogsStreamedToTheTest: HEPH_LOGS=1, and WithLogsToTest without it, stream the
// container's whole output into the test log, each line once, in order;
// without either, none of it.
func TestLogsStreamedToTheTest(t *testing.T) {
	t.Parallel()
	// The app's whole output (its numbers as N): its own start lines, then
	// the -log lines, then the -log-after line.
	want := []string{"testapp: started pid=N at N", "testapp: healthy /tmp/healthy at N", "line one", "line two", "ready"}
	for _, tc := range []struct {
		name, test string
		env        []string
		want       []string
	}{
		{"HEPH_LOGS=1", "TestChildLogsThenFails", []string{"HEPH_LOGS=1"}, want},
		{"WithLogsToTest", "TestChildLogsToTestThenFails", []string{"HEPH_LOGS="}, want},
		{"neither", "TestChildLogsThenFails", []string{"HEPH_LOGS="}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := childTest(t, tc.test, tc.env)
			require.Contains(t, out, "fail so that go test prints the log", "the child ran")
			require.Equal(t, tc.want, streamed(out, "chatty"), "the lines streamed, in order, each once:\n%s", out)
		})
	}
}

// streamed returns the lines of a test's output that heph streamed from the
// container of service svc ("[svc] LINE"), in order, each number as N.
func streamed(out, svc string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if _, line, ok := strings.Cut(l, "["+svc+"] "); ok {
			lines = append(lines, number.ReplaceAllString(strings.TrimRight(line, "\r"), "N"))
		}
	}
	return lines
}

var number = regexp.MustCompile(`[0-9]+`)

func TestNoDockerFailsTheTestWithTheReason(t *testing.T) {
	t.Parallel()
	out := childTest(t, "TestChildNoDocker", []string{"DOCKER_HOST=unix:///nonexistent/docker.sock"})
	require.Contains(t, out, "Docker daemon unavailable")
	require.Contains(t, out, "/nonexistent/docker.sock")
	require.NotContains(t, out, "panic")
}
