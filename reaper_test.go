package heph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
)

// Unit tests of the watchdog's pieces, without Docker: the session lines,
// the removal loop at the dockerAPI seam, the parent's bookkeeping, the
// process start and handshake, and one whole watchdog process (this test
// binary, re-executed) against a fake daemon on a unix socket.

func TestReadCommands(t *testing.T) {
	t.Parallel()
	var logged []string
	logf := func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
	in := "session 4f1c0a52-9d5e-4d0b-8f7e-0c8e2f1b6a11\n" +
		"\n" + // blank: ignored
		"  session   4f1c0a52-9d5e-4d0b-8f7e-0c8e2f1b6a11  \r\n" + // the same again, padded, CRLF
		"keep 0123abcd\n" +
		"session with spaces\n" + // not an id: logged, ignored
		"4f1c0a52-9d5e-4d0b-8f7e-0c8e2f1b6a11\n" + // no verb
		"session a\"b\n" +
		"session " + strings.Repeat("x", 129) + "\n" + // too long
		"forget s1\n" + // unknown command
		"keep heph-net-1a2b3c4d\n" +
		"session custom_session.2" // last line without a newline still counts
	sessions, keep, err := readCommands(strings.NewReader(in), logf)
	require.NoError(t, err)
	require.Equal(t, []string{"4f1c0a52-9d5e-4d0b-8f7e-0c8e2f1b6a11", "custom_session.2"}, sessions)
	require.Equal(t, map[string]bool{"0123abcd": true, "heph-net-1a2b3c4d": true}, keep)
	require.Len(t, slices.DeleteFunc(logged, func(s string) bool { return !strings.HasPrefix(s, "ignored") }), 5)
}

type failingReader struct{ r io.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("read |0: input/output error")
	}
	return n, err
}

func TestReadCommandsKeepsWhatCameBeforeAReadError(t *testing.T) {
	t.Parallel()
	sessions, _, err := readCommands(failingReader{strings.NewReader("session s1\nsession s2\n")}, func(string, ...any) {})
	require.Error(t, err)
	require.Equal(t, []string{"s1", "s2"}, sessions)
}

func TestValidID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		"4f1c0a52-9d5e-4d0b-8f7e-0c8e2f1b6a11": true,
		"A.b_c-9":                              true,
		"":                                     false,
		"a b":                                  false,
		"a,b":                                  false,
		"a=b":                                  false,
		strings.Repeat("a", 128):               true,
		strings.Repeat("a", 129):               false,
	} {
		require.Equal(t, want, validID(id), "%q", id)
	}
}

func TestReaperDisabled(t *testing.T) {
	for v, off := range map[string]bool{"off": true, "OFF": true, " false ": true, "0": true, "": false, "on": false, "1": false, "yes": false} {
		t.Setenv(EnvReaper, v)
		require.Equal(t, off, reaperDisabled(), "%s=%q", EnvReaper, v)
	}
}

// sessionFilterOf checks that opts select heph's resources of session id.
func sessionFilterOf(id string) func(client.Filters) bool {
	return func(f client.Filters) bool {
		return f["label"][LabelManaged+"=true"] && f["label"][LabelSession+"="+id] && len(f["label"]) == 2 && len(f) == 1
	}
}

func containers(names ...string) client.ContainerListResult {
	var r client.ContainerListResult
	for _, n := range names {
		r.Items = append(r.Items, container.Summary{ID: "id-" + n, Names: []string{"/" + n}, State: container.StateRunning})
	}
	return r
}

func networks(names ...string) client.NetworkListResult {
	var r client.NetworkListResult
	for _, n := range names {
		r.Items = append(r.Items, network.Summary{Network: network.Network{ID: "id-" + n, Name: n}})
	}
	return r
}

func volumes(names ...string) client.VolumeListResult {
	var r client.VolumeListResult
	for _, n := range names {
		r.Items = append(r.Items, volume.Volume{Name: n})
	}
	return r
}

var fastRetry = retryPolicy{initial: time.Millisecond, max: 5 * time.Millisecond, maxElapsed: 5 * time.Second}

func expectLists(m *mockAPI, id string, c client.ContainerListResult, n client.NetworkListResult, v client.VolumeListResult) {
	is := sessionFilterOf(id)
	m.On("ContainerList", anyCtx, mock.MatchedBy(func(o client.ContainerListOptions) bool { return o.All && is(o.Filters) })).Return(c, nil).Once()
	m.On("NetworkList", anyCtx, mock.MatchedBy(func(o client.NetworkListOptions) bool { return is(o.Filters) })).Return(n, nil).Once()
	m.On("VolumeList", anyCtx, mock.MatchedBy(func(o client.VolumeListOptions) bool { return is(o.Filters) })).Return(v, nil).Once()
}

func names(rs []Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.Kind)+" "+r.Name)
	}
	slices.Sort(out)
	return out
}

func TestRemovalRetriesUntilAPassFindsNothing(t *testing.T) {
	t.Parallel()
	m := &mockAPI{}
	force := client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}
	// Pass 1: web goes, db is being removed already, the network still has
	// an endpoint, the volume goes.
	expectLists(m, "s1", containers("web", "db"), networks("net"), volumes("vol"))
	m.On("ContainerRemove", anyCtx, "id-web", force).Return(client.ContainerRemoveResult{}, nil).Once()
	m.On("ContainerRemove", anyCtx, "id-db", force).Return(client.ContainerRemoveResult{}, cerrdefs.ErrConflict.WithMessage("removal of container db is already in progress")).Once()
	m.On("NetworkRemove", anyCtx, "id-net", client.NetworkRemoveOptions{}).Return(client.NetworkRemoveResult{}, cerrdefs.ErrPermissionDenied.WithMessage("error while removing network: network net has active endpoints")).Once()
	m.On("VolumeRemove", anyCtx, "vol", client.VolumeRemoveOptions{Force: true}).Return(client.VolumeRemoveResult{}, nil).Once()
	// Pass 2: db is gone by the time we ask (not a failure), the network goes.
	expectLists(m, "s1", containers("db"), networks("net"), volumes())
	m.On("ContainerRemove", anyCtx, "id-db", force).Return(client.ContainerRemoveResult{}, cerrdefs.ErrNotFound.WithMessage("No such container: db")).Once()
	m.On("NetworkRemove", anyCtx, "id-net", client.NetworkRemoveOptions{}).Return(client.NetworkRemoveResult{}, nil).Once()
	// Pass 3 confirms.
	expectLists(m, "s1", containers(), networks(), volumes())

	var log []string
	removed, kept, err := removal{api: m, sessions: []string{"s1"}, policy: fastRetry, logf: func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) }}.run(context.Background())
	require.Empty(t, kept)
	require.NoError(t, err)
	require.Equal(t, []string{"container web", "network net", "volume vol"}, names(removed))
	m.AssertExpectations(t)
	require.Contains(t, strings.Join(log, "\n"), "remove network net: ", "failures are logged")
}

func TestRemovalSettlesBeforeTheLastPass(t *testing.T) {
	t.Parallel()
	m := &mockAPI{}
	// Nothing at first; a container whose create was in flight appears
	// after the settle time and is removed; then nothing again.
	expectLists(m, "s1", containers(), networks(), volumes())
	expectLists(m, "s1", containers("late"), networks(), volumes())
	m.On("ContainerRemove", anyCtx, "id-late", mock.Anything).Return(client.ContainerRemoveResult{}, nil).Once()
	expectLists(m, "s1", containers(), networks(), volumes())
	p := fastRetry
	p.settle = 20 * time.Millisecond
	start := time.Now()
	removed, _, err := removal{api: m, sessions: []string{"s1"}, policy: p}.run(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"container late"}, names(removed))
	require.GreaterOrEqual(t, time.Since(start), p.settle)
	m.AssertExpectations(t)
}

func TestRemovalOnlyAsksForItsSessions(t *testing.T) {
	t.Parallel()
	m := &mockAPI{}
	for _, id := range []string{"s1", "s2"} {
		expectLists(m, id, containers("c-"+id), networks(), volumes())
		m.On("ContainerRemove", anyCtx, "id-c-"+id, mock.Anything).Return(client.ContainerRemoveResult{}, nil).Once()
		expectLists(m, id, containers(), networks(), volumes())
	}
	removed, _, err := removal{api: m, sessions: []string{"s1", "s2"}, policy: fastRetry}.run(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"container c-s1", "container c-s2"}, names(removed))
	m.AssertExpectations(t) // every list call carried one of the two session filters
}

func TestRemovalGivesUpWithWhatIsLeft(t *testing.T) {
	t.Parallel()
	m := &mockAPI{}
	m.On("ContainerList", anyCtx, mock.Anything).Return(containers("stuck"), nil)
	m.On("NetworkList", anyCtx, mock.Anything).Return(networks(), nil)
	m.On("VolumeList", anyCtx, mock.Anything).Return(volumes(), nil)
	cause := cerrdefs.ErrUnknown.WithMessage("driver failed to remove root filesystem")
	m.On("ContainerRemove", anyCtx, "id-stuck", mock.Anything).Return(client.ContainerRemoveResult{}, cause)
	p := fastRetry
	p.maxElapsed = 100 * time.Millisecond
	start := time.Now()
	removed, _, err := removal{api: m, sessions: []string{"s1"}, policy: p}.run(context.Background())
	require.Empty(t, removed)
	require.ErrorIs(t, err, cause)
	require.ErrorContains(t, err, "still there: container stuck")
	require.Less(t, time.Since(start), 2*time.Second)
	require.Greater(t, len(m.Calls), 6, "it retried")
}

func TestRemovalRetriesWhileTheDaemonIsDown(t *testing.T) {
	t.Parallel()
	m := &mockAPI{}
	down := fmt.Errorf("dial unix /var/run/docker.sock: %w", syscall.ECONNREFUSED)
	m.On("ContainerList", anyCtx, mock.Anything).Return(client.ContainerListResult{}, down).Twice()
	expectLists(m, "s1", containers("web"), networks(), volumes())
	m.On("ContainerRemove", anyCtx, "id-web", mock.Anything).Return(client.ContainerRemoveResult{}, nil).Once()
	expectLists(m, "s1", containers(), networks(), volumes())
	removed, _, err := removal{api: m, sessions: []string{"s1"}, policy: fastRetry}.run(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"container web"}, names(removed))

	m = &mockAPI{}
	m.On("ContainerList", anyCtx, mock.Anything).Return(client.ContainerListResult{}, down)
	p := fastRetry
	p.maxElapsed = 50 * time.Millisecond
	_, _, err = removal{api: m, sessions: []string{"s1"}, policy: p}.run(context.Background())
	require.ErrorIs(t, err, ErrDockerUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestRemovalKeepsWhatItIsToldAndWhatKeptContainersUse(t *testing.T) {
	t.Parallel()
	m := &mockAPI{}
	// web is kept (by ID), db is not; the network and the volume are not
	// kept themselves but web still uses them.
	expectLists(m, "s1", containers("web", "db"), networks("net"), volumes("vol"))
	m.On("ContainerRemove", anyCtx, "id-db", mock.Anything).Return(client.ContainerRemoveResult{}, nil).Once()
	m.On("NetworkRemove", anyCtx, "id-net", mock.Anything).Return(client.NetworkRemoveResult{}, cerrdefs.ErrPermissionDenied.WithMessage("error while removing network: network net id id-net has active endpoints")).Once()
	m.On("VolumeRemove", anyCtx, "vol", mock.Anything).Return(client.VolumeRemoveResult{}, cerrdefs.ErrConflict.WithMessage("remove vol: volume is in use - [id-web]")).Once()
	// The confirming pass finds only what is kept.
	expectLists(m, "s1", containers("web"), networks("net"), volumes("vol"))
	m.On("NetworkRemove", anyCtx, "id-net", mock.Anything).Return(client.NetworkRemoveResult{}, cerrdefs.ErrPermissionDenied.WithMessage("network net has active endpoints")).Once()
	m.On("VolumeRemove", anyCtx, "vol", mock.Anything).Return(client.VolumeRemoveResult{}, cerrdefs.ErrConflict.WithMessage("volume is in use")).Once()
	var log []string
	removed, kept, err := removal{api: m, sessions: []string{"s1"}, keep: map[string]bool{"id-web": true}, policy: fastRetry,
		logf: func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) }}.run(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"container db"}, names(removed))
	require.Equal(t, []string{"container web", "network net", "volume vol"}, names(kept))
	require.NotContains(t, strings.Join(log, "\n"), "has active endpoints", "not logged as a failure")
	m.AssertExpectations(t)
}

func TestServeWatchdogRemovesTheAnnouncedSessionsAtEOF(t *testing.T) {
	t.Parallel()
	m := &mockAPI{}
	expectLists(m, "s1", containers("web"), networks("net"), volumes())
	m.On("ContainerRemove", anyCtx, "id-web", mock.Anything).Return(client.ContainerRemoveResult{}, nil).Once()
	m.On("NetworkRemove", anyCtx, "id-net", mock.Anything).Return(client.NetworkRemoveResult{}, nil).Once()
	expectLists(m, "s1", containers(), networks(), volumes())
	removed, kept, err := serveWatchdog(context.Background(), m, strings.NewReader("session s1\nnot a session\nsession s1\n"), fastRetry, func(string, ...any) {})
	require.NoError(t, err)
	require.Empty(t, kept)
	require.Equal(t, []string{"container web", "network net"}, names(removed))
	m.AssertExpectations(t)

	m = &mockAPI{} // no session announced: no Docker call at all
	removed, _, err = serveWatchdog(context.Background(), m, strings.NewReader(""), fastRetry, func(string, ...any) {})
	require.NoError(t, err)
	require.Empty(t, removed)
	m.AssertExpectations(t)
}

func TestRemoveSessionRefusesABadID(t *testing.T) {
	t.Parallel()
	o, m := newMocked()
	_, err := o.RemoveSession(context.Background(), "a b")
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, `session id "a b"`)
	m.AssertExpectations(t) // no call
}

// fakeWatchdogs is a watchdogSet whose watchdogs are pipes the test reads.
type fakeWatchdogs struct {
	mu      sync.Mutex
	starts  int
	fail    error
	readers []*os.File
}

func (f *fakeWatchdogs) start(dockerEndpoint) (*watchdog, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts++
	if f.fail != nil {
		return nil, f.fail
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	f.readers = append(f.readers, r)
	return &watchdog{pipe: w}, nil
}

// lines closes watchdog i's pipe and returns the lines it was told.
func (f *fakeWatchdogs) lines(t *testing.T, w *watchdog, i int) []string {
	t.Helper()
	require.NoError(t, w.pipe.Close())
	b, err := io.ReadAll(f.readers[i])
	require.NoError(t, err)
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestAnnounceStartsOneWatchdogAndTellsEachSessionOnce(t *testing.T) {
	t.Parallel()
	f := &fakeWatchdogs{}
	set := &watchdogSet{start: f.start}
	ep := dockerEndpoint{Host: "unix:///var/run/docker.sock"}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- set.announce(fmt.Sprintf("s%d", i%5), ep)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 1, f.starts)
	got := f.lines(t, set.byKey[endpointKey(ep)], 0)
	slices.Sort(got)
	require.Equal(t, []string{"session s0", "session s1", "session s2", "session s3", "session s4"}, got)
}

func TestAnnounceStartsOneWatchdogPerDaemon(t *testing.T) {
	t.Parallel()
	f := &fakeWatchdogs{}
	set := &watchdogSet{start: f.start}
	a, b := dockerEndpoint{Host: "unix:///a.sock"}, dockerEndpoint{Host: "tcp://b:2376", TLS: true}
	require.NoError(t, set.announce("s1", a))
	require.NoError(t, set.announce("s2", b))
	require.NoError(t, set.announce("s3", a))
	require.Equal(t, 2, f.starts)
	require.Equal(t, []string{"session s1", "session s3"}, f.lines(t, set.byKey[endpointKey(a)], 0))
	require.Equal(t, []string{"session s2"}, f.lines(t, set.byKey[endpointKey(b)], 1))
}

func TestAnnounceFailsWhenTheWatchdogCannotStartAndTriesAgainNextTime(t *testing.T) {
	t.Parallel()
	f := &fakeWatchdogs{fail: fmt.Errorf("%w: fork/exec: resource temporarily unavailable", ErrWatchdog)}
	set := &watchdogSet{start: f.start}
	ep := dockerEndpoint{Host: "unix:///var/run/docker.sock"}
	require.ErrorIs(t, set.announce("s1", ep), ErrWatchdog)
	f.fail = nil
	require.NoError(t, set.announce("s1", ep))
	require.Equal(t, 2, f.starts)
	require.Equal(t, []string{"session s1"}, f.lines(t, set.byKey[endpointKey(ep)], 0))
	require.ErrorIs(t, set.announce("bad id", ep), ErrWatchdog)
}

func TestKeepTellsTheWatchdogWhatToLeave(t *testing.T) {
	t.Parallel()
	f := &fakeWatchdogs{}
	set := &watchdogSet{start: f.start}
	ep := dockerEndpoint{Host: "unix:///var/run/docker.sock"}
	require.NoError(t, set.keep(ep, "c1"), "no watchdog yet: nothing would remove it")
	require.Zero(t, f.starts)
	require.NoError(t, set.announce("s1", ep))
	require.NoError(t, set.keep(ep, "c1", "n1"))
	require.ErrorIs(t, set.keep(ep, "c 2"), ErrWatchdog)
	require.Equal(t, []string{"session s1", "keep c1", "keep n1"}, f.lines(t, set.byKey[endpointKey(ep)], 0))
}

func TestWatchdogKeepIsANoOpWithoutAWatchdog(t *testing.T) {
	o, _ := newMocked()
	require.NoError(t, o.watchdogKeep("c1"), "a fake API: nothing to tell")
	c, err := client.New(client.WithHost("unix:///nonexistent-keep.sock"))
	require.NoError(t, err)
	defer c.Close()
	o.api, o.endpoint = c, dockerEndpoint{Host: "unix:///nonexistent-keep.sock"}
	require.NoError(t, o.watchdogKeep("c1"), "no watchdog for this daemon yet: nothing would remove it")
	t.Setenv(EnvReaper, "off")
	require.NoError(t, o.watchdogKeep("c 1"), "HEPH_REAPER=off: nothing to tell")
}

func TestAnnounceReplacesADeadWatchdogAndTellsItEverything(t *testing.T) {
	t.Parallel()
	f := &fakeWatchdogs{}
	set := &watchdogSet{start: f.start}
	ep := dockerEndpoint{Host: "unix:///var/run/docker.sock"}
	require.NoError(t, set.announce("s1", ep))
	require.NoError(t, set.announce("s2", ep))
	require.NoError(t, set.keep(ep, "c1"))
	require.NoError(t, f.readers[0].Close()) // the watchdog dies: our writes fail
	require.NoError(t, set.announce("s3", ep))
	require.Equal(t, 2, f.starts)
	got := f.lines(t, set.byKey[endpointKey(ep)], 1)
	require.ElementsMatch(t, []string{"session s1", "session s2", "keep c1", "session s3"}, got)
	require.Equal(t, "session s3", got[len(got)-1])
}

func TestWatchAnnouncesTheSessionWithTheResolvedEndpoint(t *testing.T) {
	f := &fakeWatchdogs{}
	set := &watchdogSet{start: f.start}
	o, m := newMocked()
	require.NoError(t, o.watchWith(set))
	require.Zero(t, f.starts, "over a fake API there is nothing on a daemon to guard")

	c, err := client.New(client.WithHost("unix:///nonexistent.sock"), client.WithAPIVersion("1.41"))
	require.NoError(t, err)
	defer c.Close()
	o.api = c
	o.endpoint = dockerEndpoint{Host: "unix:///nonexistent.sock", Source: "DOCKER_HOST"}
	t.Setenv(EnvReaper, "off")
	require.NoError(t, o.watchWith(set))
	require.Zero(t, f.starts, "HEPH_REAPER=off")

	t.Setenv(EnvReaper, "")
	require.NoError(t, o.watchWith(set))
	require.NoError(t, o.watchWith(set))
	require.Equal(t, 1, f.starts)
	ep := dockerEndpoint{Host: "unix:///nonexistent.sock", Source: "DOCKER_HOST", APIVersion: "1.41"} // the client's version is passed on
	w := set.byKey[endpointKey(ep)]
	require.NotNil(t, w)
	require.Equal(t, []string{"session " + o.Session()}, f.lines(t, w, 0))
	m.AssertExpectations(t)
}

func TestWatchdogEnv(t *testing.T) {
	t.Parallel()
	env := watchdogEnv([]string{"PATH=/bin", "GOCOVERDIR=/tmp/cov", "HEPH_WATCHDOG=old", "DOCKER_HOST=unix:///x", "EMPTY="}, `{"parent":1}`)
	require.Equal(t, []string{"PATH=/bin", "DOCKER_HOST=unix:///x", "EMPTY=", `HEPH_WATCHDOG={"parent":1}`}, env)
}

func TestStartWatchdogFailsClearly(t *testing.T) {
	t.Parallel()
	ep := dockerEndpoint{Host: "unix:///var/run/docker.sock"}
	for _, tc := range []struct {
		name, exe, want string
	}{
		{"no such executable", "/nonexistent/heph-test-binary", "start /nonexistent/heph-test-binary"},
		{"a program that does not import heph exits", "/bin/true", "exited before it was ready"},
		{"a program that answers something else", "/bin/echo", `answered "parent=`},
		{"a program that never answers", "", "did not answer within 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.exe == "" {
				tc.exe = filepath.Join(t.TempDir(), "mute")
				require.NoError(t, os.WriteFile(tc.exe, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755))
			}
			if _, err := os.Stat(tc.exe); err != nil && !strings.HasPrefix(tc.exe, "/nonexistent") {
				t.Fatalf("this test needs %s: %v", tc.exe, err)
			}
			start := time.Now()
			w, err := startWatchdogExe(tc.exe, tc.exe, ep, 300*time.Millisecond)
			require.Nil(t, w)
			require.ErrorIs(t, err, ErrWatchdog)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "HEPH_REAPER=off", "the error says how to run without it")
			require.NotContains(t, err.Error(), "log:", "an empty log is not kept")
			require.Less(t, time.Since(start), 5*time.Second)
			t.Log(err)
		})
	}
}

// fakeEngine serves the few Engine API calls the watchdog makes, over a
// unix socket, from an in-memory set of labelled resources.
type fakeEngine struct {
	mu        sync.Mutex
	resources map[string]fakeResource // id → resource
	deletes   []string
}

type fakeResource struct {
	kind    string // containers, networks, volumes
	session string
}

func (d *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/v1.41")
	if path == "/_ping" {
		w.Header().Set("Api-Version", "1.41")
		_, _ = io.WriteString(w, "OK")
		return
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	kind := parts[0]
	if kind == "containers" && len(parts) == 2 && parts[1] == "json" {
		parts = parts[:1]
	}
	switch {
	case r.Method == http.MethodGet && len(parts) == 1:
		var f map[string]map[string]bool
		_ = json.Unmarshal([]byte(r.URL.Query().Get("filters")), &f)
		var list []map[string]any
		for id, res := range d.resources {
			labels := map[string]string{LabelManaged: "true", LabelSession: res.session}
			match := res.kind == kind
			for l := range f["label"] {
				k, v, _ := strings.Cut(l, "=")
				match = match && labels[k] == v
			}
			if !match {
				continue
			}
			switch kind {
			case "containers":
				list = append(list, map[string]any{"Id": id, "Names": []string{"/" + id}, "Labels": labels, "State": "running"})
			case "networks":
				list = append(list, map[string]any{"Id": id, "Name": id, "Labels": labels})
			case "volumes":
				list = append(list, map[string]any{"Name": id, "Labels": labels})
			}
		}
		if kind == "volumes" {
			_ = json.NewEncoder(w).Encode(map[string]any{"Volumes": list})
			return
		}
		_ = json.NewEncoder(w).Encode(list)
	case r.Method == http.MethodDelete && len(parts) == 2:
		if res, ok := d.resources[parts[1]]; ok && res.kind == kind {
			delete(d.resources, parts[1])
			d.deletes = append(d.deletes, parts[1])
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"message":"not found"}`)
	default:
		http.Error(w, "not faked: "+r.Method+" "+r.URL.Path, http.StatusNotImplemented)
	}
}

func (d *fakeEngine) left() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for id := range d.resources {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func serveFakeEngine(t *testing.T, d *fakeEngine) dockerEndpoint {
	t.Helper()
	dir, err := os.MkdirTemp("", "heph-fake-daemon-") // short: a socket path has ~100 bytes
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "d.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	srv := &http.Server{Handler: d, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return dockerEndpoint{Host: "unix://" + sock, Source: "test", APIVersion: "1.41"}
}

// TestWatchdogProcessAgainstAFakeDaemon runs the real thing: this test
// binary re-executed as a watchdog (heph's init), told two sessions and one
// container to keep; when its pipe closes it removes the rest of their
// resources from the fake daemon, leaves another session's alone, exits, and
// keeps its log because it removed something.
func TestWatchdogProcessAgainstAFakeDaemon(t *testing.T) {
	t.Parallel()
	d := &fakeEngine{resources: map[string]fakeResource{
		"web-1": {"containers", "s1"}, "db-1": {"containers", "s1"}, "net-1": {"networks", "s1"}, "vol-1": {"volumes", "s1"},
		"web-2": {"containers", "s2"},
		"web-3": {"containers", "s3"}, "net-3": {"networks", "s3"}, "vol-3": {"volumes", "s3"}, // not announced
	}}
	ep := serveFakeEngine(t, d)
	exe, err := os.Executable()
	require.NoError(t, err)

	start := time.Now()
	w, err := startWatchdogExe(exe, exe, ep, 10*time.Second)
	require.NoError(t, err)
	t.Logf("watchdog %d started and answered in %s", w.cmd.Process.Pid, time.Since(start).Round(time.Microsecond))
	t.Cleanup(func() { os.Remove(w.log) })
	require.NoError(t, w.tell("session", "s1"))
	require.NoError(t, w.tell("session", "s2"))
	require.NoError(t, w.tell("keep", "db-1")) // HEPH_KEEP
	require.Len(t, d.left(), 8, "nothing happens while the parent holds the pipe")

	start = time.Now()
	require.NoError(t, w.pipe.Close()) // as when the parent dies
	done := make(chan error, 1)
	go func() { done <- w.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "the watchdog exits 0 once everything is gone")
	case <-time.After(20 * time.Second):
		w.stop()
		t.Fatal("the watchdog did not exit")
	}
	t.Logf("watchdog removed its sessions and exited in %s", time.Since(start).Round(time.Millisecond))
	require.Equal(t, []string{"db-1", "net-3", "vol-3", "web-3"}, d.left(), "another session is never touched; db-1 was kept")
	log, err := os.ReadFile(w.log)
	require.NoError(t, err, "the log is kept when something was removed")
	require.Contains(t, string(log), "session s1: removed container web-1")
	require.Contains(t, string(log), "session s1: kept container db-1")
	require.Contains(t, string(log), "done: removed 4 resources, kept 1")
}

func TestWatchdogProcessDeletesItsLogWhenThereWasNothingToDo(t *testing.T) {
	t.Parallel()
	ep := serveFakeEngine(t, &fakeEngine{resources: map[string]fakeResource{}})
	exe, err := os.Executable()
	require.NoError(t, err)
	w, err := startWatchdogExe(exe, exe, ep, 10*time.Second)
	require.NoError(t, err)
	require.NoError(t, w.tell("session", "s1"))
	start := time.Now()
	require.NoError(t, w.pipe.Close())
	require.NoError(t, w.cmd.Wait())
	t.Logf("exited %s after its pipe closed (one settle second included)", time.Since(start).Round(time.Millisecond))
	_, err = os.Stat(w.log)
	require.ErrorIs(t, err, os.ErrNotExist)
}
