package heph

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/wait"
)

// fakeT records what heph does to a test: cleanups, errors, logs, a fatal.
// It embeds the real test only to satisfy testing.TB's private method: every
// method heph calls is overridden, and any other call reaches the real test.
// Like testing, it cancels its Context just before the cleanups run.
type fakeT struct {
	testing.TB
	name string

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	cleanups []func()
	errors   []string
	logs     []string
	fatal    string
	failed   bool
}

func newFakeT(t *testing.T, name string) *fakeT {
	ctx, cancel := context.WithCancel(context.Background())
	return &fakeT{TB: t, name: name, ctx: ctx, cancel: cancel}
}

func (f *fakeT) Helper()                  {}
func (f *fakeT) Name() string             { return f.name }
func (f *fakeT) Context() context.Context { return f.ctx }

func (f *fakeT) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
	f.failed = true
}

func (f *fakeT) Logf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}

func (f *fakeT) Log(args ...any) { f.Logf("%s", fmt.Sprint(args...)) }

func (f *fakeT) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.failed = true
	f.mu.Unlock()
	runtime.Goexit()
}

// FailNow ends the body as Fatalf does: a require in the body has put its
// message in errors, which the test then checks.
func (f *fakeT) FailNow() {
	f.mu.Lock()
	f.failed = true
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeT) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// cleanupCount returns how many cleanups are registered.
func (f *fakeT) cleanupCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.cleanups)
}

// allLogs returns the test's log, one entry a line.
func (f *fakeT) allLogs() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.logs, "\n")
}

// run calls fn as the fake test's body on its own goroutine (Fatalf ends
// it), then, as testing does, cancels the test's context and runs the
// cleanups, last registered first.
func (f *fakeT) run(fn func(t testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	f.cancel()
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

// useDefault makes o the default Orchestrator (nil: none yet) for the rest
// of the test. Tests that call it do not run in parallel with each other.
func useDefault(t *testing.T, o *Orchestrator) {
	defaultOrchestrator.Lock()
	prev := defaultOrchestrator.o
	defaultOrchestrator.o = o
	defaultOrchestrator.Unlock()
	t.Cleanup(func() {
		defaultOrchestrator.Lock()
		defaultOrchestrator.o = prev
		defaultOrchestrator.Unlock()
	})
}

// harness is a default Orchestrator over a fake daemon and a fake test,
// with heph's environment variables cleared.
type harness struct {
	o  *Orchestrator
	f  *enginetest.Fake
	ft *fakeT
}

func newHarness(t *testing.T) *harness {
	for _, v := range []string{EnvKeep, EnvLogs, EnvReaper} {
		t.Setenv(v, "")
	}
	o, f := newTestOrchestrator()
	useDefault(t, o)
	return &harness{o: o, f: f, ft: newFakeT(t, "TestUser")}
}

// left returns how many containers, networks and volumes the daemon holds.
func (h *harness) left() [3]int {
	c, n, v := h.f.Counts()
	return [3]int{c, n, v}
}

// record makes the fake note the calls named, in order.
func (h *harness) record(calls ...string) func() []string {
	var mu sync.Mutex
	var order []string
	h.f.Hook = func(_ context.Context, call string, _ any) error {
		if slices.Contains(calls, call) {
			mu.Lock()
			order = append(order, call)
			mu.Unlock()
		}
		return nil
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(order)
	}
}

func TestStartOnTheTestsNetworkAndTeardown(t *testing.T) {
	h := newHarness(t)
	order := h.record("NetworkCreate", "ContainerCreate", "ContainerStart", "ContainerRemove", "NetworkRemove")
	h.ft.run(func(t testing.TB) {
		c := NewContainer("app:1").WithName("web").WithExposedPorts("8080").Start(t)
		require.Regexp(t, `^heph-web-[0-9a-f]{8}$`, c.Name())
		require.Equal(t, "web", c.Service())
		require.Equal(t, "127.0.0.1", c.Host())
		require.Equal(t, "127.0.0.1:32768", c.Endpoint("8080/tcp"), "the fake publishes from 32768 up")

		info, err := c.Inspect(context.Background())
		require.NoError(t, err)
		require.Equal(t, StatusRunning, info.Status)
		require.Equal(t, "TestUser", info.Labels[LabelTest], "the test's name is on its containers")
		net := TestNetwork(t)
		require.Contains(t, info.Networks, net.Name(), "it joined the test's network")
		require.Equal(t, []string{"web"}, info.Networks[net.Name()].Aliases, "with its service name as alias")
		require.Equal(t, [3]int{1, 1, 0}, h.left())
	})
	require.Empty(t, h.ft.fatal)
	require.Empty(t, h.ft.errors)
	require.Equal(t, []string{"NetworkCreate", "ContainerCreate", "ContainerStart", "ContainerRemove", "NetworkRemove"}, order())
	require.Equal(t, [3]int{0, 0, 0}, h.left(), "the test's cleanup removed everything")
	require.Empty(t, trackedContainers(h.o))
	require.Empty(t, trackedNetworks(h.o))
}

func TestCleanupIsRegisteredBeforeTheFirstDockerCall(t *testing.T) {
	h := newHarness(t)
	var atFirstCall []int
	h.f.Hook = func(context.Context, string, any) error {
		if atFirstCall == nil {
			atFirstCall = []int{h.ft.cleanupCount()}
		}
		return nil
	}
	h.ft.run(func(t testing.TB) { NewContainer("app").Start(t) })
	require.Equal(t, []int{1}, atFirstCall, "the cleanup exists before the first Docker call")
	require.Equal(t, 1, h.ft.cleanupCount(), "one cleanup per test, however many containers")
}

func TestAFailedStartRemovesWhatItMade(t *testing.T) {
	notReady := wait.ForFunc(func(context.Context, wait.Target) error { return errors.New("no answer on /health") })
	cases := []struct {
		reason  string
		req     ContainerRequest
		breakIt func(f *enginetest.Fake)
		want    []string
	}{
		{
			"created, but the start is refused",
			NewContainer("app"),
			func(f *enginetest.Fake) {
				failOn(f, "ContainerStart", errors.New(`exec: "/nope": stat /nope: no such file or directory`))
			},
			[]string{`heph: start app (service "app"): start container "heph-app-`, `no such file or directory`},
		},
		{
			"created, but the files cannot be copied in",
			NewContainer("app").WithFile("/etc/app.conf", []byte("x"), 0o600),
			func(f *enginetest.Fake) { failOn(f, "CopyTo", errors.New("no space left on device")) },
			[]string{`heph: start app (service "app"): copy files into container "heph-app-`, "no space left on device"},
		},
		{
			"started, but never ready",
			NewContainer("app").WithWaitStrategy(notReady),
			func(f *enginetest.Fake) {},
			[]string{`heph: start app (service "app"): wait: ForFunc(heph.TestAFailedStartRemovesWhatItMade.func1)`, "no answer on /health"},
		},
		{
			"started, then exited while waited for",
			NewContainer("app").WithWaitStrategy(wait.ForLog("listening")),
			func(f *enginetest.Fake) {
				var once sync.Once
				f.Hook = func(_ context.Context, call string, arg any) error {
					if call == "ContainerInspect" { // the first call after the start
						once.Do(func() {
							f.WriteLog(arg.(string), "fatal: no config\n")
							f.Exit(arg.(string), 3)
						})
					}
					return nil
				}
			},
			[]string{`heph: start app (service "app"): wait: ForLog("listening"): container exited with code 3`, "fatal: no config"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			h := newHarness(t)
			tc.breakIt(h.f)
			h.ft.run(func(t testing.TB) { tc.req.Start(t) })
			for _, w := range tc.want {
				require.Contains(t, h.ft.fatal, w)
			}
			require.Empty(t, h.ft.errors, "the cleanup itself succeeded")
			require.Equal(t, [3]int{0, 0, 0}, h.left(), "the test's cleanup removed the container and the network")

			// Run removes what it made before it returns.
			h = newHarness(t)
			tc.breakIt(h.f)
			c, err := tc.req.Run(context.Background(), h.o)
			require.Nil(t, c)
			require.ErrorContains(t, err, strings.Replace(tc.want[0], "heph: start", "heph: run", 1))
			require.Equal(t, [3]int{0, 0, 0}, h.left(), "Run removed the container")
			require.Empty(t, trackedContainers(h.o))
		})
	}
}

func TestInvalidEnvironmentIsReportedAtStart(t *testing.T) {
	for _, env := range []string{EnvKeep, EnvLogs, EnvReaper} {
		t.Run(env, func(t *testing.T) {
			h := newHarness(t)
			t.Setenv(env, "sometimes")
			h.ft.run(func(t testing.TB) { NewContainer("app").Start(t) })
			require.Contains(t, h.ft.fatal, `heph: start app (service "app"): invalid configuration: `+env+` "sometimes": want `)
			require.Empty(t, h.f.Calls(), "refused before any Docker call")
		})
	}
}

func TestTeardownRemovesContainersThenTheNetworkAndReportsErrors(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	var order []string
	var b *Container
	h.f.Hook = func(_ context.Context, call string, arg any) error {
		if call != "ContainerRemove" && call != "NetworkRemove" {
			return nil
		}
		mu.Lock()
		order = append(order, call)
		mu.Unlock()
		if call == "ContainerRemove" && arg == b.ID() {
			return errors.New("device or resource busy")
		}
		return nil
	}
	var net *Network
	h.ft.run(func(t testing.TB) {
		NewContainer("app").WithName("a").Start(t)
		b = NewContainer("app").WithName("b").Start(t)
		net = TestNetwork(t)
	})
	require.Empty(t, h.ft.fatal)
	require.Equal(t, []string{"ContainerRemove", "ContainerRemove", "NetworkRemove"}, order, "containers first, then the network")
	require.Len(t, h.ft.errors, 2)
	require.Equal(t, `heph: teardown: remove container "`+b.Name()+`": device or resource busy`, h.ft.errors[0])
	require.Regexp(t, `^heph: teardown: remove network "`+net.Name()+`": .*has active endpoints$`, h.ft.errors[1],
		"the network cannot go while b is on it")
	require.Equal(t, [3]int{1, 1, 0}, h.left())
}

func TestTeardownLogsStateAndLastLinesOfAFailedTest(t *testing.T) {
	h := newHarness(t)
	h.ft.run(func(t testing.TB) {
		c := NewContainer("app").Start(t)
		for i := 1; i <= 60; i++ {
			h.f.WriteLog(c.ID(), fmt.Sprintf("line %d\n", i))
		}
		h.f.Exit(c.ID(), 3)
		t.Errorf("the test failed")
	})
	logs := h.ft.allLogs()
	require.Regexp(t, `heph: container heph-app-[0-9a-f]{8} \(service app, image app\): exited with code 3`, logs)
	require.Contains(t, logs, "last 50 log lines:", "read after the test's context was done, too")
	lines := regexp.MustCompile(`(?m)^  \| line (\d+)$`).FindAllStringSubmatch(logs, -1)
	require.Len(t, lines, 50)
	require.Equal(t, "11", lines[0][1], "the last 50 lines, oldest first")
	require.Equal(t, "60", lines[49][1])
	require.Equal(t, [3]int{0, 0, 0}, h.left(), "then removed")
}

func TestAPassingTestLogsNothing(t *testing.T) {
	h := newHarness(t)
	h.ft.run(func(t testing.TB) {
		c := NewContainer("app").Start(t)
		h.f.WriteLog(c.ID(), "noise\n")
	})
	require.Empty(t, h.ft.allLogs())
}

func TestTeardownIsIdempotentWithTerminate(t *testing.T) {
	h := newHarness(t)
	h.ft.run(func(t testing.TB) {
		c := NewContainer("app").Start(t)
		require.NoError(t, c.Terminate(context.Background()))
		require.NoError(t, c.Terminate(context.Background()), "twice is fine")
	})
	require.Empty(t, h.ft.errors)
	require.Equal(t, 1, h.f.CallCount("ContainerRemove"))
	require.Equal(t, [3]int{0, 0, 0}, h.left())
}

func TestGracefulStopStopsBeforeRemoving(t *testing.T) {
	for _, d := range []time.Duration{3 * time.Second, 0} {
		t.Run(d.String(), func(t *testing.T) {
			h := newHarness(t)
			rec := &stopRecorder{Fake: h.f}
			h.o = newOrchestratorOver(rec, "unix:///fake.sock")
			useDefault(t, h.o)
			order := h.record("ContainerStop", "ContainerRemove", "NetworkRemove")
			h.ft.run(func(t testing.TB) { NewContainer("app").WithGracefulStop(d).Start(t) })
			require.Empty(t, h.ft.errors)
			require.Equal(t, []string{"ContainerStop", "ContainerRemove", "NetworkRemove"}, order())
			require.Equal(t, []time.Duration{d}, rec.timeouts(), "SIGKILL after the WithGracefulStop duration")
		})
	}
	h := newHarness(t)
	h.ft.run(func(t testing.TB) { NewContainer("app").Start(t) })
	require.Zero(t, h.f.CallCount("ContainerStop"), "without WithGracefulStop: force-removed at once")
}

// TestTeardownOutlivesTheTestsContext: testing cancels t.Context() just
// before the cleanups run, and the fake refuses every call with a done
// context, as the real client does. The teardown must use a context of its
// own, or nothing would be removed.
func TestTeardownOutlivesTheTestsContext(t *testing.T) {
	h := newHarness(t)
	h.ft.run(func(t testing.TB) {
		NewContainer("app").WithName("a").Start(t)
		NewContainer("app").WithName("b").WithGracefulStop(time.Second).Start(t)
	})
	require.Error(t, h.ft.ctx.Err(), "the test's context was done when the cleanup ran")
	require.Empty(t, h.ft.errors)
	require.Equal(t, [3]int{0, 0, 0}, h.left(), "the containers and the network are removed all the same")
}

func TestKeep(t *testing.T) {
	cases := []struct {
		mode string
		fail bool
		kept bool
	}{
		{"failed", true, true},
		{"failed", false, false},
		{"FAILED", true, true},
		{"always", false, true},
		{"never", true, false},
		{"off", true, false},
		{"", true, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/failed=%v", tc.mode, tc.fail), func(t *testing.T) {
			h := newHarness(t)
			t.Setenv(EnvKeep, tc.mode)
			var c *Container
			var net *Network
			h.ft.run(func(t testing.TB) {
				c = NewContainer("app").WithExposedPorts("8080").Start(t)
				net = TestNetwork(t)
				if tc.fail {
					t.Errorf("failed")
				}
			})
			wantErrors := 0
			if tc.fail {
				wantErrors = 1
			}
			require.Len(t, h.ft.errors, wantErrors, "the test's own failure only: no teardown error")
			if !tc.kept {
				require.Equal(t, [3]int{0, 0, 0}, h.left())
				require.NotContains(t, h.ft.allLogs(), "keeping")
				return
			}
			require.Equal(t, [3]int{1, 1, 0}, h.left(), "the container and the network are left")
			logs := h.ft.allLogs()
			require.Contains(t, logs, "heph: HEPH_KEEP="+strings.ToLower(tc.mode)+": keeping what TestUser made:")
			require.Contains(t, logs, "container "+c.Name()+" (service app): docker logs "+c.Name()+"; docker exec "+c.Name()+" <command>; 8080/tcp at 127.0.0.1:32768")
			require.Contains(t, logs, "network "+net.Name())
			require.Contains(t, logs, "remove them with: docker rm -f "+c.Name()+" && docker network rm "+net.Name())
		})
	}
}

func TestLogsToTest(t *testing.T) {
	for _, viaEnv := range []bool{false, true} {
		t.Run(fmt.Sprintf("HEPH_LOGS=%v", viaEnv), func(t *testing.T) {
			h := newHarness(t)
			req := NewContainer("app")
			if viaEnv {
				t.Setenv(EnvLogs, "1")
			} else {
				req = req.WithLogsToTest()
			}
			h.ft.run(func(t testing.TB) {
				c := req.WithName("web").Start(t)
				quiet := NewContainer("app").WithName("quiet").Start(t)
				h.f.WriteLog(c.ID(), "hello\nworld\n")
				h.f.WriteLog(quiet.ID(), "unheard\n")
			})
			logs := h.ft.allLogs()
			require.Equal(t, 1, strings.Count(logs, "[web] hello"), logs)
			require.Equal(t, 1, strings.Count(logs, "[web] world"), logs)
			if viaEnv {
				require.Contains(t, logs, "[quiet] unheard", "HEPH_LOGS streams every container")
			} else {
				require.NotContains(t, logs, "unheard", "WithLogsToTest streams that container only")
			}
			require.Equal(t, [3]int{0, 0, 0}, h.left())
		})
	}
}

func TestStartAll(t *testing.T) {
	h := newHarness(t)
	h.ft.run(func(t testing.TB) {
		cs := StartAll(t, NewContainer("app").WithName("a"), NewContainer("app").WithName("b"), NewContainer("app").WithName("c"))
		require.Len(t, cs, 3)
		net := TestNetwork(t)
		for i, want := range []string{"a", "b", "c"} {
			require.Equal(t, want, cs[i].Service(), "in the order of the requests")
			info, err := cs[i].Inspect(context.Background())
			require.NoError(t, err)
			require.Contains(t, info.Networks, net.Name(), "all on the test's one network")
		}
		require.Equal(t, 1, h.f.CallCount("NetworkCreate"))
	})
	require.Empty(t, h.ft.fatal)
	require.Empty(t, h.ft.errors)
	require.Equal(t, [3]int{0, 0, 0}, h.left())
}

func TestStartAllReportsEveryFailureAndRemovesWhatItMade(t *testing.T) {
	h := newHarness(t)
	h.f.Hook = func(_ context.Context, call string, arg any) error {
		if s, ok := arg.(engine.ContainerSpec); ok && call == "ContainerCreate" && s.Hostname == "b" {
			return errors.New("boom")
		}
		return nil
	}
	h.ft.run(func(t testing.TB) {
		StartAll(t,
			NewContainer("app").WithName("a"),
			NewContainer("app").WithName("b"),
			NewContainer("app").WithName("c").WithName("Bad_Name"),
			NewContainer("app").WithName("d"))
		t.Errorf("not reached: StartAll ends the test")
	})
	lines := strings.Split(h.ft.fatal, "\n")
	require.Len(t, lines, 2, h.ft.fatal)
	require.Regexp(t, `^heph: start app \(service "b"\): create container "heph-b-[0-9a-f]{8}": boom$`, lines[0])
	require.Equal(t, `heph: start app (service "c"): invalid configuration: WithName("Bad_Name"): is not a valid host name: `+
		`use 1-63 lower-case letters, digits and '-', not starting or ending with '-'`, lines[1])
	require.Empty(t, h.ft.errors)
	require.Equal(t, [3]int{0, 0, 0}, h.left(), "a and d, started, were removed by the cleanup")
}

// stopRecorder is the fake daemon, noting the timeout of each stop.
type stopRecorder struct {
	*enginetest.Fake
	mu   sync.Mutex
	seen []time.Duration
}

func (s *stopRecorder) ContainerStop(ctx context.Context, id string, timeout time.Duration) error {
	s.mu.Lock()
	s.seen = append(s.seen, timeout)
	s.mu.Unlock()
	return s.Fake.ContainerStop(ctx, id, timeout)
}

func (s *stopRecorder) timeouts() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

func TestEachTestHasItsOwnNetwork(t *testing.T) {
	h := newHarness(t)
	other := newFakeT(t, "TestOther")
	var mine, theirs *Network
	h.ft.run(func(t testing.TB) {
		mine = TestNetwork(t)
		require.Same(t, mine, TestNetwork(t), "one network a test")
		other.run(func(t testing.TB) {
			theirs = TestNetwork(t)
			_, networks, _ := h.f.Counts()
			require.Equal(t, 2, networks)
		})
		_, networks, _ := h.f.Counts()
		require.Equal(t, 1, networks, "the other test's network went with it")
	})
	require.Empty(t, h.ft.errors)
	require.Empty(t, other.errors)
	require.NotEqual(t, mine.Name(), theirs.Name())
	require.Equal(t, [3]int{0, 0, 0}, h.left())
}

func TestTestNetworkFailureFailsTheTest(t *testing.T) {
	h := newHarness(t)
	failOn(h.f, "NetworkCreate", errors.New("plugin not found"))
	h.ft.run(func(t testing.TB) { TestNetwork(t) })
	require.Regexp(t, `^heph: test network: create network "heph-net-[0-9a-f]{8}": plugin not found$`, h.ft.fatal)
}

func TestWithNetworkJoinsAnotherNetwork(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	shared, err := h.o.CreateNetwork(ctx, NetworkConfig{})
	require.NoError(t, err)
	req := NewContainer("app").WithName("api").WithNetwork(shared)

	c, err := req.Run(ctx, h.o)
	require.NoError(t, err)
	info, err := c.Inspect(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{shared.Name()}, slices.Sorted(maps.Keys(info.Networks)), "Run: only the networks asked for")
	require.Equal(t, []string{"api"}, info.Networks[shared.Name()].Aliases)
	require.NoError(t, c.Terminate(ctx))

	h.ft.run(func(t testing.TB) {
		c := req.Start(t)
		info, err := c.Inspect(ctx)
		require.NoError(t, err)
		require.ElementsMatch(t, []string{shared.Name(), TestNetwork(t).Name()}, slices.Collect(maps.Keys(info.Networks)),
			"Start: the test's network and the one asked for")
	})
	require.Empty(t, h.ft.errors)
	require.Equal(t, [3]int{0, 1, 0}, h.left(), "the shared network is its maker's to remove")
}

func TestAStartThatCannotInspectSaysWhatItKnows(t *testing.T) {
	h := newHarness(t)
	failOn(h.f, "ContainerInspect", enginetest.Unavailable("daemon is restarting"))
	h.ft.run(func(t testing.TB) { NewContainer("app").Start(t) })
	lines := strings.Split(h.ft.fatal, "\n")
	require.Regexp(t, `^heph: start app \(service "app"\): inspect container "heph-app-[0-9a-f]{8}": daemon is restarting$`, lines[0])
	require.Regexp(t, `^container heph-app-[0-9a-f]{8} \(service app\): state unknown: inspect container "heph-app-[0-9a-f]{8}": daemon is restarting$`, lines[1])
	require.Equal(t, [3]int{0, 0, 0}, h.left())
}
