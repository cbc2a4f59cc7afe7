//go:build integration

package heph_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/heph-go/heph/wait"
)

// Each request option that reaches the container, checked inside a real
// one: what the process runs as, where, what it runs, what is mounted, and
// how it is stopped.

func TestWithUserAgainstTheDaemon(t *testing.T) {
	t.Parallel()
	c := heph.NewContainer(testenv.Image(t)).WithUser("1234:5678").WithCmd("-http", ":8080").Start(t)
	status := string(execOut(t, c, "/testapp", "cat", "/proc/1/status").Stdout)
	require.Regexp(t, `(?m)^Uid:\t1234\t1234\t1234\t1234$`, status, "the app runs as uid 1234")
	require.Regexp(t, `(?m)^Gid:\t5678\t5678\t5678\t5678$`, status, "and gid 5678")
}

func TestWithWorkingDirAgainstTheDaemon(t *testing.T) {
	t.Parallel()
	// A relative path written by the app lands in the working directory.
	// The app writes before it listens: ready on its port, the file is there.
	c := heph.NewContainer(testenv.Image(t)).WithWorkingDir("/work/dir").
		WithCmd("-write", "relative.txt=written in the working dir", "-http", ":8080").
		WithExposedPorts("8080").WithWaitStrategy(wait.ForListeningPort("8080")).Start(t)
	res := execOut(t, c, "/testapp", "cat", "/work/dir/relative.txt")
	require.Equal(t, 0, res.ExitCode, "%s", res.Stderr)
	require.Equal(t, "written in the working dir", strings.TrimSpace(string(res.Stdout)))
}

func TestWithEntrypointAgainstTheDaemon(t *testing.T) {
	t.Parallel()
	// The image's entrypoint is /testapp (a server); replaced by its echo
	// command, the container prints its arguments and the command's, and
	// exits 0.
	c := heph.NewContainer(testenv.Image(t)).WithEntrypoint("/testapp", "echo", "from the entrypoint").
		WithCmd("and the cmd").WithWaitStrategy(wait.ForExit()).Start(t)
	log, err := c.Logs(context.Background())
	require.NoError(t, err)
	require.Equal(t, "from the entrypoint and the cmd\n", log)
}

func TestMountOptionsAgainstTheDaemon(t *testing.T) {
	t.Parallel()
	ro, rw := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(ro, "in.txt"), []byte("from the host"), 0o644))
	require.NoError(t, os.Chmod(rw, 0o777)) // the app runs as root, but be sure
	c := heph.NewContainer(testenv.Image(t)).
		WithReadOnlyBindMount(ro, "/ro").WithBindMount(rw, "/rw").WithTmpfs("/scratch").
		WithCmd("-http", ":8080").Start(t)
	mounts := string(execOut(t, c, "/testapp", "cat", "/proc/1/mountinfo").Stdout)

	m, ok := mountAt(mounts, "/ro")
	require.True(t, ok, "WithReadOnlyBindMount: nothing on /ro:\n%s", mounts)
	require.Contains(t, strings.Split(m.options, ","), "ro", "WithReadOnlyBindMount is read-only: %+v", m)
	require.Equal(t, "from the host", string(execOut(t, c, "/testapp", "cat", "/ro/in.txt").Stdout))
	res := execOut(t, c, "/testapp", "write", "/ro/new.txt", "x")
	require.NotEqual(t, 0, res.ExitCode, "a write to the read-only bind mount fails")
	require.Contains(t, string(res.Stderr), "read-only file system")

	m, ok = mountAt(mounts, "/rw")
	require.True(t, ok, "WithBindMount: nothing on /rw:\n%s", mounts)
	require.Contains(t, strings.Split(m.options, ","), "rw", "WithBindMount is writable: %+v", m)
	res = execOut(t, c, "/testapp", "write", "/rw/out.txt", "from the container")
	require.Equal(t, 0, res.ExitCode, "%s", res.Stderr)
	got, err := os.ReadFile(filepath.Join(rw, "out.txt"))
	require.NoError(t, err, "the host sees the container's write")
	require.Equal(t, "from the container", string(got))

	m, ok = mountAt(mounts, "/scratch")
	require.True(t, ok, "WithTmpfs: nothing on /scratch:\n%s", mounts)
	require.Equal(t, "tmpfs", m.fstype, "WithTmpfs mounts a tmpfs: %+v", m)
}

// TestWithVolumeAgainstTheDaemon: a volume that does not exist is created,
// labelled with the session, keeps data across containers, and is removed
// with the session (its Teardown); one that exists is used and kept.
func TestWithVolumeAgainstTheDaemon(t *testing.T) {
	t.Parallel()
	img := testenv.Image(t)
	raw := testenv.Docker(t)
	o := testenv.Orchestrator(t)
	ctx := context.Background()
	fresh, existing := "heph-test-fresh-"+o.Session()[:8], "heph-test-existing-"+o.Session()[:8]

	// A user's volume: no heph label (heph removes the heph.managed
	// volumes its containers mounted); the test removes it.
	_, err := raw.VolumeCreate(ctx, client.VolumeCreateOptions{Name: existing})
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = raw.VolumeRemove(context.Background(), existing, client.VolumeRemoveOptions{}) })

	run := func(name string, cmd ...string) *heph.Container {
		c, err := heph.NewContainer(img).WithName(name).WithVolume(fresh, "/fresh").WithVolume(existing, "/existing").
			WithCmd(append(cmd, "-exit", "0", "-exit-after", "1ms")...).WithWaitStrategy(wait.ForExit()).Run(ctx, o)
		require.NoError(t, err)
		return c
	}
	run("writer", "-write", "/fresh/x=fresh data", "-write", "/existing/y=existing data")
	log, err := run("reader", "-cat", "/fresh/x", "-cat", "/existing/y").Logs(ctx)
	require.NoError(t, err)
	require.Contains(t, log, "cat /fresh/x: fresh data\n", "the new volume kept the data for the next container")
	require.Contains(t, log, "cat /existing/y: existing data\n")
	v, err := raw.VolumeInspect(ctx, fresh, client.VolumeInspectOptions{})
	require.NoError(t, err)
	require.Equal(t, o.Session(), v.Volume.Labels[heph.LabelSession], "heph labelled the volume it created with the session")
	v, err = raw.VolumeInspect(ctx, existing, client.VolumeInspectOptions{})
	require.NoError(t, err)
	require.Empty(t, v.Volume.Labels[heph.LabelSession], "the volume that existed is not claimed")

	require.NoError(t, o.Teardown(ctx))
	_, err = raw.VolumeInspect(ctx, fresh, client.VolumeInspectOptions{})
	require.Error(t, err, "the volume heph created is removed with the session")
	_, err = raw.VolumeInspect(ctx, existing, client.VolumeInspectOptions{})
	require.NoError(t, err, "the volume that existed is kept")
}

// TestWithGracefulStopAgainstTheDaemon: with WithGracefulStop(d), Terminate
// sends SIGTERM and waits up to d before the kill; without it, the
// container is force-removed at once, without a SIGTERM.
func TestWithGracefulStopAgainstTheDaemon(t *testing.T) {
	t.Parallel()
	o := testenv.Orchestrator(t)
	const grace = 2 * time.Second
	for _, tc := range []struct {
		name     string
		graceful bool
	}{{"graceful", true}, {"force", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			req := heph.NewContainer(testenv.Image(t)).WithCmd("-ignore-sigterm", "-http", ":8080").
				WithExposedPorts("8080").WithWaitStrategy(wait.ForListeningPort("8080"))
			if tc.graceful {
				req = req.WithGracefulStop(grace)
			}
			c, err := req.Run(ctx, o)
			require.NoError(t, err)
			log := follow(t, c.ID())
			start := time.Now()
			require.NoError(t, c.Terminate(ctx))
			took := time.Since(start)
			out := log()
			t.Logf("Terminate took %s; the container's output:\n%s", took, out)
			if tc.graceful {
				require.Contains(t, out, "testapp: ignoring SIGTERM", "SIGTERM was sent first")
				require.GreaterOrEqual(t, took, grace, "the grace period was waited before the kill")
				return
			}
			require.NotContains(t, out, "SIGTERM", "no SIGTERM: a force remove")
			require.Less(t, took, grace, "no grace period")
		})
	}
}

// follow streams the container's output through the raw SDK from now on;
// the function returned waits for the stream's end (the container's) and
// returns what came.
func follow(t *testing.T, id string) func() string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	rc, err := testenv.Docker(t).ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var (
		buf  bytes.Buffer
		wg   sync.WaitGroup
		once sync.Once
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = stdcopy.StdCopy(&buf, &buf, rc)
	}()
	return func() string {
		once.Do(func() {
			wg.Wait()
			rc.Close()
			cancel()
		})
		return buf.String()
	}
}
