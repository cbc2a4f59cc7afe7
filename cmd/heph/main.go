// Command heph shows and removes what heph-based tests left on a Docker
// daemon, and checks that a machine can run them.
//
// Install it with
//
//	go install github.com/heph-go/heph/cmd/heph@latest
//
// Usage:
//
//	heph doctor [--json]
//	heph ps [--json]
//	heph prune [--session ID]... [--stale] [--older-than DURATION] [--all] [--images] [--shared] [--force] [--dry-run] [--json]
//
// heph finds the daemon as heph's tests do: DOCKER_HOST, else DOCKER_CONTEXT
// or the docker CLI's current context, else the rootless socket, else
// /var/run/docker.sock.
//
// # doctor
//
// A checklist, with a fix beside every failure: which daemon answered and how
// it was found (DOCKER_HOST, a context, a socket), its server and API
// versions, whether it is rootless, whether heph's watchdog is on, and then
// whether the daemon can create a network, run a container from an image
// built here, and publish its port on 127.0.0.1 reachable from this machine.
// The image is built from a tiny program (cmd/heph/internal/probe) whose
// source is embedded in heph: when Go is on PATH it is compiled with
// `go build` (CGO_ENABLED=0, for the daemon's GOOS/GOARCH; no network, no
// module download); otherwise, when this heph binary is itself a static
// executable for the daemon's platform, it is copied into the image as it is
// and serves as the probe. When neither works, doctor says so and how to fix
// it (put Go on PATH, or install heph with CGO_ENABLED=0). doctor removes the
// container and the network it made; the FROM scratch image
// (heph-build/doctor-probe:<hash>, a few MB) stays as a cache for the next
// run. The exit status is 1 when a check fails.
//
// # ps
//
// Every container, network and volume labelled heph.managed=true, grouped by
// session: the test that made it (heph.test), the owning process
// (heph.pid, with @host when it ran on another machine), whether that process
// is alive, and the age. A process is judged only where its pid means it:
// on its host (heph.host), in its pid namespace (heph.pidns), during its
// boot (heph.boot); anywhere else ALIVE is "?". Then the images heph built
// (labelled heph.build: FromDockerfile, FromGoPackage, BuildImage, doctor's
// probe) with what they were built from, their size, age, and whether a
// container uses them. Then the shared containers (labelled heph.shared):
// their content key, the processes holding them (on this host), and how long
// they have been idle and until when their idle time keeps them.
//
// # prune
//
// Removes the selected sessions' containers (forced, with their anonymous
// volumes), networks and volumes. Selectors combine (all must hold):
//
//	--session ID         a session id, or a unique prefix of one (repeatable)
//	--stale              sessions whose process is proved gone
//	--older-than D       sessions created more than D ago (Go duration, or Nd for days)
//	--all                every session (the only way to select without a condition)
//
// Whatever selected it, a session is removed only when its process is
// proved gone — it ran on this host, in this pid namespace, during this
// boot, and no longer runs — unless --force is given: a session whose
// process is alive, or cannot be judged from here (another host, another
// pid namespace such as a container's or a pod's, an earlier boot, labels
// from an older heph), is left in place and listed with the reason. When a
// session named with --session is left so, the exit status is 1.
//
// --images also removes the images heph built (heph.build) that no
// container uses, every tag of each; alone it removes only those. They are a
// cache: the next test that needs one builds it again.
//
// --shared removes the shared containers no live process on this host
// holds, at once, whatever their idle time; --force with it removes held
// ones too (their holders' next take makes a new one). A shared container
// made for another host is removed only with --force.
//
// --dry-run lists what would be removed and removes nothing.
//
// Every command takes --json to print the same information as JSON for
// scripts. Exit status: 0 done, 1 failed (a check, a removal, the daemon),
// 2 bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/cmd/heph/internal/probe"
	"github.com/heph-go/heph/internal/daemon"
	"github.com/heph-go/heph/internal/engine"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `heph shows and removes what heph-based tests left on a Docker daemon.

Usage:
  heph doctor [--json]    check that this machine can run heph's tests
  heph ps [--json]        list heph's containers, networks and volumes by session,
                          and the images heph built
  heph prune [flags]      remove sessions' resources:
      --session ID        a session id or unique prefix (repeatable)
      --stale             sessions whose process is proved gone
      --older-than D      sessions older than D (30m, 2h, 7d)
      --all               every session
      --images            the images heph built that no container uses
      --shared            shared containers no live process holds
      --force             also sessions whose process is alive or cannot be
                          judged here (without it, only proved-gone ones),
                          and with --shared, held shared containers
      --dry-run           say what would be removed, remove nothing
      --json              JSON output

Selectors combine: prune --stale --older-than 1h removes stale sessions older
than an hour. The daemon is found as heph's tests find it (DOCKER_HOST,
DOCKER_CONTEXT, the current docker context, the rootless or default socket).
`

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// env is what the commands take from the outside world; tests replace it.
type env struct {
	stdout, stderr io.Writer
	now            func() time.Time
	// connect finds and pings the daemon, as heph's tests do.
	connect func() (engine.API, engine.Endpoint, error)
	// orchestrator makes the Orchestrator doctor creates its probes with.
	orchestrator func() (*heph.Orchestrator, error)
	getenv       func(string) string
}

// connectDaemon is env.connect for real.
func connectDaemon() (engine.API, engine.Endpoint, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return daemon.Connect(ctx, daemon.OSEnv())
}

// run runs heph with args (without the program name) and returns the exit
// status.
func run(args []string, stdout, stderr io.Writer) int {
	return env{
		stdout: stdout, stderr: stderr, now: time.Now, getenv: os.Getenv,
		connect:      connectDaemon,
		orchestrator: func() (*heph.Orchestrator, error) { return heph.NewOrchestrator() },
	}.run(args)
}

func (e env) run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(e.stdout, usage)
		return exitOK
	case "doctor":
		return e.doctor(rest)
	case "ps":
		return e.ps(rest)
	case "prune":
		return e.prune(rest)
	case "doctor-probe": // hidden: the probe, when this binary is copied into doctor's image
		probe.Main()
		return exitFail
	default:
		fmt.Fprintf(e.stderr, "heph: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

// flags returns a FlagSet for a subcommand that reports to e.stderr.
func (e env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("heph "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, usage) }
	return fs
}

// parse parses a subcommand's flags; ok is false with the exit status when
// they are bad (or -h asked for help).
func (e env) parse(fs *flag.FlagSet, args []string) (status int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	return 0, true
}

// sessionIDs is a repeatable --session flag.
type sessionIDs []string

func (s *sessionIDs) String() string { return strings.Join(*s, ",") }

func (s *sessionIDs) Set(v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		return errors.New("empty session id")
	}
	*s = append(*s, v)
	return nil
}

// duration is --older-than: a Go duration, or a whole number of days ("7d").
type duration struct{ d time.Duration }

func (d *duration) String() string { return d.d.String() }

func (d *duration) Set(v string) error {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err == nil && fmt.Sprint(n) == days && n >= 0 {
			d.d = time.Duration(n) * 24 * time.Hour
			return nil
		}
	}
	p, err := time.ParseDuration(v)
	if err != nil || p < 0 {
		return fmt.Errorf("want a duration such as 30m, 2h or 7d, not %q", v)
	}
	d.d = p
	return nil
}
