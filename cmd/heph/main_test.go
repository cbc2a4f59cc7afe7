package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/sessions"
	"github.com/stretchr/testify/require"
)

// Unit tests: the output formats against golden files (fixed input, no
// Docker; go test -update rewrites them), the selection of prune, and the
// command line.

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create it")
	require.Equal(t, string(want), string(got), "%s differs (go test -update rewrites it)", path)
}

var now = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// fixture is a daemon's worth of sessions: alive and stale ones on this
// host, one from another host, one from a heph without backstop labels.
func fixture() []sessions.Session {
	at := func(ago time.Duration) time.Time { return now.Add(-ago) }
	return []sessions.Session{
		{
			ID: "0d9a4c1e-7a61-4a8b-9a55-1c2f5e8d3b70", Tests: []string{"TestCheckout/pays_with_card"}, PID: 48211, Host: "ci-runner-7",
			Created: at(9 * 24 * time.Hour), Process: sessions.ProcessGone,
			Resources: []sessions.Resource{
				{Kind: sessions.ResourceContainer, ID: "c1", Name: "heph-db-5e6f7a8b", Test: "TestCheckout/pays_with_card", State: "exited", Created: at(9 * 24 * time.Hour)},
				{Kind: sessions.ResourceContainer, ID: "c2", Name: "heph-payments-0a1b2c3d", Test: "TestCheckout/pays_with_card", State: "running", Created: at(9 * 24 * time.Hour)},
				{Kind: sessions.ResourceNetwork, ID: "n1", Name: "heph-net-9f8e7d6c", Created: at(9 * 24 * time.Hour)},
				{Kind: sessions.ResourceVolume, ID: "heph-pgdata-0d9a4c1e", Name: "heph-pgdata-0d9a4c1e", Created: at(9 * 24 * time.Hour)},
			},
		},
		{
			ID: "7b3e2f10-55aa-4c3d-8e21-b0c4d9a6e512", Tests: []string{"TestAPI/a_rather_long_subtest_name_that_does_not_fit", "TestAPI/login"}, PID: 1207, Host: "laptop",
			Created: at(5 * time.Hour), Process: sessions.ProcessUnknown,
			Resources: []sessions.Resource{
				{Kind: sessions.ResourceContainer, ID: "c3", Name: "heph-api-12ab34cd", State: "running", Created: at(5 * time.Hour)},
			},
		},
		{
			ID: "a41f0c77-3d2e-4b19-9c08-6e5f7a8b9c0d", Tests: []string{"TestLogin"}, PID: 50123, Host: "ci-runner-7",
			Created: at(42 * time.Second), Process: sessions.ProcessAlive,
			Resources: []sessions.Resource{
				{Kind: sessions.ResourceContainer, ID: "c4", Name: "heph-web-1a2b3c4d", Test: "TestLogin", State: "running", Created: at(41 * time.Second)},
				{Kind: sessions.ResourceContainer, ID: "c5", Name: "heph-worker-2b3c4d5e", Test: "TestLogin", State: "created", Created: at(40 * time.Second)},
				{Kind: sessions.ResourceNetwork, ID: "n2", Name: "heph-net-3c4d5e6f", Created: at(42 * time.Second)},
			},
		},
		{
			ID: "b52e", Process: sessions.ProcessUnknown,
			Resources: []sessions.Resource{{Kind: sessions.ResourceNetwork, ID: "n3", Name: "heph-net-00000000"}},
		},
	}
}

const daemonHost = "unix:///var/run/docker.sock"

// imageFixture is what builtImages gives for a daemon with three images heph
// built, one in use.
func imageFixture() []imageView {
	ago := func(d time.Duration) *int64 { s := int64(d.Seconds()); return &s }
	return []imageView{
		{ID: "sha256:1111", Tags: []string{"heph-build/api:3f2a9c1d7e4b"}, Source: "github.com/acme/shop/cmd/api", Size: 9_412_608, Created: now.Add(-2 * time.Hour), AgeSeconds: ago(2 * time.Hour), InUse: true},
		{ID: "sha256:2222", Tags: []string{"heph-build/doctor-probe:93061b37a7d7"}, Source: "/tmp/heph-doctor-1234", Size: 2_203_648, Created: now.Add(-3 * 24 * time.Hour), AgeSeconds: ago(3 * 24 * time.Hour)},
		{ID: "sha256:3333", Tags: []string{"heph-build/testdb:0a1b2c3d4e5f"}, Source: "/home/me/shop/testdata/db-with-a-rather-long-directory-name", Size: 151_000_000},
	}
}

func TestPsGolden(t *testing.T) {
	r := psReport{Daemon: daemonHost, Sessions: views(fixture(), now, "ci-runner-7"), Images: imageFixture()}
	var text, js, empty bytes.Buffer
	writePs(&text, r)
	golden(t, "ps.golden", text.Bytes())
	require.NoError(t, writeJSON(&js, r))
	golden(t, "ps.json.golden", js.Bytes())
	writePs(&empty, psReport{Daemon: daemonHost, Sessions: views(nil, now, "ci-runner-7"), Images: []imageView{}})
	golden(t, "ps_empty.golden", empty.Bytes())
	for _, l := range strings.Split(text.String(), "\n") {
		require.LessOrEqual(t, len([]rune(l)), 120, "fits a terminal: %q", l)
		require.Equal(t, strings.TrimRight(l, " "), l, "no trailing spaces")
	}
}

func TestPruneGolden(t *testing.T) {
	stale, err := selectSessions(fixture(), pruneSelection{stale: true}, now)
	require.NoError(t, err)
	dry := pruneReport{Daemon: daemonHost, DryRun: true, Sessions: views(stale, now, "ci-runner-7"), Images: []imageView{}, KeptImages: []imageView{}, Errors: []string{}}
	var text, js bytes.Buffer
	writePrune(&text, dry)
	golden(t, "prune_dry_run.golden", text.Bytes())
	require.NoError(t, writeJSON(&js, dry))
	golden(t, "prune_dry_run.json.golden", js.Bytes())

	done := dry
	done.DryRun = false
	text.Reset()
	writePrune(&text, done)
	golden(t, "prune.golden", text.Bytes())

	text.Reset()
	writePrune(&text, pruneReport{Daemon: daemonHost, Sessions: []sessionView{}})
	golden(t, "prune_nothing.golden", text.Bytes())

	imgs := imageFixture()
	images := pruneReport{Daemon: daemonHost, DryRun: true, Sessions: []sessionView{}, Images: imgs[1:], KeptImages: imgs[:1], Errors: []string{}, images: true}
	text.Reset()
	writePrune(&text, images)
	golden(t, "prune_images_dry_run.golden", text.Bytes())
	js.Reset()
	require.NoError(t, writeJSON(&js, images))
	golden(t, "prune_images_dry_run.json.golden", js.Bytes())
	images.DryRun = false
	text.Reset()
	writePrune(&text, images)
	golden(t, "prune_images.golden", text.Bytes())
}

func TestDoctorGolden(t *testing.T) {
	ok := doctorReport{OK: true, Checks: []check{
		{Name: "daemon", Status: statusOK, Detail: "unix:///var/run/docker.sock, found by: default socket"},
		{Name: "server", Status: statusOK, Detail: "Docker Engine 20.10.24 (linux/amd64), API 1.41 (the daemon speaks 1.12 to 1.41)"},
		{Name: "rootless", Status: statusOK, Detail: "no"},
		{Name: "watchdog", Status: statusOK, Detail: "on: when a test process dies, its watchdog removes its resources"},
		{Name: "network", Status: statusOK, Detail: "created heph-net-1a2b3c4d"},
		{Name: "image", Status: statusOK, Detail: "built heph-build/doctor-probe:93061b37a7d7 from go build (linux/amd64) in 560ms"},
		{Name: "container", Status: statusOK, Detail: "started heph-doctor-6a2c7316 from it on heph-net-1a2b3c4d"},
		{Name: "port", Status: statusOK, Detail: "127.0.0.1:32938 (published on loopback) answered from the container in 12ms"},
		{Name: "cleanup", Status: statusOK, Detail: "removed the container and the network doctor made"},
		{Name: "leftovers", Status: statusOK, Detail: "3 sessions on the daemon, 1 stale (their processes are gone)", Fix: "heph prune --stale removes the stale ones"},
	}}
	var text, js bytes.Buffer
	writeDoctor(&text, ok)
	golden(t, "doctor_ok.golden", text.Bytes())
	require.NoError(t, writeJSON(&js, ok))
	golden(t, "doctor_ok.json.golden", js.Bytes())

	// The real failure without a daemon, through run with a fake connect.
	e, out, _ := testEnv(map[string]string{"DOCKER_HOST": "unix:///nonexistent.sock"})
	e.connect = connectDaemon // the real discovery and connection, to a socket that is not there
	t.Setenv("DOCKER_HOST", "unix:///nonexistent.sock")
	t.Setenv("DOCKER_CONTEXT", "")
	require.Equal(t, exitFail, e.run([]string{"doctor"}))
	golden(t, "doctor_no_daemon.golden", out.Bytes())
}

func testEnv(vars map[string]string) (env, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	return env{
		stdout: &out, stderr: &errOut, now: func() time.Time { return now },
		connect: func() (engine.API, engine.Endpoint, error) {
			return nil, engine.Endpoint{}, errors.New("no Docker in unit tests")
		},
		orchestrator: func() (*heph.Orchestrator, error) { return nil, errors.New("no Docker in unit tests") },
		getenv:       func(k string) string { return vars[k] },
	}, &out, &errOut
}

func TestSelectSessions(t *testing.T) {
	ids := func(ss []sessions.Session) []string {
		out := []string{}
		for _, s := range ss {
			out = append(out, shortID(s.ID))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		sel  pruneSelection
		want []string
		err  string
	}{
		{"--all is everything", pruneSelection{all: true}, []string{"0d9a4c1e", "7b3e2f10", "a41f0c77", "b52e", "a4ffffff"}, ""},
		{"--stale: the process is gone on this host; unknown is not stale", pruneSelection{stale: true}, []string{"0d9a4c1e"}, ""},
		{"--older-than: sessions without a creation time are never old", pruneSelection{olderThan: time.Hour}, []string{"0d9a4c1e", "7b3e2f10"}, ""},
		{"selectors combine", pruneSelection{stale: true, olderThan: 10 * 24 * time.Hour}, []string{}, ""},
		{"a full id", pruneSelection{sessions: []string{"7b3e2f10-55aa-4c3d-8e21-b0c4d9a6e512"}}, []string{"7b3e2f10"}, ""},
		{"a unique prefix", pruneSelection{sessions: []string{"a41f"}}, []string{"a41f0c77"}, ""},
		{"a full id that prefixes nothing else wins", pruneSelection{sessions: []string{"b52e"}}, []string{"b52e"}, ""},
		{"two ids", pruneSelection{sessions: []string{"a41f", "0d9a"}}, []string{"0d9a4c1e", "a41f0c77"}, ""},
		{"an id with --stale keeps the condition", pruneSelection{sessions: []string{"a41f"}, stale: true}, []string{}, ""},
		{"an ambiguous prefix", pruneSelection{sessions: []string{"a4"}}, nil, `session "a4" is ambiguous: it starts a41f0c77-3d2e-4b19-9c08-6e5f7a8b9c0d, a4ffffff`},
		{"an unknown id", pruneSelection{sessions: []string{"ffff"}}, nil, `no heph resources of session "ffff"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sessions := append(fixture(), sessions.Session{ID: "a4ffffff", Process: sessions.ProcessUnknown})
			got, err := selectSessions(sessions, tc.sel, now)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, ids(got))
		})
	}
}

func TestAge(t *testing.T) {
	for secs, want := range map[int64]string{-3: "0s", 0: "0s", 59: "59s", 60: "1m", 3599: "59m", 3600: "1h", 47 * 3600: "47h", 48 * 3600: "2d", 400 * 86400: "400d"} {
		require.Equal(t, want, age(secs, true), "%d", secs)
	}
	require.Equal(t, "?", age(0, false))
}

func TestDurationFlag(t *testing.T) {
	for in, want := range map[string]time.Duration{"30m": 30 * time.Minute, "2h": 2 * time.Hour, "7d": 7 * 24 * time.Hour, "0d": 0, "1h30m": 90 * time.Minute} {
		var d duration
		require.NoError(t, d.Set(in), in)
		require.Equal(t, want, d.d, in)
	}
	for _, in := range []string{"", "7", "d", "1.5d", "-1h", "-2d", "week"} {
		var d duration
		require.Error(t, d.Set(in), in)
	}
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		status int
		out    string // in stdout
		errOut string // in stderr
	}{
		{nil, exitUsage, "", "Usage:"},
		{[]string{"help"}, exitOK, "Usage:", ""},
		{[]string{"--help"}, exitOK, "Usage:", ""},
		{[]string{"rm"}, exitUsage, "", `unknown command "rm"`},
		{[]string{"prune"}, exitUsage, "", "say what to remove: --stale, --older-than DURATION, --session ID, --all, or --images"},
		{[]string{"prune", "--older-than", "soon"}, exitUsage, "", `want a duration such as 30m, 2h or 7d, not "soon"`},
		{[]string{"prune", "--session", ""}, exitUsage, "", "empty session id"},
		{[]string{"ps", "extra"}, exitUsage, "", `unexpected argument "extra"`},
		{[]string{"ps", "--bogus"}, exitUsage, "", "flag provided but not defined: -bogus"},
		{[]string{"ps", "-h"}, exitOK, "", "Usage:"},
		{[]string{"ps"}, exitFail, "", "heph ps: no Docker in unit tests"},
		{[]string{"prune", "--stale"}, exitFail, "", "heph prune: no Docker in unit tests"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			e, out, errOut := testEnv(nil)
			require.Equal(t, tc.status, e.run(tc.args), "stdout:\n%s\nstderr:\n%s", out, errOut)
			require.Contains(t, out.String(), tc.out)
			require.Contains(t, errOut.String(), tc.errOut)
		})
	}
}

func TestDaemonFix(t *testing.T) {
	unavailable := func(detail string, cause error) error {
		return fmt.Errorf("%w; tried:\n  - %s: %w\nwhat to do:\n  - \"permission denied\" on the socket: add your user to the docker group", heph.ErrDockerUnavailable, detail, cause)
	}
	vars := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, tc := range []struct {
		name   string
		err    error
		getenv func(string) string
		want   string
	}{
		{"DOCKER_HOST at nothing", unavailable("unix:///x.sock (DOCKER_HOST)", syscall.ENOENT), vars("DOCKER_HOST", "unix:///x.sock"), "DOCKER_HOST=unix:///x.sock points at no running daemon"},
		{"no permission on the socket", unavailable("unix:///var/run/docker.sock (default socket)", syscall.EACCES), vars(), "sudo usermod -aG docker $USER"},
		{"a context whose daemon is down", unavailable(`tcp://h:2376 (context "remote" (DOCKER_CONTEXT))`, syscall.ECONNREFUSED), vars("DOCKER_CONTEXT", "remote"), "docker context use default"},
		{"nothing anywhere", unavailable("unix:///var/run/docker.sock (default socket)", syscall.ENOENT), vars(), "start the daemon"},
		{"a bad setting", fmt.Errorf("%w: %w: DOCKER_API_VERSION \"x\"", heph.ErrDockerUnavailable, heph.ErrInvalidConfig), vars(), "correct the setting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, daemonFix(tc.err, tc.getenv), tc.want)
		})
	}
	require.NotContains(t, daemonFailure(unavailable("x", syscall.ENOENT)), "what to do", "doctor's fix replaces heph's list")
}

func TestNetworkFix(t *testing.T) {
	require.Contains(t, networkFix(fmt.Errorf("%w: start /x: boom", heph.ErrWatchdog)), "HEPH_REAPER=off")
	require.Contains(t, networkFix(fmt.Errorf("create network: %w", heph.ErrNetworkPoolExhausted)), "heph prune --stale")
	require.Contains(t, networkFix(errors.New("boom")), "docker network create")
}

func TestIsLoopback(t *testing.T) {
	for in, want := range map[string]bool{
		"127.0.0.1": true, "localhost": true, "::1": true, "127.0.0.2": true,
		"build-box": false, "10.0.0.7": false, "": false,
	} {
		require.Equal(t, want, isLoopback(in), in)
	}
}

func TestProbeSourceIsEmbedded(t *testing.T) {
	require.Contains(t, string(probeSource), "package probe")
	require.Contains(t, string(probeSource), "func Main()")
}

func TestProbeBinaryFailsClearlyWhenNeitherWayWorks(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no go
	_, err := probeBinary(context.Background(), filepath.Join(t.TempDir(), "probe"), "linux", "riscv64")
	var ie *imageError
	require.ErrorAs(t, err, &ie)
	require.Contains(t, ie.msg, "Go is not on PATH, and this heph binary cannot serve instead: it is built for")
	require.Contains(t, ie.fix, "put Go on PATH")
	require.Contains(t, ie.fix, "CGO_ENABLED=0 go install github.com/heph-go/heph/cmd/heph@latest")
}
