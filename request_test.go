package heph

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
)

// fakeT records what heph does to a test: cleanups, errors, logs, a fatal.
// It embeds a real testing.TB only to satisfy the interface's private
// method; every method heph calls is overridden.
type fakeT struct {
	testing.TB
	name string

	mu       sync.Mutex
	cleanups []func()
	errors   []string
	logs     []string
	fatal    string
	failed   bool
	ctx      context.Context
	cancel   context.CancelFunc
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
func (f *fakeT) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// run calls fn as the fake test's body, on its own goroutine (Fatalf ends
// it), then runs the cleanups in reverse order, as testing does.
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

// useDefault makes o the default Orchestrator for the duration of a test.
// Tests that call it must not run in parallel with each other.
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

func TestRequestIsImmutable(t *testing.T) {
	base := NewContainer("app:1").WithName("db").WithEnv("A", "1").WithExposedPorts("8080").WithLabel("team", "core").WithCmd("serve")
	snapshot := base.clone()
	t.Run("branches", func(t *testing.T) {
		for i := range 50 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				v := base.WithEnv("A", fmt.Sprint(i)).WithEnv(fmt.Sprintf("K%d", i), "v").
					WithExposedPorts(fmt.Sprintf("%d", 9000+i)).WithLabel("i", fmt.Sprint(i)).
					WithCmd("serve", fmt.Sprint(i)).WithTmpfs(fmt.Sprintf("/t%d", i)).
					WithFile(fmt.Sprintf("/f%d", i), []byte("x"), 0o644).WithHostPort("8080", 20000+i)
				require.Equal(t, fmt.Sprint(i), v.cfg.Env["A"])
				require.Equal(t, []string{"8080/tcp", fmt.Sprintf("%d/tcp", 9000+i)}, v.cfg.ExposedPorts)
				require.Equal(t, []string{"serve", fmt.Sprint(i)}, v.cfg.Cmd)
				require.Len(t, v.cfg.Mounts, 1)
				require.Len(t, v.files, 1)
				require.Equal(t, 20000+i, v.cfg.HostPorts["8080/tcp"])
				require.NoError(t, v.check())
			})
		}
	})
	require.Equal(t, snapshot, base, "the template is unchanged after 50 parallel branches")
	require.Equal(t, map[string]string{"A": "1"}, base.cfg.Env)
}

func TestRequestWithMethodsCopyArguments(t *testing.T) {
	args := []string{"a", "b"}
	content := []byte("hello")
	r := NewContainer("app").WithCmd(args...).WithFile("/etc/x", content, 0o600)
	args[0], content[0] = "changed", 'J'
	require.Equal(t, []string{"a", "b"}, r.cfg.Cmd)
	require.Equal(t, "hello", string(r.files[0].content))
}

func TestInvalidOptionsAreReportedAtStart(t *testing.T) {
	cases := []struct {
		reason string
		req    ContainerRequest
		want   string
	}{
		{"empty image", NewContainer(""), `NewContainer(""): is empty`},
		{"upper-case image", NewContainer("App:1"), `NewContainer("App:1"): is not a valid image reference`},
		{"bad service name", NewContainer("app").WithName("my_db"), `WithName("my_db"): is not a valid host name`},
		{"bad port", NewContainer("app").WithExposedPorts("8080", "80/xyz"), `WithExposedPorts("80/xyz"): protocol "xyz" is not tcp, udp or sctp`},
		{"port out of range", NewContainer("app").WithExposedPorts("70000"), `WithExposedPorts("70000"): port 70000 is outside 1-65535`},
		{"bad host port", NewContainer("app").WithHostPort("8080", 0), `WithHostPort(0): the host port is outside 1-65535`},
		{"env key with =", NewContainer("app").WithEnv("A=B", "x"), `WithEnv("A=B"): the key must not contain "="`},
		{"reserved label", NewContainer("app").WithLabel("heph.test", "x"), `WithLabel("heph.test"): the "heph." prefix is reserved`},
		{"relative bind", NewContainer("app").WithBindMount("data", "/data"), `WithBindMount("data"): the host path must be absolute`},
		{"relative target", NewContainer("app").WithTmpfs("tmp"), `WithTmpfs("tmp"): the container path must be absolute`},
		{"mounted twice", NewContainer("app").WithTmpfs("/x").WithVolume("v1", "/x"), `WithVolume("/x"): something is already mounted there`},
		{"bad volume name", NewContainer("app").WithVolume("a/b", "/x"), `WithVolume("a/b"): is not a valid volume name`},
		{"relative file", NewContainer("app").WithFile("etc/x", nil, 0o644), `WithFile("etc/x"): must be an absolute file path`},
		{"file mode", NewContainer("app").WithFile("/x", nil, 0o644|1<<31), `WithFile("/x"): mode`},
		{"relative working dir", NewContainer("app").WithWorkingDir("src"), `WithWorkingDir("src"): must be an absolute path`},
		{"bad user", NewContainer("app").WithUser("a b"), `WithUser("a b")`},
		{"nil strategy", NewContainer("app").WithWaitStrategy(nil), `WithWaitStrategy("nil"): the strategy is nil`},
		{"zero startup timeout", NewContainer("app").WithStartupTimeout(0), `WithStartupTimeout(0s): must be positive`},
		{"negative pull timeout", NewContainer("app").WithPullTimeout(-time.Second), `WithPullTimeout(-1s): must be positive`},
		{"nil network", NewContainer("app").WithNetwork(nil), `WithNetwork("nil"): the network is nil`},
		{"negative graceful stop", NewContainer("app").WithGracefulStop(-time.Second), `WithGracefulStop(-1s): is negative`},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			o, m := newMocked() // no expectations: a Docker call would panic the mock
			useDefault(t, o)
			ft := newFakeT(t, "TestUser")
			ft.run(func(t testing.TB) { tc.req.Start(t) })
			require.Contains(t, ft.fatal, tc.want)
			require.Contains(t, ft.fatal, "invalid configuration")
			require.Empty(t, m.Calls, "refused before any Docker call")

			_, err := tc.req.Run(context.Background(), o)
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestInvalidEnvironmentIsReportedAtStart(t *testing.T) {
	for env, want := range map[string]string{EnvKeep: `HEPH_KEEP="sometimes"`, EnvLogs: `HEPH_LOGS="sometimes"`} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, "sometimes")
			o, m := newMocked()
			useDefault(t, o)
			ft := newFakeT(t, "TestUser")
			ft.run(func(t testing.TB) { NewContainer("app").Start(t) })
			require.Contains(t, ft.fatal, want)
			require.Empty(t, m.Calls)
		})
	}
}

// harness is a mocked default Orchestrator and a fake test, with the
// mock's calls of interest recorded in order.
type harness struct {
	o  *Orchestrator
	m  *mockAPI
	ft *fakeT

	mu    sync.Mutex
	order []string
}

// newHarness expects a test network ("net1") and images that are present;
// the test adds the rest.
func newHarness(t *testing.T) *harness {
	o, m := newMocked()
	useDefault(t, o)
	h := &harness{o: o, m: m, ft: newFakeT(t, "TestUser")}
	m.On("NetworkCreate", anyCtx, mock.Anything, mock.Anything).Run(h.record("network create")).Return(client.NetworkCreateResult{ID: "net1"}, nil)
	m.On("ImageInspect", anyCtx, mock.Anything).Run(h.record("image inspect")).Return(client.ImageInspectResult{}, nil)
	return h
}

// record returns a mock Run function that appends name to the order.
func (h *harness) record(name string) func(mock.Arguments) {
	return func(mock.Arguments) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.order = append(h.order, name)
	}
}

// expectCreate makes ContainerCreate return these IDs, in turn.
func (h *harness) expectCreate(ids ...string) {
	for _, id := range ids {
		h.m.On("ContainerCreate", anyCtx, mock.Anything).Run(h.record("container create")).Return(client.ContainerCreateResult{ID: id}, nil).Once()
	}
}

// expectRunning makes every container start and inspect as state.
func (h *harness) expectRunning(state container.State) {
	h.m.On("ContainerStart", anyCtx, mock.Anything, mock.Anything).Return(client.ContainerStartResult{}, nil)
	h.m.On("ContainerInspect", anyCtx, mock.Anything, mock.Anything).Return(client.ContainerInspectResult{Container: container.InspectResponse{
		State: &state, Config: &container.Config{Image: "app"},
	}}, nil)
}

// expectRemove expects the removal of a container and returns err for it.
func (h *harness) expectRemove(id string, err error) {
	h.m.On("ContainerRemove", anyCtx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}).
		Run(h.record("remove "+id)).Return(client.ContainerRemoveResult{}, err).Once()
}

// expectNetworkRemove expects the removal of the test network.
func (h *harness) expectNetworkRemove(err error) {
	h.m.On("NetworkRemove", anyCtx, "net1", mock.Anything).Run(h.record("remove network")).Return(client.NetworkRemoveResult{}, err).Once()
}

func (h *harness) recorded() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.order)
}

func TestCleanupIsRegisteredBeforeTheFirstDockerCallAndRemovesAFailedStart(t *testing.T) {
	o, m := newMocked()
	useDefault(t, o)
	h := &harness{o: o, m: m, ft: newFakeT(t, "TestUser")}
	m.On("NetworkCreate", anyCtx, mock.Anything, mock.Anything).Run(func(mock.Arguments) {
		h.ft.mu.Lock()
		defer h.ft.mu.Unlock()
		require.Len(t, h.ft.cleanups, 1, "the cleanup exists before the first Docker call")
	}).Return(client.NetworkCreateResult{ID: "net1"}, nil)
	m.On("ImageInspect", anyCtx, mock.Anything).Return(client.ImageInspectResult{}, nil)
	h.expectCreate(testID)
	m.On("ContainerStart", anyCtx, testID, mock.Anything).Return(client.ContainerStartResult{}, cerrdefs.ErrInvalidArgument.WithMessage(`exec: "/nope": no such file`))
	m.On("ContainerInspect", anyCtx, testID, mock.Anything).Return(client.ContainerInspectResult{Container: container.InspectResponse{
		ID: testID, Name: "/heph-app-00000000", State: &container.State{Status: container.StateCreated, Error: `exec: "/nope": no such file`},
		Config: &container.Config{Image: "app"},
	}}, nil)
	m.On("ContainerLogs", anyCtx, testID, mock.Anything).Return(nopLogs(""), nil)
	h.expectRemove(testID, nil)
	h.expectNetworkRemove(nil)

	h.ft.run(func(t testing.TB) { NewContainer("app").Start(t) })
	require.Contains(t, h.ft.fatal, `heph: start app (service "app"): heph: start container "heph-app-`)
	require.Contains(t, h.ft.fatal, "no such file")
	require.Equal(t, []string{"container create", "remove " + testID, "remove network"}, h.recorded(),
		"the failed container is removed by the cleanup, then the network")
	m.AssertExpectations(t)
	require.Empty(t, o.ManagedContainers())
}

func TestTeardownRemovesContainersThenNetworkAndReportsErrors(t *testing.T) {
	h := newHarness(t)
	h.expectCreate("c1", "c2")
	h.expectRunning(container.State{Status: container.StateRunning})
	h.expectRemove("c1", nil)
	h.expectRemove("c2", errors.New("device or resource busy"))
	h.expectNetworkRemove(cerrdefs.ErrConflict.WithMessage("network has active endpoints"))

	h.ft.run(func(t testing.TB) {
		NewContainer("app").WithName("a").Start(t)
		NewContainer("app").WithName("b").Start(t)
	})
	require.Empty(t, h.ft.fatal)
	order := h.recorded()
	require.ElementsMatch(t, []string{"remove c1", "remove c2"}, order[len(order)-3:len(order)-1])
	require.Equal(t, "remove network", order[len(order)-1], "containers first, then the network")
	require.Len(t, h.ft.errors, 2)
	require.Contains(t, h.ft.errors[0], `heph: teardown: heph: remove container "heph-b-`)
	require.Contains(t, h.ft.errors[0], "device or resource busy")
	require.Contains(t, h.ft.errors[1], `heph: teardown: heph: remove network "heph-net-`)
}

func TestTeardownLogsStateAndLogsOfAFailedTest(t *testing.T) {
	h := newHarness(t)
	h.expectCreate(testID)
	h.expectRunning(container.State{Status: container.StateExited, ExitCode: 3})
	var logOpts client.ContainerLogsOptions
	h.m.On("ContainerLogs", anyCtx, testID, mock.Anything).Run(func(a mock.Arguments) {
		logOpts = a.Get(2).(client.ContainerLogsOptions)
	}).Return(nopLogs("starting\nfatal: no config\n"), nil)
	h.expectRemove(testID, nil)
	h.expectNetworkRemove(nil)

	h.ft.run(func(t testing.TB) {
		NewContainer("app").Start(t)
		t.Errorf("the test failed")
	})
	joined := strings.Join(h.ft.logs, "\n")
	require.Contains(t, joined, "exited with code 3")
	require.Contains(t, joined, "| fatal: no config")
	require.Equal(t, "50", logOpts.Tail)
}

func TestTeardownIsIdempotentWithTerminate(t *testing.T) {
	h := newHarness(t)
	h.expectCreate(testID)
	h.expectRunning(container.State{Status: container.StateRunning})
	h.expectRemove(testID, nil)
	h.expectNetworkRemove(nil)
	h.ft.run(func(t testing.TB) {
		c := NewContainer("app").Start(t)
		require.NoError(t, c.Terminate(context.Background()))
		require.NoError(t, c.Terminate(context.Background()), "twice is fine")
	})
	require.Empty(t, h.ft.errors)
	h.m.AssertNumberOfCalls(t, "ContainerRemove", 1)
}

func TestGracefulStopStopsBeforeRemoving(t *testing.T) {
	h := newHarness(t)
	h.expectCreate(testID)
	h.expectRunning(container.State{Status: container.StateRunning})
	three := 3
	h.m.On("ContainerStop", anyCtx, testID, client.ContainerStopOptions{Timeout: &three}).Run(h.record("stop")).Return(client.ContainerStopResult{}, nil).Once()
	h.expectRemove(testID, nil)
	h.expectNetworkRemove(nil)
	h.ft.run(func(t testing.TB) { NewContainer("app").WithGracefulStop(3 * time.Second).Start(t) })
	h.m.AssertExpectations(t)
	require.Equal(t, []string{"stop", "remove " + testID, "remove network"}, h.recorded()[3:])
}

func TestMappedPortOfAPortNeverExposed(t *testing.T) {
	ft := newFakeT(t, "TestUser")
	c := &Container{name: "heph-app-00000000", t: ft, host: "127.0.0.1", ports: map[string]int{"8080/tcp": 49153}}
	require.Equal(t, 49153, c.MappedPort("8080"))
	require.Equal(t, "127.0.0.1:49153", c.Endpoint("8080/tcp"))
	require.Empty(t, ft.errors)
	require.Equal(t, 0, c.MappedPort("9090"))
	require.Equal(t, "", c.Endpoint("9090/tcp"))
	require.Len(t, ft.errors, 2)
	require.Equal(t, "heph: container heph-app-00000000 does not publish 9090/tcp: it publishes 8080/tcp (use WithExposedPorts)", ft.errors[0])
}

func nopLogs(s string) client.ContainerLogsResult {
	return readCloser{strings.NewReader(stdFrame(1, s))}
}

// stdFrame frames s as Docker's multiplexed stream does (stream 1 = stdout).
func stdFrame(stream byte, s string) string {
	if s == "" {
		return ""
	}
	n := len(s)
	return string([]byte{stream, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}) + s
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }
