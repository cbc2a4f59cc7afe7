//go:build integration

package heph_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// get polls url with backoff until it answers 200 (or ctx ends) and returns
// the body.
func get(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var body string
	err := backoff.Retry(func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s: %s", url, resp.Status, b)
		}
		body = string(b)
		return nil
	}, backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(5*time.Millisecond), backoff.WithMaxInterval(250*time.Millisecond)), ctx))
	require.NoError(t, err)
	return body
}

func endpoint(t *testing.T, c *heph.Container, port string) string {
	t.Helper()
	addr := c.Endpoint(port)
	require.NotEmpty(t, addr, "port %s is published", port)
	return addr
}

func run(t *testing.T, o *heph.Orchestrator, cfg heph.ContainerConfig) *heph.Container {
	t.Helper()
	ctx := context.Background()
	c, err := o.CreateContainer(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))
	return c
}

// sessionContainers lists the containers on the daemon labelled with o's
// session.
func sessionContainers(t *testing.T, o *heph.Orchestrator) []string {
	t.Helper()
	all, err := o.ListContainers(context.Background())
	require.NoError(t, err)
	var names []string
	for _, c := range all {
		if c.Labels[heph.LabelSession] == o.Session() {
			names = append(names, c.Name)
		}
	}
	return names
}

func TestLifecycleAgainstTheDaemon(t *testing.T) {
	t.Parallel()
	o := testenv.Orchestrator(t)
	ctx := context.Background()

	c, err := o.CreateContainer(ctx, heph.ContainerConfig{
		Image:        testenv.Image(t),
		Service:      "web",
		Cmd:          []string{"-http", ":8080"},
		Env:          map[string]string{"GREETING": "hello there"},
		ExposedPorts: []string{"8080"},
		Labels:       map[string]string{"suite": "lifecycle"},
		StopTimeout:  5 * time.Second,
	})
	require.NoError(t, err)
	id := c.ID()
	info, err := o.InspectContainer(ctx, id)
	require.NoError(t, err)
	require.Equal(t, heph.StatusCreated, info.Status)
	require.Regexp(t, `^heph-web-[0-9a-f]{8}$`, info.Name)
	require.Equal(t, "web", info.Service)
	require.Equal(t, "true", info.Labels[heph.LabelManaged])
	require.Equal(t, o.Session(), info.Labels[heph.LabelSession])
	require.Equal(t, "lifecycle", info.Labels["suite"])

	require.NoError(t, c.Start(ctx))
	info, err = o.InspectContainer(ctx, id)
	require.NoError(t, err)
	require.Equal(t, heph.StatusRunning, info.Status)
	require.False(t, info.Started.IsZero())
	b := info.Ports["8080/tcp"]
	require.Len(t, b, 1)
	require.Equal(t, "127.0.0.1", b[0].Addr().String(), "published on loopback only")
	require.NotZero(t, b[0].Port())

	addr := endpoint(t, c, "8080/tcp")
	require.Equal(t, b[0].String(), addr, "the handle dials where the daemon published it")
	require.Equal(t, "web", strings.TrimSpace(get(t, "http://"+addr+"/hostname")))
	require.Contains(t, get(t, "http://"+addr+"/env"), "GREETING=hello there")

	require.NoError(t, c.Stop(ctx))
	info, err = o.InspectContainer(ctx, id)
	require.NoError(t, err)
	require.Equal(t, heph.StatusExited, info.Status)
	require.Equal(t, 0, info.ExitCode, "the app exits 0 on SIGTERM")

	require.NoError(t, o.RemoveContainer(ctx, id))
	_, err = o.InspectContainer(ctx, id)
	require.ErrorIs(t, err, heph.ErrContainerNotFound)
	require.ErrorIs(t, c.Start(ctx), heph.ErrContainerNotFound)
	require.Empty(t, sessionContainers(t, o))
}

func TestRemoveContainerForcesARunningOne(t *testing.T) {
	t.Parallel()
	o := testenv.Orchestrator(t)
	ctx := context.Background()
	id := run(t, o, heph.ContainerConfig{Image: testenv.Image(t), Cmd: []string{"-ignore-sigterm"},
		Mounts: []heph.Mount{{Type: heph.MountVolume, Target: "/anon"}}}).ID()
	start := time.Now()
	require.NoError(t, o.RemoveContainer(ctx, id))
	t.Logf("force-removed a running container that ignores SIGTERM in %s", time.Since(start))
	// Half the 10 s a graceful stop would wait (force-removal takes about
	// 130 ms, a few times that under the suite's load).
	require.Less(t, time.Since(start), 5*time.Second, "force removal does not wait for a graceful stop")
	_, err := o.InspectContainer(ctx, id)
	require.ErrorIs(t, err, heph.ErrContainerNotFound)
}

func TestContainersReachEachOtherByServiceName(t *testing.T) {
	t.Parallel()
	o := testenv.Orchestrator(t)
	ctx := context.Background()
	net, err := o.CreateNetwork(ctx, heph.NetworkConfig{})
	require.NoError(t, err)
	image := testenv.Image(t)
	run(t, o, heph.ContainerConfig{Image: image, Service: "backend", Cmd: []string{"-http", ":8080"}, Networks: []string{net.Name()}})
	front := run(t, o, heph.ContainerConfig{Image: image, Service: "frontend", Cmd: []string{"-http", ":8080"}, ExposedPorts: []string{"8080"}, Networks: []string{net.Name()}})

	info, err := front.Inspect(ctx)
	require.NoError(t, err)
	require.Contains(t, info.Networks, net.Name())
	require.Contains(t, info.Networks[net.Name()].Aliases, "frontend")
	require.NotEmpty(t, info.Networks[net.Name()].IP)

	body := get(t, "http://"+endpoint(t, front, "8080/tcp")+"/fetch?url=http://backend:8080/hostname")
	require.Contains(t, body, "backend", "frontend reached backend by its service name")
}

func TestAContainerOnTwoNetworks(t *testing.T) {
	t.Parallel()
	o := testenv.Orchestrator(t)
	ctx := context.Background()
	n1, err := o.CreateNetwork(ctx, heph.NetworkConfig{})
	require.NoError(t, err)
	n2, err := o.CreateNetwork(ctx, heph.NetworkConfig{})
	require.NoError(t, err)
	image := testenv.Image(t)
	// A container created on both networks: the second is joined after create.
	run(t, o, heph.ContainerConfig{Image: image, Service: "shared", Cmd: []string{"-http", ":8080"}, Networks: []string{n1.Name(), n2.Name()}})
	probe1 := run(t, o, heph.ContainerConfig{Image: image, Service: "probe1", Cmd: []string{"-http", ":8080"}, ExposedPorts: []string{"8080"}, Networks: []string{n1.Name()}})
	probe2 := run(t, o, heph.ContainerConfig{Image: image, Service: "probe2", Cmd: []string{"-http", ":8080"}, ExposedPorts: []string{"8080"}, Networks: []string{n2.Name()}})

	for _, p := range []*heph.Container{probe1, probe2} {
		require.Contains(t, get(t, "http://"+endpoint(t, p, "8080/tcp")+"/fetch?url=http://shared:8080/hostname"), "shared",
			"%s reaches shared by its alias", p.Name())
	}
}

func TestGracefulStopTimeoutForAContainerIgnoringSIGTERM(t *testing.T) {
	t.Parallel()
	o := testenv.Orchestrator(t)
	ctx := context.Background()
	c := run(t, o, heph.ContainerConfig{Image: testenv.Image(t), Cmd: []string{"-ignore-sigterm", "-http", ":8080"}, ExposedPorts: []string{"8080"},
		StopTimeout: 2 * time.Second})
	id := c.ID()
	get(t, "http://"+endpoint(t, c, "8080/tcp")+"/") // it runs and has installed its signal handler

	start := time.Now()
	require.NoError(t, c.Stop(ctx))
	took := time.Since(start)
	t.Logf("stop with a 2s timeout took %s", took)
	require.GreaterOrEqual(t, took, 2*time.Second, "SIGTERM was ignored, so the daemon waited the timeout")
	// The daemon's own default is 10 s: ending before it shows the 2 s
	// timeout was used, with room for a daemon loaded by the whole suite.
	require.Less(t, took, 9*time.Second, "then SIGKILL")
	info, err := o.InspectContainer(ctx, id)
	require.NoError(t, err)
	require.Equal(t, heph.StatusExited, info.Status)
	require.Equal(t, 137, info.ExitCode, "killed by SIGKILL")
}

// TestExitCodeAndMounts checks each kind of mount inside the container,
// from /proc/self/mountinfo and the files themselves: the bind mount is
// there, read-only, with the host's file; the named volume is mounted and
// keeps what was written to it for the next container; the tmpfs is a
// tmpfs. And the exit code is the app's.
func TestExitCodeAndMounts(t *testing.T) {
	t.Parallel()
	o := testenv.Orchestrator(t)
	ctx := context.Background()
	hostDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(hostDir, "in.txt"), []byte("from the host"), 0o644))
	volume := "heph-test-vol-" + o.Session()[:8]
	mounts := []heph.Mount{
		{Type: heph.MountBind, Source: hostDir, Target: "/in", ReadOnly: true},
		{Type: heph.MountVolume, Source: volume, Target: "/vol"},
		{Type: heph.MountTmpfs, Target: "/scratch"},
	}
	c := run(t, o, heph.ContainerConfig{
		Image: testenv.Image(t),
		Cmd: []string{"-cat", "/in/in.txt", "-cat", "/proc/self/mountinfo",
			"-write", "/vol/x=in the volume", "-write", "/scratch/y=2", "-exit", "3", "-exit-after", "100ms"},
		Mounts: mounts,
	})
	info := awaitExit(t, o, c.ID())
	require.Equal(t, 3, info.ExitCode, "the app's exit code")
	require.False(t, info.OOMKilled)
	require.False(t, info.Finished.IsZero())

	log, err := c.Logs(ctx)
	require.NoError(t, err)
	require.Contains(t, log, "cat /in/in.txt: from the host\n", "the bind mount holds the host's file")
	in, ok := mountAt(log, "/in")
	require.True(t, ok, "nothing is mounted on /in:\n%s", log)
	require.Contains(t, strings.Split(in.options, ","), "ro", "the bind mount is read-only: %+v", in)
	vol, ok := mountAt(log, "/vol")
	require.True(t, ok, "nothing is mounted on /vol:\n%s", log)
	require.Contains(t, vol.root, volume, "/vol is the named volume: %+v", vol)
	require.Contains(t, strings.Split(vol.options, ","), "rw", "the volume is writable: %+v", vol)
	scratch, ok := mountAt(log, "/scratch")
	require.True(t, ok, "nothing is mounted on /scratch:\n%s", log)
	require.Equal(t, "tmpfs", scratch.fstype, "/scratch is a tmpfs: %+v", scratch)

	// The volume kept the file for the next container of the session; the
	// tmpfs of that one is new and empty.
	c2 := run(t, o, heph.ContainerConfig{
		Image: testenv.Image(t), Cmd: []string{"-cat", "/vol/x", "-cat", "/scratch/y", "-exit", "0", "-exit-after", "1ms"},
		Mounts: mounts,
	})
	awaitExit(t, o, c2.ID())
	log2, err := c2.Logs(ctx)
	require.NoError(t, err)
	require.Contains(t, log2, "cat /vol/x: in the volume\n", "the volume kept what the first container wrote")
	require.Contains(t, log2, "cat /scratch/y: error: ", "the tmpfs of the second container is not the first's")

	raw := testenv.Docker(t)
	vols, err := raw.VolumeList(ctx, volumeFilter(volume))
	require.NoError(t, err)
	require.Len(t, vols.Items, 1, "the named volume exists")
	require.Equal(t, o.Session(), vols.Items[0].Labels[heph.LabelSession], "and is labelled with the session")
	require.NoError(t, o.Teardown(ctx))
	vols, err = raw.VolumeList(ctx, volumeFilter(volume))
	require.NoError(t, err)
	require.Empty(t, vols.Items, "Teardown removed the session's volume")
}

// awaitExit polls until the container has exited and returns its state.
func awaitExit(t *testing.T, o *heph.Orchestrator, id string) heph.ContainerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var info heph.ContainerInfo
	require.NoError(t, backoff.Retry(func() error {
		var err error
		info, err = o.InspectContainer(ctx, id)
		if err != nil {
			return backoff.Permanent(err)
		}
		if info.Status != heph.StatusExited {
			return errors.New(string(info.Status))
		}
		return nil
	}, backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(10*time.Millisecond), backoff.WithMaxInterval(250*time.Millisecond)), ctx)))
	return info
}

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct{ root, options, fstype string }

// mountAt finds the mount on target in a log that holds
// /proc/self/mountinfo (printed by the test app's -cat).
func mountAt(log, target string) (mountInfo, bool) {
	for _, line := range strings.Split(log, "\n") {
		line = strings.TrimPrefix(line, "cat /proc/self/mountinfo: ")
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 1 || f[4] != target {
			continue
		}
		return mountInfo{root: f[3], options: f[5], fstype: g[0]}, true
	}
	return mountInfo{}, false
}

// TestTeardownLeavesNothing: after Teardown, nothing of the session is left
// on the daemon: no container (running, ignoring SIGTERM, or never
// started), no network, no volume (named or anonymous).
func TestTeardownLeavesNothing(t *testing.T) {
	t.Parallel()
	o := testenv.Orchestrator(t)
	ctx := context.Background()
	net, err := o.CreateNetwork(ctx, heph.NetworkConfig{})
	require.NoError(t, err)
	volume := "heph-test-leaves-" + o.Session()[:8]
	var anonymous string // the daemon names it; it carries no label
	for i := range 3 {
		cmd := []string{"-http", ":8080"}
		var mounts []heph.Mount
		switch i {
		case 1:
			mounts = []heph.Mount{{Type: heph.MountVolume, Source: volume, Target: "/vol"}}
		case 2:
			cmd = append(cmd, "-ignore-sigterm")
			mounts = []heph.Mount{{Type: heph.MountVolume, Target: "/anon"}}
		}
		c := run(t, o, heph.ContainerConfig{Image: testenv.Image(t), Cmd: cmd, Networks: []string{net.Name()}, Mounts: mounts})
		if i == 2 {
			info, err := testenv.Docker(t).ContainerInspect(ctx, c.ID(), client.ContainerInspectOptions{})
			require.NoError(t, err)
			require.Len(t, info.Container.Mounts, 1)
			anonymous = info.Container.Mounts[0].Name
			require.NotEmpty(t, anonymous)
		}
	}
	_, err = o.CreateContainer(ctx, heph.ContainerConfig{Image: testenv.Image(t), Networks: []string{net.Name()}}) // created, never started
	require.NoError(t, err)
	require.Len(t, sessionContainers(t, o), 4)
	left := sessionObjects(t, o.Session())
	require.Len(t, left.networks, 1, "the session's network exists before the teardown")
	require.Equal(t, []string{volume}, left.volumes, "the session's named volume exists before the teardown")

	start := time.Now()
	require.NoError(t, o.Teardown(ctx))
	t.Logf("teardown of 4 containers, a network and 2 volumes took %s", time.Since(start))
	require.Empty(t, sessionContainers(t, o))
	require.Equal(t, objects{}, sessionObjects(t, o.Session()), "left by the session after its teardown")
	_, err = testenv.Docker(t).VolumeInspect(ctx, anonymous, client.VolumeInspectOptions{})
	require.Error(t, err, "the anonymous volume %s is left", anonymous)
	require.NoError(t, o.Teardown(ctx), "Teardown is idempotent")
}

// objects are the names of what a session has on the daemon.
type objects struct{ containers, networks, volumes []string }

// sessionObjects lists, with the raw SDK, every container (running or
// not), network and volume labelled with the session.
func sessionObjects(t *testing.T, session string) objects {
	t.Helper()
	ctx := context.Background()
	raw := testenv.Docker(t)
	f := make(client.Filters).Add("label", heph.LabelSession+"="+session)
	var got objects
	cs, err := raw.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	require.NoError(t, err)
	for _, c := range cs.Items {
		got.containers = append(got.containers, c.Names...)
	}
	ns, err := raw.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	require.NoError(t, err)
	for _, n := range ns.Items {
		got.networks = append(got.networks, n.Name)
	}
	vs, err := raw.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	require.NoError(t, err)
	for _, v := range vs.Items {
		got.volumes = append(got.volumes, v.Name)
	}
	return got
}

func TestListContainersSeesOtherOrchestrators(t *testing.T) {
	t.Parallel()
	o1, o2 := testenv.Orchestrator(t), testenv.Orchestrator(t)
	ctx := context.Background()
	c, err := o2.CreateContainer(ctx, heph.ContainerConfig{Image: testenv.Image(t), Service: "other"})
	require.NoError(t, err)
	id := c.ID()
	all, err := o1.ListContainers(ctx)
	require.NoError(t, err)
	var found *heph.ContainerInfo
	for i := range all {
		require.True(t, strings.HasPrefix(all[i].Name, "heph-"), all[i].Name)
		if all[i].ID == id {
			found = &all[i]
		}
	}
	require.NotNil(t, found, "o1 lists o2's container")
	require.Equal(t, heph.StatusCreated, found.Status)
	require.Equal(t, "other", found.Service)
	require.Equal(t, o2.Session(), found.Labels[heph.LabelSession])
}

func TestPullFromALocalRegistry(t *testing.T) {
	t.Parallel()
	o := testenv.Orchestrator(t)
	raw := testenv.Docker(t)
	ref := testenv.Registry(t) + "/heph/testapp:pull-" + o.Session()[:8]
	testenv.Push(t, raw, testenv.Image(t), ref)
	testenv.RemoveImage(t, raw, ref)
	t.Cleanup(func() { testenv.RemoveImage(t, raw, ref) })

	start := time.Now()
	c := run(t, o, heph.ContainerConfig{Image: ref, Cmd: []string{"-http", ":8080"}, ExposedPorts: []string{"8080"}})
	t.Logf("create with pull from 127.0.0.1 took %s", time.Since(start))
	_, err := raw.ImageInspect(context.Background(), ref)
	require.NoError(t, err, "CreateContainer pulled the image")
	require.Equal(t, "ok", strings.TrimSpace(get(t, "http://"+endpoint(t, c, "8080/tcp")+"/")))
}

func TestMissingImage(t *testing.T) {
	t.Parallel()
	o := testenv.Orchestrator(t)
	ref := testenv.Registry(t) + "/heph/does-not-exist:1"
	_, err := o.CreateContainer(context.Background(), heph.ContainerConfig{Image: ref})
	require.ErrorIs(t, err, heph.ErrImageNotFound)
	require.Contains(t, err.Error(), `heph: pull image "`+ref+`"`)
	require.Empty(t, sessionContainers(t, o))
}

func TestStallingRegistryHitsThePullTimeout(t *testing.T) {
	t.Parallel()
	o := testenv.Orchestrator(t)
	ref := testenv.StallingRegistry(t) + "/heph/stalls:1"
	start := time.Now()
	_, err := o.CreateContainer(context.Background(), heph.ContainerConfig{Image: ref, PullTimeout: 2 * time.Second})
	took := time.Since(start)
	t.Logf("pull against a stalling registry failed after %s: %v", took, err)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Contains(t, err.Error(), "timed out after")
	require.GreaterOrEqual(t, took, 2*time.Second)
	// Ten times the pull timeout: ended by it, not hanging with the
	// registry (the suite's load can add seconds to the create around it).
	require.Less(t, took, 20*time.Second)
}

func TestBuildImageReportsFailingStep(t *testing.T) {
	t.Parallel()
	o := testenv.Orchestrator(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY ignored.txt /\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ignored.txt"), []byte("x"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("ignored.txt\n"), 0o644))
	_, err := o.BuildImage(context.Background(), dir, heph.Build{Name: "broken"})
	require.Error(t, err, "the file is left out of the context by .dockerignore, so COPY fails")
	require.Contains(t, err.Error(), "ignored.txt")
	require.Contains(t, err.Error(), `build image "heph-build/broken:`)
}

func TestNoDaemon(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	start := time.Now()
	_, err := heph.NewOrchestrator()
	require.ErrorIs(t, err, heph.ErrDockerUnavailable)
	require.Contains(t, err.Error(), "/nonexistent/docker.sock")
	// A missing socket fails at once; the bound is a sixth of the 30 s
	// NewOrchestrator would wait for a daemon that does not answer.
	require.Less(t, time.Since(start), 5*time.Second)
}

func volumeFilter(name string) client.VolumeListOptions {
	return client.VolumeListOptions{Filters: make(client.Filters).Add("name", name)}
}
