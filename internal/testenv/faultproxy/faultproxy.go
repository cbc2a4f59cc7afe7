// Package faultproxy is heph's fault injection at the HTTP seam: a proxy on
// a unix socket in front of the real Docker daemon's socket that passes
// every request through, but for those a Rule matches, to which it does the
// rule's Fault — answer late after the daemon acted, answer an error status
// without asking the daemon, cut the connection (at once, or in the middle
// of a streamed answer: logs, events, pull progress, an archive), or hang.
// Stop and Start make it a daemon that goes away and comes back, without
// touching the real one.
//
// It is test machinery: heph's integration tests point an Orchestrator at
// Proxy.Host (heph.Daemon{Host: p.Host}). It imports nothing of heph.
package faultproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fault is what a Proxy does to a request a Rule matches.
type Fault int

const (
	// Pass forwards the request and its answer (a rule that only counts).
	Pass Fault = iota
	// AnswerLate forwards the request at once — the daemon acts — and holds
	// its answer back for the rule's Delay: the client may give up first.
	// The daemon's request does not end with the client's.
	AnswerLate
	// CutThenForward breaks the client's connection at once, without an
	// answer, and forwards the request only after Delay: the object appears
	// after the client's first look for it.
	CutThenForward
	// Status answers the rule's Status (500, 404, 409, …) with a Docker-style
	// JSON error body, without asking the daemon.
	Status
	// CutStream forwards the request and passes the first After bytes of the
	// answer's body (after the status and headers), then breaks the
	// connection: a stream (logs, events, pull progress, an archive) ends
	// in the middle.
	CutStream
	// Hang never answers: the request stays open until the client gives up
	// or the proxy stops.
	Hang
)

func (f Fault) String() string {
	switch f {
	case Pass:
		return "pass"
	case AnswerLate:
		return "answer late"
	case CutThenForward:
		return "cut then forward"
	case Status:
		return "status"
	case CutStream:
		return "cut stream"
	case Hang:
		return "hang"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// Rule selects requests and says what to do to them.
type Rule struct {
	// Method is the HTTP method to match; "" matches any.
	Method string
	// Path is a regular expression matched against the request's path
	// without its API version prefix ("/containers/create",
	// "/containers/abc/logs"); "" matches any.
	Path string
	// Fault is what to do; Delay, Status and After qualify it.
	Fault  Fault
	Delay  time.Duration
	Status int
	After  int64
	// Times is how many matching requests the fault applies to (0: all);
	// later ones are passed through, and counted.
	Times int

	re      *regexp.Regexp
	matched atomic.Int64 // requests that matched
	applied atomic.Int64 // requests the fault was applied to
	done    atomic.Int64 // requests the daemon answered (forwarded ones)
}

// Matched returns how many requests the rule matched so far.
func (r *Rule) Matched() int64 { return r.matched.Load() }

// Applied returns how many of them got the rule's fault.
func (r *Rule) Applied() int64 { return r.applied.Load() }

// Answered returns how many of them the daemon answered (for AnswerLate and
// CutThenForward: the daemon did act, whatever the client saw).
func (r *Rule) Answered() int64 { return r.done.Load() }

// Proxy is a fault-injecting proxy in front of the daemon's socket. Its
// methods are safe for concurrent use.
type Proxy struct {
	// Host is the proxy's address, for heph.Daemon{Host: …} or DOCKER_HOST.
	Host string

	upstream string // the daemon's socket
	sock     string // the proxy's socket
	dir      string

	mu      sync.Mutex
	rules   []*Rule
	ln      net.Listener
	srv     *http.Server
	conns   map[net.Conn]bool // open client connections, hijacked ones too
	stopped chan struct{}     // closed by Stop: held answers and hangs end
	pending sync.WaitGroup    // late and cut-then-forward requests in flight
}

// New starts a proxy in front of the daemon's unix socket (DOCKER_HOST,
// else /var/run/docker.sock). It is stopped, and its held requests are
// through, when the test ends.
func New(t testing.TB) *Proxy {
	t.Helper()
	upstream := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		u, err := url.Parse(h)
		if err != nil || u.Scheme != "unix" {
			t.Fatalf("faultproxy needs a daemon on a unix socket, not DOCKER_HOST=%s", h)
		}
		upstream = u.Path
	}
	return NewFor(t, upstream)
}

// NewFor is New in front of the unix socket upstream (a fake Engine API
// in the proxy's own tests).
func NewFor(t testing.TB, upstream string) *Proxy {
	t.Helper()
	dir, err := os.MkdirTemp("", "heph-proxy-") // short: a socket's path has ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{upstream: upstream, dir: dir, sock: filepath.Join(dir, "docker.sock"), conns: map[net.Conn]bool{}}
	p.Host = "unix://" + p.sock
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		p.pending.Wait()
		_ = os.RemoveAll(dir)
	})
	return p
}

// Add adds a rule (checked after those added before it; the first rule
// that matches a request, and has Times left, decides) and returns it, for
// its counters. It panics on a bad Path: a test's mistake.
func (p *Proxy) Add(r *Rule) *Rule {
	if r.Path != "" {
		r.re = regexp.MustCompile(r.Path)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, r)
	return r
}

// Remove drops a rule: later requests pass it by.
func (p *Proxy) Remove(r *Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.rules {
		if x == r {
			p.rules = append(p.rules[:i:i], p.rules[i+1:]...)
			return
		}
	}
}

// Start (re)starts listening on Host, as a daemon coming back. New starts
// it; after Stop, Start makes it answer again.
func (p *Proxy) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return errors.New("faultproxy: already listening")
	}
	_ = os.Remove(p.sock)
	ln, err := net.Listen("unix", p.sock)
	if err != nil {
		return err
	}
	p.ln = ln
	p.stopped = make(chan struct{})
	p.srv = &http.Server{
		Handler: p,
		ConnState: func(c net.Conn, s http.ConnState) {
			p.mu.Lock()
			defer p.mu.Unlock()
			switch s {
			case http.StateNew:
				p.conns[c] = true
			case http.StateClosed:
				delete(p.conns, c)
			}
		},
	}
	go func(srv *http.Server) { _ = srv.Serve(ln) }(p.srv)
	return nil
}

// Stop stops listening and breaks every open connection — streams and
// hijacked ones (exec, attach) too — as a daemon that goes away: clients see
// their connections cut and new ones refused until Start. Held answers and
// hangs end (cut). It is idempotent.
func (p *Proxy) Stop() {
	p.mu.Lock()
	if p.ln == nil {
		p.mu.Unlock()
		return
	}
	srv, conns := p.srv, p.conns
	p.ln, p.srv, p.conns = nil, nil, map[net.Conn]bool{}
	close(p.stopped)
	p.mu.Unlock()
	_ = srv.Close()
	for c := range conns {
		_ = c.Close()
	}
	_ = os.Remove(p.sock) // a stopped daemon leaves no socket to dial
}

// stoppedCh is the channel closed by the current run's Stop.
func (p *Proxy) stoppedCh() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

var versionPrefix = regexp.MustCompile(`^/v[0-9]+\.[0-9]+`)

// rule returns the rule that decides r (nil: pass), counting the match.
func (p *Proxy) rule(r *http.Request) (*Rule, bool) {
	path := versionPrefix.ReplaceAllString(r.URL.Path, "")
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, x := range p.rules {
		if (x.Method != "" && x.Method != r.Method) || (x.re != nil && !x.re.MatchString(path)) {
			continue
		}
		n := x.matched.Add(1)
		if x.Times > 0 && n > int64(x.Times) {
			return x, false
		}
		x.applied.Add(1)
		return x, true
	}
	return nil, false
}

func (p *Proxy) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	return (&net.Dialer{}).DialContext(ctx, "unix", p.upstream)
}

// ServeHTTP does to r what its rule says.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rule, apply := p.rule(r)
	if rule == nil || !apply || rule.Fault == Pass {
		p.pass(w, r, rule)
		return
	}
	stopped := p.stoppedCh()
	switch rule.Fault {
	case Status:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rule.Status)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": fmt.Sprintf("faultproxy: injected %d for %s %s", rule.Status, r.Method, r.URL.Path)})
	case Hang:
		select {
		case <-r.Context().Done():
		case <-stopped:
		}
		panic(http.ErrAbortHandler) // no answer: the connection is cut
	case AnswerLate:
		p.late(w, r, rule, stopped)
	case CutThenForward:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		out := p.outgoing(r, body)
		p.pending.Add(1)
		go func() {
			defer p.pending.Done()
			wait(rule.Delay, stopped)
			if resp, err := p.transport().RoundTrip(out); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				rule.done.Add(1)
			}
		}()
		panic(http.ErrAbortHandler)
	case CutStream:
		p.cutStream(w, r, rule)
	default:
		panic(fmt.Sprintf("faultproxy: unknown fault %v", rule.Fault))
	}
}

// pass forwards r and its answer, streams and upgrades (exec, attach) too.
func (p *Proxy) pass(w http.ResponseWriter, r *http.Request, rule *Rule) {
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "docker" },
		Transport:     p.transport(),
		FlushInterval: -1,
		ModifyResponse: func(*http.Response) error {
			if rule != nil {
				rule.done.Add(1)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(w, r)
}

func (p *Proxy) transport() *http.Transport {
	return &http.Transport{DialContext: p.dial, DisableKeepAlives: true}
}

// outgoing is r for the daemon, with its body, not ending with the client.
func (p *Proxy) outgoing(r *http.Request, body []byte) *http.Request {
	out := r.Clone(context.WithoutCancel(r.Context()))
	out.URL.Scheme, out.URL.Host, out.RequestURI = "http", "docker", ""
	out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	out.Header.Del("Connection")
	return out
}

// late forwards r at once and answers after the rule's delay.
func (p *Proxy) late(w http.ResponseWriter, r *http.Request, rule *Rule, stopped chan struct{}) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	p.pending.Add(1)
	defer p.pending.Done()
	resp, err := p.transport().RoundTrip(p.outgoing(r, body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	rule.done.Add(1)
	if !wait(rule.Delay, stopped) {
		panic(http.ErrAbortHandler) // stopped: the answer never comes
	}
	copyHeader(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(answer)
}

// cutStream forwards r, passes After bytes of the answer, and cuts.
func (p *Proxy) cutStream(w http.ResponseWriter, r *http.Request, rule *Rule) {
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.RequestURI = "http", "docker", ""
	resp, err := p.transport().RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	rule.done.Add(1)
	copyHeader(w.Header(), resp.Header)
	w.Header().Del("Content-Length") // it will not all come
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	if rule.After > 0 {
		buf := make([]byte, 32<<10)
		left := rule.After
		for left > 0 {
			n, err := resp.Body.Read(buf[:min(int64(len(buf)), left)])
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					break
				}
				_ = rc.Flush()
				left -= int64(n)
			}
			if err != nil {
				break
			}
		}
	}
	panic(http.ErrAbortHandler) // the stream ends without its end
}

// wait waits d, or until stopped is closed; it reports whether d passed.
func wait(d time.Duration, stopped chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stopped:
		return false
	}
}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		if strings.EqualFold(k, "Connection") {
			continue
		}
		for _, v := range vs {
			dst.Add(k, v)
		}
	}
}
