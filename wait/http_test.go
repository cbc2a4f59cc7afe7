package wait_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/wait"
	"github.com/heph-go/heph/wait/waittest"
)

// httpTarget publishes container port 8080 on srv's port.
func httpTarget(t *testing.T, srv *httptest.Server) *waittest.Target {
	t.Helper()
	tg := waittest.New()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	tg.Publish("8080", atoi(t, port))
	return tg
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		require.True(t, c >= '0' && c <= '9', s)
		n = n*10 + int(c-'0')
	}
	return n
}

func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestForHTTPReady(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		strategy wait.HTTPStrategy
		handler  http.HandlerFunc
		reason   string
	}{
		{
			"200 after a few 503", wait.ForHTTP("/healthz"),
			failFirst(3, http.StatusServiceUnavailable), "503 means not ready yet",
		},
		{
			"accepted status", wait.ForHTTP("/").WithStatus(func(c int) bool { return c == http.StatusNotFound }),
			func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, "WithStatus replaces 2xx",
		},
		{
			"redirect is not followed", wait.ForHTTP("/").WithStatus(func(c int) bool { return c == http.StatusFound }),
			func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://other.invalid/", http.StatusFound)
			}, "the status function sees the 3xx",
		},
		{
			"matcher", wait.ForHTTP("/status").WithResponseMatcher(func(b []byte) bool { return string(b) == "UP" }),
			countingBody("STARTING", "STARTING", "UP"), "a rejected body means not ready yet",
		},
		{
			"method, headers, body and query", wait.ForHTTP("/rpc?x=1").WithMethod(http.MethodPost).
				WithHeader("Authorization", "Bearer t").WithHeader("X-Multi", "a").WithHeader("X-Multi", "b").
				WithHeader("Host", "svc.local").WithBody([]byte(`{"ping":true}`)),
			func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer t" ||
					strings.Join(r.Header.Values("X-Multi"), ",") != "a,b" || r.Host != "svc.local" ||
					string(body) != `{"ping":true}` || r.URL.RawQuery != "x=1" || r.URL.Path != "/rpc" {
					w.WriteHeader(http.StatusBadRequest)
					return
				}
			},
			"every request carries them (the body too, on each attempt)",
		},
		{
			"request timeout", wait.ForHTTP("/").WithRequestTimeout(30 * time.Millisecond),
			hangFirst(2), "a request that times out is tried again",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg := httpTarget(t, newServer(t, tt.handler))
			require.NoError(t, tt.strategy.Wait(withTimeout(t, 5*time.Second), tg), tt.reason)
		})
	}
}

// failFirst answers code n times, then 200.
func failFirst(n int, code int) http.HandlerFunc {
	var calls atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= int32(n) {
			w.WriteHeader(code)
		}
	}
}

// countingBody answers the bodies in turn, then the last one.
func countingBody(bodies ...string) http.HandlerFunc {
	var calls atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		i := min(int(calls.Add(1))-1, len(bodies)-1)
		io.WriteString(w, bodies[i])
	}
}

// hangFirst does not answer the first n requests until they are cancelled.
func hangFirst(n int) http.HandlerFunc {
	var calls atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= int32(n) {
			<-r.Context().Done()
		}
	}
}

func TestForHTTPTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		strategy wait.HTTPStrategy
		handler  http.HandlerFunc
		last     string
	}{
		{"404 is not ready, not permanent", wait.ForHTTP("/missing"),
			func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, `status 404 (body: "404 page not found\n")`},
		{"body rejected", wait.ForHTTP("/").WithResponseMatcher(func(b []byte) bool { return false }),
			func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "nope") }, `body rejected by the response matcher (body: "nope")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg := httpTarget(t, newServer(t, tt.handler))
			_, err := runTimed(t, shortTimeout, tt.strategy, tg)
			requireTimeout(t, err, tt.strategy, tt.last)
		})
	}
	t.Run("a bare proxy closes the connection", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.Publish("8080", listen(t, closeAtOnce))
		s := wait.ForHTTP("/")
		_, err := runTimed(t, shortTimeout, s, tg)
		requireTimeout(t, err, s, "nothing listens behind Docker's port proxy yet")
	})
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.Publish("8080", freePort(t))
		s := wait.ForHTTP("/")
		_, err := runTimed(t, shortTimeout, s, tg)
		requireTimeout(t, err, s, "connection refused")
	})
}

func TestForHTTPTLS(t *testing.T) {
	t.Parallel()
	newTLS := func(t *testing.T) *httptest.Server {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		t.Cleanup(srv.Close)
		return srv
	}
	t.Run("insecure accepts a self-signed certificate", func(t *testing.T) {
		t.Parallel()
		tg := httpTarget(t, newTLS(t))
		require.NoError(t, wait.ForHTTP("/").WithTLS(true).Wait(withTimeout(t, 5*time.Second), tg))
	})
	t.Run("a certificate error the user did not allow is permanent", func(t *testing.T) {
		t.Parallel()
		tg := httpTarget(t, newTLS(t))
		s := wait.ForHTTP("/").WithTLS(false)
		took, err := runTimed(t, 5*time.Second, s, tg)
		require.Error(t, err)
		require.NotErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, took, 4*time.Second, "gives up at once, well before the 5 s deadline (1.6 s seen under load)")
		require.Contains(t, err.Error(), "wait: ForHTTP(GET /, TLS): failed after ")
		require.Contains(t, err.Error(), "certificate")
		require.Contains(t, err.Error(), "WithTLS(true) skips verification")
	})
	t.Run("plain HTTP to a TLS port is not ready", func(t *testing.T) {
		t.Parallel()
		tg := httpTarget(t, newTLS(t))
		s := wait.ForHTTP("/")
		_, err := runTimed(t, shortTimeout, s, tg)
		requireTimeout(t, err, s, "status 400")
	})
}

func TestForHTTPPort(t *testing.T) {
	t.Parallel()
	ok := func(w http.ResponseWriter, r *http.Request) {}
	t.Run("default: the lowest published TCP port", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		srv := newServer(t, ok)
		tg.Publish("9090", freePort(t))
		tg.Publish("10", freePort(t))
		tg.Publish("8080", atoi(t, strings.Split(srv.Listener.Addr().String(), ":")[1]))
		tg.Publish("10", atoi(t, strings.Split(srv.Listener.Addr().String(), ":")[1]))
		tg.Publish("5/udp", 5)
		require.NoError(t, wait.ForHTTP("/").Wait(withTimeout(t, 5*time.Second), tg))
	})
	t.Run("WithPort", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		srv := newServer(t, ok)
		tg.Publish("80", freePort(t))
		tg.Publish("8080", atoi(t, strings.Split(srv.Listener.Addr().String(), ":")[1]))
		require.NoError(t, wait.ForHTTP("/").WithPort("8080").Wait(withTimeout(t, 5*time.Second), tg))
	})
	t.Run("no TCP port published is permanent", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		tg.Publish("53/udp", 53)
		took, err := runTimed(t, 5*time.Second, wait.ForHTTP("/"), tg)
		require.ErrorContains(t, err, "no TCP port is published")
		require.Less(t, took, time.Second)
	})
	t.Run("WithPort not published keeps trying", func(t *testing.T) {
		t.Parallel()
		tg := waittest.New()
		s := wait.ForHTTP("/").WithPort("8080")
		_, err := runTimed(t, shortTimeout, s, tg)
		requireTimeout(t, err, s, "port 8080/tcp is not published")
	})
}

func TestForHTTPCancel(t *testing.T) {
	t.Parallel()
	tg := httpTarget(t, newServer(t, hangFirst(1000)))
	ctx, cancel := context.WithCancel(context.Background())
	after(t, 30*time.Millisecond, cancel)
	start := time.Now()
	err := wait.ForHTTP("/").Wait(ctx, tg)
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), time.Second, "a hanging request is cut by the context")
}

// TestForHTTPWithIsACopy: a With… call never changes the value it is
// called on, nor values derived from it earlier.
func TestForHTTPWithIsACopy(t *testing.T) {
	t.Parallel()
	var got atomic.Value
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		got.Store(strings.Join(r.Header.Values("X-A"), ",") + "|" + r.Header.Get("X-B") + "|" + r.Header.Get("X-C"))
	})
	tg := httpTarget(t, srv)
	base := wait.ForHTTP("/").WithHeader("X-A", "1")
	b := base.WithHeader("X-B", "2")
	c := base.WithHeader("X-C", "3")
	ctx := withTimeout(t, 5*time.Second)
	for _, tt := range []struct {
		s    wait.HTTPStrategy
		want string
	}{{base, "1||"}, {b, "1|2|"}, {c, "1||3"}} {
		require.NoError(t, tt.s.Wait(ctx, tg))
		require.Equal(t, tt.want, got.Load())
	}
	body := []byte("one")
	s := wait.ForHTTP("/").WithBody(body)
	body[0] = 'X'
	var seen atomic.Value
	srv2 := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen.Store(string(b))
	})
	require.NoError(t, s.Wait(ctx, httpTarget(t, srv2)))
	require.Equal(t, "one", seen.Load(), "WithBody copies")
}
