package wait_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/wait"
	"github.com/heph-go/heph/wait/waittest"
)

// TestForListeningPortProxy checks the path through the published host
// port against listeners that behave as Docker's userland proxy would.
func TestForListeningPortProxy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		handle   func(net.Conn)
		ready    bool
		min, max time.Duration // how long ready takes
		reason   string
	}{
		{"accept then close at once", closeAtOnce, false, 0, 0, "the userland proxy with nothing listening behind it"},
		{"accept and hold", hold, true, 300 * time.Millisecond, 2 * time.Second, "an app that listens keeps both connections open, through the window and the hold after the re-check"},
		{"accept and greet", greet, true, 0, 150 * time.Millisecond, "a server-first protocol sends data: ready at once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg := waittest.New()
			tg.Publish("8080", listen(t, tt.handle)) // no IPs: the proxy path only
			s := wait.ForListeningPort("8080")
			timeout := shortTimeout
			if tt.ready {
				timeout = 5 * time.Second
			}
			took, err := runTimed(t, timeout, s, tg)
			if tt.ready {
				require.NoError(t, err, tt.reason)
				require.GreaterOrEqual(t, took, tt.min, tt.reason)
				require.Less(t, took, tt.max, tt.reason)
				return
			}
			requireTimeout(t, err, s, "accepted the connection and closed it at once")
		})
	}
}

// TestForListeningPortProxySlowClose: Docker's proxy with nothing behind it
// does not always close a connection at once; a silent connection is no
// proof that an app listens, and the strategy must not say ready on it.
func TestForListeningPortProxySlowClose(t *testing.T) {
	t.Parallel()
	t.Run("closed after the read window", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.Publish("8080", listen(t, closeAfter(150*time.Millisecond)))
		s := wait.ForListeningPort("8080")
		_, err := runTimed(t, time.Second, s, tg)
		requireTimeout(t, err, s, "accepted the connection and closed it after ")
	})
	t.Run("closed when the re-check connects", func(t *testing.T) {
		// The first connection would stay open for ever; the second
		// shows that the first's silence was no proof.
		t.Parallel()
		tg := waittest.New()
		tg.Publish("8080", listen(t, closeOnNext()))
		s := wait.ForListeningPort("8080")
		_, err := runTimed(t, time.Second, s, tg)
		requireTimeout(t, err, s, "accepted the connection and closed it ")
	})
	t.Run("the hold grows with the slowest close seen", func(t *testing.T) {
		// Read window 40 ms: the hold is 200 ms, 240 ms in all after the
		// first dial. The first two connections close after 80 ms: the
		// hold becomes 320 ms (360 ms in all), and the next connections,
		// closed after 290 ms, are seen to close.
		t.Parallel()
		tg := waittest.New()
		tg.Publish("8080", listen(t, closeAfterNth(2, 80*time.Millisecond, 290*time.Millisecond)))
		s := wait.ForListeningPort("8080").WithReadWindow(40 * time.Millisecond)
		_, err := runTimed(t, 1500*time.Millisecond, s, tg)
		require.ErrorIs(t, err, context.DeadlineExceeded, "a proxy that closed after 290 ms said ready")
		require.Contains(t, err.Error(), "closed it after ")
	})
}

// TestForListeningPortDirect checks the path to the container's own IP:
// it decides, whatever the published port does.
func TestForListeningPortDirect(t *testing.T) {
	t.Parallel()
	t.Run("refused means not ready, even if the host port accepts", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		port := freePort(t)
		tg.SetIPs("127.0.0.1")
		tg.Publish(itoa(port), listen(t, hold))
		s := wait.ForListeningPort(itoa(port))
		_, err := runTimed(t, shortTimeout, s, tg)
		requireTimeout(t, err, s, "connection refused")
	})
	t.Run("accepted means ready, even if the host port is a bare proxy", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		app := listen(t, hold)
		tg.SetIPs("127.0.0.1")
		tg.Publish(itoa(app), listen(t, closeAtOnce))
		_, err := runTimed(t, 5*time.Second, wait.ForListeningPort(itoa(app)), tg)
		require.NoError(t, err)
	})
}

// TestForListeningPortLatency: the direct path reports ready within a few
// ms of the app's listen (not parallel: it measures time). Quiet, it takes
// 1-15 ms (probes are at most 15 ms apart); the bound, 250 ms, is generous
// for a loaded 2-core machine running every package with -race (113 ms has
// been seen) and still below the proxy path's 300 ms.
func TestForListeningPortLatency(t *testing.T) {
	tg := waittest.New()
	port := freePort(t)
	tg.SetIPs("127.0.0.1")
	tg.Publish(itoa(port), listen(t, closeAtOnce))
	var listened time.Time
	var mu sync.Mutex
	after(t, 150*time.Millisecond, func() {
		l, err := net.Listen("tcp", "127.0.0.1:"+itoa(port))
		if err != nil {
			t.Errorf("listen again on %d: %v", port, err)
			return
		}
		mu.Lock()
		listened = time.Now()
		mu.Unlock()
		serve(t, l, hold)
	})
	_, err := runTimed(t, 5*time.Second, wait.ForListeningPort(itoa(port)), tg)
	ready := time.Now()
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.False(t, listened.IsZero(), "ready before the app listened")
	t.Logf("ready %s after the app listened", ready.Sub(listened))
	require.Less(t, ready.Sub(listened), 250*time.Millisecond)
}

// fakeDialer dials for real, counting the dials per address, except to
// addresses starting with blackhole, which never answer (an address the
// host cannot route to), and with host names in alias, dialled on
// 127.0.0.1 instead.
type fakeDialer struct {
	blackhole string
	alias     string

	mu    sync.Mutex
	dials map[string]int
}

func (d *fakeDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	if d.dials == nil {
		d.dials = map[string]int{}
	}
	d.dials[addr]++
	d.mu.Unlock()
	if d.blackhole != "" && strings.HasPrefix(addr, d.blackhole) {
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
	}
	if d.alias != "" {
		addr = strings.Replace(addr, d.alias, "127.0.0.1", 1)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func (d *fakeDialer) count(prefix string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for a, c := range d.dials {
		if strings.HasPrefix(a, prefix) {
			n += c
		}
	}
	return n
}

// TestForListeningPortUnroutable: container addresses the host cannot
// reach (Docker Desktop, a remote daemon) make the strategy use the
// published port; they are dialled once per wait, not at every probe, and
// not at all when they are on no network of this host.
func TestForListeningPortUnroutable(t *testing.T) {
	t.Parallel()
	// On the loopback network, so dialled; the fake dialer makes it hang
	// as an unroutable address does.
	const unroutable = "127.0.0.3:"
	t.Run("falls back to the host port", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.SetIPs("127.0.0.3")
		tg.Publish("8080", listen(t, hold))
		d := &fakeDialer{blackhole: unroutable}
		s := wait.ForListeningPort("8080").WithDirectTimeout(30 * time.Millisecond).WithDialer(d.dial)
		_, err := runTimed(t, 5*time.Second, s, tg)
		require.NoError(t, err)
		require.Equal(t, 1, d.count(unroutable))
	})
	t.Run("not re-probed while the proxy says no", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.SetIPs("127.0.0.3")
		tg.Publish("8080", listen(t, closeAtOnce))
		d := &fakeDialer{blackhole: unroutable}
		s := wait.ForListeningPort("8080").WithDirectTimeout(30 * time.Millisecond).WithDialer(d.dial)
		_, err := runTimed(t, shortTimeout, s, tg)
		requireTimeout(t, err, s, "closed it at once")
		require.Equal(t, 1, d.count(unroutable), "the unroutable address is tried once")
		require.Greater(t, d.count("127.0.0.1:"), 2, "the proxy path is polled")
	})
	t.Run("an unroutable address among reachable ones is dropped", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		port := freePort(t)
		tg.SetIPs("127.0.0.3", "127.0.0.1")
		tg.Publish(itoa(port), listen(t, hold))
		d := &fakeDialer{blackhole: unroutable}
		// A 300 ms connect timeout and a 3 s deadline: under load a 30 ms
		// one has expired before the refused dial of 127.0.0.1 was made
		// (both addresses then looked unroutable), and one probe has
		// taken the whole of a 300 ms deadline.
		s := wait.ForListeningPort(itoa(port)).WithDirectTimeout(300 * time.Millisecond).WithDialer(d.dial)
		_, err := runTimed(t, 3*time.Second, s, tg)
		requireTimeout(t, err, s, "connection refused")
		require.Equal(t, 1, d.count(unroutable))
		require.Greater(t, d.count("127.0.0.1:"+itoa(port)), 2)
		require.Equal(t, d.count("127.0.0.1:"), d.count("127.0.0.1:"+itoa(port)), "the direct path decides; the host port is never dialled")
	})
	t.Run("an address on no network of this host, with the real dialer", func(t *testing.T) {
		t.Parallel()
		off := offHostAddress(t)
		tg := waittest.New()
		tg.SetIPs(off)
		tg.Publish("8080", listen(t, hold))
		d := &fakeDialer{}
		s := wait.ForListeningPort("8080").WithDirectTimeout(50 * time.Millisecond).WithDialer(d.dial)
		_, err := runTimed(t, 5*time.Second, s, tg)
		require.NoError(t, err)
		require.Zero(t, d.count(off+":"), "not on a network of this host: never dialled")
	})
	t.Run("addresses on no network of this host are not dialled", func(t *testing.T) {
		t.Parallel()
		off := offHostAddress(t) // a router, or a transparent proxy, might answer it
		tg := waittest.New()
		tg.SetIPs(off)
		tg.Publish("8080", listen(t, closeAtOnce))
		d := &fakeDialer{}
		s := wait.ForListeningPort("8080").WithDialer(d.dial)
		_, err := runTimed(t, shortTimeout, s, tg)
		requireTimeout(t, err, s, "closed it at once")
		require.Zero(t, d.count(off+":"))
	})
	t.Run("a host that is not loopback skips the direct path", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.SetHost("docker.invalid")
		tg.SetIPs("127.0.0.1")
		tg.Publish("8080", listen(t, hold))
		d := &fakeDialer{alias: "docker.invalid"}
		require.NoError(t, wait.ForListeningPort("8080").WithDialer(d.dial).Wait(withTimeout(t, 5*time.Second), tg))
		require.Zero(t, tg.Calls(waittest.MethodState), "the container's IPs are not even read")
		require.Zero(t, d.count("127.0.0.1:"))
	})
	t.Run("localhost is loopback", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.SetHost("localhost")
		tg.SetIPs("127.0.0.1")
		port := freePort(t)
		tg.Publish(itoa(port), listen(t, hold))
		s := wait.ForListeningPort(itoa(port))
		_, err := runTimed(t, shortTimeout, s, tg)
		requireTimeout(t, err, s, "connection refused") // the direct path decided
	})
}

// onHostNetwork reports whether ip is on a network of one of this host's
// interfaces.
// offHostAddress returns a documentation address (TEST-NET) that is on no
// network of this host: some sandboxes put their gateway at 192.0.2.1.
func offHostAddress(t *testing.T) string {
	for _, ip := range []string{"203.0.113.9", "198.51.100.9", "192.0.2.9"} {
		if !onHostNetwork(t, ip) {
			return ip
		}
	}
	t.Fatal("every TEST-NET address is on a network of this host")
	return ""
}

func onHostNetwork(t *testing.T, ip string) bool {
	addrs, err := net.InterfaceAddrs()
	require.NoError(t, err)
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.Contains(net.ParseIP(ip)) {
			return true
		}
	}
	return false
}

func TestForListeningPortNotPublished(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	s := wait.ForListeningPort("5432")
	_, err := runTimed(t, shortTimeout, s, tg)
	requireTimeout(t, err, s, "port 5432/tcp is not published")
}

func TestForListeningPortUDP(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	after(t, 20*time.Millisecond, func() { tg.Publish("53/udp", 1053) })
	require.NoError(t, wait.ForListeningPort("53/udp").Wait(withTimeout(t, 5*time.Second), tg))
	require.Zero(t, tg.Calls(waittest.MethodState), "nothing but the mapping is checked")
}

func TestForListeningPortTargetErrors(t *testing.T) {
	t.Parallel()
	for _, m := range []waittest.Method{waittest.MethodHost, waittest.MethodMappedPort, waittest.MethodState} {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			tg := waittest.New()
			tg.SetIPs("127.0.0.1")
			app := listen(t, hold)
			tg.Publish(itoa(app), app)
			tg.SetError(m, errBoom)
			s := wait.ForListeningPort(itoa(app))
			_, err := runTimed(t, shortTimeout, s, tg)
			requireTimeout(t, err, s, "boom")
			tg.SetError(m, nil)
			require.NoError(t, s.Wait(withTimeout(t, 5*time.Second), tg), "retried once the target answers")
		})
	}
}

func TestForListeningPortCancel(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	tg.Publish("8080", listen(t, closeAtOnce))
	ctx, cancel := context.WithCancel(context.Background())
	after(t, 30*time.Millisecond, cancel)
	start := time.Now()
	err := wait.ForListeningPort("8080").Wait(ctx, tg)
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), time.Second)
}

// TestForListeningPortCancelWhileHeld: a cancel while both proxy
// connections are held ends the wait at once, not at the hold's end.
func TestForListeningPortCancelWhileHeld(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	tg.Publish("8080", listen(t, hold))
	ctx, cancel := context.WithCancel(context.Background())
	// Read window 200 ms, hold 1 s: ready at 1.2 s. The cancel comes after
	// the re-check's dial (200 ms), while both connections are held.
	after(t, 400*time.Millisecond, cancel)
	s := wait.ForListeningPort("8080").WithReadWindow(200 * time.Millisecond)
	start := time.Now()
	err := s.Wait(ctx, tg)
	took := time.Since(start)
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, took, 1100*time.Millisecond, "the cancel did not end the held reads")
}
