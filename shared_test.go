package heph

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/shared"
)

// sharedHarness is a harness whose shared containers' store is a fresh
// directory of the test; the test's end lets this process's leases there go.
func sharedHarness(t *testing.T) *harness {
	h := newHarness(t)
	dir := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", dir)
	t.Setenv(shared.EnvIdle, "")
	t.Cleanup(func() {
		for _, l := range shared.Process.Leases() {
			if strings.HasPrefix(l.Store.Dir(), dir) {
				shared.Process.Release(l.Store, l.Key)
			}
		}
	})
	return h
}

// take runs a fake test named name whose body starts r and hands the
// container to fn; it returns the fake test.
func (h *harness) take(t *testing.T, name string, r ContainerRequest, fn func(t testing.TB, c *Container)) *fakeT {
	ft := newFakeT(t, name)
	ft.run(func(tb testing.TB) {
		c := r.Start(tb)
		if fn != nil {
			fn(tb, c)
		}
	})
	return ft
}

var sharedDB = NewContainer("db:1").WithName("db").WithExposedPorts("5432").WithEnv("MODE", "test").Shared()

func TestSharedEqualRequestsGetOneContainer(t *testing.T) {
	h := sharedHarness(t)
	var ids []string
	var handles []*Container
	for _, name := range []string{"TestA", "TestB", "TestC"} {
		ft := h.take(t, name, sharedDB, func(t testing.TB, c *Container) {
			ids = append(ids, c.ID())
			handles = append(handles, c)
			require.Regexp(t, `^heph-db-[0-9a-f]{8}$`, c.Name())
			require.Equal(t, "127.0.0.1:32768", c.Endpoint("5432"), "its published port, the same for every holder")
			info, err := c.Inspect(context.Background())
			require.NoError(t, err)
			require.Regexp(t, `^[0-9a-f]{64}$`, info.Labels[labels.Shared], "the content key is a label")
			require.True(t, strings.HasPrefix(info.Labels[labels.Shared], strings.TrimPrefix(c.Name(), "heph-db-")), "the name carries the key")
			require.NotContains(t, info.Labels, LabelSession, "no session: no teardown or watchdog of one removes it")
			require.NotContains(t, info.Labels, LabelPID)
			require.NotContains(t, info.Labels, LabelTest)
			require.Equal(t, "true", info.Labels[LabelManaged])
			require.Equal(t, "db", info.Labels[LabelService])
		})
		require.Empty(t, ft.fatal)
		require.Empty(t, ft.errors)
	}
	require.Equal(t, ids[0], ids[1])
	require.Equal(t, ids[0], ids[2])
	require.NotSame(t, handles[0], handles[1], "each test has a handle of its own (WithPerTest keys its state by it)")
	require.Equal(t, 1, h.f.CallCount("ContainerCreate"), "created once")
	require.Equal(t, 0, h.f.CallCount("ContainerRemove"), "the tests' ends did not remove it")
	require.Equal(t, 0, h.f.CallCount("NetworkCreate"), "a test with only a shared container makes no network")
	require.Equal(t, [3]int{1, 0, 0}, h.left())
}

func TestSharedParallelTakesCreateOnce(t *testing.T) {
	h := sharedHarness(t)
	h.f.Hook = func(ctx context.Context, call string, _ any) error {
		if call == "ContainerStart" {
			time.Sleep(20 * time.Millisecond) // a slow start: the others must wait, not create
		}
		return nil
	}
	var wg sync.WaitGroup
	ids := make([]string, 8)
	fts := make([]*fakeT, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fts[i] = h.take(t, "TestP", sharedDB, func(t testing.TB, c *Container) { ids[i] = c.ID() })
		}()
	}
	wg.Wait()
	for i := range ids {
		require.Empty(t, fts[i].fatal)
		require.Equal(t, ids[0], ids[i])
	}
	require.Equal(t, 1, h.f.CallCount("ContainerCreate"))
}

func TestSharedKeyIsTheContent(t *testing.T) {
	o, f := newTestOrchestrator()
	f.AddImage("db:1", engine.Image{ID: "sha256:1111"})
	store, err := shared.OpenDir(t.TempDir())
	require.NoError(t, err)
	key := func(r ContainerRequest, imageID string) string {
		t.Helper()
		require.NoError(t, r.check())
		return r.sharedKey(o, store, imageID)
	}
	base := NewContainer("db:1").WithExposedPorts("5432", "8080/udp").WithEnv("A", "1").WithEnv("B", "2").
		WithFile("/etc/app.conf", []byte("x=1"), 0o644).WithCmd("serve").Shared()
	k := key(base, "sha256:1111")
	same := []struct {
		why string
		r   ContainerRequest
	}{
		{"env set in another order", NewContainer("db:1").WithExposedPorts("5432", "8080/udp").WithEnv("B", "2").WithEnv("A", "1").
			WithFile("/etc/app.conf", []byte("x=1"), 0o644).WithCmd("serve").Shared()},
		{"ports spelled and ordered otherwise", NewContainer("db:1").WithExposedPorts("8080/udp", "5432/tcp").WithEnv("A", "1").WithEnv("B", "2").
			WithFile("/etc/app.conf", []byte("x=1"), 0o644).WithCmd("serve").Shared()},
		{"another wait strategy and timeout", base.WithStartupTimeout(time.Minute).WithPullTimeout(time.Minute)},
	}
	for _, tc := range same {
		require.Equal(t, k, key(tc.r, "sha256:1111"), tc.why)
	}
	different := []struct {
		why     string
		r       ContainerRequest
		imageID string
	}{
		{"one env value", base.WithEnv("B", "3"), ""},
		{"one more env variable", base.WithEnv("C", "1"), ""},
		{"a file's content", base.WithFile("/etc/app.conf", []byte("x=2"), 0o644), ""},
		{"a file's mode", base.WithFile("/etc/app.conf", []byte("x=1"), 0o600), ""},
		{"the command", base.WithCmd("serve", "-v"), ""},
		{"the entrypoint", base.WithEntrypoint("/bin/app"), ""},
		{"a label", base.WithLabel("team", "a"), ""},
		{"the user", base.WithUser("1000"), ""},
		{"the working dir", base.WithWorkingDir("/srv"), ""},
		{"a port", base.WithExposedPorts("9090"), ""},
		{"a fixed host port", base.WithHostPort("5432", 15432), ""},
		{"a mount", base.WithTmpfs("/scratch"), ""},
		{"the service name", base.WithName("pg"), ""},
		{"the image's content (a tag pushed again)", base, "sha256:2222"},
	}
	other, err := shared.OpenDir(t.TempDir())
	require.NoError(t, err)
	require.NotEqual(t, k, base.sharedKey(o, other, "sha256:1111"), "another user's (another store's) holders get their own")
	seen := map[string]string{k: "base"}
	for _, tc := range different {
		id := tc.imageID
		if id == "" {
			id = "sha256:1111"
		}
		got := key(tc.r, id)
		require.NotContains(t, seen, got, "%s gives a new key (same as %s)", tc.why, seen[got])
		seen[got] = tc.why
	}
}

func TestSharedRetaggedImageGivesANewContainer(t *testing.T) {
	h := sharedHarness(t)
	h.f.AddImage("db:1", engine.Image{ID: "sha256:1111"})
	var first, second string
	h.take(t, "TestA", sharedDB, func(_ testing.TB, c *Container) { first = c.ID() })
	h.f.AddImage("db:1", engine.Image{ID: "sha256:2222"}) // pushed again with new content
	h.take(t, "TestB", sharedDB, func(_ testing.TB, c *Container) { second = c.ID() })
	require.NotEqual(t, first, second)
	require.Equal(t, 2, h.f.CallCount("ContainerCreate"))
}

func TestSharedBrokenContainerIsReplaced(t *testing.T) {
	for _, tc := range []struct {
		name   string
		breaks func(f *enginetest.Fake, id string)
		why    string
	}{
		{"Exited", func(f *enginetest.Fake, id string) { f.Exit(id, 3) }, "it exited with code 3"},
		{"Unhealthy", func(f *enginetest.Fake, id string) { f.SetHealth(id, "unhealthy", "no") }, "its health check says unhealthy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := sharedHarness(t)
			var first, second string
			h.take(t, "TestA", sharedDB, func(_ testing.TB, c *Container) { first = c.ID() })
			tc.breaks(h.f, first)
			ft := h.take(t, "TestB", sharedDB, func(_ testing.TB, c *Container) { second = c.ID() })
			require.Empty(t, ft.fatal)
			require.NotEqual(t, first, second, "a broken one is not handed out")
			require.Contains(t, ft.allLogs(), "heph: replaced shared container heph-db-")
			require.Contains(t, ft.allLogs(), tc.why)
			require.Equal(t, [3]int{1, 0, 0}, h.left(), "the broken one is gone")
		})
	}
}

func TestSharedJoinsAndLeavesTheTestsNetwork(t *testing.T) {
	h := sharedHarness(t)
	var db *Container
	var netName string
	ft := h.take(t, "TestA", sharedDB, func(t testing.TB, c *Container) {
		db = c
		web := NewContainer("web:1").WithName("web").Start(t) // the test's network comes with it
		netName = TestNetwork(t).Name()
		info, err := c.Inspect(context.Background())
		require.NoError(t, err)
		require.Contains(t, info.Networks, netName, "the shared container joined the test's network")
		require.Equal(t, []string{"db"}, info.Networks[netName].Aliases, "as db, as an unshared one would be")
		_ = web
	})
	require.Empty(t, ft.fatal)
	require.Empty(t, ft.errors, "teardown could remove the network: the shared container had left it")
	info, err := db.Inspect(context.Background())
	require.NoError(t, err)
	require.NotContains(t, info.Networks, netName, "it left the ended test's network")
	require.Equal(t, [3]int{1, 0, 0}, h.left(), "the shared container stays; the test's container and network are gone")

	// Taken by a test that already has a network: joined at once.
	ft = h.take(t, "TestB", sharedDB, nil)
	require.Empty(t, ft.fatal)
	ft = newFakeT(t, "TestC")
	ft.run(func(t testing.TB) {
		n := TestNetwork(t)
		c := sharedDB.Start(t)
		info, err := c.Inspect(context.Background())
		require.NoError(t, err)
		require.Contains(t, info.Networks, n.Name())
	})
	require.Empty(t, ft.fatal)
	require.Empty(t, ft.errors)
}

func TestSharedPerTest(t *testing.T) {
	h := sharedHarness(t)
	var mu sync.Mutex
	var events []string
	note := func(s string) {
		mu.Lock()
		events = append(events, s)
		mu.Unlock()
	}
	hook := func(ctx context.Context, c *Container) (func(context.Context) error, error) {
		note("setup " + c.Service())
		return func(context.Context) error { note("release " + c.Service()); return nil }, nil
	}
	for _, r := range []ContainerRequest{sharedDB.WithPerTest(hook), NewContainer("app:1").WithName("app").WithPerTest(hook)} {
		ft := h.take(t, "TestA", r, func(testing.TB, *Container) { note("body") })
		require.Empty(t, ft.fatal)
	}
	require.Equal(t, []string{"setup db", "body", "release db", "setup app", "body", "release app"}, events)

	// A setup that fails fails the start, and the container is let go.
	ft := h.take(t, "TestB", sharedDB.WithPerTest(func(context.Context, *Container) (func(context.Context) error, error) {
		return nil, errors.New("create schema: boom")
	}), nil)
	require.Contains(t, ft.fatal, "WithPerTest setup on container heph-db-")
	require.Contains(t, ft.fatal, "create schema: boom")

	// A release that fails is reported by the teardown.
	ft = h.take(t, "TestC", NewContainer("app:1").WithPerTest(func(context.Context, *Container) (func(context.Context) error, error) {
		return func(context.Context) error { return errors.New("drop schema: busy") }, nil
	}), nil)
	require.Len(t, ft.errors, 1)
	require.Contains(t, ft.errors[0], "drop schema: busy")
	require.Equal(t, [3]int{1, 0, 0}, h.left(), "the unshared container was removed all the same")
}

func TestSharedRefusals(t *testing.T) {
	h := sharedHarness(t)
	ft := h.take(t, "TestA", sharedDB.WithGracefulStop(time.Second), nil)
	require.Contains(t, ft.fatal, "WithGracefulStop")
	require.Contains(t, ft.fatal, "cannot be combined with Shared")

	t.Setenv(shared.EnvIdle, "soon")
	ft = h.take(t, "TestB", sharedDB, nil)
	require.Contains(t, ft.fatal, `HEPH_SHARED_IDLE "soon"`)
	require.Equal(t, 0, len(h.f.Calls()), "refused before any Docker call")

	ft = h.take(t, "TestC", NewContainer("db:1").WithPerTest(nil), nil)
	require.Contains(t, ft.fatal, "WithPerTest")
}

func TestSharedOutlivesItsOrchestratorsTeardown(t *testing.T) {
	h := sharedHarness(t)
	ctx := context.Background()
	c, err := sharedDB.Run(ctx, h.o)
	require.NoError(t, err)
	require.NoError(t, h.o.Teardown(ctx))
	require.NoError(t, c.Terminate(ctx), "Terminate lets it go")
	require.Equal(t, [3]int{1, 0, 0}, h.left(), "neither removed it")
	again, err := sharedDB.Run(ctx, h.o)
	require.NoError(t, err)
	require.Equal(t, c.ID(), again.ID())
}

func TestSharedIsLetGoUnderKeep(t *testing.T) {
	h := sharedHarness(t)
	t.Setenv(EnvKeep, "always")
	var netName string
	ft := h.take(t, "TestA", sharedDB, func(t testing.TB, db *Container) {
		NewContainer("web:1").WithName("web").Start(t)
		netName = TestNetwork(t).Name()
	})
	require.Empty(t, ft.errors)
	require.Contains(t, ft.allLogs(), "container heph-web-")
	require.NotContains(t, ft.allLogs(), "container heph-db-", "the shared container is not the test's to keep")
	cs, err := h.o.ListContainers(context.Background())
	require.NoError(t, err)
	for _, c := range cs {
		if c.Labels[LabelService] == "db" {
			require.NotContains(t, c.Networks, netName, "it left the kept network")
		}
	}
}
