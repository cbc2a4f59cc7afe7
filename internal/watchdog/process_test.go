package watchdog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/errs"
)

// Real child processes: this test binary re-executed (see main_test.go).

// fakeEngineAPI serves the calls a watchdog makes (ping, list and remove
// containers, networks and volumes) over HTTP from an enginetest.Fake.
func fakeEngineAPI(f *enginetest.Fake) http.Handler {
	version := regexp.MustCompile(`^/v[0-9]+\.[0-9]+`)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		path := version.ReplaceAllString(r.URL.Path, "")
		if path == "/_ping" {
			w.Header().Set("Api-Version", "1.41")
			_, _ = w.Write([]byte("OK"))
			return
		}
		flt := engine.Filter{}
		if raw := r.URL.Query().Get("filters"); raw != "" {
			var m map[string]map[string]bool
			if err := json.Unmarshal([]byte(raw), &m); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			for k, vs := range m {
				for v := range vs {
					flt.Add(k, v)
				}
			}
		}
		answer := func(v any, err error) {
			var code int
			switch {
			case err == nil:
				if v == nil {
					w.WriteHeader(http.StatusNoContent)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(v)
				return
			case errors.Is(err, engine.ErrNotFound):
				code = http.StatusNotFound
			case errors.Is(err, engine.ErrConflict):
				code = http.StatusConflict
			default:
				code = http.StatusInternalServerError
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(map[string]string{"message": err.Error()})
		}
		parts := strings.Split(strings.Trim(path, "/"), "/")
		switch {
		case r.Method == http.MethodGet && path == "/containers/json":
			cs, err := f.ContainerList(ctx, flt)
			var out []map[string]any
			for _, c := range cs {
				out = append(out, map[string]any{"Id": c.ID, "Names": []string{"/" + c.Name}, "Labels": c.Labels, "State": c.Status, "Created": c.Created.Unix()})
			}
			answer(out, err)
		case r.Method == http.MethodGet && path == "/networks":
			ns, err := f.NetworkList(ctx, flt)
			var out []map[string]any
			for _, n := range ns {
				out = append(out, map[string]any{"Id": n.ID, "Name": n.Name, "Driver": n.Driver, "Labels": n.Labels})
			}
			answer(out, err)
		case r.Method == http.MethodGet && path == "/volumes":
			vs, err := f.VolumeList(ctx, flt)
			var out []map[string]any
			for _, v := range vs {
				out = append(out, map[string]any{"Name": v.Name, "Labels": v.Labels})
			}
			answer(map[string]any{"Volumes": out}, err)
		case r.Method == http.MethodDelete && len(parts) == 2 && parts[0] == "containers":
			answer(nil, f.ContainerRemove(ctx, parts[1]))
		case r.Method == http.MethodDelete && len(parts) == 2 && parts[0] == "networks":
			answer(nil, f.NetworkRemove(ctx, parts[1]))
		case r.Method == http.MethodDelete && len(parts) == 2 && parts[0] == "volumes":
			answer(nil, f.VolumeRemove(ctx, parts[1]))
		default:
			http.Error(w, "not faked: "+r.Method+" "+r.URL.Path, http.StatusNotImplemented)
		}
	})
}

// serve serves f as a daemon on a unix socket and returns its endpoint.
func serve(t *testing.T, f *enginetest.Fake) engine.Endpoint {
	t.Helper()
	sock := filepath.Join(enginetest.SocketDir(t), "d.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	srv := &http.Server{Handler: fakeEngineAPI(f), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return engine.Endpoint{Host: "unix://" + sock, Source: "test"}
}

// startWatchdog starts this test binary as the watchdog of ep; it is
// killed and its log removed when the test ends.
func startWatchdog(t *testing.T, ep engine.Endpoint) *Watchdog {
	t.Helper()
	exe := testBinary(t)
	start := time.Now()
	w, err := StartExecutable(exe, exe, ep, time.Minute)
	require.NoError(t, err)
	t.Logf("watchdog %d started and answered in %s", w.cmd.Process.Pid, time.Since(start).Round(time.Microsecond))
	t.Cleanup(func() { w.stop(); _ = os.Remove(w.log) })
	return w
}

func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	return exe
}

// logOf matches the log file an error names.
var logOf = regexp.MustCompile(`\(its log: ([^)]+)\)`)

// removeLogOf removes the watchdog log err names, if any, when the test ends.
func removeLogOf(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	m := logOf.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	t.Cleanup(func() { _ = os.Remove(m[1]) })
	return m[1]
}

// ownLogs lists this process's watchdog logs in the temporary directory.
func ownLogs(t *testing.T) []string {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("heph-watchdog-%d-*.log", os.Getpid())))
	require.NoError(t, err)
	return logs
}

func TestStartExecutableFailsClearly(t *testing.T) {
	daemon := serve(t, enginetest.NewFake())
	cases := []struct {
		reason  string
		exe     string // "" for this test binary
		mode    string // HEPH_WATCHDOG_TEST_CHILD
		ep      engine.Endpoint
		timeout time.Duration
		want    string
		wantLog string // "" when the log must be gone; else what it holds
	}{
		{reason: "no such executable", exe: "/nonexistent/heph-test-binary", ep: daemon, want: "start /nonexistent/heph-test-binary: fork/exec"},
		{reason: "a program that does not import heph exits", mode: "exit", ep: daemon, want: "exited before it was ready (exit status 3): does the program import heph?"},
		{reason: "a program that fails keeps its log", mode: "log-and-exit", ep: daemon, want: "exited before it was ready (exit status 1)", wantLog: "cannot start: no daemon for you"},
		{reason: "a program that answers something else", mode: "wrong", ep: daemon, want: `answered "hello" instead of "heph-watchdog ready"`},
		{reason: "an answer for another pid is not ours", mode: "wrong-pid", ep: daemon, want: `answered "heph-watchdog ready 1" instead of "heph-watchdog ready"`},
		{reason: "a program that never answers", mode: "mute", ep: daemon, timeout: 300 * time.Millisecond, want: "did not answer within 300ms"},
		{reason: "a watchdog whose daemon is not there fails its ping before it says ready", ep: engine.Endpoint{Host: "unix:///nonexistent/heph.sock", Source: "test"},
			want: "exited before it was ready (exit status 2)", wantLog: "daemon unix:///nonexistent/heph.sock (test) does not answer"},
		{reason: "a watchdog whose daemon never answers does not say ready", ep: engine.Endpoint{Host: "unix://" + enginetest.SilentSocket(t), Source: "test"}, timeout: 500 * time.Millisecond, want: "did not answer within 500ms"},
		{reason: "a watchdog that cannot make a client for its endpoint", ep: engine.Endpoint{Host: "ssh://me@", Source: "test"},
			want: "exited before it was ready (exit status 2)", wantLog: "daemon ssh://me@: an ssh:// address needs a host"},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			if tc.mode != "" {
				t.Setenv(envChild, tc.mode)
			}
			exe := tc.exe
			if exe == "" {
				exe = testBinary(t)
			}
			if tc.timeout == 0 {
				tc.timeout = time.Minute // a generous bound: these fail by themselves
			}
			before := ownLogs(t)
			start := time.Now()
			w, err := StartExecutable(exe, exe, tc.ep, tc.timeout)
			elapsed := time.Since(start)
			logPath := removeLogOf(t, err)
			require.Nil(t, w)
			require.ErrorIs(t, err, errs.Watchdog)
			require.ErrorContains(t, err, tc.want, tc.reason)
			require.ErrorContains(t, err, "set HEPH_REAPER=off to run without it", "the error says how to run without it")
			require.ErrorContains(t, err, "heph prune --stale", "and how to clean up after")
			require.Equal(t, 1, strings.Count(err.Error(), "heph:"), "one prefix")
			require.Less(t, elapsed, 30*time.Second+tc.timeout)
			if tc.wantLog == "" {
				require.Empty(t, logPath, "an empty log is not kept")
				require.ElementsMatch(t, before, ownLogs(t), "and its file is gone")
				return
			}
			require.NotEmpty(t, logPath, "a log with something in it is named")
			log, err := os.ReadFile(logPath)
			require.NoError(t, err)
			require.Contains(t, string(log), tc.wantLog)
		})
	}
}

// TestWatchdogProcessAgainstAFakeDaemon runs the real thing: this test
// binary re-executed as a watchdog, told two sessions and one container to
// keep; when its pipe closes it removes the rest of their resources from the
// fake daemon, leaves another session's alone, exits 0, and keeps its log
// because it removed something.
func TestWatchdogProcessAgainstAFakeDaemon(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := enginetest.NewFake()
	for _, r := range []struct{ kind, name, session string }{
		{"container", "web-1", "s1"}, {"container", "db-1", "s1"}, {"network", "net-1", "s1"}, {"volume", "vol-1", "s1"},
		{"container", "web-2", "s2"},
		{"container", "web-3", "s3"}, {"network", "net-3", "s3"}, {"volume", "vol-3", "s3"}, // not announced
	} {
		switch r.kind {
		case "container":
			_, err := f.ContainerCreate(ctx, engine.ContainerSpec{Name: r.name, Image: "app", Labels: of(r.session)})
			require.NoError(t, err)
		case "network":
			_, err := f.NetworkCreate(ctx, engine.NetworkSpec{Name: r.name, Labels: of(r.session)})
			require.NoError(t, err)
		case "volume":
			f.AddVolume(engine.Volume{Name: r.name, Labels: of(r.session)})
		}
	}
	ep := serve(t, f)
	w := startWatchdog(t, ep)
	require.NoError(t, w.tell("session", "s1"))
	require.NoError(t, w.tell("session", "s2"))
	require.NoError(t, w.tell("keep", "db-1")) // HEPH_KEEP
	require.Equal(t, 8, total(f), "nothing happens while the parent holds the pipe")

	start := time.Now()
	require.NoError(t, w.pipe.Close()) // as when the parent dies
	select {
	case <-w.exited:
	case <-time.After(time.Minute):
		t.Fatal("the watchdog did not exit")
	}
	require.Equal(t, 0, w.cmd.ProcessState.ExitCode(), "the watchdog exits 0 once everything is gone")
	t.Logf("watchdog removed its sessions and exited in %s", time.Since(start).Round(time.Millisecond))
	require.Equal(t, []string{"container db-1", "container web-3", "network net-3", "volume vol-3"}, left(t, f),
		"another session is never touched; db-1 was kept")
	log, err := os.ReadFile(w.log)
	require.NoError(t, err, "the log is kept when something was removed")
	require.Contains(t, string(log), fmt.Sprintf("watching for parent %d, daemon %s (test)", os.Getpid(), ep.Host))
	require.Contains(t, string(log), "session s1: removed container web-1")
	require.Contains(t, string(log), "session s1: kept container db-1")
	require.Contains(t, string(log), "done: removed 4 resources, kept 1")
}

func total(f *enginetest.Fake) int {
	c, n, v := f.Counts()
	return c + n + v
}

// left lists what is on the fake daemon.
func left(t *testing.T, f *enginetest.Fake) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	cs, err := f.ContainerList(ctx, nil)
	require.NoError(t, err)
	for _, c := range cs {
		out = append(out, "container "+c.Name)
	}
	ns, err := f.NetworkList(ctx, nil)
	require.NoError(t, err)
	for _, n := range ns {
		out = append(out, "network "+n.Name)
	}
	vs, err := f.VolumeList(ctx, nil)
	require.NoError(t, err)
	for _, v := range vs {
		out = append(out, "volume "+v.Name)
	}
	slices.Sort(out)
	return out
}

func TestWatchdogProcessDeletesItsLogWhenThereWasNothingToDo(t *testing.T) {
	t.Parallel()
	w := startWatchdog(t, serve(t, enginetest.NewFake()))
	require.NoError(t, w.tell("session", "s1"))
	start := time.Now()
	require.NoError(t, w.pipe.Close())
	<-w.exited
	require.Equal(t, 0, w.cmd.ProcessState.ExitCode())
	t.Logf("exited %s after its pipe closed (one settle second included)", time.Since(start).Round(time.Millisecond))
	_, err := os.Stat(w.log)
	require.ErrorIs(t, err, os.ErrNotExist)
}

// runChild runs this test binary with argv[0] and the environment changes
// given, stdin empty, and returns its exit code, its stdout and its stderr
// (when stderr is nil; else the child writes to that file).
func runChild(t *testing.T, argv0 string, env []string, stderr *os.File) (code int, stdout, errout string) {
	t.Helper()
	var out, eout bytes.Buffer
	cmd := &exec.Cmd{Path: testBinary(t), Args: []string{argv0, "-test.run=^$"}, Env: append(withoutTestVars(os.Environ()), env...), Stdout: &out, Stderr: &eout}
	if stderr != nil {
		cmd.Stderr = stderr
	}
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		require.NoError(t, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), eout.String()
}

// withoutTestVars drops the variables that steer a child of this test.
func withoutTestVars(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == EnvConfig || k == envChild || k == envMain || k == "GOCOVERDIR"
	})
}

func TestOneMarkAloneDoesNothing(t *testing.T) {
	t.Parallel()
	cfg := EnvConfig + `={"parent":1,"endpoint":{"host":"unix:///nonexistent.sock"}}`
	t.Run("argv[0] alone", func(t *testing.T) {
		code, out, eout := runChild(t, Argv0, []string{envMain + "=reached"}, nil)
		require.Equal(t, 0, code, eout)
		require.Equal(t, "reached TestMain\n", out, "the program ran as itself")
	})
	t.Run("HEPH_WATCHDOG alone", func(t *testing.T) {
		code, out, eout := runChild(t, "app", []string{envMain + "=reached", cfg}, nil)
		require.Equal(t, 0, code, eout)
		require.Equal(t, "reached TestMain\n", out, "the program ran as itself")
	})
	t.Run("both", func(t *testing.T) {
		code, out, eout := runChild(t, Argv0, []string{envMain + "=reached", cfg}, nil)
		require.Equal(t, 2, code, eout)
		require.Empty(t, out, "the init took the process over: no handshake, no TestMain")
		require.Contains(t, eout, "daemon unix:///nonexistent.sock () does not answer")
	})
}

// victim makes a file in the temporary directory named as a log of this
// process's watchdogs would be, that no watchdog may delete.
func victim(t *testing.T) string {
	t.Helper()
	f, err := os.CreateTemp("", fmt.Sprintf("heph-watchdog-%d-victim-*.log", os.Getpid()))
	require.NoError(t, err)
	_, err = f.WriteString("not the watchdog's")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	t.Cleanup(func() { _ = os.Remove(f.Name()) })
	return f.Name()
}

func requireExists(t *testing.T, path, msg string) {
	t.Helper()
	_, err := os.Stat(path)
	require.NoError(t, err, msg)
}

func TestAWatchdogNeverDeletesAPathFromTheEnvironment(t *testing.T) {
	t.Parallel()
	t.Run("HEPH_WATCHDOG is a path", func(t *testing.T) {
		v := victim(t)
		code, _, eout := runChild(t, Argv0, []string{EnvConfig + "=" + v}, nil)
		require.Equal(t, 2, code)
		require.Contains(t, eout, "bad HEPH_WATCHDOG")
		requireExists(t, v, "the file HEPH_WATCHDOG names is not touched")
	})
	t.Run("the config names a file", func(t *testing.T) {
		// A watchdog that removed nothing deletes its own log: the file its
		// stderr is, not one the configuration names.
		v := victim(t)
		ep := serve(t, enginetest.NewFake())
		own, err := os.CreateTemp("", fmt.Sprintf("heph-watchdog-%d-*.log", os.Getpid()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = own.Close(); _ = os.Remove(own.Name()) })
		cfg, err := json.Marshal(map[string]any{"parent": os.Getpid(), "endpoint": ep, "log": v, "path": v, "stderr": v})
		require.NoError(t, err)
		code, out, _ := runChild(t, Argv0, []string{EnvConfig + "=" + string(cfg)}, own)
		require.Equal(t, 0, code, out)
		require.Contains(t, out, readyLine)
		_, err = os.Stat(own.Name())
		require.ErrorIs(t, err, os.ErrNotExist, "its own log is gone")
		requireExists(t, v, "the file the config names is not")
	})
}

func TestRemoveOwnLog(t *testing.T) {
	t.Parallel()
	parent := os.Getpid()
	tmp := os.TempDir()
	sub := t.TempDir() // a directory inside the temporary directory
	name := func(p int) string { return fmt.Sprintf("heph-watchdog-%d-test.log", p) }
	cases := []struct {
		reason  string
		path    string // the log's path; made fresh for the case
		deleted bool
	}{
		{"its own log: right name, right place", filepath.Join(tmp, "heph-watchdog-%d-*.log"), true},
		{"named for another parent", filepath.Join(tmp, fmt.Sprintf("heph-watchdog-%d-*.log", parent+1)), false},
		{"not a .log", filepath.Join(tmp, fmt.Sprintf("heph-watchdog-%d-*.txt", parent)), false},
		{"right name, but not directly in the temporary directory", filepath.Join(sub, name(parent)), false},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			path := strings.Replace(tc.path, "%d", fmt.Sprint(parent), 1)
			var f *os.File
			var err error
			if strings.Contains(path, "*") {
				f, err = os.CreateTemp(filepath.Dir(path), filepath.Base(path))
			} else {
				f, err = os.Create(path)
			}
			require.NoError(t, err)
			t.Cleanup(func() { _ = f.Close(); _ = os.Remove(f.Name()) })
			code, out := runRemoveOwnLog(t, parent, f)
			require.Equal(t, 0, code, out)
			_, err = os.Stat(f.Name())
			require.Equal(t, tc.deleted, errors.Is(err, os.ErrNotExist), tc.reason)
		})
	}

	t.Run("the log was renamed and its old name taken: its own file goes, the newcomer stays", func(t *testing.T) {
		f, err := os.CreateTemp("", fmt.Sprintf("heph-watchdog-%d-*.log", parent))
		require.NoError(t, err)
		t.Cleanup(func() { _ = f.Close(); _ = os.Remove(f.Name()) })
		moved := strings.TrimSuffix(f.Name(), ".log") + "-moved.log"
		require.NoError(t, os.Rename(f.Name(), moved))
		t.Cleanup(func() { _ = os.Remove(moved) })
		require.NoError(t, os.WriteFile(f.Name(), []byte("someone else's"), 0o600))
		code, out := runRemoveOwnLog(t, parent, f)
		require.Equal(t, 0, code, out)
		requireExists(t, f.Name(), "the file now at the old name is not its stderr")
		_, err = os.Stat(moved)
		require.ErrorIs(t, err, os.ErrNotExist, "its stderr, under its new name, is its own")
	})

	t.Run("a symbolic link named as its log leads elsewhere", func(t *testing.T) {
		target := filepath.Join(sub, "real.log")
		require.NoError(t, os.WriteFile(target, nil, 0o600))
		link := filepath.Join(tmp, fmt.Sprintf("heph-watchdog-%d-link-%d.log", parent, time.Now().UnixNano()))
		require.NoError(t, os.Symlink(target, link))
		t.Cleanup(func() { _ = os.Remove(link) })
		f, err := os.OpenFile(link, os.O_WRONLY, 0)
		require.NoError(t, err)
		t.Cleanup(func() { _ = f.Close() })
		code, out := runRemoveOwnLog(t, parent, f)
		require.Equal(t, 0, code, out)
		requireExists(t, target, "the file behind the link is not in the temporary directory")
		_, err = os.Lstat(link)
		require.NoError(t, err, "the link is not its stderr")
	})

	t.Run("stderr that is not a file", func(t *testing.T) {
		v := victim(t)
		code, out, eout := runChild(t, "app", []string{envMain + "=remove-own-log", `HEPH_WATCHDOG_TEST_CONFIG={"parent":` + fmt.Sprint(parent) + `}`}, nil)
		require.Equal(t, 0, code, eout)
		require.Equal(t, fmt.Sprintf("done %d\n", parent), out)
		requireExists(t, v, "nothing to remove")
	})
}

// runRemoveOwnLog runs removeOwnLog(parent) in a child whose stderr is log.
func runRemoveOwnLog(t *testing.T, parent int, log *os.File) (int, string) {
	t.Helper()
	code, out, _ := runChild(t, "app", []string{envMain + "=remove-own-log", `HEPH_WATCHDOG_TEST_CONFIG={"parent":` + fmt.Sprint(parent) + `}`}, log)
	return code, out
}
