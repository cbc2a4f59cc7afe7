package heph

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"
)

// This file is the safety net: a watchdog process that removes a session's
// resources when the process that made them dies, however it dies.
//
// The protocol. When an Orchestrator is about to make its first resource
// (watch, called before every create), the process starts its watchdog —
// once, and one per daemon it uses — by re-executing its own binary
// (/proc/self/exe on Linux, else os.Executable) with HEPH_WATCHDOG set to a
// JSON watchdogConfig: the parent's pid, the daemon endpoint it resolved
// (host, TLS files, API version) and the path of the watchdog's log file.
// argv is "heph-watchdog parent=<pid>", so ps shows it. heph's init sees the
// variable, runs the watchdog and exits: the user's main (or the test binary's
// tests) never runs in it. The watchdog runs in its own process group
// (Ctrl-C in the terminal does not reach it), with stdin = a pipe from the
// parent, stdout = a pipe for the handshake only, stderr = its log file in
// os.TempDir, and no other descriptor (it closes any its parent leaked
// across exec without close-on-exec).
//
//  1. Handshake: the watchdog writes "heph-watchdog ready <pid>\n" on stdout
//     and closes it; the parent waits for that line (up to 10 s) before any
//     resource is made, so a watchdog that cannot run is an error, not a
//     silent leak.
//  2. The parent writes one line per command on the pipe:
//     "session <id>\n" before the first resource of each session it uses,
//     and "keep <resource id>\n" for a container, network or volume to leave
//     in place (HEPH_KEEP keeps a failed test's containers for debugging).
//     Unknown or malformed lines are logged and ignored.
//  3. The parent never closes the pipe: the kernel closes it when the parent
//     exits — normal exit, panic, go test -timeout, SIGINT, SIGKILL. On EOF
//     the watchdog removes every container (forced, with anonymous volumes),
//     network and volume labelled heph.managed=true and heph.session=<id>,
//     for each session it was told, but those it was told to keep (and the
//     networks and volumes kept containers still use), pass after pass with
//     backoff until a pass finds nothing and, one second later, a last pass
//     finds nothing again (a create that was in flight when the parent died),
//     for at most two minutes. Then it exits, deleting its log file unless it
//     removed something or failed. It never looks at another session's
//     resources.

// EnvReaper is the environment variable that controls the watchdog.
//
// By default, before an Orchestrator makes its first container or network,
// heph starts one watchdog process for the running process (one per daemon):
// the running binary itself, re-executed, so it needs nothing installed — no
// image, no registry, no socket mount, no privilege — and works the same
// from a test binary, a TestMain or any program. It talks to the same daemon
// as its parent, found the same way (DOCKER_HOST, context, TLS files, API
// version), so rootless Docker, Podman's Docker API and remote daemons work.
// When the process ends, however it ends (normal exit, panic, go test
// -timeout, Ctrl-C, SIGKILL), the watchdog removes every container (with its
// anonymous volumes), network and volume of the process's sessions, retrying
// for up to two minutes, and exits; after a clean exit it finds nothing and
// is gone within a second or two. It touches no other session's resources,
// and leaves those kept with HEPH_KEEP. It runs in its own process group (a
// Ctrl-C in the terminal does not reach it), ignores SIGINT, SIGHUP, SIGQUIT
// and SIGTERM (it must outlive its parent; SIGKILL stops it), and holds none
// of its parent's files, so go test does not wait for it. It logs to
// heph-watchdog-<parent pid>-*.log in os.TempDir, and deletes that file
// unless it removed something or failed.
//
// HEPH_REAPER=off (or false, or 0) turns it off: resources of a process that
// dies without running its cleanups are then left on the daemon, labelled
// with heph.pid, heph.host and heph.created, and `heph prune --stale`
// removes them later. Any other value, or none, leaves it on. A process
// whose watchdog cannot start (the executable is gone, fork fails) gets an
// error matching ErrWatchdog from the create call, and nothing is created.
//
// The watchdog runs the init functions of the packages initialised before
// heph's in the binary, then exits from heph's init. For an Orchestrator
// made WithDockerClient it reaches the client's DaemonHost with the
// negotiated API version and, for tcp://, the TLS settings of DOCKER_TLS_VERIFY
// and DOCKER_CERT_PATH; a client with another transport needs HEPH_REAPER=off.
const EnvReaper = "HEPH_REAPER"

// ErrWatchdog means the watchdog process that removes a session's resources
// when its process dies could not be started (or did not answer), so heph
// refused to create a resource that could leak. The wrapping error says why
// and where the watchdog's log is; HEPH_REAPER=off (see EnvReaper) runs
// without it.
var ErrWatchdog = errors.New("heph: the watchdog could not be started")

const (
	// envWatchdog marks a process as a watchdog; its value is the
	// JSON-encoded watchdogConfig.
	envWatchdog = "HEPH_WATCHDOG"
	// watchdogReady starts the handshake line.
	watchdogReady = "heph-watchdog ready"
	// watchdogHandshakeTimeout bounds the wait for the handshake.
	watchdogHandshakeTimeout = 10 * time.Second
)

// watchdogConfig is what the parent passes to its watchdog.
type watchdogConfig struct {
	Parent   int            `json:"parent"`
	Log      string         `json:"log,omitempty"`
	Endpoint dockerEndpoint `json:"endpoint"`
}

// reaperDisabled reports whether HEPH_REAPER turns the watchdog off.
func reaperDisabled() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(EnvReaper))) {
	case "off", "false", "0":
		return true
	}
	return false
}

// watch makes sure this process's watchdog knows o's session before o makes
// its first resource, so the resource is removed even if the process dies
// without running its cleanups. After the first call for a session it costs
// a mutex and a map lookup. It does nothing with HEPH_REAPER=off, or over a
// fake Docker API (unit tests: there is nothing on a daemon to guard).
func (o *Orchestrator) watch() error { return o.watchWith(watchdogs) }

func (o *Orchestrator) watchWith(set *watchdogSet) error {
	if reaperDisabled() {
		return nil
	}
	ep, ok := o.watchdogEndpoint()
	if !ok {
		return nil
	}
	return set.announce(o.session, ep)
}

// watchdogEndpoint is the daemon endpoint o's watchdog talks to, with the API
// version o negotiated; ok is false over a fake API.
func (o *Orchestrator) watchdogEndpoint() (dockerEndpoint, bool) {
	cli, ok := o.api.(*client.Client)
	if !ok {
		return dockerEndpoint{}, false
	}
	ep := o.endpoint
	if ep.Host == "" {
		ep.Host = cli.DaemonHost()
	}
	if ep.Source == "WithDockerClient" && !ep.TLS && strings.HasPrefix(ep.Host, "tcp://") {
		// A client from WithDockerClient: take TLS from the environment, as
		// client.FromEnv does.
		if fromEnv, err := hostEndpoint(osDaemonEnv(), ep.Host); err == nil {
			ep.TLS, ep.TLSVerify = fromEnv.TLS, fromEnv.TLSVerify
			ep.CAFile, ep.CertFile, ep.KeyFile = fromEnv.CAFile, fromEnv.CertFile, fromEnv.KeyFile
		}
	}
	if ep.APIVersion == "" {
		ep.APIVersion = cli.ClientVersion() // negotiated by NewOrchestrator's ping
	}
	return ep, true
}

// watchdogs is the process's set of watchdogs.
var watchdogs = &watchdogSet{start: startWatchdog}

// watchdogSet holds the process's watchdogs, one per daemon endpoint, and
// the sessions each was told. It is safe for concurrent use.
type watchdogSet struct {
	start func(dockerEndpoint) (*watchdog, error)

	mu    sync.Mutex
	byKey map[string]*watchdog
}

// watchdog is the parent's side of one running watchdog.
type watchdog struct {
	cmd      *exec.Cmd      // nil for fakes in tests
	pipe     io.WriteCloser // the watchdog's stdin
	log      string
	sessions map[string]bool // told with "session"
	kept     map[string]bool // told with "keep"
}

// stop kills the watchdog process and reaps it.
func (w *watchdog) stop() {
	if w.cmd != nil {
		_ = w.cmd.Process.Kill()
		_ = w.cmd.Wait()
	}
}

// endpointKey identifies a daemon endpoint for watchdogSet.
func endpointKey(ep dockerEndpoint) string {
	return strings.Join([]string{ep.Host, strconv.FormatBool(ep.TLS), strconv.FormatBool(ep.TLSVerify), ep.CAFile, ep.CertFile, ep.KeyFile}, "\x00")
}

// announce tells the watchdog of ep's daemon about session, starting the
// watchdog first when there is none. A watchdog found dead (its pipe is
// broken) is replaced and told everything again.
func (s *watchdogSet) announce(session string, ep dockerEndpoint) error {
	if !validID(session) {
		return fmt.Errorf("%w: session id %q cannot be announced", ErrWatchdog, session)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.byKey[endpointKey(ep)]; w != nil && w.sessions[session] {
		return nil
	}
	return s.send(ep, "session", session)
}

// keep tells the watchdog of ep's daemon to leave the resources with these
// IDs in place. Without a watchdog for ep there is nothing to tell: nothing
// would remove them.
func (s *watchdogSet) keep(ep dockerEndpoint, ids ...string) error {
	for _, id := range ids {
		if !validID(id) {
			return fmt.Errorf("%w: resource id %q cannot be kept", ErrWatchdog, id)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byKey[endpointKey(ep)] == nil {
		return nil
	}
	for _, id := range ids {
		if err := s.send(ep, "keep", id); err != nil {
			return err
		}
	}
	return nil
}

// send writes one command to ep's watchdog, starting it when there is none
// and replacing it (telling the new one every earlier command) when its pipe
// is broken. s.mu is held.
func (s *watchdogSet) send(ep dockerEndpoint, verb, arg string) error {
	key := endpointKey(ep)
	w := s.byKey[key]
	if w != nil {
		if err := w.tell(verb, arg); err == nil {
			return nil
		}
		// The watchdog is gone (killed?): reap it and start another one
		// that knows everything.
		_ = w.pipe.Close()
		w.stop()
		delete(s.byKey, key)
	}
	nw, err := s.start(ep)
	if err != nil {
		return err
	}
	if s.byKey == nil {
		s.byKey = map[string]*watchdog{}
	}
	s.byKey[key] = nw
	var replay [][2]string
	if w != nil {
		for id := range w.sessions {
			replay = append(replay, [2]string{"session", id})
		}
		for id := range w.kept {
			replay = append(replay, [2]string{"keep", id})
		}
	}
	for _, c := range append(replay, [2]string{verb, arg}) {
		if err := nw.tell(c[0], c[1]); err != nil {
			return fmt.Errorf("%w: tell it %s %s: %w (its log: %s)", ErrWatchdog, c[0], c[1], err, nw.log)
		}
	}
	return nil
}

// tell writes one command line to the watchdog and remembers it.
func (w *watchdog) tell(verb, arg string) error {
	if _, err := io.WriteString(w.pipe, verb+" "+arg+"\n"); err != nil {
		return err
	}
	m := &w.sessions
	if verb == "keep" {
		m = &w.kept
	}
	if *m == nil {
		*m = map[string]bool{}
	}
	(*m)[arg] = true
	return nil
}

// watchdogKeep tells this process's watchdog to leave the containers,
// networks and volumes with these IDs in place when the process exits (for
// HEPH_KEEP). It does nothing when there is no watchdog (HEPH_REAPER=off, a
// fake API, nothing created yet). The error matches ErrWatchdog.
func (o *Orchestrator) watchdogKeep(ids ...string) error {
	if reaperDisabled() {
		return nil
	}
	ep, ok := o.watchdogEndpoint()
	if !ok {
		return nil
	}
	return watchdogs.keep(ep, ids...)
}

// startWatchdog starts the watchdog process for ep and waits for its
// handshake. The error matches ErrWatchdog.
func startWatchdog(ep dockerEndpoint) (*watchdog, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%w: find the running executable: %w; set %s=off to run without it", ErrWatchdog, err, EnvReaper)
	}
	path := exe
	if runtime.GOOS == "linux" && pathExists("/proc/self/exe") {
		// The very binary that runs, even if its file was replaced or
		// deleted since (go install, go run's cleanup).
		path = "/proc/self/exe"
	}
	return startWatchdogExe(path, exe, ep, watchdogHandshakeTimeout)
}

// startWatchdogExe starts the executable at path (exe in messages) as a
// watchdog for ep: its stdin a pipe we keep, its stdout a pipe for the
// handshake, its stderr a new log file, in its own process group.
func startWatchdogExe(path, exe string, ep dockerEndpoint, timeout time.Duration) (*watchdog, error) {
	fail := func(logPath string, format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		if logPath != "" {
			if st, err := os.Stat(logPath); err == nil && st.Size() == 0 {
				_ = os.Remove(logPath) // it said nothing: no log worth keeping
			} else {
				msg += " (its log: " + logPath + ")"
			}
		}
		return fmt.Errorf("%w: %s; set %s=off to run without it, and remove leftovers with `heph prune --stale`", ErrWatchdog, msg, EnvReaper)
	}
	logFile, err := os.CreateTemp("", fmt.Sprintf("heph-watchdog-%d-*.log", os.Getpid()))
	if err != nil {
		return nil, fail("", "create its log file: %v", err)
	}
	defer logFile.Close()
	cfg, err := json.Marshal(watchdogConfig{Parent: os.Getpid(), Log: logFile.Name(), Endpoint: ep})
	if err != nil {
		return nil, fail(logFile.Name(), "encode its configuration: %v", err)
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, fail(logFile.Name(), "make its pipe: %v", err)
	}
	defer stdinR.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		stdinW.Close()
		return nil, fail(logFile.Name(), "make its pipe: %v", err)
	}
	defer readyR.Close()
	defer readyW.Close()

	cmd := &exec.Cmd{
		Path:        path,
		Args:        []string{"heph-watchdog", "parent=" + strconv.Itoa(os.Getpid())},
		Env:         watchdogEnv(os.Environ(), string(cfg)),
		Stdin:       stdinR,
		Stdout:      readyW,
		Stderr:      logFile,
		SysProcAttr: watchdogSysProcAttr(),
	}
	if err := cmd.Start(); err != nil {
		stdinW.Close()
		return nil, fail(logFile.Name(), "start %s: %v", exe, err)
	}
	// Only the watchdog holds these ends now: its exit gives us EOF.
	stdinR.Close()
	readyW.Close()

	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(readyR).ReadString('\n')
		line <- l
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	var got string
	select {
	case got = <-line:
	case <-t.C:
		_ = cmd.Process.Kill()
		got = "timeout"
	}
	if pid, ok := strings.CutPrefix(strings.TrimSpace(got), watchdogReady+" "); ok && pid == strconv.Itoa(cmd.Process.Pid) {
		return &watchdog{cmd: cmd, pipe: stdinW, log: logFile.Name()}, nil
	}
	stdinW.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var werr error
	reaped := false
	if got == "" {
		// It closed its stdout: give it a moment to exit, for its status.
		select {
		case werr = <-exited:
			reaped = true
		case <-time.After(time.Second):
		}
	}
	if !reaped {
		_ = cmd.Process.Kill()
		werr = <-exited
	}
	switch {
	case got == "timeout":
		return nil, fail(logFile.Name(), "%s did not answer within %s", exe, timeout)
	case got == "":
		status := "exit status 0"
		if werr != nil {
			status = werr.Error()
		}
		return nil, fail(logFile.Name(), "%s exited before it was ready (%s): does the program import heph?", exe, status)
	default:
		return nil, fail(logFile.Name(), "%s answered %q instead of %q", exe, strings.TrimSpace(got), watchdogReady)
	}
}

// watchdogEnv is the parent's environment for the watchdog: without
// GOCOVERDIR (a coverage-instrumented binary would write a profile for the
// watchdog) and any inherited HEPH_WATCHDOG, with HEPH_WATCHDOG=cfg.
func watchdogEnv(environ []string, cfg string) []string {
	env := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if k == envWatchdog || k == "GOCOVERDIR" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, envWatchdog+"="+cfg)
}

func init() {
	if cfg, ok := os.LookupEnv(envWatchdog); ok {
		os.Exit(watchdogMain(cfg))
	}
}

// watchdogMain is the watchdog process: heph's init runs it when
// HEPH_WATCHDOG is set, and exits with its result.
func watchdogMain(rawCfg string) int {
	closeInheritedFiles()
	ignoreTerminalSignals()
	logger := log.New(os.Stderr, fmt.Sprintf("heph-watchdog[%d] ", os.Getpid()), log.LstdFlags|log.Lmicroseconds|log.LUTC)
	var cfg watchdogConfig
	if err := json.Unmarshal([]byte(rawCfg), &cfg); err != nil {
		logger.Printf("bad %s: %v", envWatchdog, err)
		return 2
	}
	opts, err := cfg.Endpoint.clientOptions()
	if err != nil {
		logger.Printf("daemon %s: %v", cfg.Endpoint.Host, err)
		return 2
	}
	cli, err := client.New(opts...)
	if err != nil {
		logger.Printf("daemon %s: %v", cfg.Endpoint.Host, err)
		return 2
	}
	defer cli.Close()
	logger.Printf("watching for parent %d, daemon %s (%s)", cfg.Parent, cfg.Endpoint.Host, cfg.Endpoint.Source)
	if _, err := fmt.Fprintf(os.Stdout, "%s %d\n", watchdogReady, os.Getpid()); err != nil {
		logger.Printf("handshake: %v", err)
		return 2
	}
	_ = os.Stdout.Close() // the handshake is its only output

	removed, kept, err := serveWatchdog(context.Background(), cli, os.Stdin, watchdogRetry, logger.Printf)
	if err != nil {
		logger.Printf("%v", err)
		return 1
	}
	logger.Printf("done: removed %d resources, kept %d", len(removed), len(kept))
	if len(removed) == 0 && cfg.Log != "" {
		_ = os.Remove(cfg.Log) // nothing happened worth keeping (keeping is asked for)
	}
	return 0
}

// serveWatchdog reads commands from in until EOF (the parent is gone), then
// removes every resource of the announced sessions but the kept ones.
func serveWatchdog(ctx context.Context, api dockerAPI, in io.Reader, p retryPolicy, logf func(string, ...any)) (removed, kept []Resource, err error) {
	sessions, keep, err := readCommands(in, logf)
	if err != nil {
		logf("read from parent: %v (taken as the parent's end)", err)
	}
	if len(sessions) == 0 {
		logf("parent gone; no session was announced")
		return nil, nil, nil
	}
	logf("parent gone; removing the resources of %d session(s)", len(sessions))
	return removal{api: api, sessions: sessions, keep: keep, policy: p, logf: logf}.run(ctx)
}

// readCommands reads command lines until EOF or a read error: the distinct
// valid session ids in the order they came, and the resource ids to keep.
func readCommands(in io.Reader, logf func(string, ...any)) (sessions []string, keep map[string]bool, err error) {
	seen := map[string]bool{}
	keep = map[string]bool{}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		verb, arg, _ := strings.Cut(line, " ")
		arg = strings.TrimSpace(arg)
		switch {
		case line == "":
		case !validID(arg):
			logf("ignored line %q: not a command", line)
		case verb == "session" && !seen[arg]:
			seen[arg] = true
			sessions = append(sessions, arg)
			logf("watching session %s", arg)
		case verb == "session":
		case verb == "keep":
			keep[arg] = true
			logf("will keep %s", arg)
		default:
			logf("ignored line %q: unknown command", line)
		}
	}
	return sessions, keep, sc.Err()
}
