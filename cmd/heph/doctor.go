package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/cmd/heph/internal/probe"
	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/envflag"
	"github.com/heph-go/heph/internal/retry"
	"github.com/heph-go/heph/internal/sessions"
	"github.com/heph-go/heph/internal/subnet"
)

// Check statuses.
const (
	statusOK   = "ok"
	statusWarn = "warn" // works, but worth knowing; does not fail doctor
	statusFail = "FAIL"
	statusSkip = "skip" // not run: an earlier check failed
)

// check is one line of heph doctor's checklist; its JSON is the --json
// output.
type check struct {
	Name   string `json:"check"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// doctorReport is what heph doctor prints.
type doctorReport struct {
	OK     bool    `json:"ok"`
	Checks []check `json:"checks"`
}

// writeDoctor is heph doctor's text output: aligned columns, the lines of
// a multi-line detail and the fix under the detail column.
func writeDoctor(w io.Writer, r doctorReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range r.Checks {
		lines := strings.Split(c.Detail, "\n")
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Status, c.Name, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(tw, "\t\t%s\n", l)
		}
		if c.Fix != "" {
			for i, l := range strings.Split(c.Fix, "\n") {
				if i == 0 {
					l = "fix: " + l
				} else {
					l = "     " + l
				}
				fmt.Fprintf(tw, "\t\t%s\n", l)
			}
		}
	}
	_ = tw.Flush()
	failed := 0
	for _, c := range r.Checks {
		if c.Status == statusFail {
			failed++
		}
	}
	switch failed {
	case 0:
		fmt.Fprintln(w, "\nheph's tests can run here")
	case 1:
		fmt.Fprintln(w, "\n1 check failed")
	default:
		fmt.Fprintf(w, "\n%d checks failed\n", failed)
	}
}

// doctor is heph doctor.
func (e env) doctor(args []string) int {
	fs := e.flags("doctor")
	asJSON := fs.Bool("json", false, "JSON output")
	if status, ok := e.parse(fs, args); !ok {
		return status
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r := doctorReport{Checks: e.runChecks(ctx)}
	r.OK = true
	for _, c := range r.Checks {
		if c.Status == statusFail {
			r.OK = false
		}
	}
	if *asJSON {
		_ = writeJSON(e.stdout, r)
	} else {
		writeDoctor(e.stdout, r)
	}
	if !r.OK {
		return exitFail
	}
	return exitOK
}

// runChecks runs the checklist against the daemon, cleaning up what it made.
func (e env) runChecks(ctx context.Context) []check {
	var checks []check
	add := func(name, status, detail, fix string) {
		checks = append(checks, check{Name: name, Status: status, Detail: detail, Fix: fix})
	}
	skipRest := func(reason string, names ...string) []check {
		for _, n := range names {
			add(n, statusSkip, reason, "")
		}
		return checks
	}
	later := []string{"server", "engine", "rootless", "watchdog", "network", "image", "container", "port", "cleanup", "leftovers"}

	api, ep, err := e.connect()
	if err != nil {
		add("daemon", statusFail, daemonFailure(err), daemonFix(err, e.getenv))
		return skipRest("needs a daemon", later...)
	}
	defer api.Close()
	add("daemon", statusOK, fmt.Sprintf("%s, found by: %s", ep.Host, orUnknown(ep.Source)), "")

	v, err := api.Version(ctx)
	var info engine.Info
	if err == nil {
		info, err = api.Info(ctx)
	}
	if err != nil {
		add("server", statusFail, err.Error(), "the daemon answers a ping but not `version` or `info`: check it with `docker info` and its log")
		return skipRest("needs the daemon's version", later[1:]...)
	}
	add("server", statusOK, serverDetail(v, api.APIVersion()), "")
	if detail, warn := engineDetail(v, ep, api.APIVersion()); warn != "" {
		add("engine", statusWarn, detail, warn)
	} else {
		add("engine", statusOK, detail, "")
	}
	if info.Rootless {
		add("rootless", statusOK, "yes (the daemon runs without root)", "")
	} else {
		add("rootless", statusOK, "no", "")
	}
	if v := e.getenv(heph.EnvReaper); envflag.IsOff(v) {
		add("watchdog", statusWarn, fmt.Sprintf("off (%s=%s): a test process that is killed leaves its resources behind", heph.EnvReaper, v),
			fmt.Sprintf("unset %s to have them removed; until then `heph prune --stale` removes them", heph.EnvReaper))
	} else {
		add("watchdog", statusOK, "on: when a test process dies, its watchdog removes its resources", "")
	}

	// From here on doctor makes things, through heph's own Orchestrator
	// (so the port is reached exactly as a test reaches it): remove them
	// whatever happens.
	o, err := e.orchestrator()
	if err != nil {
		add("network", statusFail, err.Error(), "the daemon answered doctor but not heph's Orchestrator: check DOCKER_HOST and the docker context")
		return skipRest("needs an Orchestrator", later[5:]...)
	}
	defer o.Close()
	cleanupDone := false
	cleanup := func() error {
		if cleanupDone {
			return nil
		}
		cleanupDone = true
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		return o.Teardown(cctx)
	}
	defer func() { _ = cleanup() }()
	finish := func() []check {
		if err := cleanup(); err != nil {
			add("cleanup", statusFail, err.Error(), "remove them with `heph prune --session "+o.Session()+"`")
		} else {
			add("cleanup", statusOK, "removed the container and the network doctor made", "")
		}
		return append(checks, leftovers(ctx, api, o.Session()))
	}

	// While tests hold every address pool, wait a little for one to free.
	nctx, ncancel := context.WithTimeout(ctx, 30*time.Second)
	netw, err := o.CreateNetwork(nctx, heph.NetworkConfig{})
	ncancel()
	if err != nil {
		add("network", statusFail, err.Error(), networkFix(err))
		checks = skipRest("needs a network", "image", "container", "port")
		return finish()
	}
	add("network", statusOK, "created "+netw.Name()+networkWhere(ctx, api, netw.Name()), "")

	start := time.Now()
	img, err := buildProbeImage(ctx, o, v)
	if err != nil {
		var ie *imageError
		fix := "check that the daemon can build an image: `docker build` of a FROM scratch Dockerfile"
		if errors.As(err, &ie) {
			fix = ie.fix
		}
		add("image", statusFail, err.Error(), fix)
		checks = skipRest("needs the image", "container", "port")
		return finish()
	}
	add("image", statusOK, fmt.Sprintf("built %s from %s in %s", img.tag, img.how, time.Since(start).Round(10*time.Millisecond)), "")

	c, err := o.CreateContainer(ctx, heph.ContainerConfig{
		Image:        img.tag,
		Service:      "doctor",
		Cmd:          []string{"doctor-probe"},
		ExposedPorts: []string{"8080/tcp"},
		Networks:     []string{netw.Name()},
	})
	if err == nil {
		err = c.Start(ctx)
	}
	if err != nil {
		add("container", statusFail, err.Error(), "check that `docker run` works with a locally built image; the daemon's log says more")
		checks = skipRest("needs the container", "port")
		return finish()
	}
	add("container", statusOK, fmt.Sprintf("started %s from it on %s", c.Name(), netw.Name()), "")
	checks = append(checks, portCheck(ctx, c.Endpoint("8080/tcp"), c.Host()))
	return finish()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func serverDetail(v engine.Version, apiVersion string) string {
	product := v.Product
	if product == "" {
		product = "Docker Engine"
	}
	s := fmt.Sprintf("%s %s (%s/%s), API %s", product, v.Version, v.OS, v.Arch, orUnknown(apiVersion))
	if v.MinAPIVersion != "" && v.APIVersion != "" {
		s += fmt.Sprintf(" (the daemon speaks %s to %s)", v.MinAPIVersion, v.APIVersion)
	}
	return s
}

// engineDetail says which engine answers (Docker, Podman), the API
// version in use and how heph reaches it; warn is a fix when the
// connection is unsafe (TLS without verification, plain TCP to another
// machine).
func engineDetail(v engine.Version, ep engine.Endpoint, apiVersion string) (detail, warn string) {
	how, warn := ep.Connection()
	api := "negotiated"
	if ep.APIVersion != "" {
		api = "fixed by DOCKER_API_VERSION"
	}
	return fmt.Sprintf("%s %s, API %s (%s), connected by %s", engine.Kind(v), orUnknown(v.Version), orUnknown(apiVersion), api, how), warn
}

// daemonFailure shortens NewOrchestrator's error to what was tried: its
// "what to do" part is replaced by daemonFix.
func daemonFailure(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "\nwhat to do:"); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.TrimPrefix(msg, "heph: ")
	var lines []string
	for _, l := range strings.Split(msg, "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	return strings.Join(lines, "\n")
}

// daemonFix says what to do when no daemon answered, from the error and the
// environment that led there.
func daemonFix(err error, getenv func(string) string) string {
	msg := strings.ToLower(daemonFailure(err))
	switch host := getenv("DOCKER_HOST"); {
	case errors.Is(err, heph.ErrInvalidConfig):
		return "correct the setting the message names"
	case errors.Is(err, syscall.EACCES) || strings.Contains(msg, "permission denied"):
		return "let your user use the socket: sudo usermod -aG docker $USER, then log in again (or use rootless Docker)"
	case strings.HasPrefix(strings.ToLower(host), "ssh://"):
		return fmt.Sprintf("heph reaches %s as the docker CLI does: ssh [-l user] [-p port] host docker system dial-stdio;\nrun that by hand: fix ssh's config, keys or known_hosts, and install the docker CLI on the remote machine", host)
	case host != "":
		return fmt.Sprintf("DOCKER_HOST=%s points at no running daemon: start the daemon there, correct DOCKER_HOST,\nor unset it to use the docker context or the default socket", host)
	case getenv("DOCKER_CONTEXT") != "" || strings.Contains(msg, "context "):
		return "the docker context's daemon does not answer: start it, or switch with `docker context use default`"
	default:
		return "start the daemon (sudo systemctl start docker, or dockerd; Docker Desktop, colima or podman machine start),\nor point DOCKER_HOST at a running one"
	}
}

func networkFix(err error) string {
	switch {
	case errors.Is(err, heph.ErrWatchdog):
		return fmt.Sprintf("heph starts a watchdog process (this binary, re-executed) before it creates anything;\nthe message says why it could not; %s=off runs without it", heph.EnvReaper)
	case errors.Is(err, heph.ErrNetworkPoolExhausted):
		return "heph's own subnets could not be used and the daemon's address pools are used up:\n" +
			"give heph a free range (" + heph.EnvSubnets + "=10.213.0.0/16), `heph prune --stale` and `docker network prune`,\n" +
			"or give dockerd more with default-address-pools in daemon.json"
	default:
		return "check that `docker network create` works; the daemon's log says more"
	}
}

// networkWhere says where the network's subnet came from: heph's own
// range (HEPH_SUBNETS) or the daemon's default pools; "" when the daemon
// does not say.
func networkWhere(ctx context.Context, api engine.API, name string) string {
	nets, err := api.NetworkList(ctx, engine.Filter{}.Add("name", name))
	if err != nil {
		return ""
	}
	for _, n := range nets {
		if n.Name != name || len(n.Subnets) == 0 {
			continue
		}
		s := n.Subnets[0].Prefix
		plan, _ := subnet.Parse(os.Getenv(heph.EnvSubnets))
		for _, r := range plan.Ranges {
			if r.Base.Overlaps(s) {
				return fmt.Sprintf(" on %s, in heph's own range %s (%s)", s, r.Base, heph.EnvSubnets)
			}
		}
		return fmt.Sprintf(" on %s, from the daemon's default address pools", s)
	}
	return ""
}

// portCheck dials the container's published port where heph's tests reach
// it (addr, on host) and waits for the probe's greeting.
func portCheck(ctx context.Context, addr, host string) check {
	if addr == "" {
		return check{Name: "port", Status: statusFail, Detail: "port 8080/tcp of the container is not published",
			Fix: "the daemon did not publish the port: check `docker run -p 127.0.0.1::8080` and the daemon's log"}
	}
	remote := !isLoopback(host)
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var last error
	err := retry.Poll(dctx, retry.Policy{Initial: 20 * time.Millisecond, Max: 500 * time.Millisecond, Jitter: 0.2}, func(ctx context.Context) error {
		last = greet(ctx, addr)
		return last
	})
	if err != nil {
		fix := "the daemon published the port but it does not answer from here: check the userland proxy\n" +
			"(dockerd --userland-proxy) and iptables; a daemon in a VM must forward ports to this machine"
		if remote {
			fix = "the daemon is on " + host + ": open its published port range in its firewall"
		}
		return check{Name: "port", Status: statusFail, Detail: fmt.Sprintf("%s (container port 8080/tcp) did not answer within 20s: %v", addr, last), Fix: fix}
	}
	where := "on loopback"
	if remote {
		where = "on " + host
	}
	return check{Name: "port", Status: statusOK, Detail: fmt.Sprintf("%s (published %s) answered from the container in %s", addr, where, time.Since(start).Round(time.Millisecond))}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// greet connects to addr and reads the probe's greeting. Before the probe
// listens, the daemon's proxy accepts and closes at once: that is an error
// to retry.
func greet(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, len(probe.Greeting))
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("read the greeting: %w", err)
	}
	if string(buf) != probe.Greeting {
		return retry.Permanent(fmt.Errorf("something else answers: %q", buf))
	}
	return nil
}

// leftovers reports heph resources on the daemon; it never fails doctor.
func leftovers(ctx context.Context, api engine.API, own string) check {
	list, err := sessions.List(ctx, api)
	if err != nil {
		return check{Name: "leftovers", Status: statusWarn, Detail: "could not list heph's resources: " + err.Error()}
	}
	var n, stale int
	for _, s := range list {
		if s.ID == own {
			continue
		}
		n++
		if s.Stale() {
			stale++
		}
	}
	switch {
	case n == 0:
		return check{Name: "leftovers", Status: statusOK, Detail: "no heph resources on the daemon"}
	case stale == 0:
		return check{Name: "leftovers", Status: statusOK, Detail: fmt.Sprintf("%s running now (heph ps lists them)", plural(n, "session"))}
	default:
		return check{Name: "leftovers", Status: statusOK, Detail: fmt.Sprintf("%s on the daemon, %d stale (their processes are gone)", plural(n, "session"), stale),
			Fix: "heph prune --stale removes the stale ones"}
	}
}

// hostname is os.Hostname; a variable for tests.
var hostname = os.Hostname
