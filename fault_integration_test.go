//go:build integration

package heph_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/reaperchild"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/heph-go/heph/internal/testenv/faultproxy"
	"github.com/heph-go/heph/wait"
)

// Fault injection at the HTTP seam, against the real daemon: an
// Orchestrator talks to it through faultproxy, which breaks what each test
// says. These tests are not parallel: the watchdog is off while they run
// (it would outlive the proxy it dials).

// proxied returns an Orchestrator over a new proxy, torn down (and its
// session's leftovers checked) when the test ends.
func proxied(t *testing.T) (*heph.Orchestrator, *faultproxy.Proxy) {
	t.Helper()
	t.Setenv(heph.EnvReaper, "off")
	p := faultproxy.New(t)
	o, err := heph.NewOrchestrator(heph.Daemon{Host: p.Host})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = p.Start() // in case the test left it stopped
		require.NoError(t, o.Teardown(ctx))
		_ = o.Close()
		requireNothingOf(t, o.Session())
	})
	return o, p
}

// requireNothingOf fails when the daemon holds anything of session.
func requireNothingOf(t *testing.T, session string) {
	t.Helper()
	docker := testenv.Docker(t)
	ctx := context.Background()
	f := make(client.Filters).Add("label", heph.LabelSession+"="+session)
	cs, err := docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	require.NoError(t, err)
	require.Empty(t, cs.Items, "no container of the session is left")
	ns, err := docker.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	require.NoError(t, err)
	require.Empty(t, ns.Items, "no network of the session is left")
	vs, err := docker.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	require.NoError(t, err)
	require.Empty(t, vs.Items, "no volume of the session is left")
}

// TestAHealthWaitOutlastsCutEventStreams: every events stream the daemon
// opens is cut at once. ForHealthCheck subscribes again and looks at the
// state: a container that turns healthy is ready; one that never does fails
// at its deadline with the health status, and the wait never hangs.
func TestAHealthWaitOutlastsCutEventStreams(t *testing.T) {
	o, p := proxied(t)
	events := p.Add(&faultproxy.Rule{Method: "GET", Path: `^/events$`, Fault: faultproxy.CutStream})
	image := testenv.HealthImage(t)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := o.CreateContainer(ctx, heph.ContainerConfig{Image: image, Service: "slow", Cmd: []string{"-healthy-after", "2s"}, WaitStrategy: wait.ForHealthCheck()})
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, c.Start(ctx), "ready once healthy, events or not")
	t.Logf("healthy after %s; %d events streams cut", time.Since(start).Round(time.Millisecond), events.Applied())
	require.Positive(t, events.Applied(), "the wait did subscribe, and was cut")

	sick, err := o.CreateContainer(ctx, heph.ContainerConfig{Image: image, Service: "sick", Cmd: []string{"-unhealthy"}, WaitStrategy: wait.ForHealthCheck()})
	require.NoError(t, err)
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	start = time.Now()
	err = sick.Start(sctx)
	elapsed := time.Since(start)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Contains(t, err.Error(), "ForHealthCheck()")
	require.Contains(t, err.Error(), "health is ", "the error says what the health was")
	require.Less(t, elapsed, 5*time.Second+30*time.Second, "it ends at its deadline, with slack for a loaded machine")
}

// TestADaemonRestartDuringATest: the daemon goes away (the proxy stops:
// connections cut, the socket gone) while a container runs and an exec is
// under way, and comes back 2 s later. The exec fails at once instead of
// hanging; the Teardown started while the daemon is away waits for it and
// removes everything.
func TestADaemonRestartDuringATest(t *testing.T) {
	o, p := proxied(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n, err := o.CreateNetwork(ctx, heph.NetworkConfig{})
	require.NoError(t, err)
	c, err := o.CreateContainer(ctx, heph.ContainerConfig{Image: testenv.Image(t), Service: "web", Cmd: []string{"-http", ":8080"}, Networks: []string{n.Name()}})
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))

	execs := p.Add(&faultproxy.Rule{Method: "POST", Path: `^/exec/[^/]+/start$`})
	execDone := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "/testapp", "sleep", "60s")
		execDone <- err
	}()
	require.Eventually(t, func() bool { return execs.Matched() == 1 }, time.Minute, 5*time.Millisecond, "the exec runs")
	p.Stop()
	select {
	case err := <-execDone:
		require.Error(t, err, "an exec whose daemon went away fails")
	case <-time.After(time.Minute):
		t.Fatal("an exec outlived its daemon's connection by a minute")
	}

	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		time.Sleep(2 * time.Second) // the daemon is away this long
		require.NoError(t, p.Start())
	}()
	start := time.Now()
	require.NoError(t, o.Teardown(ctx), "the teardown waited for the daemon")
	<-restarted
	require.GreaterOrEqual(t, time.Since(start), 2*time.Second, "it did wait")
	t.Logf("Teardown removed everything %s after the daemon went away", time.Since(start).Round(time.Millisecond))
	requireNothingOf(t, o.Session())
}

// TestACutPullIsAnError: the pull's progress stream is cut in the middle.
// The pull fails with an error, and no container is created from whatever
// the daemon has of the image.
func TestACutPullIsAnError(t *testing.T) {
	o, p := proxied(t)
	docker := testenv.Docker(t)
	ref := testenv.Registry(t) + "/heph/cut:1"
	testenv.Push(t, docker, testenv.Image(t), ref)
	testenv.RemoveImage(t, docker, ref)
	t.Cleanup(func() { testenv.RemoveImage(t, docker, ref) })
	pulls := p.Add(&faultproxy.Rule{Method: "POST", Path: `^/images/create$`, Fault: faultproxy.CutStream, After: 40})
	creates := p.Add(&faultproxy.Rule{Method: "POST", Path: `^/containers/create$`})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := o.CreateContainer(ctx, heph.ContainerConfig{Image: ref, Service: "cut"})
	require.Error(t, err)
	t.Logf("the cut pull: %v", err)
	require.Contains(t, err.Error(), "pull")
	require.Equal(t, int64(1), pulls.Applied(), "the pull was cut")
	require.Zero(t, creates.Matched(), "no container was created")
}

// TestCutStreamsAreErrors: a log or an archive whose stream is cut in the
// middle is an error, not a short answer.
func TestCutStreamsAreErrors(t *testing.T) {
	o, p := proxied(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := o.CreateContainer(ctx, heph.ContainerConfig{Image: testenv.Image(t), Service: "chatty",
		Cmd:          []string{"-log-bytes", "200KB", "-write", "/data/big=" + strings.Repeat("x", 4096), "-http", ":8080"},
		WaitStrategy: wait.ForLog("listening http")})
	require.NoError(t, err)
	require.NoError(t, c.Start(ctx))

	p.Add(&faultproxy.Rule{Method: "GET", Path: `/logs$`, Fault: faultproxy.CutStream, After: 3000, Times: 1})
	_, err = c.Logs(ctx)
	require.Error(t, err, "a cut log is an error")
	out, err := c.Logs(ctx)
	require.NoError(t, err, "the next one is whole")
	require.Contains(t, out, "listening http")

	p.Add(&faultproxy.Rule{Method: "GET", Path: `/archive$`, Fault: faultproxy.CutStream, After: 1500, Times: 1})
	dst := filepath.Join(t.TempDir(), "data")
	err = c.CopyFromContainer(ctx, "/data", dst)
	require.Error(t, err, "a cut archive is an error")
	require.True(t, errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "unexpected EOF"), err.Error())
	require.NoError(t, c.CopyFromContainer(ctx, "/data", dst), "the next copy is whole")
	b, err := os.ReadFile(filepath.Join(dst, "big"))
	require.NoError(t, err)
	require.Len(t, b, 4096)
}

// TestALateCreateOfAProcessThatExitsIsRemovedByItsWatchdog: a process's
// network create gets the daemon's answer only after the process gave up
// and exited at once (no teardown, no reclaim): its watchdog, talking to the
// daemon the same way, removes the network the daemon made.
func TestALateCreateOfAProcessThatExitsIsRemovedByItsWatchdog(t *testing.T) {
	p := faultproxy.New(t)
	creates := p.Add(&faultproxy.Rule{Method: "POST", Path: `^/networks/create$`, Fault: faultproxy.AnswerLate, Delay: 3 * time.Second})
	bin := reaperchild.Build(t)
	c := reaperchild.Start(t, bin, "late-create", []string{"DOCKER_HOST=" + p.Host})
	_, err := c.Wait(t, time.Minute)
	require.NoError(t, err, c.Output())
	require.Contains(t, c.Output(), "create network: ", c.Output())
	require.Contains(t, c.Output(), "context deadline exceeded", "the process gave up before the answer")
	require.NotEqual(t, 0, c.Watchdog, "it had a watchdog")
	require.Eventually(t, func() bool { return creates.Answered() == 1 }, time.Minute, 10*time.Millisecond, "the daemon made the network")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	docker := testenv.Docker(t)
	require.Eventually(t, func() bool {
		left, err := reaperchild.Resources(ctx, docker, c.Session)
		return err == nil && len(left) == 0
	}, 2*time.Minute, 100*time.Millisecond, "the watchdog removed what the late create made")
}
