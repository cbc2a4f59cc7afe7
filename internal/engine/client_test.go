package engine_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/errs"
)

// IDs in the recorded responses (internal/enginetest/testdata).
const (
	appID     = "2e257bdcc1bced5777353e21c0cecb7e78e68f80f251dfe6c2cda955e9cb5233" // heph-record-app
	exitID    = "f512a60e7e78ea47c3c56dd6991eb19a0f216ae3461e9dca6597fff5a60aaef9" // heph-record-exit
	netID     = "eddb823900f221fab434c528f5dac35fc39e07a6ae20bbc8e81789aff4db8774" // heph-record-net
	bridgeID  = "b73dc08d47c828522bf1b4a02790cf0b37369e985e5d08b178a1c49eee60740f"
	execID    = "edb4cf45ba833b10bc7f72bae39256e92f214b8092456713c041cce83fc8a193"
	imageID   = "sha256:d2d659f96e32432652c7a41e569bb3a5cd8ff2d6dc31531757672766bc40b2a7"
	imageName = "heph-record/app:1"
)

// newClient starts a fake Engine API with its recorded answers and returns
// a client that negotiated its API version with it.
func newClient(t *testing.T) (*enginetest.Server, *engine.Client) {
	t.Helper()
	srv := enginetest.NewServer(t)
	return srv, dial(t, srv.Endpoint())
}

func dial(t *testing.T, ep engine.Endpoint) *engine.Client {
	t.Helper()
	c, err := engine.Dial(ep)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	require.NoError(t, c.Ping(t.Context()))
	return c
}

// only returns the one request that matched pattern.
func only(t *testing.T, srv *enginetest.Server, pattern string) enginetest.Request {
	t.Helper()
	reqs := srv.Find(pattern)
	require.Len(t, reqs, 1, "requests matching %q among %v", pattern, paths(srv.Requests()))
	return reqs[0]
}

func paths(reqs []enginetest.Request) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

// field is the raw JSON at path in a JSON object ("HostConfig",
// "PortBindings"); null when absent.
func field(t *testing.T, body []byte, path ...string) string {
	t.Helper()
	raw := json.RawMessage(body)
	for _, key := range path {
		var obj map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(raw, &obj), "at %q of %s", key, body)
		var ok bool
		if raw, ok = obj[key]; !ok {
			return "null"
		}
	}
	return string(raw)
}

// filtersOf decodes the "filters" query parameter as the daemon does.
func filtersOf(t *testing.T, r enginetest.Request) map[string]map[string]bool {
	t.Helper()
	var f map[string]map[string]bool
	require.NoError(t, json.Unmarshal([]byte(r.Query.Get("filters")), &f), "filters=%q", r.Query.Get("filters"))
	return f
}

// edit returns a recorded JSON body changed by fn.
func edit[T any](t *testing.T, name string, fn func(*T)) []byte {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(enginetest.Fixture(name), &v))
	fn(&v)
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestPingNegotiatesTheAPIVersion(t *testing.T) {
	srv, c := newClient(t)
	require.Equal(t, "1.41", c.APIVersion())
	_, err := c.Version(t.Context())
	require.NoError(t, err)
	reqs := srv.Requests()
	require.Equal(t, []string{"HEAD /_ping", "GET /version"}, paths(reqs))
	require.Equal(t, "", reqs[0].Version, "the ping is not versioned")
	require.Equal(t, "1.41", reqs[1].Version, "later calls speak the negotiated version")
}

func TestPingNegotiation(t *testing.T) {
	tests := []struct {
		name, daemon, fixed string
		want, wantErr       string
	}{
		{name: "a newer daemon: the newer version", daemon: "1.45", want: "1.45"},
		{name: "a daemon newer than the client: the client's maximum", daemon: "1.99", want: client.MaxAPIVersion},
		{name: "a fixed version is not negotiated", daemon: "1.45", fixed: "1.40", want: "1.40"},
		{name: "below the client's minimum: refused", daemon: "1.39", wantErr: "minimum supported API version is 1.40"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := enginetest.NewServer(t)
			srv.HandleFunc("HEAD /_ping", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Api-Version", tt.daemon)
			})
			ep := srv.Endpoint()
			ep.APIVersion = tt.fixed
			c, err := engine.Dial(ep)
			require.NoError(t, err)
			defer c.Close()
			err = c.Ping(t.Context())
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, c.APIVersion())
			_, err = c.Info(t.Context())
			require.NoError(t, err)
			require.Equal(t, tt.want, only(t, srv, "GET /info").Version)
		})
	}
}

func TestVersion(t *testing.T) {
	_, c := newClient(t)
	v, err := c.Version(t.Context())
	require.NoError(t, err)
	require.Equal(t, engine.Version{
		Product: "", Version: "20.10.24+dfsg1", // Debian's build names no platform
		APIVersion: "1.41", MinAPIVersion: "1.12", OS: "linux", Arch: "amd64",
		Components: []string{"Engine", "containerd", "runc", "docker-init"},
	}, v)
}

func TestVersionAndInfoErrors(t *testing.T) {
	srv, c := newClient(t)
	srv.Handle("GET /version", enginetest.Error(500, "version unavailable"))
	srv.Handle("GET /info", enginetest.Error(500, "info unavailable"))
	_, err := c.Version(t.Context())
	require.ErrorContains(t, err, "version unavailable")
	_, err = c.Info(t.Context())
	require.ErrorContains(t, err, "info unavailable")
}

func TestInfo(t *testing.T) {
	srv, c := newClient(t)
	in, err := c.Info(t.Context())
	require.NoError(t, err)
	require.Equal(t, engine.Info{Name: "vm", OSType: "linux", SecurityOptions: []string{"name=seccomp,profile=default"}}, in)

	srv.Handle("GET /info", enginetest.JSON(200, edit(t, "info", func(v *map[string]any) {
		(*v)["SecurityOptions"] = []string{"name=seccomp,profile=default", "name=rootless", "name=cgroupns"}
	})))
	in, err = c.Info(t.Context())
	require.NoError(t, err)
	require.True(t, in.Rootless, "name=rootless among the security options")
}

func TestErrorClasses(t *testing.T) {
	tests := []struct {
		name    string
		answer  http.Handler
		class   error // nil: none of heph's classes
		sdk     func(error) bool
		message string
	}{
		{"404 recorded", enginetest.Recorded("error-container-not-found"), engine.ErrNotFound, cerrdefs.IsNotFound, "No such container: heph-record-nope"},
		{"409 recorded", enginetest.Recorded("error-container-name-conflict"), engine.ErrConflict, cerrdefs.IsConflict, `The container name "/heph-record-app" is already in use`},
		// The daemon refuses to remove a network with endpoints with 403.
		{"403 recorded", enginetest.Recorded("error-network-in-use"), engine.ErrConflict, cerrdefs.IsPermissionDenied, "has active endpoints"},
		{"500", enginetest.Error(500, "driver failed"), nil, cerrdefs.IsInternal, "driver failed"},
		{"400", enginetest.Error(400, "bad parameter"), nil, cerrdefs.IsInvalidArgument, "bad parameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newClient(t)
			srv.Handle("GET /containers/{id}/json", tt.answer)
			_, err := c.ContainerInspect(t.Context(), "x")
			require.Error(t, err)
			require.ErrorContains(t, err, tt.message)
			require.True(t, tt.sdk(err), "the SDK's error stays in the chain: %v", err)
			for _, class := range []error{engine.ErrNotFound, engine.ErrConflict, engine.ErrUnavailable} {
				require.Equal(t, class == tt.class, errors.Is(err, class), "errors.Is(%v, %v)", err, class)
			}
		})
	}
}

func TestUnreachableDaemonIsErrUnavailable(t *testing.T) {
	dir, err := os.MkdirTemp("", "heph")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })

	// A socket file nobody listens on any more.
	dead := filepath.Join(dir, "dead.sock")
	l, err := net.Listen("unix", dead)
	require.NoError(t, err)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, l.Close())
	// A TCP port nobody listens on.
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedPort := tl.Addr().String()
	require.NoError(t, tl.Close())

	for _, host := range []string{"unix://" + dead, "unix://" + filepath.Join(dir, "missing.sock"), "tcp://" + closedPort} {
		t.Run(host, func(t *testing.T) {
			c, err := engine.Dial(engine.Endpoint{Host: host})
			require.NoError(t, err, "Dial makes no call")
			defer c.Close()
			err = c.Ping(t.Context())
			require.ErrorIs(t, err, engine.ErrUnavailable)
			require.True(t, client.IsErrConnectionFailed(err), "the SDK's error stays in the chain: %v", err)
			_, err = c.ContainerList(t.Context(), nil)
			require.ErrorIs(t, err, engine.ErrUnavailable)
			require.False(t, errors.Is(err, engine.ErrNotFound) || errors.Is(err, engine.ErrConflict))

			opErr := engine.Op("list containers", "", err, errs.ContainerNotFound)
			require.ErrorIs(t, opErr, errs.DockerUnavailable)
			require.ErrorIs(t, opErr, engine.ErrUnavailable)
			require.False(t, errors.Is(opErr, errs.ContainerNotFound))
			require.Equal(t, 1, strings.Count(opErr.Error(), "heph: "), opErr.Error())
		})
	}
}

func TestOp(t *testing.T) {
	srv, c := newClient(t)
	srv.Handle("GET /containers/{id}/json", enginetest.Recorded("error-container-not-found"))
	_, err := c.ContainerInspect(t.Context(), "heph-record-nope")

	opErr := engine.Op("inspect container", "heph-record-nope", err, errs.ContainerNotFound)
	require.ErrorIs(t, opErr, errs.ContainerNotFound, "the sentinel for a missing subject")
	require.ErrorIs(t, opErr, engine.ErrNotFound)
	require.True(t, cerrdefs.IsNotFound(opErr), "the SDK's error stays in the chain")
	require.Equal(t, `heph: inspect container "heph-record-nope": Error response from daemon: No such container: heph-record-nope`, opErr.Error())

	require.NotErrorIs(t, engine.Op("inspect container", "x", err, nil), errs.ContainerNotFound, "no sentinel asked for")
	require.NoError(t, engine.Op("inspect container", "x", nil, errs.ContainerNotFound))

	// A cause that already says "heph: " (an error heph made) does not stutter.
	nested := engine.Op("start", "app", engine.Op("create container", "heph-app-1", errors.New("boom"), nil), nil)
	require.Equal(t, `heph: start "app": create container "heph-app-1": boom`, nested.Error())
	require.Equal(t, 1, strings.Count(nested.Error(), "heph: "))

	// A conflict gets no sentinel of its own, but keeps its class.
	srv.Handle("GET /containers/{id}/json", enginetest.Error(409, "removal in progress"))
	_, err = c.ContainerInspect(t.Context(), "x")
	opErr = engine.Op("remove container", "x", err, errs.ContainerNotFound)
	require.ErrorIs(t, opErr, engine.ErrConflict)
	require.NotErrorIs(t, opErr, errs.ContainerNotFound)
	require.Equal(t, `heph: remove container "x": Error response from daemon: removal in progress`, opErr.Error())
}

func TestFilterAdd(t *testing.T) {
	var f engine.Filter
	f = f.Add("label", "a=1").Add("label", "b=2", "c=3").Add("name", "^/heph-")
	require.Equal(t, engine.Filter{"label": {"a=1", "b=2", "c=3"}, "name": {"^/heph-"}}, f)
}

func TestCloseIsIdempotent(t *testing.T) {
	_, c := newClient(t)
	require.NoError(t, c.Close())
	require.NoError(t, c.Close()) // and dial's cleanup a third time
}

func TestListCallsReturnTheDaemonsError(t *testing.T) {
	srv, c := newClient(t)
	for _, route := range []string{"GET /containers/json", "GET /images/json", "GET /networks", "GET /volumes"} {
		srv.Handle(route, enginetest.Error(500, "boom: "+route))
	}
	calls := map[string]func() error{
		"GET /containers/json": func() error { _, err := c.ContainerList(t.Context(), nil); return err },
		"GET /images/json":     func() error { _, err := c.ImageList(t.Context(), nil); return err },
		"GET /networks":        func() error { _, err := c.NetworkList(t.Context(), nil); return err },
		"GET /volumes":         func() error { _, err := c.VolumeList(t.Context(), nil); return err },
	}
	for route, call := range calls {
		require.ErrorContains(t, call(), "boom: "+route)
	}
}
