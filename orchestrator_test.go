package heph

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/daemon"
	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/imagepull"
	"github.com/heph-go/heph/internal/parallel"
	"github.com/heph-go/heph/internal/registryauth"
)

// newTestOrchestrator returns an Orchestrator over a fresh fake daemon,
// without a watchdog, for a local daemon seen from outside any container:
// ports are bound and reached on 127.0.0.1, and deciding so makes no call.
func newTestOrchestrator() (*Orchestrator, *enginetest.Fake) {
	f := enginetest.NewFake()
	return newOrchestratorOver(f, "unix:///fake.sock"), f
}

// newOrchestratorOver is newTestOrchestrator over any engine.API and host.
func newOrchestratorOver(api engine.API, host string) *Orchestrator {
	o := newOrchestrator(api, engine.Endpoint{Host: host}, nil)
	o.hostEnv = daemon.HostEnv{Exists: func(string) bool { return false }} // no /.dockerenv
	// No registry credentials from the machine, no pull records written.
	o.creds = registryauth.Env{Getenv: func(string) string { return "" }, Home: func() (string, error) { return "", errors.New("no home in unit tests") }}
	o.records = imagepull.Records{}
	return o
}

// trackedContainers returns what o tracks: container ID → name.
func trackedContainers(o *Orchestrator) map[string]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.containers)
}

// trackedNetworks returns what o tracks: network ID → name.
func trackedNetworks(o *Orchestrator) map[string]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.networks)
}

// failOn makes the fake's call fail with err for the subjects in only (every
// subject when only is empty); other calls go through.
func failOn(f *enginetest.Fake, call string, err error, only ...string) {
	f.Hook = func(_ context.Context, c string, arg any) error {
		if c != call {
			return nil
		}
		if len(only) == 0 {
			return err
		}
		for _, s := range only {
			if arg == s {
				return err
			}
		}
		return nil
	}
}

func TestNewOrchestratorDaemonRefusesMalformedInputBeforeConnecting(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	require.NoError(t, os.WriteFile(cert, []byte("not read before the connection"), 0o600))
	cases := []struct {
		reason string
		d      Daemon
		want   string // the field and the value, in the message
	}{
		{"a socket path without its scheme", Daemon{Host: "/var/run/docker.sock"}, `Daemon.Host "/var/run/docker.sock": a socket path needs the unix:// scheme`},
		{"ssh with a path", Daemon{Host: "ssh://me@box/sock"}, `Daemon.Host "ssh://me@box/sock": an ssh:// address cannot hold a path`},
		{"an unknown scheme", Daemon{Host: "http://box:2375"}, `Daemon.Host "http://box:2375": unsupported scheme "http"`},
		{"a unix scheme without a path", Daemon{Host: "unix://"}, `Daemon.Host "unix://": unix:// needs a path`},
		{"a tcp address that does not parse", Daemon{Host: "tcp://[::1"}, `Daemon.Host "tcp://[::1": not a valid tcp:// address`},
		{"no host at all: the environment is not silently ignored", Daemon{APIVersion: "1.41"}, `Daemon.Host "": is empty`},
		{"an API version that is not major.minor", Daemon{Host: "unix:///x.sock", APIVersion: "latest"}, `Daemon.APIVersion "latest": want <major>.<minor>`},
		{"an API version with a patch number", Daemon{Host: "unix:///x.sock", APIVersion: "1.41.0"}, `Daemon.APIVersion "1.41.0"`},
		{"a CA file that does not exist", Daemon{Host: "tcp://box", TLSVerify: true, CAFile: filepath.Join(dir, "ca.pem")}, `Daemon.CAFile "` + filepath.Join(dir, "ca.pem") + `"`},
		{"a certificate without its key", Daemon{Host: "tcp://box", TLS: true, CertFile: cert}, `Daemon.KeyFile "": is empty while CertFile is set`},
		{"a key without its certificate", Daemon{Host: "tcp://box", TLS: true, KeyFile: cert}, `Daemon.CertFile "": is empty while KeyFile is set`},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			o, err := NewOrchestrator(tc.d)
			require.Nil(t, o)
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.NotErrorIs(t, err, ErrDockerUnavailable, "refused, not tried")
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestNewOrchestratorDaemonThatDoesNotAnswerIsUnavailable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	_, err := NewOrchestrator(Daemon{Host: "unix://" + sock, APIVersion: "v1.41"})
	require.ErrorIs(t, err, ErrDockerUnavailable, "a well-formed daemon is tried")
	require.NotErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, sock, "the message names the place tried")
}

func TestDaemonEndpointCarriesEverySetting(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{}
	for _, n := range []string{"ca.pem", "cert.pem", "key.pem"} {
		files[n] = filepath.Join(dir, n)
		require.NoError(t, os.WriteFile(files[n], nil, 0o600))
	}
	ep, err := Daemon{Host: "tcp://box", TLSVerify: true, CAFile: files["ca.pem"], CertFile: files["cert.pem"], KeyFile: files["key.pem"], APIVersion: "1.41"}.endpoint()
	require.NoError(t, err)
	require.Equal(t, engine.Endpoint{
		Host: "tcp://box:2376", Source: "heph.Daemon", TLS: true, TLSVerify: true,
		CAFile: files["ca.pem"], CertFile: files["cert.pem"], KeyFile: files["key.pem"], APIVersion: "1.41",
	}, ep, "TLSVerify implies TLS, and a TLS port defaults to 2376: the watchdog gets the same endpoint")

	ep, err = Daemon{Host: "tcp://box"}.endpoint()
	require.NoError(t, err)
	require.Equal(t, "tcp://box:2375", ep.Host, "without TLS the port defaults to 2375")
}

func TestReaperEnvironmentVariable(t *testing.T) {
	for _, tc := range []struct {
		value string
		on    bool
	}{
		{"", true}, {"on", true}, {"1", true}, {"true", true}, {"YES", true}, {" on ", true},
		{"off", false}, {"0", false}, {"false", false}, {"No", false},
	} {
		t.Run(strconv.Quote(tc.value), func(t *testing.T) {
			t.Setenv(EnvReaper, tc.value)
			on, err := reaperOn()
			require.NoError(t, err)
			require.Equal(t, tc.on, on)
		})
	}
}

func TestInvalidReaperValueIsRefusedBeforeAnyDockerCall(t *testing.T) {
	t.Setenv(EnvReaper, "sometimes")
	_, err := reaperOn()
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.EqualError(t, err, `heph: invalid configuration: HEPH_REAPER "sometimes": want 1, true, yes or on; 0, false, no or off`)

	o, f := newTestOrchestrator()
	_, err = o.CreateContainer(context.Background(), ContainerConfig{Image: "app"})
	require.ErrorIs(t, err, ErrInvalidConfig)
	_, err = o.CreateNetwork(context.Background(), NetworkConfig{})
	require.ErrorIs(t, err, ErrInvalidConfig)
	_, err = NewContainer("app").Run(context.Background(), o)
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, `HEPH_REAPER "sometimes"`)
	require.Empty(t, f.Calls(), "nothing is asked of the daemon with an invalid HEPH_REAPER")
}

func TestEveryResourceCarriesTheSessionLabels(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	var specs []any
	var mu sync.Mutex
	f.Hook = func(_ context.Context, call string, arg any) error {
		if call == "ContainerCreate" || call == "NetworkCreate" {
			mu.Lock()
			specs = append(specs, arg)
			mu.Unlock()
		}
		return nil
	}
	ctx := context.Background()
	n, err := o.CreateNetwork(ctx, NetworkConfig{Labels: map[string]string{"team": "core"}})
	require.NoError(t, err)
	_, err = o.CreateContainer(ctx, ContainerConfig{Image: "app", Labels: map[string]string{"team": "core"}, Networks: []string{n.Name()}})
	require.NoError(t, err)

	host, _ := os.Hostname()
	require.Len(t, specs, 2)
	for _, s := range specs {
		var l map[string]string
		switch s := s.(type) {
		case engine.NetworkSpec:
			l = s.Labels
		case engine.ContainerSpec:
			l = s.Labels
			require.Equal(t, "app", l[LabelService])
		}
		require.Equal(t, "true", l[LabelManaged])
		require.Equal(t, o.Session(), l[LabelSession])
		require.Equal(t, strconv.Itoa(os.Getpid()), l[LabelPID])
		require.Equal(t, host, l[LabelHost])
		require.Equal(t, "core", l["team"])
		created, err := time.Parse(time.RFC3339, l[LabelCreated])
		require.NoError(t, err, "heph.created is RFC 3339")
		require.WithinDuration(t, time.Now(), created, time.Minute)
	}
}

func TestSessionsAreDistinctAndCloseClosesTheConnection(t *testing.T) {
	t.Parallel()
	a, fa := newTestOrchestrator()
	b, _ := newTestOrchestrator()
	require.NotEqual(t, a.Session(), b.Session())
	require.Regexp(t, `^[0-9a-f-]{36}$`, a.Session())
	require.False(t, fa.Closed())
	require.NoError(t, a.Close())
	require.True(t, fa.Closed())
}

func TestTeardownRemovesContainersConcurrentlyThenNetworksThenVolumes(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	ctx := context.Background()
	n, err := o.CreateNetwork(ctx, NetworkConfig{})
	require.NoError(t, err)
	const containers = 3
	for i := range containers {
		_, err := o.CreateContainer(ctx, ContainerConfig{
			Image: "app", Service: "c" + strconv.Itoa(i), Networks: []string{n.Name()},
			Mounts: []Mount{{Type: MountVolume, Source: "cache" + strconv.Itoa(i), Target: "/cache"}},
		})
		require.NoError(t, err)
	}
	f.AddVolume(engine.Volume{Name: "users-own"}) // not the session's: kept

	var mu sync.Mutex
	var order []string
	inFlight := 0
	all := make(chan struct{})
	f.Hook = func(ctx context.Context, call string, _ any) error {
		mu.Lock()
		order = append(order, call)
		if call == "ContainerRemove" {
			if inFlight++; inFlight == containers {
				close(all)
			}
		}
		mu.Unlock()
		if call == "ContainerRemove" {
			select { // every removal is in flight before any ends
			case <-all:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	require.NoError(t, o.Teardown(tctx))
	require.Equal(t, []string{"ContainerRemove", "ContainerRemove", "ContainerRemove", "NetworkRemove", "VolumeList",
		"VolumeRemove", "VolumeRemove", "VolumeRemove"}, order, "containers (concurrently), then the network, then the session's volumes")
	require.Empty(t, trackedContainers(o))
	require.Empty(t, trackedNetworks(o))
	nc, nn, nv := f.Counts()
	require.Equal(t, [3]int{0, 0, 1}, [3]int{nc, nn, nv}, "only the volume heph did not make is left")
	require.NoError(t, o.Teardown(ctx), "a second Teardown finds nothing to do")
}

func TestTeardownJoinsErrorsAndIgnoresWhatIsGone(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	ctx := context.Background()
	gone, err := o.CreateContainer(ctx, ContainerConfig{Image: "app", Service: "gone"})
	require.NoError(t, err)
	stuck, err := o.CreateContainer(ctx, ContainerConfig{Image: "app", Service: "stuck"})
	require.NoError(t, err)
	n, err := o.CreateNetwork(ctx, NetworkConfig{})
	require.NoError(t, err)
	f.AddVolume(engine.Volume{Name: "v", Labels: map[string]string{LabelSession: o.Session()}})

	// Removed behind heph's back: not a failure of the teardown.
	require.NoError(t, f.ContainerRemove(ctx, gone.ID()))
	f.Hook = func(_ context.Context, call string, arg any) error {
		switch {
		case call == "ContainerRemove" && arg == stuck.ID():
			return errors.New("device or resource busy")
		case call == "NetworkRemove":
			return enginetest.Conflict("network %s has active endpoints", n.Name())
		case call == "VolumeRemove":
			return enginetest.Conflict("volume is in use")
		}
		return nil
	}
	err = o.Teardown(ctx)
	require.Error(t, err)
	// A volume in use is no failure: a named volume is shared by name, and
	// a container of another session may use it (its last user removes it).
	require.Equal(t, `heph: remove container "`+stuck.Name()+`": device or resource busy`+"\n"+
		`heph: remove network "`+n.Name()+`": network `+n.Name()+` has active endpoints`, err.Error())
	require.ErrorIs(t, err, engine.ErrConflict, "the daemon's error class still matches")
	require.Equal(t, map[string]string{stuck.ID(): stuck.Name()}, trackedContainers(o), "what could not be removed stays tracked, for the next Teardown")
	require.Equal(t, map[string]string{n.ID(): n.Name()}, trackedNetworks(o))

	f.Hook = nil
	require.NoError(t, o.Teardown(ctx), "the next Teardown removes the rest")
	nc, nn, nv := f.Counts()
	require.Zero(t, nc+nn+nv)
}

func TestTeardownReportsAVolumeListFailure(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	failOn(f, "VolumeList", enginetest.Unavailable("Cannot connect to the Docker daemon"))
	// A daemon that does not answer is tried again, until ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := o.Teardown(ctx)
	require.ErrorIs(t, err, ErrDockerUnavailable)
	require.Regexp(t, `^heph: list volumes of session "`+o.Session()+`": Cannot connect to the Docker daemon \(the daemon did not answer \d+ tries over \S+\)$`, err.Error())
	require.Greater(t, f.CallCount("VolumeList"), 1, "tried again")
}

func TestEachConcurrentlyKeepsTheOrderOfItems(t *testing.T) {
	t.Parallel()
	items := []int{0, 1, 2, 3, 4, 5, 6, 7}
	var wg sync.WaitGroup
	wg.Add(len(items))
	errs := parallel.Each(items, func(i, item int) error {
		if i != item {
			return errors.New("wrong index")
		}
		wg.Done()
		wg.Wait() // all run at once, or this never returns
		if item%2 == 1 {
			return errors.New(strconv.Itoa(item))
		}
		return nil
	})
	require.Len(t, errs, len(items))
	for i, err := range errs {
		if i%2 == 1 {
			require.EqualError(t, err, strconv.Itoa(i))
		} else {
			require.NoError(t, err)
		}
	}
}
