package heph

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/wait"
)

func TestSentinelsMatchThroughWrapping(t *testing.T) {
	t.Parallel()
	for _, s := range []error{ErrDockerUnavailable, ErrImageNotFound, ErrContainerNotFound, ErrNetworkNotFound, ErrInvalidConfig, ErrNetworkPoolExhausted, ErrWatchdog} {
		require.True(t, strings.HasPrefix(s.Error(), "heph: "), s.Error())
	}

	gone := enginetest.NotFound("No such container: x")
	err := wrap("stop container", "heph-db-1", gone, ErrContainerNotFound)
	require.EqualError(t, err, `heph: stop container "heph-db-1": No such container: x`)
	require.ErrorIs(t, err, ErrContainerNotFound)
	require.ErrorIs(t, err, engine.ErrNotFound)
	require.True(t, isNotFound(err))

	err = wrap("stop container", "heph-db-1", enginetest.Conflict("in use"), ErrContainerNotFound)
	require.NotErrorIs(t, err, ErrContainerNotFound, "only a not-found answer adds the not-found sentinel")
	require.False(t, isNotFound(err))

	err = wrap("list containers", "", enginetest.Unavailable("Cannot connect"), nil)
	require.EqualError(t, err, "heph: list containers: Cannot connect")
	require.ErrorIs(t, err, ErrDockerUnavailable, "an unreachable daemon is always ErrDockerUnavailable")
	require.NoError(t, wrap("x", "y", nil, ErrContainerNotFound), "nil stays nil")

	err = invalid("Service", "my_db", "is not a valid host name")
	require.EqualError(t, err, `heph: invalid configuration: Service "my_db": is not a valid host name`)
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.True(t, isNotFound(wrap("remove network", "n", enginetest.NotFound("gone"), ErrNetworkNotFound)))
}

// failure is a failing path and the message it produced.
type failure struct {
	path string
	msg  string
	once []string // what must appear exactly once: the op, the subject
}

// TestErrorPrefixesNeverStutter: every message heph gives for a failing
// Start, StartAll, Run, CreateContainer or teardown has one "heph:" prefix a
// line, and names the operation and its subject once.
func TestErrorPrefixesNeverStutter(t *testing.T) {
	var failures []failure
	startFails := func(t *testing.T, path string, breakIt func(h *harness), body func(t testing.TB), once ...string) {
		h := newHarness(t)
		breakIt(h)
		h.ft.run(body)
		require.NotEmpty(t, h.ft.fatal, path)
		failures = append(failures, failure{path, h.ft.fatal, once})
	}
	start := func(r ContainerRequest) func(t testing.TB) { return func(t testing.TB) { r.Start(t) } }
	nothing := func(*harness) {}

	t.Run("Start", func(t *testing.T) {
		startFails(t, "Start: the start is refused", func(h *harness) {
			failOn(h.f, "ContainerStart", errors.New("OCI runtime create failed"))
		}, start(NewContainer("app")), `start app (service "app")`, "start container", `"heph-app-`)

		startFails(t, "Start: an invalid option", nothing, start(NewContainer("app").WithExposedPorts("80/xyz")),
			`start app (service "app")`, `WithExposedPorts("80/xyz")`)

		startFails(t, "Start: an invalid environment variable", func(*harness) { t.Setenv(EnvKeep, "sometimes") },
			start(NewContainer("app")), `start app (service "app")`, `HEPH_KEEP "sometimes"`)

		startFails(t, "Start: exhausted network pools", func(h *harness) {
			h.f.MaxPoolNetworks = 1
			_, err := h.f.NetworkCreate(context.Background(), engine.NetworkSpec{Name: "someone-elses"})
			require.NoError(t, err)
		}, start(NewContainer("app").WithStartupTimeout(200*time.Millisecond)),
			`start app (service "app")`, "test network", "create network", "the daemon's address pools stayed exhausted")

		startFails(t, "Start: the image pull times out", func(h *harness) {
			h.f.AddImage("other", engine.Image{})
			h.f.AddToRegistry("127.0.0.1:5000/app:1", engine.Image{})
			blockPulls(h.f)
		}, start(NewContainer("127.0.0.1:5000/app:1").WithPullTimeout(50*time.Millisecond)),
			`start 127.0.0.1:5000/app:1 (service "app")`, `pull image "127.0.0.1:5000/app:1"`, "timed out after")

		startFails(t, "Start: the container exits while waited for", func(h *harness) {
			var once sync.Once
			h.f.Hook = func(_ context.Context, call string, arg any) error {
				if call == "ContainerInspect" {
					once.Do(func() { h.f.Exit(arg.(string), 1) })
				}
				return nil
			}
		}, start(NewContainer("app").WithWaitStrategy(wait.ForLog("ready"))),
			`start app (service "app")`, `ForLog("ready")`, "container exited with code 1")

		startFails(t, "Start: never ready, and the state cannot be read", func(h *harness) {
			var once sync.Once
			h.f.Hook = func(_ context.Context, call string, _ any) error {
				if call == "ContainerInspect" || call == "ContainerLogs" {
					skip := false
					once.Do(func() { skip = true }) // the first inspect, at the start, works
					if !skip {
						return enginetest.Unavailable("daemon is restarting")
					}
				}
				return nil
			}
		}, start(NewContainer("app").WithWaitStrategy(wait.ForFunc(func(context.Context, wait.Target) error { return errors.New("not yet") }))),
			`start app (service "app")`, "not yet")

		h := newHarness(t)
		useDefault(t, nil)
		for _, v := range []string{"DOCKER_CONTEXT", "DOCKER_API_VERSION", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"} {
			t.Setenv(v, "")
		}
		t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "none.sock"))
		h.ft.run(start(NewContainer("app")))
		require.Contains(t, h.ft.fatal, "Docker daemon unavailable")
		failures = append(failures, failure{"Start: no daemon", h.ft.fatal, []string{`start app (service "app")`, "Docker daemon unavailable", "(DOCKER_HOST)"}})
	})

	t.Run("StartAll", func(t *testing.T) {
		startFails(t, "StartAll: two failures", func(h *harness) {
			failOn(h.f, "ContainerStart", errors.New("port is already allocated"))
		}, func(t testing.TB) { StartAll(t, NewContainer("app").WithName("a"), NewContainer("app").WithName("b")) },
			`start app (service "a")`, `start app (service "b")`, `start container "heph-a-`, `start container "heph-b-`)
	})

	t.Run("Run", func(t *testing.T) {
		o, f := newTestOrchestrator()
		f.Hook = func(_ context.Context, call string, _ any) error {
			switch call {
			case "ContainerStart":
				return errors.New("OCI runtime create failed")
			case "ContainerRemove":
				return errors.New("device or resource busy")
			}
			return nil
		}
		_, err := NewContainer("app").Run(context.Background(), o)
		failures = append(failures, failure{"Run: the start and the clean-up fail", err.Error(),
			[]string{`run app (service "app")`, "start container", "remove container", "OCI runtime", "device or resource busy"}})

		_, err = NewContainer("app").WithName("x_y").Run(context.Background(), o)
		failures = append(failures, failure{"Run: an invalid option", err.Error(), []string{`WithName("x_y")`}})
	})

	t.Run("CreateContainer", func(t *testing.T) {
		o, f := newTestOrchestrator()
		failOn(f, "ContainerCreate", enginetest.Conflict("name in use"))
		_, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "app"})
		failures = append(failures, failure{"CreateContainer: the create fails", err.Error(), []string{"create container", `"heph-app-`}})

		o, f = newTestOrchestrator()
		f.AddNetwork(engine.Network{Name: "a"})
		f.Hook = func(_ context.Context, call string, _ any) error {
			if call == "ContainerRemove" {
				return errors.New("device or resource busy")
			}
			return nil
		}
		_, err = o.CreateContainer(context.Background(), ContainerConfig{Image: "app", Networks: []string{"a", "b"}})
		require.Error(t, err)
		failures = append(failures, failure{"CreateContainer: a join and the clean-up fail", err.Error(),
			[]string{`connect container "heph-app-`, `remove container "heph-app-`}})

		_, err = o.CreateContainer(context.Background(), ContainerConfig{Image: "App", Service: "-x"})
		failures = append(failures, failure{"CreateContainer: an invalid config", err.Error(), []string{`Image "App"`, `Service "-x"`}})
	})

	t.Run("teardown", func(t *testing.T) {
		h := newHarness(t)
		t.Setenv(EnvLogs, "1")
		logCalls := 0
		followed := make(chan struct{})
		h.f.Hook = func(_ context.Context, call string, _ any) error {
			switch call {
			case "ContainerRemove":
				return errors.New("device or resource busy")
			case "ContainerLogs":
				if logCalls++; logCalls == 2 { // the follower, its stream refused, reads what is there
					close(followed)
				}
				return enginetest.Unavailable("log driver failed")
			}
			return nil
		}
		h.ft.run(func(t testing.TB) {
			c := NewContainer("app").Start(t)
			<-followed
			c.MappedPort("80/xyz")
		})
		require.Len(t, h.ft.errors, 3, h.ft.errors)
		require.Len(t, h.ft.logs, 2, "the follower's complaint, then the failed test's container")
		failures = append(failures,
			failure{"MappedPort: a malformed port", h.ft.errors[0], []string{`container "heph-app-`, `port "80/xyz"`}},
			failure{"teardown: a container cannot be removed", h.ft.errors[1], []string{"teardown", `remove container "heph-app-`}},
			failure{"teardown: the network cannot be removed", h.ft.errors[2], []string{"teardown", `remove network "heph-net-`}},
			failure{"HEPH_LOGS: the logs cannot be followed", h.ft.logs[0], []string{"[app] cannot follow logs", `read logs of container "heph-app-`}},
		)
	})

	require.GreaterOrEqual(t, len(failures), 15)
	for _, f := range failures {
		t.Run(f.path, func(t *testing.T) {
			t.Log(f.msg)
			require.True(t, strings.HasPrefix(f.msg, "heph: "), "the message starts with heph's prefix: %q", f.msg)
			for _, line := range strings.Split(f.msg, "\n") {
				require.LessOrEqual(t, strings.Count(line, "heph:"), 1, "one heph: a line: %q", line)
			}
			require.NotRegexp(t, regexp.MustCompile(`heph: [^\n]*: heph: `), f.msg)
			for _, s := range f.once {
				require.Equal(t, 1, strings.Count(f.msg, s), "%q appears once in %q", s, f.msg)
			}
		})
	}
}
