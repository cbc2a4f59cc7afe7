//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/reaperchild"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "heph-cmd-test-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		binDir = dir
		return testenv.Main(m)
	}())
}

var (
	binDir    string // removed when the tests end
	binOnce   sync.Once
	binPath   string
	binFailed string
)

// hephBinary builds cmd/heph once for every test of the package: static
// (CGO_ENABLED=0), so doctor can also copy it into its image.
func hephBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		start := time.Now()
		out := filepath.Join(binDir, "heph")
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			binFailed = fmt.Sprintf("go build ./cmd/heph: %v\n%s", err, b)
			return
		}
		binPath = out
		t.Logf("built cmd/heph (CGO_ENABLED=0) in %s", time.Since(start).Round(time.Millisecond))
	})
	if binPath == "" {
		t.Fatal(binFailed)
	}
	return binPath
}

// heph runs the built command with the extra environment and returns its
// exit status, stdout and stderr.
func hephCmd(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	status := 0
	if ee, ok := err.(*exec.ExitError); ok {
		status = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return status, out.String(), errOut.String()
}

// TestDoctorAgainstTheDaemon runs a static heph doctor twice, each time
// making its probe image another way: with Go on PATH it compiles the
// embedded probe with go build; without, it copies itself into the image.
// Every check passes and nothing is left.
func TestDoctorAgainstTheDaemon(t *testing.T) {
	t.Parallel()
	began := time.Now()
	bin := hephBinary(t)
	for _, tc := range []struct {
		name, how string
		env       []string
	}{
		{"GoBuild", "from go build (", nil},
		{"StaticSelf", "from this heph binary (static", []string{"PATH=" + pathWithoutGo(t)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			status, out, errOut := hephCmd(t, bin, tc.env, "doctor")
			t.Logf("heph doctor (%s) took %s:\n%s", tc.name, time.Since(start).Round(time.Millisecond), out)
			require.Equal(t, 0, status, "stderr: %s", errOut)
			require.Contains(t, out, "heph's tests can run here")

			status, out, errOut = hephCmd(t, bin, tc.env, "doctor", "--json")
			require.Equal(t, 0, status, "stdout: %s\nstderr: %s", out, errOut)
			var r doctorReport
			require.NoError(t, json.Unmarshal([]byte(out), &r))
			require.True(t, r.OK)
			var names []string
			for _, c := range r.Checks {
				names = append(names, c.Name)
				require.Equal(t, statusOK, c.Status, "%s: %s", c.Name, c.Detail)
				switch c.Name {
				case "daemon":
					require.Contains(t, c.Detail, "found by: ")
				case "image":
					require.Contains(t, c.Detail, tc.how)
					// doctor keeps its image as a cache; the test does not.
					tag := strings.Fields(strings.TrimPrefix(c.Detail, "built "))[0]
					require.True(t, strings.HasPrefix(tag, "heph-build/doctor-probe:"), tag)
					t.Cleanup(func() { testenv.RemoveImage(t, testenv.Docker(t), tag) })
				case "port":
					require.Contains(t, c.Detail, "127.0.0.1:")
				case "engine":
					for _, want := range engineWants(os.Getenv("HEPH_RIG")) {
						require.Contains(t, c.Detail, want)
					}
				}
			}
			require.Equal(t, []string{"daemon", "server", "engine", "rootless", "watchdog", "network", "image", "container", "port", "cleanup", "leftovers"}, names)
		})
	}
	t.Logf("TestDoctorAgainstTheDaemon took %s", time.Since(began).Round(time.Millisecond))
}

// pathWithoutGo returns a PATH with no go on it, and ssh when there is one
// (an ssh:// daemon is reached through it).
func pathWithoutGo(t *testing.T) string {
	dir := t.TempDir()
	if ssh, err := exec.LookPath("ssh"); err == nil {
		require.NoError(t, os.Symlink(ssh, filepath.Join(dir, "ssh")))
	}
	return dir
}

// engineWants is what doctor's engine line says on each endpoint of
// internal/rig (HEPH_RIG, set by the rig; "" outside it).
func engineWants(rig string) []string {
	switch rig {
	case "podman":
		return []string{"Podman ", "(negotiated)", "connected by unix socket "}
	case "ssh":
		return []string{"Docker ", "connected by ssh to ", "docker system dial-stdio"}
	case "tls":
		return []string{"Docker ", "connected by tcp+TLS to 127.0.0.1:", "server verified against ", "client certificate "}
	case "api-floor":
		return []string{"Docker ", "API 1.40 (fixed by DOCKER_API_VERSION)"}
	default:
		return []string{"API ", "connected by "}
	}
}

// TestDoctorWithoutADaemon points DOCKER_HOST at nothing: doctor names the
// failure and the fix and exits 1.
func TestDoctorWithoutADaemon(t *testing.T) {
	t.Parallel()
	start := time.Now()
	bin := hephBinary(t)
	status, out, _ := hephCmd(t, bin, []string{"DOCKER_HOST=unix:///nonexistent.sock"}, "doctor")
	t.Logf("heph doctor without a daemon took %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	require.Equal(t, 1, status)
	require.Regexp(t, `(?m)^FAIL\s+daemon\s+Docker daemon unavailable`, out)
	require.Contains(t, out, "unix:///nonexistent.sock (DOCKER_HOST)")
	require.Contains(t, out, "fix: DOCKER_HOST=unix:///nonexistent.sock points at no running daemon")
	require.Regexp(t, `(?m)^skip\s+network\s+needs a daemon`, out)
	require.Contains(t, out, "1 check failed")
}

// TestPsAndPruneStaleWithTheReaperOff: a child with HEPH_REAPER=off shows in
// heph ps with its pid, alive; after SIGKILL its resources remain and it
// shows as stale; prune --stale --dry-run lists them and removes nothing;
// prune --stale removes them.
func TestPsAndPruneStaleWithTheReaperOff(t *testing.T) {
	t.Parallel()
	began := time.Now()
	testenv.Image(t)
	bin := hephBinary(t)
	child := reaperchild.Build(t)
	docker := testenv.Docker(t)
	ctx := context.Background()

	c := reaperchild.Start(t, child, "hold", []string{heph.EnvReaper + "=off"})
	require.Zero(t, c.Watchdog, "no watchdog with HEPH_REAPER=off")
	pid := c.Cmd.Process.Pid
	t.Cleanup(func() { // whatever happens, leave nothing
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if left, _ := reaperchild.Resources(cctx, docker, c.Session); len(left) > 0 {
			hephCmd(t, bin, nil, "prune", "--session", c.Session)
		}
	})

	session := func(args ...string) sessionView {
		t.Helper()
		status, out, errOut := hephCmd(t, bin, nil, append(args, "--json")...)
		require.Equal(t, 0, status, "stderr: %s", errOut)
		var r struct{ Sessions []sessionView }
		require.NoError(t, json.Unmarshal([]byte(out), &r), out)
		for _, s := range r.Sessions {
			if s.Session == c.Session {
				return s
			}
		}
		t.Fatalf("heph %s: no session %s in\n%s", strings.Join(args, " "), c.Session, out)
		return sessionView{}
	}

	s := session("ps")
	host, _ := os.Hostname()
	require.Equal(t, pid, s.PID)
	require.Equal(t, host, s.Host)
	require.Equal(t, "alive", s.Process)
	require.Len(t, s.Resources, 5, "3 containers, a network, a volume")
	_, out, _ := hephCmd(t, bin, nil, "ps")
	require.Regexp(t, `(?m)^`+c.Session[:8]+`\s+-\s+`+strconv.Itoa(pid)+`\s+yes\s+\d+s\s+container\s+heph-data-`, out)

	require.NoError(t, c.Cmd.Process.Signal(syscall.SIGKILL))
	_, werr := c.Wait(t, 30*time.Second)
	require.EqualError(t, werr, "signal: killed")

	left, err := reaperchild.Resources(ctx, docker, c.Session)
	require.NoError(t, err)
	require.Len(t, left, 5, "without the watchdog, a killed process's resources remain")
	s = session("ps")
	require.Equal(t, "gone", s.Process)
	_, out, _ = hephCmd(t, bin, nil, "ps")
	require.Regexp(t, `(?m)^`+c.Session[:8]+`\s+-\s+`+strconv.Itoa(pid)+`\s+no\s+`, out)
	require.Contains(t, out, "heph prune --stale removes")

	// --dry-run lists it (whatever else is stale on the daemon) and removes nothing.
	s = session("prune", "--stale", "--dry-run")
	require.Len(t, s.Resources, 5)
	status, out, _ := hephCmd(t, bin, nil, "prune", "--stale", "--dry-run")
	require.Equal(t, 0, status)
	require.Contains(t, out, c.Session[:8])
	require.Contains(t, out, "would remove (dry run, nothing removed)")
	left, err = reaperchild.Resources(ctx, docker, c.Session)
	require.NoError(t, err)
	require.Len(t, left, 5, "a dry run removes nothing")

	// The real prune; --session keeps it to this test's session on a shared
	// daemon (--stale alone is the same selection plus other stale ones).
	start := time.Now()
	status, out, errOut := hephCmd(t, bin, nil, "prune", "--stale", "--session", c.Session)
	took := time.Since(start)
	require.Equal(t, 0, status, "stderr: %s", errOut)
	require.Contains(t, out, "removed: 3 containers, 1 network, 1 volume of 1 session")
	left, err = reaperchild.Resources(ctx, docker, c.Session)
	require.NoError(t, err)
	require.Empty(t, left, "heph prune --stale removed them")
	t.Logf("heph prune --stale removed the 5 resources in %s:\n%s", took.Round(time.Millisecond), out)
	t.Logf("TestPsAndPruneStaleWithTheReaperOff took %s", time.Since(began).Round(time.Millisecond))
}

// onlyLabelled is the daemon, its image list narrowed to images with label:
// a prune on a shared daemon then sees only this test's images, never the
// test images of packages running beside it.
type onlyLabelled struct {
	engine.API
	label string
}

func (o onlyLabelled) ImageList(ctx context.Context, f engine.Filter) ([]engine.Image, error) {
	return o.API.ImageList(ctx, engine.Filter{"label": append(append([]string{}, f["label"]...), o.label)})
}

// TestPsAndPruneImages: heph ps lists the images heph built, in use or not;
// prune --images --dry-run lists the unused ones and removes nothing; prune
// --images removes them and keeps the one a container uses.
func TestPsAndPruneImages(t *testing.T) {
	t.Parallel()
	bin := hephBinary(t)
	docker := testenv.Docker(t)
	o := testenv.Orchestrator(t)
	ctx := context.Background()
	run := fmt.Sprint(time.Now().UnixNano())
	build := func(name string) string {
		t.Helper()
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+testenv.Image(t)+"\nCOPY run /run\n"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "run"), []byte(run), 0o644))
		tag, err := o.BuildImage(ctx, dir, heph.Build{Name: name, Labels: map[string]string{"heph-test.run": run}})
		require.NoError(t, err)
		t.Cleanup(func() { testenv.RemoveImage(t, docker, tag) })
		return tag
	}
	unused, used := build("prune-unused"), build("prune-used")
	c, err := o.CreateContainer(ctx, heph.ContainerConfig{Image: used})
	require.NoError(t, err)

	images := func(list []imageView) map[string]imageView {
		m := map[string]imageView{}
		for _, v := range list {
			for _, tag := range v.Tags {
				m[tag] = v
			}
		}
		return m
	}
	status, out, errOut := hephCmd(t, bin, nil, "ps", "--json")
	require.Equal(t, 0, status, "stderr: %s", errOut)
	var ps psReport
	require.NoError(t, json.Unmarshal([]byte(out), &ps))
	listed := images(ps.Images)
	require.Contains(t, listed, unused)
	require.Contains(t, listed, used)
	require.False(t, listed[unused].InUse)
	require.True(t, listed[used].InUse, "a container was created from it")
	require.Equal(t, filepath.Dir(filepath.Dir(listed[used].Source)), filepath.Dir(filepath.Dir(listed[unused].Source)), "the source is the context directory")
	_, out, _ = hephCmd(t, bin, nil, "ps")
	require.Regexp(t, `(?m)^`+regexp.QuoteMeta(used)+`\s+\S+\s+[0-9.]+ MB\s+\d+[smhd]\s+yes$`, out)
	require.Contains(t, out, "heph prune --images removes those no container uses")

	status, out, errOut = hephCmd(t, bin, nil, "prune", "--images", "--dry-run", "--json")
	require.Equal(t, 0, status, "stderr: %s", errOut)
	var dry pruneReport
	require.NoError(t, json.Unmarshal([]byte(out), &dry))
	require.Contains(t, images(dry.Images), unused)
	require.NotContains(t, images(dry.Images), used)
	require.Contains(t, images(dry.KeptImages), used)
	_, err = docker.ImageInspect(ctx, unused)
	require.NoError(t, err, "a dry run removes nothing")

	var stdout, stderr bytes.Buffer
	e := env{
		stdout: &stdout, stderr: &stderr, now: time.Now, getenv: os.Getenv,
		connect: func() (engine.API, engine.Endpoint, error) {
			api, ep, err := connectDaemon()
			if err != nil {
				return nil, ep, err
			}
			return onlyLabelled{API: api, label: "heph-test.run=" + run}, ep, nil
		},
	}
	require.Equal(t, exitOK, e.run([]string{"prune", "--images"}), "stderr: %s", stderr.String())
	t.Logf("heph prune --images (this test's images only):\n%s", stdout.String())
	require.Contains(t, stdout.String(), "removed: 1 image built by heph")
	require.Contains(t, stdout.String(), "kept 1 image a container uses: "+used)
	_, err = docker.ImageInspect(ctx, unused)
	require.Error(t, err, "removed")
	_, err = docker.ImageInspect(ctx, used)
	require.NoError(t, err, "kept: a container uses it")
	require.NoError(t, c.Terminate(ctx))
}
