// Command testapp is the small static program heph's integration tests run in containers.
//
// It is built with CGO_ENABLED=0 and copied into a FROM scratch image as /testapp, the
// ENTRYPOINT (see Dockerfile and health.Dockerfile next to this file). The image holds nothing
// else: no shell, no CA certificates, no /tmp (testapp creates the directories it writes to).
// Everything a test needs inside the container is therefore a mode of this one binary.
//
// # Server mode
//
// Without a subcommand testapp runs as a server. All flags combine. It runs until SIGTERM or
// SIGINT unless -exit is given. An unknown flag, a bad value or a stray argument prints the
// error and the usage to stderr and exits 2 (-h prints the usage and exits 0).
//
//	-http ADDR            serve HTTP on ADDR, e.g. ":8080" (repeatable)
//	-https ADDR           serve the same routes over TLS, self-signed ECDSA certificate made at start
//	                      (SANs: localhost, the hostname, 127.0.0.1, ::1) (repeatable)
//	-http-delay D         start listening on every -http and -https address only after D
//	-tcp ADDR             TCP echo server on ADDR: every byte read is written back (repeatable)
//	-tcp-delay D          start listening on every -tcp address only after D
//	-log TEXT             print TEXT to stdout (repeatable, printed in order)
//	-stderr TEXT          print TEXT to stderr (repeatable, printed in order after the -log lines)
//	-log-delay D          wait D before printing the -log and -stderr lines
//	-log-every D          interval between passes of the -log and -stderr lines
//	-log-repeat N         number of passes (default 1; 0 = forever, which needs -log-every)
//	-log-bytes SIZE       then print filler lines totalling SIZE bytes, as fast as possible
//	-log-after TEXT       then print TEXT to stdout (repeatable)
//	-stamp                append " at <unixnano>" to every -log, -stderr and -log-after line
//	-print-env            at start print "env KEY=VALUE" per variable (sorted), then "hostname NAME"
//	-write FILE=CONTENT   at start write CONTENT to FILE, parent directories created (repeatable)
//	-cat FILE             at start print "cat FILE: CONTENT" (repeatable; a failure goes to stderr)
//	-alloc SIZE           at start allocate and touch SIZE bytes and hold them (OOM tests)
//	-health-file PATH     the file that marks the app healthy (default /tmp/healthy)
//	-healthy-after D      write the health file D after start (default: once every listener is up)
//	-unhealthy            never write the health file
//	-exit N               exit with code N (0-255) instead of running until signalled
//	-exit-after D         with -exit: exit D after start (never before a finite log sequence ends)
//	-ignore-sigterm       print "testapp: ignoring SIGTERM" on SIGTERM and keep running
//
// SIZE is a byte count with an optional unit, case-insensitive: B; KB, MB, GB (powers of
// 1000); KiB, MiB, GiB and, as in docker run --memory, K, M, G (powers of 1024). Examples:
// 1000, 10KB, 50MB, 1MiB, 64m. D is a Go duration: 500ms, 2s, 1m.
//
// # HTTP routes (-http and -https)
//
//	/                  200 "ok" (exactly this path; anything unknown is 404)
//	/healthz           200 "healthy"
//	/status/{code}     responds with that status code (200-599), body "<code> <status text>"
//	/env               200, "KEY=VALUE" per environment variable, one per line, sorted
//	/hostname          200, the hostname
//	/echo              any method: the body is the request body; every request header comes back
//	                   as X-Echo-<Name>, plus X-Echo-Method, X-Echo-Uri and X-Echo-Host
//	/fetch?url=U       the app GETs U (timeout=D, default 5s; insecure=1 skips TLS verification) and
//	                   answers with U's status and body (header X-Fetch-Status), or 502 with the error
//	/dial?addr=H:P     TCP dial (timeout=D, default 5s): 200 "connected" or 502 with the error
//	/slow?d=D          200 "slept D" after D (default 1s)
//	/log?line=TEXT     prints TEXT to stdout, 200 "logged"
//
// # Output and timing in server mode
//
// Every line is written whole with one write: lines from concurrent sources never mix. Time
// stamps are time.Now().UnixNano(); host and container share the kernel clock.
//
// Start-up, in this order:
//   - "testapp: started pid=<pid> at <unixnano>", the first line;
//   - the prelude: -print-env lines; -write files (a failure exits 1); -cat lines; -alloc, then
//     "testapp: allocated <n> bytes at <unixnano>";
//   - the health file when there is nothing to wait for (no listener and no -healthy-after, or
//     -healthy-after 0), then "testapp: healthy <path> at <unixnano>".
//
// Then these timelines run concurrently, every delay counted from the end of the prelude:
//   - the log sequence: wait -log-delay; -log-repeat passes, -log-every apart, each printing
//     the -log lines then the -stderr lines; the filler (-log-bytes): lines of exactly 100
//     bytes, "filler 0000000001 xxx…xxx", numbered from 1; then the -log-after lines;
//   - each listener, after -http-delay or -tcp-delay: as net.Listen returns, it prints
//     "testapp: listening <http|https|tcp> <actual address> at <unixnano>", e.g.
//     "testapp: listening http [::]:8080 at 1700000000000000000"; a listen error exits 1;
//   - the health file, written once every listener is up, or -healthy-after after start
//     whatever the listeners do; then "testapp: healthy <path> at <unixnano>";
//   - the exit timer (-exit): fires at -exit-after or when a finite log sequence has ended,
//     whichever is later (an endless one, -log-repeat 0, is cut at -exit-after).
//
// The end is one of these; the exiting or terminating line is the last line on stdout:
//   - -exit: "testapp: exiting code=<n> at <unixnano>", exit n;
//   - SIGTERM or SIGINT: "testapp: terminating on SIGTERM" (or SIGINT), listeners closed,
//     exit 0 within about half a second (in-flight HTTP requests get that long);
//   - with -ignore-sigterm, SIGTERM only prints "testapp: ignoring SIGTERM" (SIGINT still
//     terminates; docker stop has to SIGKILL it); SIGHUP only prints "testapp: received SIGHUP".
//
// Without delays the order of the log lines against the listening lines is not defined: use
// -log-delay or -http-delay to order them.
//
// # Subcommands
//
// The first argument, when it does not start with "-", names a subcommand; they serve docker
// exec and HEALTHCHECK, since the image has no shell. Bad usage exits 2.
//
//	testapp health [-file PATH]          exit 0 if PATH (default /tmp/healthy) exists, else say why, exit 1
//	testapp fetch URL [-timeout D] [-insecure]
//	                                     GET URL (default timeout 2s), print the body; exit 0 on 2xx, else 1
//	testapp dial HOST:PORT [-timeout D]  TCP dial (default 2s), print "connected", exit 0; else exit 1
//	testapp resolve NAME [-timeout D]    print NAME's addresses (default timeout 2s) one per line, sorted
//	testapp echo ARGS...                 print ARGS joined by spaces to stdout
//	testapp echo-stderr ARGS...          print ARGS joined by spaces to stderr
//	testapp exit N                       exit with code N (0-255)
//	testapp sleep D                      sleep D (a duration, or a number of seconds), exit 0
//	testapp cat FILE...                  print the files' contents; exit 1 if one cannot be read
//	testapp ls PATH                      list PATH recursively, sorted: "<relpath> <size> <mode>" per
//	                                     entry; directories have size 0, symlinks end "-> target";
//	                                     a directory PATH is not listed itself, a file PATH is
//	testapp write FILE CONTENT           write CONTENT to FILE, parent directories created
//	testapp help                         print the usage
//
// Errors of subcommands go to stderr, prefixed "testapp: ".
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const defaultHealthFile = "/tmp/healthy"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return runCommand(args[0], args[1:], stdout, stderr)
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	return runServer(args, stdout, stderr, sigs)
}

// runServer runs server mode with signals read from sigs (a fake channel in tests).
func runServer(args []string, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	cfg, err := parseServerFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage())
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "testapp: %v\n\n%s", err, usage())
		return 2
	}
	s := &server{cfg: cfg, out: &lineWriter{w: stdout}, errw: &lineWriter{w: stderr}}
	return s.run(sigs)
}

// config is the parsed server-mode command line.
type config struct {
	http, https, tcp        []string
	httpDelay, tcpDelay     time.Duration
	logs, stderrs, logAfter []string
	logDelay, logEvery      time.Duration
	logRepeat               int
	logBytes                int64
	stamp, printEnv         bool
	writes, cats            []string
	alloc                   int64
	healthFile              string
	healthyAfter            time.Duration
	healthyAfterSet         bool
	unhealthy               bool
	exitCode                int // -1: no -exit
	exitAfter               time.Duration
	ignoreSigterm           bool
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// sizeFlag is a byte count with an optional unit (see parseSize).
type sizeFlag int64

func (s *sizeFlag) String() string { return strconv.FormatInt(int64(*s), 10) }
func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

func newServerFlags(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("testapp", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var((*listFlag)(&cfg.http), "http", "serve HTTP on `ADDR` (repeatable)")
	fs.Var((*listFlag)(&cfg.https), "https", "serve HTTPS, self-signed, on `ADDR` (repeatable)")
	fs.DurationVar(&cfg.httpDelay, "http-delay", 0, "listen on -http/-https addresses only after `D`")
	fs.Var((*listFlag)(&cfg.tcp), "tcp", "TCP echo server on `ADDR` (repeatable)")
	fs.DurationVar(&cfg.tcpDelay, "tcp-delay", 0, "listen on -tcp addresses only after `D`")
	fs.Var((*listFlag)(&cfg.logs), "log", "print `TEXT` to stdout (repeatable)")
	fs.Var((*listFlag)(&cfg.stderrs), "stderr", "print `TEXT` to stderr (repeatable)")
	fs.DurationVar(&cfg.logDelay, "log-delay", 0, "wait `D` before the -log/-stderr lines")
	fs.DurationVar(&cfg.logEvery, "log-every", 0, "interval `D` between passes of -log/-stderr lines")
	fs.IntVar(&cfg.logRepeat, "log-repeat", 1, "`N` passes of -log/-stderr lines (0 = forever)")
	fs.Var((*sizeFlag)(&cfg.logBytes), "log-bytes", "then print filler lines totalling `SIZE` bytes")
	fs.Var((*listFlag)(&cfg.logAfter), "log-after", "then print `TEXT` to stdout (repeatable)")
	fs.BoolVar(&cfg.stamp, "stamp", false, "append \" at <unixnano>\" to -log, -stderr, -log-after lines")
	fs.BoolVar(&cfg.printEnv, "print-env", false, "print the environment and hostname at start")
	fs.Var((*listFlag)(&cfg.writes), "write", "write a file at start: `FILE=CONTENT` (repeatable)")
	fs.Var((*listFlag)(&cfg.cats), "cat", "print `FILE` at start (repeatable)")
	fs.Var((*sizeFlag)(&cfg.alloc), "alloc", "allocate, touch and hold `SIZE` bytes at start")
	fs.StringVar(&cfg.healthFile, "health-file", defaultHealthFile, "health marker file `PATH`")
	fs.DurationVar(&cfg.healthyAfter, "healthy-after", 0, "write the health file `D` after start (default: when listeners are up)")
	fs.BoolVar(&cfg.unhealthy, "unhealthy", false, "never write the health file")
	fs.IntVar(&cfg.exitCode, "exit", -1, "exit with code `N` (0-255)")
	fs.DurationVar(&cfg.exitAfter, "exit-after", 0, "with -exit: exit after `D`")
	fs.BoolVar(&cfg.ignoreSigterm, "ignore-sigterm", false, "keep running on SIGTERM")
	return fs
}

func parseServerFlags(args []string) (config, error) {
	var cfg config
	fs := newServerFlags(&cfg)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q (subcommands come first)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg.healthyAfterSet = set["healthy-after"]

	var errs []error
	for name, d := range map[string]time.Duration{
		"http-delay": cfg.httpDelay, "tcp-delay": cfg.tcpDelay, "log-delay": cfg.logDelay,
		"log-every": cfg.logEvery, "healthy-after": cfg.healthyAfter, "exit-after": cfg.exitAfter,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("invalid value %q for flag -%s: negative duration", d, name))
		}
	}
	if cfg.logRepeat < 0 {
		errs = append(errs, fmt.Errorf("invalid value %d for flag -log-repeat: negative", cfg.logRepeat))
	}
	if cfg.logRepeat == 0 && len(cfg.logs)+len(cfg.stderrs) > 0 && cfg.logEvery <= 0 {
		errs = append(errs, errors.New("-log-repeat 0 (forever) needs -log-every > 0"))
	}
	if set["exit"] && (cfg.exitCode < 0 || cfg.exitCode > 255) {
		errs = append(errs, fmt.Errorf("invalid value %d for flag -exit: not in 0-255", cfg.exitCode))
	}
	if set["exit-after"] && !set["exit"] {
		errs = append(errs, errors.New("-exit-after needs -exit"))
	}
	if cfg.unhealthy && cfg.healthyAfterSet {
		errs = append(errs, errors.New("-unhealthy and -healthy-after exclude each other"))
	}
	if cfg.healthFile == "" {
		errs = append(errs, errors.New("invalid value \"\" for flag -health-file: empty"))
	}
	for _, group := range []struct {
		name  string
		addrs []string
	}{{"http", cfg.http}, {"https", cfg.https}, {"tcp", cfg.tcp}} {
		for _, a := range group.addrs {
			if _, port, err := net.SplitHostPort(a); err != nil {
				errs = append(errs, fmt.Errorf("invalid value %q for flag -%s: %v", a, group.name, err))
			} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
				errs = append(errs, fmt.Errorf("invalid value %q for flag -%s: bad port %q", a, group.name, port))
			}
		}
	}
	for _, w := range cfg.writes {
		if file, _, ok := strings.Cut(w, "="); !ok || file == "" {
			errs = append(errs, fmt.Errorf("invalid value %q for flag -write: want FILE=CONTENT", w))
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return cfg, errors.Join(errs...)
}

func usage() string {
	var b strings.Builder
	b.WriteString("usage: testapp [flags]            (server mode)\n")
	b.WriteString("       testapp COMMAND [args]     (one-shot command)\n\nflags:\n")
	fs := newServerFlags(&config{})
	fs.SetOutput(&b)
	fs.PrintDefaults()
	b.WriteString(commandsUsage)
	return b.String()
}

const commandsUsage = `
SIZE: bytes with an optional unit: B, KB, MB, GB (1000s), KiB, MiB, GiB, K, M, G (1024s).

commands:
  health [-file PATH]                 exit 0 if PATH (default /tmp/healthy) exists
  fetch URL [-timeout D] [-insecure]  GET URL, print the body, exit 0 on 2xx
  dial HOST:PORT [-timeout D]         TCP dial, print "connected"
  resolve NAME [-timeout D]           print NAME's addresses
  echo ARGS...                        print ARGS to stdout
  echo-stderr ARGS...                 print ARGS to stderr
  exit N                              exit with code N
  sleep D                             sleep, exit 0
  cat FILE...                         print files
  ls PATH                             list PATH recursively: relpath size mode
  write FILE CONTENT                  write a file
  help                                print this usage
`

// parseSize parses a byte count with an optional, case-insensitive unit: B; KB, MB, GB
// (powers of 1000); KiB, MiB, GiB, K, M, G (powers of 1024).
func parseSize(s string) (int64, error) {
	num := strings.TrimSpace(s)
	i := 0
	for i < len(num) && num[i] >= '0' && num[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q: want a number of bytes with an optional unit (10KB, 1MiB)", s)
	}
	n, err := strconv.ParseInt(num[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %v", s, err)
	}
	units := map[string]int64{
		"": 1, "b": 1,
		"kb": 1e3, "mb": 1e6, "gb": 1e9,
		"k": 1 << 10, "m": 1 << 20, "g": 1 << 30,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
	}
	unit := strings.ToLower(strings.TrimSpace(num[i:]))
	mult, ok := units[unit]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, KB, MB, GB, KiB, MiB, GiB, K, M, G)", s, num[i:])
	}
	if n > (1<<63-1)/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n * mult, nil
}
