package watchdog

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/retry"
	"github.com/heph-go/heph/internal/sessions"
	"github.com/heph-go/heph/internal/shared"
)

// init turns this process into a watchdog when argv[0] is Argv0 and
// HEPH_WATCHDOG is set (see the package doc), and exits with its status.
// Otherwise it does nothing.
func init() {
	if !isWatchdog(os.Args, os.LookupEnv) {
		return
	}
	os.Exit(Main(os.Getenv(EnvConfig)))
}

// isWatchdog reports whether a process with these args and environment was
// started as a watchdog: both marks, not one of them by accident.
func isWatchdog(args []string, lookup func(string) (string, bool)) bool {
	if len(args) == 0 || args[0] != Argv0 {
		return false
	}
	_, ok := lookup(EnvConfig)
	return ok
}

// pingTimeout bounds the watchdog's first ping of the daemon.
const pingTimeout = 8 * time.Second

// sshPingTimeout is pingTimeout for an ssh:// daemon (ssh's handshake and
// the remote docker CLI first), within sshHandshakeTimeout.
const sshPingTimeout = 30 * time.Second

// Main is the watchdog process; it returns the exit status.
func Main(rawCfg string) int {
	closeInheritedFiles()
	ignoreTerminalSignals()
	logger := log.New(os.Stderr, fmt.Sprintf("heph-watchdog[%d] ", os.Getpid()), log.LstdFlags|log.Lmicroseconds|log.LUTC)
	var cfg Config
	if err := json.Unmarshal([]byte(rawCfg), &cfg); err != nil {
		logger.Printf("bad %s: %v", EnvConfig, err)
		return 2
	}
	cli, err := engine.Dial(cfg.Endpoint)
	if err != nil {
		logger.Printf("daemon %s: %v", cfg.Endpoint.Host, err)
		return 2
	}
	defer cli.Close()
	// A watchdog that cannot reach the daemon would guard nothing: say so
	// now, while the parent waits for the handshake.
	timeout := pingTimeout
	if cfg.Endpoint.IsSSH() {
		timeout = sshPingTimeout
	}
	pctx, cancel := context.WithTimeout(context.Background(), timeout)
	err = cli.Ping(pctx)
	cancel()
	if err != nil {
		logger.Printf("daemon %s (%s) does not answer: %v", cfg.Endpoint.Host, cfg.Endpoint.Source, err)
		return 2
	}
	logger.Printf("watching for parent %d, daemon %s (%s)", cfg.Parent, cfg.Endpoint.Host, cfg.Endpoint.Source)
	if _, err := fmt.Fprintf(os.Stdout, "%s %d\n", readyLine, os.Getpid()); err != nil {
		logger.Printf("handshake: %v", err)
		return 2
	}
	_ = os.Stdout.Close() // the handshake is its only output

	removed, kept, err := Serve(context.Background(), cli, os.Stdin, sessions.WatchdogRetry, logger.Printf)
	if err != nil {
		logger.Printf("%v", err)
		return 1
	}
	logger.Printf("done: removed %d resources, kept %d", len(removed), len(kept))
	if len(removed) == 0 {
		removeOwnLog(cfg.Parent) // nothing happened worth keeping
	}
	return 0
}

// removeOwnLog deletes the watchdog's log file, after proving it is the one
// its parent made for it: descriptor 2 is a regular file named
// heph-watchdog-<parent>-*.log directly in os.TempDir, and the path leads to
// that very file.
func removeOwnLog(parent int) {
	path, err := os.Readlink("/proc/self/fd/2")
	if err != nil {
		return
	}
	ok, err := filepath.Match(fmt.Sprintf("heph-watchdog-%d-*.log", parent), filepath.Base(path))
	if err != nil || !ok || filepath.Dir(path) != filepath.Clean(os.TempDir()) {
		return
	}
	byPath, err := os.Lstat(path)
	if err != nil || !byPath.Mode().IsRegular() {
		return
	}
	byFD, err := os.Stderr.Stat()
	if err != nil || !os.SameFile(byPath, byFD) {
		return
	}
	_ = os.Remove(path)
}

// Serve reads commands from in until EOF (the parent is gone), then removes
// every resource of the announced sessions but the kept ones, and then
// expires the shared containers the parent held (see package shared): it
// returns when each is removed, held by someone else, or kept.
func Serve(ctx context.Context, api engine.API, in io.Reader, p sessions.RetryPolicy, logf func(string, ...any)) (removed, kept []sessions.Resource, err error) {
	cmds, err := Read(in, logf)
	if err != nil {
		logf("read from parent: %v (taken as the parent's end)", err)
	}
	if len(cmds.Sessions) == 0 && len(cmds.Leases) == 0 {
		logf("parent gone; no session was announced")
		return nil, nil, nil
	}
	if len(cmds.Sessions) > 0 {
		logf("parent gone; removing the resources of %d session(s)", len(cmds.Sessions))
		removed, kept, err = sessions.Removal{API: api, Sessions: cmds.Sessions, Keep: cmds.Keep, Policy: p, Logf: logf}.Run(ctx)
		if len(cmds.Pending) > 0 {
			more, k, perr := awaitPending(ctx, api, cmds, append(removed, kept...), p, logf)
			removed, kept = append(removed, more...), append(kept, k...)
			if perr != nil {
				err = perr
			}
		}
	}
	if len(cmds.Leases) > 0 {
		for _, k := range expireShared(ctx, api, cmds.Leases, logf) {
			removed = append(removed, sessions.Resource{Kind: sessions.ResourceContainer, Name: "shared " + k[:12]})
		}
	}
	return removed, kept, err
}

// PendingGrace bounds how long, after the parent's end, the watchdog looks
// for the objects of the creates the parent left pending (a variable for
// tests).
var PendingGrace = 3 * time.Minute

// pendingPoll paces the watchdog's looks for pending creates.
const pendingPoll = 500 * time.Millisecond

// awaitPending goes on removing the sessions' resources until every object
// whose create the parent left pending has shown up (and been removed or
// kept), or PendingGrace has passed. A busy daemon works through a queue of
// creates and may carry one out minutes after its caller gave up and the
// process ended: a single removal right after the parent's end would find
// nothing yet, and the network made later would be left, holding its
// subnet. seen are the resources the first removal already dealt with.
func awaitPending(ctx context.Context, api engine.API, cmds Commands, seen []sessions.Resource, p sessions.RetryPolicy, logf func(string, ...any)) (removed, kept []sessions.Resource, err error) {
	left := map[string]bool{}
	for _, name := range cmds.Pending {
		left[name] = true
	}
	note := func(rs []sessions.Resource) {
		for _, r := range rs {
			delete(left, r.Name)
		}
	}
	note(seen)
	start := time.Now()
	for len(left) > 0 {
		if time.Since(start) > PendingGrace {
			logf("%d pending create(s) did not show up within %s: %s", len(left), PendingGrace, strings.Join(sortedKeys(left), ", "))
			return removed, kept, err
		}
		logf("waiting for %d pending create(s) to show up: %s", len(left), strings.Join(sortedKeys(left), ", "))
		if serr := retry.Sleep(ctx, pendingPoll); serr != nil {
			return removed, kept, serr
		}
		var rm, k []sessions.Resource
		rm, k, err = sessions.Removal{API: api, Sessions: cmds.Sessions, Keep: cmds.Keep, Policy: p, Logf: logf}.Run(ctx)
		removed, kept = append(removed, rm...), append(kept, k...)
		note(rm)
		note(k)
	}
	return removed, kept, err
}

// expireShared runs shared.Expiry.AfterParent for the keys the parent held
// and returns the keys whose container it removed.
func expireShared(ctx context.Context, api engine.API, keys []string, logf func(string, ...any)) []string {
	store, err := shared.Open()
	if err != nil {
		logf("shared containers: %v", err)
		return nil
	}
	idle, err := shared.IdleFromEnv()
	if err != nil {
		logf("%s: %v (taking %s)", shared.EnvIdle, err, shared.DefaultIdle)
		idle = shared.Idle{D: shared.DefaultIdle}
	}
	host, _ := os.Hostname()
	logf("parent gone; it held %d shared container(s)", len(keys))
	return shared.Expiry{API: api, Store: store, Host: host, Idle: idle, Logf: logf}.AfterParent(ctx, keys)
}

// Commands is what a parent told its watchdog.
type Commands struct {
	// Sessions are the distinct valid session ids, in the order they came.
	Sessions []string
	// Keep holds the resource ids to keep.
	Keep map[string]bool
	// Leases are the content keys of the shared containers the parent
	// held, in the order they came.
	Leases []string
	// Pending are the names of the objects whose create the parent gave up
	// on while the daemon may still carry it out, and which the parent did
	// not settle (see Set.Pending), in the order they came.
	Pending []string
}

// ReadCommands is Read, for callers that need the sessions and keeps only.
func ReadCommands(in io.Reader, logf func(string, ...any)) (ids []string, keep map[string]bool, err error) {
	c, err := Read(in, logf)
	return c.Sessions, c.Keep, err
}

// Read reads command lines until EOF or a read error. A line longer than
// 64 KiB ends the reading, as a read error.
func Read(in io.Reader, logf func(string, ...any)) (Commands, error) {
	seen := map[string]bool{}
	c := Commands{Keep: map[string]bool{}}
	leased := map[string]bool{}
	pending := map[string]bool{}
	var pendingOrder []string
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		verb, arg, _ := strings.Cut(line, " ")
		arg = strings.TrimSpace(arg)
		switch {
		case line == "":
		case !sessions.ValidID(arg):
			logf("ignored line %s: not a command", strconv.QuoteToASCII(line))
		case verb == "session" && !seen[arg]:
			seen[arg] = true
			c.Sessions = append(c.Sessions, arg)
			logf("watching session %s", arg)
		case verb == "session":
		case verb == "keep":
			c.Keep[arg] = true
			logf("will keep %s", arg)
		case verb == "lease" && !shared.ValidKey(arg):
			logf("ignored line %s: not a shared key", strconv.QuoteToASCII(line))
		case verb == "lease" && !leased[arg]:
			leased[arg] = true
			c.Leases = append(c.Leases, arg)
			logf("parent holds shared %s", arg[:12])
		case verb == "lease":
		case verb == "pending" && !pending[arg]:
			pending[arg] = true
			pendingOrder = append(pendingOrder, arg)
			logf("a create of %s may still be carried out", arg)
		case verb == "pending":
		case verb == "settled":
			pending[arg] = false
		default:
			logf("ignored line %s: unknown command", strconv.QuoteToASCII(line))
		}
	}
	for _, name := range pendingOrder {
		if pending[name] {
			c.Pending = append(c.Pending, name)
		}
	}
	return c, sc.Err()
}
