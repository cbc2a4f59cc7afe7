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
	"github.com/heph-go/heph/internal/sessions"
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
	pctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
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
// every resource of the announced sessions but the kept ones.
func Serve(ctx context.Context, api engine.API, in io.Reader, p sessions.RetryPolicy, logf func(string, ...any)) (removed, kept []sessions.Resource, err error) {
	ids, keep, err := ReadCommands(in, logf)
	if err != nil {
		logf("read from parent: %v (taken as the parent's end)", err)
	}
	if len(ids) == 0 {
		logf("parent gone; no session was announced")
		return nil, nil, nil
	}
	logf("parent gone; removing the resources of %d session(s)", len(ids))
	return sessions.Removal{API: api, Sessions: ids, Keep: keep, Policy: p, Logf: logf}.Run(ctx)
}

// ReadCommands reads command lines until EOF or a read error: the distinct
// valid session ids in the order they came, and the resource ids to keep.
// A line longer than 64 KiB ends the reading, as a read error.
func ReadCommands(in io.Reader, logf func(string, ...any)) (ids []string, keep map[string]bool, err error) {
	seen := map[string]bool{}
	keep = map[string]bool{}
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
			ids = append(ids, arg)
			logf("watching session %s", arg)
		case verb == "session":
		case verb == "keep":
			keep[arg] = true
			logf("will keep %s", arg)
		default:
			logf("ignored line %s: unknown command", strconv.QuoteToASCII(line))
		}
	}
	return ids, keep, sc.Err()
}
