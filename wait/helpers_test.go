package wait_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/wait"
)

// shortTimeout is the deadline of the tests that expect a timeout.
const shortTimeout = 300 * time.Millisecond

// withTimeout returns a context that ends after d or with the test.
func withTimeout(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// requireTimeout checks a Run error for a timeout of strategy s whose last
// error contains last, reached before limit.
func requireTimeout(t *testing.T, err error, s wait.Strategy, last string) *wait.Error {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var we *wait.Error
	require.ErrorAs(t, err, &we)
	require.Equal(t, s.(interface{ String() string }).String(), we.Strategy)
	require.Contains(t, err.Error(), "wait: "+we.Strategy+": timed out after ")
	// Waited runs from Run's start; under load the test's goroutine can
	// reach Run well after the deadline's context was made, so it is no
	// bound: the timeout itself (above) is the proof.
	require.Positive(t, we.Waited)
	if last != "" {
		require.Error(t, we.Cause)
		require.Contains(t, we.Cause.Error(), last)
		require.Contains(t, err.Error(), "last error: ")
	}
	return we
}

// runTimed runs s against tg under a deadline d and returns how long Run
// took and its error.
func runTimed(t *testing.T, d time.Duration, s wait.Strategy, tg wait.Target) (time.Duration, error) {
	t.Helper()
	ctx := withTimeout(t, d)
	start := time.Now()
	err := wait.Run(ctx, s, tg)
	return time.Since(start), err
}

// after runs f after d in a goroutine the test waits for.
func after(t testing.TB, d time.Duration, f func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	timer := time.AfterFunc(d, func() {
		defer wg.Done()
		f()
	})
	t.Cleanup(func() {
		if timer.Stop() {
			wg.Done()
		}
		wg.Wait()
	})
}

// listen starts a TCP listener on 127.0.0.1 that handles each connection
// with handle, and returns its port. It is closed with the test.
func listen(t testing.TB, handle func(net.Conn)) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return serve(t, l, handle)
}

func serve(t testing.TB, l net.Listener, handle func(net.Conn)) int {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().(*net.TCPAddr).Port
}

// closeAtOnce behaves as Docker's userland proxy with nothing listening
// behind it: accept, then close.
func closeAtOnce(c net.Conn) { c.Close() }

// closeAfter behaves as Docker's userland proxy with nothing listening
// behind it on a loaded machine: accept, stay silent d, close.
func closeAfter(d time.Duration) func(net.Conn) {
	return func(c net.Conn) {
		time.Sleep(d) // the behaviour modelled: a slow close
		c.Close()
	}
}

// closeAfterNth closes the first n connections after first, the others
// after then.
func closeAfterNth(n int, first, then time.Duration) func(net.Conn) {
	var count atomic.Int64
	return func(c net.Conn) {
		d := then
		if count.Add(1) <= int64(n) {
			d = first
		}
		closeAfter(d)(c)
	}
}

// closeOnNext keeps each connection open, silent, until the next one
// comes, and closes it then: silence on one connection proves nothing.
func closeOnNext() func(net.Conn) {
	var (
		mu   sync.Mutex
		prev net.Conn
	)
	return func(c net.Conn) {
		mu.Lock()
		if prev != nil {
			prev.Close()
		}
		prev = c
		mu.Unlock()
		hold(c)
	}
}

// hold behaves as an app that listens: it keeps the connection open until
// the peer closes it.
func hold(c net.Conn) {
	defer c.Close()
	var b [1]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			return
		}
	}
}

// greet behaves as a server-first protocol: it writes a greeting and
// holds.
func greet(c net.Conn) {
	c.Write([]byte("220 ready\r\n"))
	hold(c)
}

// freePort returns a loopback port nothing listens on (it was free a
// moment ago).
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

func itoa(i int) string { return strconv.Itoa(i) }

var errBoom = errors.New("boom")
