package heph

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/wait"
)

// created returns a container created (not started) on a fresh fake daemon.
func created(t *testing.T, cfg ContainerConfig) (*Container, *enginetest.Fake) {
	t.Helper()
	o, f := newTestOrchestrator()
	if cfg.Image == "" {
		cfg.Image = "app"
	}
	c, err := o.CreateContainer(context.Background(), cfg)
	require.NoError(t, err)
	return c, f
}

// tarEntries reads a tar stream: name → content (directories end in "/"),
// and name → mode.
func tarEntries(t testing.TB, b []byte) (map[string]string, map[string]fs.FileMode) {
	t.Helper()
	files, modes := map[string]string{}, map[string]fs.FileMode{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, modes
		}
		require.NoError(t, err)
		content, err := io.ReadAll(tr)
		require.NoError(t, err)
		files[h.Name] = string(content)
		modes[h.Name] = fs.FileMode(h.Mode).Perm()
	}
}

func TestContainerLifecycle(t *testing.T) {
	t.Parallel()
	f := enginetest.NewFake()
	rec := &stopRecorder{Fake: f}
	o := newOrchestratorOver(rec, "unix:///fake.sock")
	ctx := context.Background()
	c, err := o.CreateContainer(ctx, ContainerConfig{Image: "app", ExposedPorts: []string{"8080"}})
	require.NoError(t, err)
	require.Equal(t, 0, c.MappedPort("8080"), "created: nothing published yet (and no test to fail)")

	require.NoError(t, c.Start(ctx))
	first := c.MappedPort("8080")
	require.Equal(t, 32768, first)
	info, err := c.Inspect(ctx)
	require.NoError(t, err)
	require.Equal(t, StatusRunning, info.Status)

	require.NoError(t, c.Stop(ctx))
	require.NoError(t, c.Stop(ctx), "stopping a stopped container is not an error")
	require.Equal(t, []time.Duration{DefaultStopTimeout, DefaultStopTimeout}, rec.timeouts())
	info, err = c.Inspect(ctx)
	require.NoError(t, err)
	require.Equal(t, StatusExited, info.Status, "stopped, still there")

	require.NoError(t, c.Start(ctx), "a stopped container starts again")
	require.Equal(t, 32769, c.MappedPort("8080"), "with the host port Docker gave it this time")
	require.Equal(t, "127.0.0.1:32769", c.Endpoint("8080/tcp"))

	require.NoError(t, c.Terminate(ctx))
	require.NoError(t, c.Terminate(ctx), "Terminate is idempotent")
	require.Equal(t, 1, f.CallCount("ContainerRemove"))
	require.Empty(t, trackedContainers(o))
	_, err = c.Inspect(ctx)
	require.ErrorIs(t, err, ErrContainerNotFound)
}

func TestStopUsesTheConfiguredTimeout(t *testing.T) {
	t.Parallel()
	f := enginetest.NewFake()
	rec := &stopRecorder{Fake: f}
	o := newOrchestratorOver(rec, "unix:///fake.sock")
	c, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "app", StopTimeout: 2 * time.Second})
	require.NoError(t, err)
	require.NoError(t, c.Stop(context.Background()))
	require.Equal(t, []time.Duration{2 * time.Second}, rec.timeouts())
}

func TestContainerStartWaitsWithTheConfiguredStrategy(t *testing.T) {
	t.Parallel()
	c, f := created(t, ContainerConfig{WaitStrategy: wait.ForLog("ready")})
	started := make(chan error, 1)
	go func() { started <- c.Start(context.Background()) }()
	f.WriteLog(c.ID(), "warming up\nready\n")
	require.NoError(t, <-started)
	require.Contains(t, f.Calls(), "ContainerLogs", "the strategy read the logs")
}

func TestContainerStartOfAContainerThatExitsFailsAtOnce(t *testing.T) {
	t.Parallel()
	c, f := created(t, ContainerConfig{WaitStrategy: wait.ForLog("never printed")})
	f.Hook = func(_ context.Context, call string, arg any) error {
		if call == "ContainerWait" {
			f.WriteLog(c.ID(), "panic: no config\n")
			f.Exit(c.ID(), 2)
		}
		return nil
	}
	err := c.Start(context.Background())
	var we *wait.Error
	require.ErrorAs(t, err, &we)
	require.ErrorIs(t, err, wait.ErrExited)
	require.Equal(t, 2, we.State.ExitCode)
	require.Contains(t, we.LogTail, "panic: no config")
}

func TestLifecycleErrorsAreWrapped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, f := created(t, ContainerConfig{Service: "db"})

	failOn(f, "ContainerStop", enginetest.Unavailable("busy"))
	err := c.Stop(ctx)
	require.EqualError(t, err, `heph: stop container "`+c.Name()+`": busy`)
	require.ErrorIs(t, err, ErrDockerUnavailable)
	require.NotErrorIs(t, err, ErrContainerNotFound)

	f.Hook = nil
	require.NoError(t, f.ContainerRemove(ctx, c.ID())) // behind heph's back
	err = c.Start(ctx)
	require.EqualError(t, err, `heph: start container "`+c.Name()+`": No such container: `+c.ID())
	require.ErrorIs(t, err, ErrContainerNotFound)
	require.ErrorIs(t, err, engine.ErrNotFound, "the daemon's error class still matches")
	require.NoError(t, c.Terminate(ctx), "terminating a container already gone is not an error")
}

func TestMappedPortOfAPortNotPublished(t *testing.T) {
	ft := newFakeT(t, "TestUser")
	c := &Container{name: "heph-app-00000000", t: ft, host: "127.0.0.1", ports: map[string]int{"8080/tcp": 49153, "53/udp": 49154}}
	require.Equal(t, 49153, c.MappedPort("8080"))
	require.Equal(t, 49154, c.MappedPort("53/UDP"))
	require.Equal(t, "127.0.0.1:49153", c.Endpoint("8080/tcp"))
	require.Empty(t, ft.errors)

	require.Equal(t, 0, c.MappedPort("9090"))
	require.Equal(t, "", c.Endpoint("9090/tcp"))
	require.Equal(t, 0, c.MappedPort("80/xyz"))
	require.Equal(t, []string{
		"heph: container heph-app-00000000 does not publish 9090/tcp: it publishes 53/udp, 8080/tcp (use WithExposedPorts)",
		"heph: container heph-app-00000000 does not publish 9090/tcp: it publishes 53/udp, 8080/tcp (use WithExposedPorts)",
		`heph: container "heph-app-00000000": invalid configuration: port "80/xyz": protocol "xyz" is not tcp, udp or sctp`,
	}, ft.errors, "the test is marked failed, with the ports it does publish")

	none := &Container{name: "heph-app-00000001", t: ft}
	_, err := none.mappedPort("80")
	require.EqualError(t, err, "heph: container heph-app-00000001 does not publish 80/tcp: it publishes no port (use WithExposedPorts)")
}

func TestExec(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, f := created(t, ContainerConfig{Service: "db"})
	var ran []string
	f.ExecFunc = func(id string, cmd []string) (engine.ExecResult, error) {
		ran = cmd
		return engine.ExecResult{ExitCode: 3, Stdout: []byte("out"), Stderr: []byte("err")}, nil
	}
	_, err := c.Exec(ctx, "ls", "/")
	require.ErrorIs(t, err, engine.ErrConflict, "not running yet")
	require.EqualError(t, err, `heph: exec "ls" in container "`+c.Name()+`": Container `+c.ID()+` is not running`)

	require.NoError(t, c.Start(ctx))
	res, err := c.Exec(ctx, "ls", "/")
	require.NoError(t, err, "a non-zero exit code is not an error")
	require.Equal(t, ExecResult{ExitCode: 3, Stdout: []byte("out"), Stderr: []byte("err")}, res)
	require.Equal(t, []string{"ls", "/"}, ran)

	calls := len(f.Calls())
	for _, cmd := range [][]string{nil, {""}, {"ls", "a\x00b"}} {
		_, err := c.Exec(ctx, cmd...)
		require.ErrorIs(t, err, ErrInvalidConfig, "%q", cmd)
		require.ErrorContains(t, err, "Exec cmd")
	}
	require.Len(t, f.Calls(), calls, "refused before any Docker call")
}

func TestLogs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, f := created(t, ContainerConfig{})
	require.NoError(t, c.Start(ctx))
	f.WriteLog(c.ID(), "one\n")

	follow, err := c.FollowLogs(ctx)
	require.NoError(t, err)
	defer follow.Close()
	f.WriteLog(c.ID(), "two\n")
	f.Exit(c.ID(), 0)
	all, err := io.ReadAll(follow)
	require.NoError(t, err, "the stream ends when the container stops")
	require.Equal(t, "one\ntwo\n", string(all))

	out, err := c.Logs(ctx)
	require.NoError(t, err)
	require.Equal(t, "one\ntwo\n", out)

	lines, err := c.tail(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, []string{"two"}, lines)
	_, err = c.logs(ctx, engine.LogOptions{Tail: -1})
	require.ErrorIs(t, err, ErrInvalidConfig)

	require.NoError(t, c.Terminate(ctx))
	_, err = c.Logs(ctx)
	require.ErrorIs(t, err, ErrContainerNotFound)
	require.ErrorContains(t, err, `heph: read logs of container "`+c.Name()+`"`)
}

func TestCopyToContainer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(src, "sub"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(src, "a.txt"), []byte("A"), 0o640))
	require.NoError(t, os.WriteFile(filepath.Join(src, "sub", "run.sh"), []byte("#!/bin/sh"), 0o755))
	c, f := created(t, ContainerConfig{})

	require.NoError(t, c.CopyToContainer(ctx, src, "/srv/conf/"))
	files, modes := tarEntries(t, f.Copied(c.ID(), "/"))
	require.Equal(t, "A", files["srv/conf/a.txt"], "the directory becomes /srv/conf")
	require.Equal(t, "#!/bin/sh", files["srv/conf/sub/run.sh"])
	require.Equal(t, fs.FileMode(0o640), modes["srv/conf/a.txt"], "modes are kept")
	require.Equal(t, fs.FileMode(0o755), modes["srv/conf/sub/run.sh"])

	calls := len(f.Calls())
	err := c.CopyToContainer(ctx, src, "srv")
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, `containerPath "srv": must be an absolute path in the container`)
	err = c.CopyToContainer(ctx, filepath.Join(src, "missing"), "/x")
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, `hostPath "`+filepath.Join(src, "missing")+`"`)
	require.Len(t, f.Calls(), calls, "refused before any Docker call")

	failOn(f, "CopyTo", errors.New("no space left on device"))
	err = c.CopyToContainer(ctx, src, "/x")
	require.EqualError(t, err, `heph: copy "`+src+`" into container "`+c.Name()+`": no space left on device`)
}

func TestWithFileIsCopiedInBeforeTheStart(t *testing.T) {
	h := newHarness(t)
	order := h.record("CopyTo", "ContainerStart")
	var id string
	h.ft.run(func(t testing.TB) {
		c := NewContainer("app").WithFile("/etc/app/app.conf", []byte("port=1"), 0o600).WithFile("/run.sh", []byte("#!"), 0o755).Start(t)
		id = c.ID()
		files, modes := tarEntries(t, h.f.Copied(id, "/"))
		require.Equal(t, map[string]string{"etc/app/app.conf": "port=1", "run.sh": "#!"}, files)
		require.Equal(t, fs.FileMode(0o600), modes["etc/app/app.conf"])
		require.Equal(t, fs.FileMode(0o755), modes["run.sh"])
	})
	require.Empty(t, h.ft.fatal)
	require.Empty(t, h.ft.errors)
	require.Equal(t, []string{"CopyTo", "ContainerStart"}, order())
}

func TestCopyFromContainer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, f := created(t, ContainerConfig{})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range map[string]string{"data/a.txt": "A", "data/sub/b.txt": "B"} {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(body))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	f.SetArchive(c.ID(), "/data", buf.Bytes())

	dst := filepath.Join(t.TempDir(), "out")
	require.NoError(t, c.CopyFromContainer(ctx, "/data", dst))
	b, err := os.ReadFile(filepath.Join(dst, "sub", "b.txt"))
	require.NoError(t, err)
	require.Equal(t, "B", string(b))

	err = c.CopyFromContainer(ctx, "/missing", filepath.Join(t.TempDir(), "x"))
	require.Regexp(t, `^heph: copy "/missing" from container "`+c.Name()+`": Could not find the file /missing`, err.Error())
	err = c.CopyFromContainer(ctx, "rel", dst)
	require.ErrorIs(t, err, ErrInvalidConfig)
}

func TestStateSummary(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		info ContainerInfo
		want string
	}{
		{ContainerInfo{Status: StatusRunning}, "running"},
		{ContainerInfo{Status: StatusExited, ExitCode: 3}, "exited with code 3"},
		{ContainerInfo{Status: StatusDead, ExitCode: 137, OOMKilled: true}, "dead with code 137 (OOM-killed)"},
		{ContainerInfo{Status: StatusCreated, Error: "exec format error"}, "created (error: exec format error)"},
		{ContainerInfo{Status: StatusRunning, Health: "unhealthy", HealthLog: []string{"a", "connection refused"}}, "running, health unhealthy: connection refused"},
		{ContainerInfo{Status: StatusRunning, Health: "starting"}, "running, health starting"},
	} {
		require.Equal(t, tc.want, stateSummary(tc.info))
	}
}

func TestDescribeAContainerThatIsGone(t *testing.T) {
	t.Parallel()
	c, f := created(t, ContainerConfig{Service: "db"})
	require.NoError(t, f.ContainerRemove(context.Background(), c.ID()))
	d := c.describe(context.Background(), 10)
	require.Equal(t, "container "+c.Name()+" (service db): state unknown: inspect container \""+c.Name()+"\": No such container: "+c.ID()+"\n", d)
	require.NotContains(t, d, "heph:", "describe goes inside heph's messages: no prefix of its own")
	require.Equal(t, 0, strings.Count(d, "heph: "))
}

func TestARunContainerRestartsWithinItsStartupTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o, f := newTestOrchestrator()
	var deadlines []time.Duration
	c, err := NewContainer("app").WithExposedPorts("8080").WithStartupTimeout(42*time.Second).Run(ctx, o)
	require.NoError(t, err)
	require.NoError(t, c.Stop(ctx))
	f.Hook = func(ctx context.Context, call string, _ any) error {
		if d, ok := ctx.Deadline(); ok && call == "ContainerStart" {
			deadlines = append(deadlines, time.Until(d))
		}
		return nil
	}
	require.NoError(t, c.Start(ctx))
	require.Len(t, deadlines, 1)
	require.InDelta(t, 42*time.Second, deadlines[0], float64(10*time.Second), "the restart is bounded like the first start")
	require.Equal(t, "127.0.0.1:32769", c.Endpoint("8080"), "the handle knows the new host port")
}

func TestAGracefulTerminateThatCannotStopKeepsTheContainer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o, f := newTestOrchestrator()
	c, err := NewContainer("app").WithGracefulStop(time.Second).Run(ctx, o)
	require.NoError(t, err)
	failOn(f, "ContainerStop", enginetest.Unavailable("busy"))
	err = c.Terminate(ctx)
	require.EqualError(t, err, `heph: stop container "`+c.Name()+`": busy`)
	require.Zero(t, f.CallCount("ContainerRemove"), "not removed before its graceful stop")
	f.Hook = nil
	require.NoError(t, c.Terminate(ctx), "the next Terminate tries again")
	require.Empty(t, trackedContainers(o))
}
