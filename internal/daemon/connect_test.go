package daemon

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/errs"
)

// Connect and ConnectEndpoints, two ways: over real unix sockets served by
// an httptest server that answers /_ping as a daemon (the SDK's dialing,
// negotiation and timeouts for real), and over fake dialers handing out
// enginetest.Fake daemons (the bookkeeping: order, closing, messages).

// fakeDaemonHandler answers /_ping as a daemon of the given API version.
func fakeDaemonHandler(apiVersion string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_ping" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Api-Version", apiVersion)
		w.Header().Set("Ostype", "linux")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte("OK"))
		}
	})
}

// fakeDaemon serves a fake daemon of the given API version on a unix socket
// in dir and returns the socket's path.
func fakeDaemon(t *testing.T, dir, apiVersion string) string {
	t.Helper()
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(fakeDaemonHandler(apiVersion))
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return sock
}

// osLikeEnv is an Env with fake variables, a temporary home and the real
// file system.
func osLikeEnv(t *testing.T, vars map[string]string) Env {
	return Env{Getenv: func(k string) string { return vars[k] }, Home: t.TempDir(), Exists: pathExists}
}

func TestConnectNonexistentSocket(t *testing.T) {
	env := fakeEnv(t.TempDir(), map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
	start := time.Now()
	cli, ep, err := Connect(context.Background(), env)
	elapsed := time.Since(start)

	require.Nil(t, cli)
	require.Equal(t, engine.Endpoint{}, ep)
	require.ErrorIs(t, err, errs.DockerUnavailable)
	require.ErrorIs(t, err, engine.ErrUnavailable, "the attempt's error is in the chain, with its class")
	msg := err.Error()
	t.Logf("error:\n%s", msg)
	require.True(t, strings.HasPrefix(msg, errs.DockerUnavailable.Error()), msg)
	require.Equal(t, 1, strings.Count(msg, "heph: "), "one prefix:\n%s", msg)
	require.Contains(t, msg, "unix:///nonexistent/docker.sock (DOCKER_HOST)")
	require.Contains(t, msg, "/nonexistent/docker.sock: connect: no such file or directory")
	require.Contains(t, msg, "sudo systemctl start docker")
	require.Contains(t, msg, "docker group")
	require.Contains(t, msg, "DOCKER_CONTEXT")
	require.Contains(t, msg, "docker info")
	require.Less(t, elapsed, daemonPingTimeout, "a missing socket fails at once, not after the ping timeout")
}

func TestConnectDiscoveryError(t *testing.T) {
	// Nothing can be tried: the error still matches DockerUnavailable, and
	// the configuration error too, and says which variable is wrong.
	env := fakeEnv(t.TempDir(), map[string]string{"DOCKER_API_VERSION": "one"})
	cli, _, err := Connect(context.Background(), env)
	require.Nil(t, cli)
	require.ErrorIs(t, err, errs.DockerUnavailable)
	require.ErrorIs(t, err, errs.InvalidConfig)
	require.Equal(t, `heph: Docker daemon unavailable: invalid configuration: DOCKER_API_VERSION "one": `+
		`want <major>.<minor>, such as "1.41" (unset it to negotiate the version with the daemon)`, err.Error())
}

func TestConnectFakeDaemon(t *testing.T) {
	tests := []struct {
		name, reason string
		server       string // API version the fake daemon reports
		fixed        string // DOCKER_API_VERSION
		wantVersion  string
		wantErr      string
	}{
		{name: "old daemon", reason: "Docker 20.10 speaks 1.41: negotiation goes down to it", server: "1.41", wantVersion: "1.41"},
		{name: "new daemon", reason: "Docker 29 accepts only >= 1.44: negotiation uses what it says", server: "1.44", wantVersion: "1.44"},
		{name: "fixed version", reason: "DOCKER_API_VERSION turns negotiation off", server: "1.41", fixed: "1.43", wantVersion: "1.43"},
		{name: "too old daemon", reason: "below the SDK's minimum the endpoint fails, with the SDK's reason", server: "1.24", wantErr: "minimum supported API version is"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sock := fakeDaemon(t, enginetest.SocketDir(t), tc.server)
			env := fakeEnv(t.TempDir(), map[string]string{"DOCKER_HOST": "unix://" + sock, "DOCKER_API_VERSION": tc.fixed})

			cli, ep, err := Connect(context.Background(), env)

			if tc.wantErr != "" {
				require.ErrorIs(t, err, errs.DockerUnavailable, tc.reason)
				require.ErrorContains(t, err, tc.wantErr, tc.reason)
				require.Nil(t, cli)
				return
			}
			require.NoError(t, err, tc.reason)
			t.Cleanup(func() { _ = cli.Close() })
			require.Equal(t, tc.wantVersion, cli.APIVersion(), tc.reason)
			require.Equal(t, engine.Endpoint{Host: "unix://" + sock, Source: "DOCKER_HOST", APIVersion: tc.fixed}, ep)
		})
	}
}

func TestConnectRootless(t *testing.T) {
	// The rootless socket is found through XDG_RUNTIME_DIR and answers first,
	// so the default socket is never dialled.
	dir := enginetest.SocketDir(t)
	sock := fakeDaemon(t, dir, "1.41")
	cli, ep, err := Connect(context.Background(), osLikeEnv(t, map[string]string{"XDG_RUNTIME_DIR": dir}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	require.Equal(t, engine.Endpoint{Host: "unix://" + sock, Source: "rootless socket ($XDG_RUNTIME_DIR/docker.sock)"}, ep)
}

func TestConnectEndpointsOrder(t *testing.T) {
	dead := engine.Endpoint{Host: "unix:///nonexistent/rootless.sock", Source: "rootless socket ($XDG_RUNTIME_DIR/docker.sock)"}
	alive := engine.Endpoint{Host: "unix://" + fakeDaemon(t, enginetest.SocketDir(t), "1.41"), Source: "default socket"}

	t.Run("first that answers", func(t *testing.T) {
		cli, ep, err := ConnectEndpoints(context.Background(), []engine.Endpoint{dead, alive}, time.Second, DialSDK)
		require.NoError(t, err)
		t.Cleanup(func() { _ = cli.Close() })
		require.Equal(t, alive, ep)
		require.Equal(t, "1.41", cli.APIVersion())
	})

	t.Run("none answers", func(t *testing.T) {
		dead2 := engine.Endpoint{Host: "unix:///nonexistent/docker.sock", Source: "default socket"}
		_, _, err := ConnectEndpoints(context.Background(), []engine.Endpoint{dead, dead2}, time.Second, DialSDK)
		require.ErrorIs(t, err, errs.DockerUnavailable)
		msg := err.Error()
		first := strings.Index(msg, "unix:///nonexistent/rootless.sock (rootless socket ($XDG_RUNTIME_DIR/docker.sock))")
		second := strings.Index(msg, "unix:///nonexistent/docker.sock (default socket)")
		require.True(t, first >= 0 && second > first, "both endpoints, in order:\n%s", msg)
	})

	t.Run("bad endpoint does not stop the others", func(t *testing.T) {
		bad := engine.Endpoint{Host: "ssh://me@box", Source: "DOCKER_HOST"}
		cli, ep, err := ConnectEndpoints(context.Background(), []engine.Endpoint{bad, alive}, time.Second, DialSDK)
		require.NoError(t, err)
		t.Cleanup(func() { _ = cli.Close() })
		require.Equal(t, alive, ep)
	})
}

func TestConnectEndpointsTimeout(t *testing.T) {
	// A socket that accepts and never answers costs one timeout, then the
	// next endpoint is tried.
	silent := engine.Endpoint{Host: "unix://" + enginetest.SilentSocket(t), Source: "DOCKER_HOST"}
	alive := engine.Endpoint{Host: "unix://" + fakeDaemon(t, enginetest.SocketDir(t), "1.41"), Source: "default socket"}
	start := time.Now()
	_, _, err := ConnectEndpoints(context.Background(), []engine.Endpoint{silent}, 200*time.Millisecond, DialSDK)
	require.Less(t, time.Since(start), 20*time.Second, "one ping timeout, then it gives up")
	require.ErrorIs(t, err, errs.DockerUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "(DOCKER_HOST): no answer within 200ms")

	cli, ep, err := ConnectEndpoints(context.Background(), []engine.Endpoint{silent, alive}, 200*time.Millisecond, DialSDK)
	require.NoError(t, err, "after the silent one, the next is tried")
	t.Cleanup(func() { _ = cli.Close() })
	require.Equal(t, alive, ep)
}

func TestConnectEndpointsCallerDeadline(t *testing.T) {
	// The caller's deadline ends the search: the endpoint being pinged says it
	// was interrupted, the rest were not tried.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	eps := []engine.Endpoint{
		{Host: "unix://" + enginetest.SilentSocket(t), Source: "DOCKER_HOST"},
		{Host: "unix:///b.sock", Source: "default socket"},
	}
	start := time.Now()
	_, _, err := ConnectEndpoints(ctx, eps, time.Minute, DialSDK)
	require.Less(t, time.Since(start), 30*time.Second, "the caller's deadline is sooner than the endpoint's minute")
	require.ErrorIs(t, err, errs.DockerUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "(DOCKER_HOST): interrupted: the caller's context is done: context deadline exceeded")
	require.ErrorContains(t, err, "unix:///b.sock (default socket): not tried: context deadline exceeded")
}

func TestConnectEndpointsCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	eps := []engine.Endpoint{{Host: "unix:///a.sock", Source: "DOCKER_HOST"}}
	dialled := false
	_, _, err := ConnectEndpoints(ctx, eps, time.Second, func(engine.Endpoint) (engine.API, error) {
		dialled = true
		return enginetest.NewFake(), nil
	})
	require.False(t, dialled, "nothing is dialled once the caller gave up")
	require.ErrorIs(t, err, errs.DockerUnavailable)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "unix:///a.sock (DOCKER_HOST): not tried: context canceled")
	require.False(t, errors.Is(err, errs.InvalidConfig))
}

// fakeDialer hands out a fake daemon per endpoint host; a host without one
// fails to dial. It records the order of the dials.
type fakeDialer struct {
	mu      sync.Mutex
	daemons map[string]*enginetest.Fake
	dialled []string
}

func (d *fakeDialer) dial(ep engine.Endpoint) (engine.API, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dialled = append(d.dialled, ep.Host)
	f, ok := d.daemons[ep.Host]
	if !ok {
		return nil, errors.New("configure client: unable to parse docker host")
	}
	return f, nil
}

// failing returns a fake daemon whose Ping fails with err.
func failing(err error) *enginetest.Fake {
	f := enginetest.NewFake()
	f.Hook = func(_ context.Context, call string, _ any) error {
		if call == "Ping" {
			return err
		}
		return nil
	}
	return f
}

// silent returns a fake daemon whose Ping answers only when ctx ends.
func silent() *enginetest.Fake {
	f := enginetest.NewFake()
	f.Hook = func(ctx context.Context, call string, _ any) error {
		if call == "Ping" {
			<-ctx.Done()
		}
		return nil
	}
	return f
}

func TestConnectEndpointsOverFakeDaemons(t *testing.T) {
	a := engine.Endpoint{Host: "unix:///a.sock", Source: "DOCKER_HOST"}
	b := engine.Endpoint{Host: "unix:///b.sock", Source: "rootless socket ($XDG_RUNTIME_DIR/docker.sock)"}
	c := engine.Endpoint{Host: "unix:///c.sock", Source: "default socket"}
	refused := enginetest.Unavailable("dial unix /a.sock: connect: connection refused")

	t.Run("the first that answers; the failed ones are closed, the chosen one is not", func(t *testing.T) {
		fa, fb, fc := failing(refused), enginetest.NewFake(), enginetest.NewFake()
		d := &fakeDialer{daemons: map[string]*enginetest.Fake{a.Host: fa, b.Host: fb, c.Host: fc}}
		cli, ep, err := ConnectEndpoints(context.Background(), []engine.Endpoint{a, b, c}, time.Second, d.dial)
		require.NoError(t, err)
		require.Equal(t, b, ep)
		require.Same(t, fb, cli)
		require.True(t, fa.Closed(), "a client that failed its ping is closed")
		require.False(t, fb.Closed(), "the caller closes the client it gets")
		require.Equal(t, []string{a.Host, b.Host}, d.dialled, "the endpoints after the one that answered are not dialled")
		require.Equal(t, []string{"Ping"}, fb.Calls(), "one ping, nothing else")
	})

	t.Run("a dial error is an attempt like any other", func(t *testing.T) {
		fc := enginetest.NewFake()
		d := &fakeDialer{daemons: map[string]*enginetest.Fake{c.Host: fc}}
		cli, ep, err := ConnectEndpoints(context.Background(), []engine.Endpoint{a, c}, time.Second, d.dial)
		require.NoError(t, err)
		require.Same(t, fc, cli)
		require.Equal(t, c, ep)
	})

	t.Run("none answers: every attempt, in order, each error in the chain", func(t *testing.T) {
		tooOld := errors.New("API version 1.24 is not supported by this client: the minimum supported API version is 1.40")
		fa, fb := failing(refused), failing(tooOld)
		d := &fakeDialer{daemons: map[string]*enginetest.Fake{a.Host: fa, b.Host: fb}}
		cli, ep, err := ConnectEndpoints(context.Background(), []engine.Endpoint{a, b, c}, time.Second, d.dial)
		require.Nil(t, cli)
		require.Equal(t, engine.Endpoint{}, ep)
		require.True(t, fa.Closed())
		require.True(t, fb.Closed())
		require.ErrorIs(t, err, errs.DockerUnavailable)
		require.ErrorIs(t, err, refused)
		require.ErrorIs(t, err, tooOld)
		require.ErrorIs(t, err, engine.ErrUnavailable)
		var ue *UnavailableError
		require.ErrorAs(t, err, &ue)
		require.Equal(t, "unix:///a.sock (DOCKER_HOST): dial unix /a.sock: connect: connection refused\n"+
			"unix:///b.sock (rootless socket ($XDG_RUNTIME_DIR/docker.sock)): "+tooOld.Error()+"\n"+
			"unix:///c.sock (default socket): configure client: unable to parse docker host", ue.Tried())
	})

	t.Run("a silent daemon costs one timeout, then the next is tried", func(t *testing.T) {
		fa, fb := silent(), enginetest.NewFake()
		d := &fakeDialer{daemons: map[string]*enginetest.Fake{a.Host: fa, b.Host: fb}}
		cli, ep, err := ConnectEndpoints(context.Background(), []engine.Endpoint{a, b}, 50*time.Millisecond, d.dial)
		require.NoError(t, err)
		require.Same(t, fb, cli)
		require.Equal(t, b, ep)
		require.True(t, fa.Closed())
	})

	t.Run("the per-endpoint timeout is said in words", func(t *testing.T) {
		d := &fakeDialer{daemons: map[string]*enginetest.Fake{a.Host: silent()}}
		_, _, err := ConnectEndpoints(context.Background(), []engine.Endpoint{a}, 50*time.Millisecond, d.dial)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, "unix:///a.sock (DOCKER_HOST): no answer within 50ms")
		require.NotContains(t, err.Error(), "(stopped", "the caller's context is fine: nothing stopped the search")
	})

	t.Run("the caller's context ends during the last ping", func(t *testing.T) {
		// Every endpoint was tried, the last one interrupted: the message
		// says the search was stopped, and by what.
		ctx, cancel := context.WithCancel(context.Background())
		fb := enginetest.NewFake()
		fb.Hook = func(ctx context.Context, call string, _ any) error {
			cancel() // the caller gives up while we wait for b's answer
			<-ctx.Done()
			return nil
		}
		d := &fakeDialer{daemons: map[string]*enginetest.Fake{a.Host: failing(refused), b.Host: fb}}
		_, _, err := ConnectEndpoints(ctx, []engine.Endpoint{a, b}, time.Minute, d.dial)
		require.ErrorIs(t, err, context.Canceled)
		var ue *UnavailableError
		require.ErrorAs(t, err, &ue)
		require.Equal(t, "unix:///a.sock (DOCKER_HOST): dial unix /a.sock: connect: connection refused\n"+
			"unix:///b.sock (rootless socket ($XDG_RUNTIME_DIR/docker.sock)): interrupted: the caller's context is done: context canceled\n"+
			"(stopped: context canceled)", ue.Tried())
		require.Contains(t, err.Error(), "\n  (stopped: context canceled)\nwhat to do:", "the stop line is not a bullet")
	})

	t.Run("the caller's context ends between two endpoints", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		fa := enginetest.NewFake()
		fa.Hook = func(context.Context, string, any) error {
			cancel() // gives up just as a answers that it is down
			return refused
		}
		d := &fakeDialer{daemons: map[string]*enginetest.Fake{a.Host: fa, b.Host: enginetest.NewFake()}}
		_, _, err := ConnectEndpoints(ctx, []engine.Endpoint{a, b, c}, time.Minute, d.dial)
		require.Equal(t, []string{a.Host}, d.dialled, "b and c are not dialled")
		var ue *UnavailableError
		require.ErrorAs(t, err, &ue)
		require.Equal(t, "unix:///a.sock (DOCKER_HOST): dial unix /a.sock: connect: connection refused\n"+
			"unix:///b.sock (rootless socket ($XDG_RUNTIME_DIR/docker.sock)): not tried: context canceled\n"+
			"unix:///c.sock (default socket): not tried: context canceled", ue.Tried())
	})
}

func TestUnavailableErrorMessage(t *testing.T) {
	a := engine.Endpoint{Host: "unix:///var/run/docker.sock", Source: "default socket"}
	b := engine.Endpoint{Host: "tcp://build-box:2376", Source: `context "ci" (DOCKER_CONTEXT)`}
	denied := errors.New("dial unix /var/run/docker.sock: connect: permission denied")
	whatToDo := "\nwhat to do:" +
		"\n  - start the daemon: sudo systemctl start docker (or run dockerd)" +
		"\n  - \"permission denied\" on the socket: add your user to the docker group (sudo usermod -aG docker $USER) and log in again" +
		"\n  - use another daemon: set DOCKER_HOST (unix:///path/docker.sock, tcp://host:2376) or DOCKER_CONTEXT" +
		"\n  - check with: docker info"
	cases := []struct {
		reason    string
		err       *UnavailableError
		want      string
		wantTried string
		wantIs    []error
	}{
		{
			reason:    "a discovery error: nothing was tried, the cause says what to fix, with one heph: prefix",
			err:       &UnavailableError{cause: errs.Invalid("DOCKER_HOST", "http://x", `unsupported scheme "http"`)},
			want:      `heph: Docker daemon unavailable: invalid configuration: DOCKER_HOST "http://x": unsupported scheme "http"`,
			wantTried: `invalid configuration: DOCKER_HOST "http://x": unsupported scheme "http"`,
			wantIs:    []error{errs.DockerUnavailable, errs.InvalidConfig},
		},
		{
			reason:    "one failed endpoint: a bullet, then what to do",
			err:       &UnavailableError{attempts: []attempt{{a, denied}}},
			want:      "heph: Docker daemon unavailable; tried:\n  - unix:///var/run/docker.sock (default socket): " + denied.Error() + whatToDo,
			wantTried: "unix:///var/run/docker.sock (default socket): " + denied.Error(),
			wantIs:    []error{errs.DockerUnavailable, denied},
		},
		{
			reason: "two failed endpoints, in the order tried",
			err:    &UnavailableError{attempts: []attempt{{b, context.DeadlineExceeded}, {a, denied}}},
			want: "heph: Docker daemon unavailable; tried:\n" +
				`  - tcp://build-box:2376 (context "ci" (DOCKER_CONTEXT)): context deadline exceeded` + "\n" +
				"  - unix:///var/run/docker.sock (default socket): " + denied.Error() + whatToDo,
			wantIs: []error{errs.DockerUnavailable, denied, context.DeadlineExceeded},
		},
		{
			reason: "the caller gave up: the endpoints left are listed as not tried",
			err:    &UnavailableError{attempts: []attempt{{b, denied}}, notTried: []engine.Endpoint{a}, cause: context.Canceled},
			want: "heph: Docker daemon unavailable; tried:\n" +
				`  - tcp://build-box:2376 (context "ci" (DOCKER_CONTEXT)): ` + denied.Error() + "\n" +
				"  - unix:///var/run/docker.sock (default socket): not tried: context canceled" + whatToDo,
			wantIs: []error{errs.DockerUnavailable, denied, context.Canceled},
		},
		{
			reason: "the caller gave up during the last attempt: a stop line, not a bullet",
			err:    &UnavailableError{attempts: []attempt{{a, denied}}, cause: context.DeadlineExceeded},
			want: "heph: Docker daemon unavailable; tried:\n" +
				"  - unix:///var/run/docker.sock (default socket): " + denied.Error() + "\n" +
				"  (stopped: context deadline exceeded)" + whatToDo,
			wantIs: []error{errs.DockerUnavailable, denied, context.DeadlineExceeded},
		},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			require.Equal(t, tc.want, tc.err.Error(), tc.reason)
			if tc.wantTried != "" {
				require.Equal(t, tc.wantTried, tc.err.Tried(), tc.reason)
			}
			for _, target := range tc.wantIs {
				require.ErrorIs(t, tc.err, target, tc.reason)
			}
			require.Equal(t, 1, strings.Count(tc.err.Error(), "heph:"), "one heph: prefix")
			if tc.err.cause == nil || !errors.Is(tc.err.cause, errs.InvalidConfig) {
				require.NotErrorIs(t, tc.err, errs.InvalidConfig, "only a discovery error is a configuration error")
			}
		})
	}
}
