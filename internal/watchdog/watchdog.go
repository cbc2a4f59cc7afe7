// Package watchdog is heph's safety net: a process that removes a session's
// resources when the process that made them dies, however it dies.
//
// # The parent's side (Set)
//
// Before an Orchestrator makes its first resource, the process starts its
// watchdog — once, and one per daemon endpoint — by re-executing its own
// binary (/proc/self/exe on Linux, else os.Executable) with argv
// "heph-watchdog parent=<pid>" and the environment variable HEPH_WATCHDOG
// holding a JSON Config: the parent's pid and the daemon endpoint it
// resolved (host, TLS files, API version). The watchdog runs in its own
// process group (Ctrl-C in the terminal does not reach it), with stdin = a
// pipe from the parent, stdout = a pipe for the handshake only, stderr = its
// log file in os.TempDir, and no other descriptor (it closes any its parent
// leaked across exec without close-on-exec).
//
//  1. Handshake: the watchdog pings the daemon, then writes
//     "heph-watchdog ready <pid>\n" on stdout and closes it; the parent waits
//     for that line (up to 10 s) before any resource is made, so a watchdog
//     that cannot run, or cannot reach the daemon, is an error, not a silent
//     leak.
//  2. The parent writes one line per command on the pipe: "session <id>\n"
//     before the first resource of each session it uses, "keep <resource
//     id>\n" for a container, network or volume to leave in place (HEPH_KEEP),
//     and "lease <key>\n" when it first holds the shared container of a
//     content key (it holds it until it ends).
//     Unknown or malformed lines are logged and ignored.
//  3. The parent never closes the pipe: the kernel closes it when the parent
//     exits — normal exit, panic, go test -timeout, SIGINT, SIGKILL. On EOF
//     the watchdog removes every container (forced, with anonymous volumes),
//     network and volume labelled heph.managed=true and heph.session=<id>, for
//     each session it was told, but those it was told to keep (and the
//     networks and volumes kept containers still use), pass after pass until
//     a pass finds nothing and, one second later, a last pass finds nothing
//     again (a create that was in flight when the parent died), for at most
//     two minutes. It never looks at another session's resources, but for a
//     named volume, which is shared by name: it removes the heph-made
//     volumes its sessions' containers mounted once no container uses them,
//     and leaves one a container of another session still uses to that
//     session. (A shared container attached to one of those networks is
//     detached from it first; it is not the session's.) Then, for each key
//     leased, it drops the parent's lease, waits out the idle time, and
//     removes the shared container unless a live holder holds it (package
//     shared): so a watchdog may outlive its parent by HEPH_SHARED_IDLE.
//
// A watchdog that died (OOM, killed) is noticed at the next announce or keep
// and replaced by one that is told everything again.
//
// # The watchdog's side (the init of this package)
//
// This package's init turns the process into a watchdog when, and only
// when, its argv[0] is "heph-watchdog" and HEPH_WATCHDOG is set; then it
// never returns to the program's own main (or the test binary's tests). As
// a watchdog it touches exactly this: the daemon named in its Config (only
// resources labelled with the announced sessions), and its own log file —
// which it deletes at the end when it removed nothing, and only after
// proving that the file is its own stderr: a regular file in os.TempDir
// named heph-watchdog-<parent pid>-*.log, the same file (device and inode)
// as its descriptor 2. It never deletes a path it reads from the
// environment.
package watchdog

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/sessions"
)

const (
	// EnvConfig is HEPH_WATCHDOG: set only in a watchdog's environment, to
	// its JSON Config.
	EnvConfig = "HEPH_WATCHDOG"
	// Argv0 is a watchdog's argv[0]: ps shows "heph-watchdog parent=<pid>".
	Argv0 = "heph-watchdog"
	// readyLine starts the handshake line.
	readyLine = "heph-watchdog ready"
	// handshakeTimeout bounds the wait for the handshake.
	handshakeTimeout = 10 * time.Second
	// sshHandshakeTimeout is handshakeTimeout for an ssh:// daemon: the
	// watchdog's ping starts ssh and the remote docker CLI, seconds on a
	// loaded machine.
	sshHandshakeTimeout = 40 * time.Second
)

// Config is what the parent passes to its watchdog.
type Config struct {
	Parent   int             `json:"parent"`
	Endpoint engine.Endpoint `json:"endpoint"`
}

// Set holds the process's watchdogs, one per daemon endpoint, and the
// sessions each was told. It is safe for concurrent use.
type Set struct {
	// Start starts a watchdog for an endpoint (nil: StartProcess).
	Start func(engine.Endpoint) (*Watchdog, error)

	mu    sync.Mutex
	byKey map[string]*Watchdog
}

// Process is the set of this process's watchdogs.
var Process = &Set{}

// Watchdog is the parent's side of one running watchdog.
type Watchdog struct {
	cmd      *exec.Cmd // nil for fakes in tests
	pipe     io.WriteCloser
	log      string
	exited   chan struct{} // closed when the process has exited (nil: never)
	broken   bool          // a write to its pipe failed
	sessions map[string]bool
	kept     map[string]bool
	leases   map[string]bool // keys of shared containers the parent holds
	pending  map[string]bool // names of creates given up on, not settled
}

// NewFake is a Watchdog that writes its commands to w and is dead once
// exited is closed (nil: never), for tests of Set.
func NewFake(w io.WriteCloser, exited chan struct{}) *Watchdog {
	return &Watchdog{pipe: w, exited: exited}
}

// alive reports whether the watchdog process still runs and hears us.
func (w *Watchdog) alive() bool {
	if w.broken {
		return false
	}
	if w.exited == nil {
		return true
	}
	select {
	case <-w.exited:
		return false
	default:
		return true
	}
}

// stop kills the watchdog process and waits for it.
func (w *Watchdog) stop() {
	_ = w.pipe.Close()
	if w.cmd != nil {
		_ = w.cmd.Process.Kill()
		if w.exited != nil {
			<-w.exited
		}
	}
}

// key identifies a daemon endpoint.
func key(ep engine.Endpoint) string {
	return strings.Join([]string{ep.Host, strconv.FormatBool(ep.TLS), strconv.FormatBool(ep.TLSVerify), ep.CAFile, ep.CertFile, ep.KeyFile}, "\x00")
}

// Announce tells the watchdog of ep's daemon about session, starting the
// watchdog first when there is none, and replacing it (telling the new one
// everything again) when it has died. After the first call for a session,
// while the watchdog lives, it costs a mutex and two map lookups. The error
// matches errs.Watchdog.
func (s *Set) Announce(session string, ep engine.Endpoint) error {
	if !sessions.ValidID(session) {
		return fmt.Errorf("%w: session id %q cannot be announced", errs.Watchdog, session)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.byKey[key(ep)]; w != nil && w.sessions[session] && w.alive() {
		return nil
	}
	return s.send(ep, "session", session)
}

// Lease tells the watchdog of ep's daemon that the process holds the shared
// container of the content key shared, starting the watchdog when there is
// none: once the process has ended, the watchdog waits out the idle time
// and removes the container unless another live holder holds it. The error
// matches errs.Watchdog.
func (s *Set) Lease(ep engine.Endpoint, shared string) error {
	if !sessions.ValidID(shared) {
		return fmt.Errorf("%w: shared key %q cannot be leased", errs.Watchdog, shared)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.byKey[key(ep)]; w != nil && w.leases[shared] && w.alive() {
		return nil
	}
	return s.send(ep, "lease", shared)
}

// Keep tells the watchdog of ep's daemon to leave the resources with these
// IDs in place. Without a watchdog for ep there is nothing to tell: nothing
// would remove them.
func (s *Set) Keep(ep engine.Endpoint, ids ...string) error {
	for _, id := range ids {
		if !sessions.ValidID(id) {
			return fmt.Errorf("%w: resource id %q cannot be kept", errs.Watchdog, id)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byKey[key(ep)] == nil {
		return nil
	}
	for _, id := range ids {
		if err := s.send(ep, "keep", id); err != nil {
			return err
		}
	}
	return nil
}

// Pending tells the watchdog of ep's daemon that the process gave up on the
// create of the object called name while the daemon may still carry it
// out: should the process end before it settles it (Settled), the watchdog
// goes on looking for the object after the process's end, for a while
// (PendingGrace), and removes it. Without a watchdog for ep there is nothing
// to tell.
func (s *Set) Pending(ep engine.Endpoint, name string) error {
	return s.pendingVerb(ep, "pending", name)
}

// Settled tells the watchdog of ep's daemon that the create of name,
// earlier Pending, is dealt with: what it made was removed, or it made
// nothing.
func (s *Set) Settled(ep engine.Endpoint, name string) error {
	return s.pendingVerb(ep, "settled", name)
}

func (s *Set) pendingVerb(ep engine.Endpoint, verb, name string) error {
	if !sessions.ValidID(name) {
		return fmt.Errorf("%w: name %q cannot be %s", errs.Watchdog, name, verb)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byKey[key(ep)] == nil {
		return nil
	}
	return s.send(ep, verb, name)
}

// send writes one command to ep's watchdog, starting it when there is none
// and replacing it (telling the new one every earlier command) when it is
// dead or its pipe is broken. A dead watchdog stays in the set, with what it
// was told, until a replacement has started: a failed start loses nothing,
// the next call tries again and replays it all. s.mu is held.
func (s *Set) send(ep engine.Endpoint, verb, arg string) error {
	k := key(ep)
	w := s.byKey[k]
	if w != nil && w.alive() && w.tell(verb, arg) == nil {
		return nil
	}
	if w != nil {
		w.stop() // gone (killed?) or deaf: reap it
	}
	start := s.Start
	if start == nil {
		start = StartProcess
	}
	nw, err := start(ep)
	if err != nil {
		return err
	}
	if s.byKey == nil {
		s.byKey = map[string]*Watchdog{}
	}
	s.byKey[k] = nw
	var cmds [][2]string
	if w != nil {
		for _, id := range sortedKeys(w.sessions) {
			cmds = append(cmds, [2]string{"session", id})
		}
		for _, id := range sortedKeys(w.kept) {
			cmds = append(cmds, [2]string{"keep", id})
		}
		for _, k := range sortedKeys(w.leases) {
			cmds = append(cmds, [2]string{"lease", k})
		}
		for _, name := range sortedKeys(w.pending) {
			cmds = append(cmds, [2]string{"pending", name})
		}
	}
	if w == nil || !w.told(verb, arg) {
		cmds = append(cmds, [2]string{verb, arg})
	}
	// The new watchdog answers for all of it from now on, even if a line
	// below cannot be written: then it is marked broken, and the next call
	// replaces it and replays everything again.
	for _, c := range cmds {
		nw.remember(c[0], c[1])
	}
	for _, c := range cmds {
		if err := nw.tell(c[0], c[1]); err != nil {
			return fmt.Errorf("%w: tell it %s %s: %w (its log: %s)", errs.Watchdog, c[0], c[1], err, nw.log)
		}
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// tell writes one command line to the watchdog and remembers it; a failed
// write marks the watchdog broken.
func (w *Watchdog) tell(verb, arg string) error {
	if _, err := io.WriteString(w.pipe, verb+" "+arg+"\n"); err != nil {
		w.broken = true
		return err
	}
	w.remember(verb, arg)
	return nil
}

// remember records a command the watchdog is responsible for.
func (w *Watchdog) remember(verb, arg string) {
	m := &w.sessions
	switch verb {
	case "keep":
		m = &w.kept
	case "lease":
		m = &w.leases
	case "pending":
		m = &w.pending
	case "settled":
		delete(w.pending, arg)
		return
	}
	if *m == nil {
		*m = map[string]bool{}
	}
	(*m)[arg] = true
}

// told reports whether the watchdog was given this command.
func (w *Watchdog) told(verb, arg string) bool {
	switch verb {
	case "keep":
		return w.kept[arg]
	case "lease":
		return w.leases[arg]
	case "pending":
		return w.pending[arg]
	case "settled":
		return !w.pending[arg] // a new watchdog is not told of it
	}
	return w.sessions[arg]
}

// StartProcess starts the watchdog process for ep — this very binary,
// re-executed — and waits for its handshake. The error matches errs.Watchdog.
func StartProcess(ep engine.Endpoint) (*Watchdog, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%w: find the running executable: %w; set HEPH_REAPER=off to run without it", errs.Watchdog, err)
	}
	path := exe
	if runtime.GOOS == "linux" {
		if _, err := os.Stat("/proc/self/exe"); err == nil {
			// The very binary that runs, even if its file was replaced or
			// deleted since (go install, go run's cleanup).
			path = "/proc/self/exe"
		}
	}
	timeout := handshakeTimeout
	if ep.IsSSH() {
		timeout = sshHandshakeTimeout
	}
	return StartExecutable(path, exe, ep, timeout)
}

// StartExecutable starts the executable at path (exe in messages) as a
// watchdog for ep: its stdin a pipe we keep, its stdout a pipe for the
// handshake, its stderr a new log file, in its own process group.
func StartExecutable(path, exe string, ep engine.Endpoint, timeout time.Duration) (*Watchdog, error) {
	fail := func(logPath string, format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		if logPath != "" {
			if st, err := os.Stat(logPath); err == nil && st.Size() == 0 {
				_ = os.Remove(logPath) // it said nothing: no log worth keeping
			} else {
				msg += " (its log: " + logPath + ")"
			}
		}
		return fmt.Errorf("%w: %s; set HEPH_REAPER=off to run without it, and remove leftovers with `heph prune --stale`", errs.Watchdog, msg)
	}
	logFile, err := os.CreateTemp("", fmt.Sprintf("heph-watchdog-%d-*.log", os.Getpid()))
	if err != nil {
		return nil, fail("", "create its log file: %v", err)
	}
	defer logFile.Close()
	cfg, err := json.Marshal(Config{Parent: os.Getpid(), Endpoint: ep})
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
		Args:        []string{Argv0, "parent=" + strconv.Itoa(os.Getpid())},
		Env:         childEnv(os.Environ(), string(cfg)),
		Stdin:       stdinR,
		Stdout:      readyW,
		Stderr:      logFile,
		SysProcAttr: sysProcAttr(),
	}
	if err := cmd.Start(); err != nil {
		stdinW.Close()
		return nil, fail(logFile.Name(), "start %s: %v", exe, err)
	}
	// Only the watchdog holds these ends now: its exit gives us EOF.
	stdinR.Close()
	readyW.Close()
	exited := make(chan struct{})
	var werr error
	go func() {
		werr = cmd.Wait()
		close(exited)
	}()

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
		got = "timeout"
	}
	if pid, ok := strings.CutPrefix(strings.TrimSpace(got), readyLine+" "); ok && pid == strconv.Itoa(cmd.Process.Pid) {
		return &Watchdog{cmd: cmd, pipe: stdinW, log: logFile.Name(), exited: exited}, nil
	}
	stdinW.Close()
	if got == "" {
		// It closed its stdout: give it a moment to exit, for its status.
		select {
		case <-exited:
		case <-time.After(time.Second):
		}
	}
	_ = cmd.Process.Kill()
	<-exited
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
		return nil, fail(logFile.Name(), "%s answered %q instead of %q", exe, strings.TrimSpace(got), readyLine)
	}
}

// childEnv is the parent's environment for the watchdog: without
// GOCOVERDIR (a coverage-instrumented binary would write a profile for the
// watchdog) and any inherited HEPH_WATCHDOG, with HEPH_WATCHDOG=cfg.
func childEnv(environ []string, cfg string) []string {
	env := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if k == EnvConfig || k == "GOCOVERDIR" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, EnvConfig+"="+cfg)
}
