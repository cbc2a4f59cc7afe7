package faultproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// upstream is a small daemon on a unix socket: /ping answers "OK", /create
// counts and answers {"Id":"x"}, /stream writes 10 chunks of 100 bytes.
type upstream struct {
	sock    string
	created atomic.Int64
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	dir, err := os.MkdirTemp("", "heph-fp-") // short: a socket's path has ~100 bytes
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	u := &upstream{sock: filepath.Join(dir, "d.sock")}
	ln, err := net.Listen("unix", u.sock)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1.41/ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "OK") })
	mux.HandleFunc("POST /v1.41/containers/create", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if string(b) != `{"Image":"app"}` {
			http.Error(w, "body not forwarded: "+string(b), http.StatusBadRequest)
			return
		}
		u.created.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"Id":"x"}`)
	})
	mux.HandleFunc("GET /v1.41/stream", func(w http.ResponseWriter, _ *http.Request) {
		for range 10 {
			_, _ = w.Write([]byte(strings.Repeat("s", 100)))
			w.(http.Flusher).Flush()
		}
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return u
}

// client talks HTTP to the proxy's socket.
func client(p *Proxy) *http.Client {
	sock := strings.TrimPrefix(p.Host, "unix://")
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}}
}

func do(t *testing.T, c *http.Client, ctx context.Context, method, path, body string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, "http://docker/v1.41"+path, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestPassAndCount(t *testing.T) {
	u := newUpstream(t)
	p := NewFor(t, u.sock)
	r := p.Add(&Rule{Method: "GET", Path: `^/ping$`})
	code, body, err := do(t, client(p), t.Context(), "GET", "/ping", "")
	require.NoError(t, err)
	require.Equal(t, 200, code)
	require.Equal(t, "OK", body)
	require.Equal(t, int64(1), r.Matched())
	require.Equal(t, int64(1), r.Answered())
}

func TestStatus(t *testing.T) {
	u := newUpstream(t)
	p := NewFor(t, u.sock)
	r := p.Add(&Rule{Method: "POST", Path: `^/containers/create$`, Fault: Status, Status: 409, Times: 1})
	code, body, err := do(t, client(p), t.Context(), "POST", "/containers/create", `{"Image":"app"}`)
	require.NoError(t, err)
	require.Equal(t, 409, code)
	require.JSONEq(t, `{"message":"faultproxy: injected 409 for POST /v1.41/containers/create"}`, body)
	require.Zero(t, u.created.Load(), "the daemon was not asked")
	code, _, err = do(t, client(p), t.Context(), "POST", "/containers/create", `{"Image":"app"}`)
	require.NoError(t, err)
	require.Equal(t, 201, code, "Times: 1 — the next one passes")
	require.Equal(t, int64(2), r.Matched())
	require.Equal(t, int64(1), r.Applied())
}

func TestAnswerLate(t *testing.T) {
	u := newUpstream(t)
	p := NewFor(t, u.sock)
	r := p.Add(&Rule{Path: `/create$`, Fault: AnswerLate, Delay: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, _, err := do(t, client(p), ctx, "POST", "/containers/create", `{"Image":"app"}`)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the client gives up first")
	require.Equal(t, int64(1), u.created.Load(), "the daemon acted")
	require.Equal(t, int64(1), r.Answered())
	p.Stop() // ends the held answer at once
}

func TestAnswerLateAnswers(t *testing.T) {
	u := newUpstream(t)
	p := NewFor(t, u.sock)
	p.Add(&Rule{Path: `/create$`, Fault: AnswerLate, Delay: 50 * time.Millisecond})
	start := time.Now()
	code, body, err := do(t, client(p), t.Context(), "POST", "/containers/create", `{"Image":"app"}`)
	require.NoError(t, err)
	require.Equal(t, 201, code)
	require.Equal(t, `{"Id":"x"}`, body)
	require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
}

func TestCutThenForward(t *testing.T) {
	u := newUpstream(t)
	p := NewFor(t, u.sock)
	r := p.Add(&Rule{Path: `/create$`, Fault: CutThenForward, Delay: 20 * time.Millisecond})
	_, _, err := do(t, client(p), t.Context(), "POST", "/containers/create", `{"Image":"app"}`)
	require.Error(t, err, "no answer")
	require.True(t, errors.Is(err, io.EOF) || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "reset"), err.Error())
	require.Eventually(t, func() bool { return u.created.Load() == 1 }, time.Minute, 5*time.Millisecond, "the daemon gets it later")
	require.Eventually(t, func() bool { return r.Answered() == 1 }, time.Minute, 5*time.Millisecond)
}

func TestCutStream(t *testing.T) {
	u := newUpstream(t)
	p := NewFor(t, u.sock)
	p.Add(&Rule{Path: `^/stream$`, Fault: CutStream, After: 250})
	code, body, err := do(t, client(p), t.Context(), "GET", "/stream", "")
	require.Equal(t, 200, code)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF, "the stream ends without its end")
	require.Len(t, body, 250)
}

func TestHangUntilTheClientGivesUpOrTheProxyStops(t *testing.T) {
	u := newUpstream(t)
	p := NewFor(t, u.sock)
	r := p.Add(&Rule{Path: `^/ping$`, Fault: Hang})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, _, err := do(t, client(p), ctx, "GET", "/ping", "")
	require.ErrorIs(t, err, context.DeadlineExceeded)

	done := make(chan error, 1)
	go func() {
		_, _, err := do(t, client(p), t.Context(), "GET", "/ping", "")
		done <- err
	}()
	require.Eventually(t, func() bool { return r.Matched() == 2 }, time.Minute, time.Millisecond, "the second request hangs")
	p.Stop()
	select {
	case err := <-done:
		require.Error(t, err, "cut when the proxy stops")
	case <-time.After(time.Minute):
		t.Fatal("a hanging request outlived Stop")
	}
}

func TestStopAndStart(t *testing.T) {
	u := newUpstream(t)
	p := NewFor(t, u.sock)
	c := client(p)
	_, _, err := do(t, c, t.Context(), "GET", "/ping", "")
	require.NoError(t, err)
	p.Stop()
	p.Stop() // idempotent
	_, _, err = do(t, c, t.Context(), "GET", "/ping", "")
	require.Error(t, err, "a stopped daemon refuses")
	require.NoError(t, p.Start())
	require.Error(t, p.Start(), "already listening")
	code, body, err := do(t, c, t.Context(), "GET", "/ping", "")
	require.NoError(t, err)
	require.Equal(t, 200, code)
	require.Equal(t, "OK", body, "it answers again")
}

func TestRemove(t *testing.T) {
	u := newUpstream(t)
	p := NewFor(t, u.sock)
	r := p.Add(&Rule{Path: `^/ping$`, Fault: Status, Status: 500})
	code, _, _ := do(t, client(p), t.Context(), "GET", "/ping", "")
	require.Equal(t, 500, code)
	p.Remove(r)
	code, _, _ = do(t, client(p), t.Context(), "GET", "/ping", "")
	require.Equal(t, 200, code)
}
