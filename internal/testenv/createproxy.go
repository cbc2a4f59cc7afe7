package testenv

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// CreateFault says what a SlowCreateProxy does to a create request.
type CreateFault int

const (
	// AnswerLate forwards the create at once and holds the daemon's answer
	// back for the proxy's Delay: the object exists long before the client
	// hears of it.
	AnswerLate CreateFault = iota
	// CutThenCreate breaks the client's connection at once, without an
	// answer, and forwards the create to the daemon only after Delay: the
	// object appears after the client's first look for it.
	CutThenCreate
)

// SlowCreateProxy is a small HTTP proxy on a unix socket in front of the
// Docker daemon's socket that passes every request through, except the
// container and network creates, to which it does its Fault. It serves the
// tests of creates that outlive their caller's context. (Issue #9's
// fault-injection proxy is to replace it: nothing else depends on it.)
type SlowCreateProxy struct {
	// Host is the proxy's address for heph.Daemon{Host: …}.
	Host string
	// Creates counts the creates the proxy has passed to the daemon.
	Creates atomic.Int64

	fault    CreateFault
	delay    time.Duration
	upstream string // the daemon's socket
	srv      *http.Server
	pending  sync.WaitGroup // creates in flight
	closed   chan struct{}
}

// StartSlowCreateProxy starts a proxy doing fault (with delay) to creates in
// front of the daemon's unix socket (DOCKER_HOST, else the default one). It
// is closed when the test ends, once every create it holds is through.
func StartSlowCreateProxy(t testing.TB, fault CreateFault, delay time.Duration) *SlowCreateProxy {
	t.Helper()
	upstream := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		u, err := url.Parse(h)
		if err != nil || u.Scheme != "unix" {
			t.Fatalf("the create proxy needs a daemon on a unix socket, not DOCKER_HOST=%s", h)
		}
		upstream = u.Path
	}
	dir, err := os.MkdirTemp("", "heph-proxy-") // short: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := &SlowCreateProxy{Host: "unix://" + sock, fault: fault, delay: delay, upstream: upstream, closed: make(chan struct{})}
	p.srv = &http.Server{Handler: p}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() {
		close(p.closed)
		p.pending.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.srv.Shutdown(ctx)
		os.RemoveAll(dir)
	})
	return p
}

func (p *SlowCreateProxy) transport() *http.Transport {
	return &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", p.upstream)
	}}
}

// ServeHTTP passes r to the daemon, doing the proxy's fault to creates.
func (p *SlowCreateProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	isCreate := r.Method == http.MethodPost &&
		(strings.HasSuffix(r.URL.Path, "/containers/create") || strings.HasSuffix(r.URL.Path, "/networks/create"))
	if !isCreate {
		rp := &httputil.ReverseProxy{
			Rewrite:       func(pr *httputil.ProxyRequest) { pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "docker" },
			Transport:     p.transport(),
			FlushInterval: -1,
		}
		rp.ServeHTTP(w, r)
		return
	}
	p.pending.Add(1)
	defer p.pending.Done()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	// The daemon's request does not end with the client's.
	out := r.Clone(context.WithoutCancel(r.Context()))
	out.URL.Scheme, out.URL.Host, out.RequestURI = "http", "docker", ""
	out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	forward := func() (*http.Response, []byte, error) {
		resp, err := p.transport().RoundTrip(out)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		p.Creates.Add(1)
		return resp, b, err
	}
	wait := func() {
		select {
		case <-time.After(p.delay):
		case <-p.closed:
		}
	}

	if p.fault == CutThenCreate {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
		wait()
		_, _, _ = forward()
		return
	}
	resp, b, err := forward()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	wait()
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(b)
}
