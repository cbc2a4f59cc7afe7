package wait

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// directDialTimeout bounds a connect to the container's own IP. On a
	// local Linux daemon it is refused or accepted in well under a
	// millisecond; a connect that takes longer means the address is not
	// reachable after all, and the published port is used instead. Only
	// addresses on this host's networks are dialled, so this is a safety
	// net, generous enough for a loaded machine.
	directDialTimeout = 500 * time.Millisecond
	// proxyDialTimeout bounds a connect to the published host port.
	proxyDialTimeout = time.Second
	// proxyReadWindow is how long a first connection through Docker's port
	// proxy must stay open, silent, before the re-check: the proxy closes
	// it, usually at once, when nothing listens behind it.
	proxyReadWindow = 50 * time.Millisecond
	// proxyConfirmWindow is how long after the re-check's dial both
	// connections must still be open: under load the proxy has been seen
	// to take 51–61 ms, and more, to close a connection it cannot forward,
	// so one silent window is no proof. It grows to 4 times the slowest
	// close seen during the wait (see PortStrategy.hold).
	proxyConfirmWindow = 250 * time.Millisecond
)

// PortStrategy waits until a container port is published and the app in
// the container accepts connections on it; ForListeningPort builds it. It
// is an immutable value, safe for concurrent use.
type PortStrategy struct {
	port  string // normalised: "8080/tcp"
	raw   string // as given
	errs  problems
	built bool // by ForListeningPort: the zero value is invalid

	// Knobs for tests of this package (see export_test.go); zero means
	// the defaults above and a net.Dialer.
	directTimeout time.Duration
	readWindow    time.Duration
	dial          func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ForListeningPort returns a strategy that is ready once port ("8080",
// "8080/tcp", "53/udp") is published and, for a TCP port, the app inside
// the container accepts connections on it. It needs nothing in the image
// (no shell, no exec): it works on FROM scratch and distroless images.
//
// It is not fooled by Docker's userland proxy, which accepts connections
// on the host port before the app listens. When the host is loopback and
// the container has addresses (State.IPs) on a network this host has an
// interface on (a local Linux daemon's bridges), it connects to them on
// the container port: the connect is refused until the app listens. If
// they are not reachable after all (the connect times out or finds no
// route), or there are none (Docker Desktop, a remote daemon), it connects
// to the published host port instead and reads: the proxy closes the
// connection while nothing listens behind it, whereas an app keeps it open
// (or sends a greeting). Data means ready. Silence is trusted only when
// held: a first connection still open and silent 50 ms after its dial is
// re-checked with a second one, and both must still be open 250 ms later
// (4 times the slowest close the proxy showed during the wait, if longer);
// either closing means not ready. So readiness is seen about 300 ms late on
// that path. The path that works is remembered for the rest of the wait.
//
// For UDP and SCTP ports it only checks that the port is published: there
// is no connection to observe. A port that is never published (not
// exposed, or host networking) times out with the error "…: port 8080/tcp
// is not published". A malformed port is an invalid argument reported by
// Validate and Wait.
func ForListeningPort(port string) PortStrategy {
	s := PortStrategy{raw: port, built: true}
	p, err := parsePort(port)
	if err != nil {
		s.errs = s.errs.add(err)
		return s
	}
	s.port = p
	return s
}

// String describes s for errors: ForListeningPort(8080/tcp).
func (s PortStrategy) String() string {
	if !s.built {
		return "PortStrategy{}"
	}
	if s.port == "" {
		return fmt.Sprintf("ForListeningPort(%q)", s.raw)
	}
	return "ForListeningPort(" + s.port + ")"
}

// Validate returns an error wrapping ErrInvalid when the port is
// malformed, or nil.
func (s PortStrategy) Validate() error { return Validate(s) }

func (s PortStrategy) check() error {
	if !s.built {
		return zeroValue("PortStrategy", "ForListeningPort")
	}
	return s.errs.err()
}

// portPath is the way a port probe reaches the app.
type portPath int

const (
	pathUnknown portPath = iota // try the container's IPs first
	pathDirect                  // the container's IPs are routable
	pathProxy                   // through the published host port
)

// Wait polls until the port is ready (nil) or ctx ends (an error wrapping
// ctx.Err() and the last connect error).
func (s PortStrategy) Wait(ctx context.Context, t Target) error {
	if err := s.Validate(); err != nil {
		return err
	}
	num, proto, _ := strings.Cut(s.port, "/")
	var (
		hostAddr string   // host:mapped port, once known
		ips      []string // the container's addresses, for the direct path
		path     = pathUnknown
		ps       proxyState // what the proxy path learnt so far
	)
	return poll(ctx, pollFastMaxInterval, func(ctx context.Context) error {
		if hostAddr == "" {
			mapped, err := t.MappedPort(ctx, s.port)
			if err != nil {
				return fmt.Errorf("port %s is not published: %w", s.port, err)
			}
			host, err := t.Host(ctx)
			if err != nil {
				return fmt.Errorf("host: %w", err)
			}
			if proto != "tcp" {
				return nil // nothing more to observe for udp and sctp
			}
			if isLoopback(host) {
				st, err := t.State(ctx)
				if err != nil {
					return fmt.Errorf("state: %w", err)
				}
				ips = onLocalNetworks(st.IPs)
			}
			if len(ips) == 0 {
				path = pathProxy
			}
			hostAddr = net.JoinHostPort(host, strconv.Itoa(mapped))
		}
		if path != pathProxy {
			ready, refused, err := s.probeDirect(ctx, ips, num)
			switch {
			case ready:
				return nil
			case ending(ctx):
				return err
			case len(refused) > 0:
				// Reachable, nobody listens yet. Addresses that did not
				// answer are not tried again.
				path, ips = pathDirect, refused
				return err
			}
			path = pathProxy // unroutable: use the published port from now on
		}
		return s.probeProxy(ctx, hostAddr, &ps)
	})
}

// probeDirect connects to port on each of the container's ips. ready: one
// accepted. refused: the addresses that refused the connection (reachable,
// but the app does not listen yet); when there are none, the addresses are
// not routable from here.
func (s PortStrategy) probeDirect(ctx context.Context, ips []string, port string) (ready bool, refused []string, err error) {
	timeout := s.directTimeout
	if timeout == 0 {
		timeout = directDialTimeout
	}
	for _, ip := range ips {
		dctx, cancel := context.WithTimeout(ctx, timeout)
		conn, derr := s.dialContext(dctx, net.JoinHostPort(ip, port))
		cancel()
		switch {
		case derr == nil:
			conn.Close()
			return true, nil, nil
		case errors.Is(derr, syscall.ECONNREFUSED):
			refused = append(refused, ip)
			err = derr
		case ending(ctx):
			return false, nil, derr
		case err == nil:
			err = derr
		}
	}
	return false, refused, err
}

// proxyState is what the proxy path has learnt during one wait: the
// longest Docker's proxy took to close a connection it could not forward.
type proxyState struct {
	slowestClose time.Duration
}

// hold is how long both connections of a proxy probe must stay open and
// silent: proxyConfirmWindow (5 read windows for the tests' short ones),
// or 4 times the slowest close seen in this wait if longer, so that a proxy
// seen to be slow is given the time to show it.
func (s PortStrategy) hold(ps *proxyState) time.Duration {
	h := proxyConfirmWindow
	if s.readWindow != 0 {
		h = 5 * s.readWindow
	}
	return max(h, 4*ps.slowestClose)
}

// verdict is what one connection through the proxy showed.
type verdict struct {
	conn   int           // 0: the first connection, 1: the re-check
	data   bool          // the app sent something: ready
	closed bool          // closed or reset: nothing listens behind the proxy
	after  time.Duration // from the dial to the close
	err    error         // another read error
}

// watch reads from conn until the deadline and reports what it saw.
func watch(conn net.Conn, n int, dialed, deadline time.Time, out chan<- verdict) {
	v := verdict{conn: n}
	if err := conn.SetReadDeadline(deadline); err != nil {
		v.err = err
		out <- v
		return
	}
	var b [1]byte
	_, err := conn.Read(b[:])
	var ne net.Error
	switch {
	case err == nil:
		v.data = true
	case errors.As(err, &ne) && ne.Timeout():
		// open and silent until the deadline (or ctx ended: see probeProxy)
	case err == io.EOF || errors.Is(err, syscall.ECONNRESET):
		v.closed, v.after = true, time.Since(dialed)
	default:
		v.err = err
	}
	out <- v
}

// probeProxy connects to the published port and tells an app from Docker's
// userland proxy with nothing behind it. The proxy accepts every
// connection, tries to reach the container and closes the connection when
// nothing listens there; under load it has been seen to take more than
// 60 ms to do so, and nothing bounds it. So the evidence is weighed:
//
//   - data from the other end is the app's (the proxy sends nothing of its
//     own): ready;
//   - a close or reset is the proxy's: not ready, and the time it took is
//     remembered (ps) to lengthen the next holds;
//   - silence is no proof by itself. The first connection must stay open
//     and silent through the read window; then a second one is made (the
//     re-check, an independent sample of the proxy's delay) while the first
//     is kept, and both must still be open and silent hold (s.hold) after
//     the second dial. Either closing means not ready.
func (s PortStrategy) probeProxy(ctx context.Context, addr string, ps *proxyState) error {
	window := s.readWindow
	if window == 0 {
		window = proxyReadWindow
	}
	hold := s.hold(ps)
	var (
		conns []net.Conn
		stops []func() bool
	)
	defer func() {
		for i, c := range conns {
			stops[i]()
			c.Close() // ends a watch still reading
		}
	}()
	verdicts := make(chan verdict, 2)
	var pending int
	dial := func(deadline func(dialed time.Time) time.Time) error {
		dctx, cancel := context.WithTimeout(ctx, proxyDialTimeout)
		conn, err := s.dialContext(dctx, addr)
		cancel()
		if err != nil {
			return err
		}
		dialed := time.Now()
		conns = append(conns, conn)
		// ctx ending ends the read at once.
		stops = append(stops, context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) }))
		pending++
		go watch(conn, len(conns)-1, dialed, deadline(dialed), verdicts)
		return nil
	}
	// judge takes one verdict: done with a result, or not done (the
	// connection is open and silent so far).
	judge := func(v verdict) (done bool, err error) {
		pending--
		switch {
		case ctx.Err() != nil:
			return true, ctx.Err()
		case v.data:
			return true, nil // the app spoke first
		case v.closed:
			ps.slowestClose = max(ps.slowestClose, v.after)
			what := "at once"
			if v.conn == 1 || v.after > window {
				what = fmt.Sprintf("after %s", v.after.Round(time.Millisecond))
			}
			return true, fmt.Errorf("%s accepted the connection and closed it %s: nothing listens behind Docker's port proxy yet", addr, what)
		case v.err != nil:
			return true, fmt.Errorf("read from %s: %w", addr, v.err)
		}
		return false, nil
	}
	// The first connection is watched until the end of the re-check, which
	// begins one window after its dial.
	if err := dial(func(d time.Time) time.Time { return d.Add(window + hold) }); err != nil {
		return err
	}
	timer := time.NewTimer(window)
	defer timer.Stop()
	select {
	case v := <-verdicts:
		if done, err := judge(v); done {
			return err
		}
		// Not reached: its deadline is after the timer's.
		return fmt.Errorf("%s: the connection timed out before its deadline", addr)
	case <-timer.C:
	}
	// Open and silent through the window: re-check with a second connection.
	if err := dial(func(d time.Time) time.Time { return d.Add(hold) }); err != nil {
		return err
	}
	for pending > 0 {
		if done, err := judge(<-verdicts); done {
			return err
		}
	}
	return nil // both open and silent to the end: an app listens
}

func (s PortStrategy) dialContext(ctx context.Context, addr string) (net.Conn, error) {
	if s.dial != nil {
		return s.dial(ctx, "tcp", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// isLoopback reports whether host names this machine's loopback.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// onLocalNetworks returns the addresses of ips that are on a network this
// host has an interface on (a local daemon's bridge networks, "docker0",
// "br-…"): only those can be the container itself. Other addresses would
// be sent to a router, which may answer for them (a transparent proxy
// accepts any connection), so they are never dialled.
func onLocalNetworks(ips []string) []string {
	if len(ips) == 0 {
		return nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var local []string
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.Contains(ip) {
				local = append(local, s)
				break
			}
		}
	}
	return local
}
