package enginetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"embed"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/heph-go/heph/internal/engine"
)

// Server is a fake Docker Engine API served over HTTP, for the tests of the
// seam's SDK mapping (package engine) and for fault injection. Out of the
// box it answers every route heph calls with the responses recorded from a
// real Docker 20.10 daemon (API 1.41; testdata/README.md says how), whatever
// the IDs in the path: it keeps no state. A test replaces the answer of a
// route with Handle, and reads what the client sent with Requests and Find.
// A request is recorded, its body read whole, before its handler runs: a
// request that hangs is already in Requests.
//
// Routes are matched without the API version prefix ("/v1.41"): a pattern
// is "METHOD /path", where {name} matches one path segment and {name...}
// one or more (image references hold slashes); handlers read them with
// r.PathValue. Every response carries the daemon's headers (Api-Version:
// 1.41, Ostype, Server …) unless the handler sets its own. A request no
// route matches gets the daemon's 404 "page not found".
//
// The server is closed when the test ends (or by Close): open connections,
// hung handlers and upgraded streams are released first.
type Server struct {
	// Host is the address to dial, DOCKER_HOST style:
	// unix:///tmp/…/docker.sock or tcp://127.0.0.1:port.
	Host string

	srv       *httptest.Server
	tls       bool
	closing   chan struct{}
	closeOnce sync.Once

	mu     sync.Mutex
	routes []route // the test's first (newest first), then the defaults
	reqs   []Request
}

// Request is one request the server received.
type Request struct {
	Method string
	// Path is the URL path without the API version prefix
	// ("/containers/create"); Version is that prefix's version ("1.41"),
	// "" when the path had none (/_ping).
	Path, Version string
	Query         url.Values
	Header        http.Header
	Body          []byte
}

// Decode unmarshals the request's JSON body into v.
func (r Request) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decode the body of %s %s: %w", r.Method, r.Path, err)
	}
	return nil
}

type route struct {
	pattern string
	method  string
	segs    []string
	h       http.Handler
}

// NewServer starts a Server on a unix socket in a new temporary directory
// (a short path of its own: a socket's path is limited to about 100 bytes,
// which t.TempDir's names outgrow). The test's cleanup closes it and
// removes the directory.
func NewServer(t testing.TB) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "heph-engine")
	if err != nil {
		t.Fatalf("enginetest: socket directory: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("enginetest: listen on %s: %v", sock, err)
	}
	s := newServer(l)
	s.srv.Start()
	s.Host = "unix://" + sock
	t.Cleanup(s.Close)
	return s
}

// NewTCPServer starts a Server on 127.0.0.1 over plain HTTP. The test's
// cleanup closes it.
func NewTCPServer(t testing.TB) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("enginetest: listen on 127.0.0.1: %v", err)
	}
	s := newServer(l)
	s.srv.Start()
	s.Host = "tcp://" + l.Addr().String()
	t.Cleanup(s.Close)
	return s
}

// NewTLSServer starts a Server on 127.0.0.1 speaking TLS with cfg (its
// certificate, and ClientAuth to demand one of the client). Handshake
// failures are not logged. The test's cleanup closes it.
func NewTLSServer(t testing.TB, cfg *tls.Config) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("enginetest: listen on 127.0.0.1: %v", err)
	}
	s := newServer(l)
	s.srv.TLS = cfg
	s.srv.Config.ErrorLog = discardLog
	s.srv.StartTLS()
	s.Host = "tcp://" + l.Addr().String()
	s.tls = true
	t.Cleanup(s.Close)
	return s
}

func newServer(l net.Listener) *Server {
	s := &Server{closing: make(chan struct{})}
	for _, d := range defaultRoutes {
		s.routes = append(s.routes, newRoute(d.pattern, replay(d.name, d.name == "events")))
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Listener = l
	return s
}

// Endpoint is the endpoint to give engine.Dial: the server's Host, and TLS
// without verification for a TLS server (set TLSVerify and the files to
// verify it).
func (s *Server) Endpoint() engine.Endpoint {
	return engine.Endpoint{Host: s.Host, Source: "enginetest.Server", TLS: s.tls}
}

// Close closes the client connections (which ends the handlers waiting on
// their request's context), releases upgraded streams and hung handlers,
// and shuts the server down. It is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// Handle makes h answer the requests that match pattern ("GET
// /containers/{id}/json"), in place of the recorded answer or of an earlier
// Handle of the same pattern. It panics on a malformed pattern.
func (s *Server) Handle(pattern string, h http.Handler) {
	r := newRoute(pattern, h)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes = append([]route{r}, s.routes...)
}

// HandleFunc is Handle for a function.
func (s *Server) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	s.Handle(pattern, http.HandlerFunc(f))
}

// Requests returns every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Find returns the requests received so far that match pattern, in order.
// It panics on a malformed pattern.
func (s *Server) Find(pattern string) []Request {
	r := newRoute(pattern, nil)
	var out []Request
	for _, req := range s.Requests() {
		if _, ok := r.match(req.Method, req.Path); ok {
			out = append(out, req)
		}
	}
	return out
}

var discardLog = log.New(io.Discard, "", 0)

var versionPrefix = regexp.MustCompile(`^/v([0-9]+\.[0-9]+)(/|$)`)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	path, version := r.URL.Path, ""
	if m := versionPrefix.FindStringSubmatch(path); m != nil {
		version = m[1]
		if path = path[len("/v"+version):]; path == "" {
			path = "/"
		}
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, Request{
		Method: r.Method, Path: path, Version: version,
		Query: r.URL.Query(), Header: r.Header.Clone(), Body: body,
	})
	var h http.Handler
	for _, rt := range s.routes {
		if vals, ok := rt.match(r.Method, path); ok {
			for k, v := range vals {
				r.SetPathValue(k, v)
			}
			h = rt.h
			break
		}
	}
	s.mu.Unlock()
	for k, vs := range daemonHeader {
		w.Header()[k] = vs
	}
	if h == nil {
		h = Error(http.StatusNotFound, "page not found")
	}
	h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), serverKey{}, s)))
}

type serverKey struct{}

// closingOf is the channel closed when the server that received r closes
// (nil outside a Server: never).
func closingOf(r *http.Request) <-chan struct{} {
	if s, ok := r.Context().Value(serverKey{}).(*Server); ok {
		return s.closing
	}
	return nil
}

func newRoute(pattern string, h http.Handler) route {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok || method == "" || !strings.HasPrefix(path, "/") {
		panic(fmt.Sprintf("enginetest: pattern %q: want \"METHOD /path\"", pattern))
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, sg := range segs {
		if strings.HasSuffix(sg, "...}") && i != len(segs)-1 && strings.HasSuffix(segs[i+1], "...}") {
			panic(fmt.Sprintf("enginetest: pattern %q: two {name...} in a row", pattern))
		}
	}
	return route{pattern: pattern, method: method, segs: segs, h: h}
}

// match reports whether the route matches, with its wildcards' values.
func (rt route) match(method, path string) (map[string]string, bool) {
	if method != rt.method {
		return nil, false
	}
	vals := map[string]string{}
	if !matchSegs(rt.segs, strings.Split(strings.Trim(path, "/"), "/"), vals) {
		return nil, false
	}
	return vals, true
}

func matchSegs(pat, segs []string, vals map[string]string) bool {
	if len(pat) == 0 {
		return len(segs) == 0
	}
	p := pat[0]
	if name, ok := strings.CutSuffix(strings.TrimPrefix(p, "{"), "...}"); ok && strings.HasPrefix(p, "{") {
		// One or more segments: the longest that lets the rest match.
		for n := len(segs) - len(pat) + 1; n >= 1; n-- {
			if matchSegs(pat[1:], segs[n:], vals) {
				vals[name] = strings.Join(segs[:n], "/")
				return true
			}
		}
		return false
	}
	if len(segs) == 0 {
		return false
	}
	if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
		if segs[0] == "" {
			return false
		}
		vals[p[1:len(p)-1]] = segs[0]
	} else if p != segs[0] {
		return false
	}
	return matchSegs(pat[1:], segs[1:], vals)
}

// --- Answers ---

// daemonHeader are the headers the recorded daemon puts on every response.
var daemonHeader = http.Header{
	"Api-Version":         {"1.41"},
	"Docker-Experimental": {"false"},
	"Ostype":              {"linux"},
	"Server":              {"Docker/20.10.24+dfsg1 (linux)"},
}

// JSON answers status with v as JSON: v itself when it is a []byte or a
// json.RawMessage (sent as is), else v marshalled.
func JSON(status int, v any) http.Handler {
	var body []byte
	switch b := v.(type) {
	case []byte:
		body = b
	case json.RawMessage:
		body = b
	default:
		var err error
		if body, err = json.Marshal(v); err != nil {
			panic(fmt.Sprintf("enginetest.JSON: %v", err))
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	})
}

// Error answers status with the daemon's error body {"message": msg}.
func Error(status int, msg string) http.Handler {
	return JSON(status, map[string]string{"message": msg})
}

// Status answers status with no body (204 No Content, 304 Not Modified …).
func Status(status int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) })
}

// Stream answers 200 with contentType and writes chunks one by one, each
// flushed to the client, then ends the response normally.
func Stream(contentType string, chunks ...[]byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeChunks(w, contentType, chunks)
	})
}

// Follow is Stream that then keeps the response open, as the daemon does
// with a followed log or the event stream, until the client goes away or
// the server closes.
func Follow(contentType string, chunks ...[]byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeChunks(w, contentType, chunks)
		select {
		case <-r.Context().Done():
		case <-closingOf(r):
		}
	})
}

// Cut answers 200 with contentType, writes chunks one by one, each flushed,
// then breaks the connection without ending the response: the client reads
// a stream cut short (an unexpected EOF).
func Cut(contentType string, chunks ...[]byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeChunks(w, contentType, chunks)
		panic(http.ErrAbortHandler) // the server closes the connection, silently
	})
}

// Hang never answers: it holds the request until the client goes away or
// the server closes.
func Hang() http.Handler {
	return http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-closingOf(r):
		}
	})
}

func writeChunks(w http.ResponseWriter, contentType string, chunks [][]byte) {
	if contentType != "" {
		w.Header().Set("Content-Type", contentType)
	}
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	for _, c := range chunks {
		if _, err := w.Write(c); err != nil {
			return
		}
		_ = rc.Flush()
	}
}

// Upgrade answers as the daemon answers an attach or an exec start: it
// switches the connection to a raw stream (101, Content-Type
// application/vnd.docker.raw-stream) and calls fn with it, then closes the
// connection when fn returns. ctx ends when the server closes; a read of
// conn returns an error once the client closed its side.
func Upgrade(fn func(ctx context.Context, conn net.Conn)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, "hijack: "+err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		hdr := w.Header().Clone()
		hdr.Set("Content-Type", "application/vnd.docker.raw-stream")
		hdr.Set("Connection", "Upgrade")
		hdr.Set("Upgrade", "tcp")
		_, _ = buf.WriteString("HTTP/1.1 101 UPGRADED\r\n")
		_ = hdr.Write(buf)
		_, _ = buf.WriteString("\r\n")
		if err := buf.Flush(); err != nil {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-closingOf(r):
				cancel()
			case <-ctx.Done():
			}
		}()
		fn(ctx, &bufferedConn{Conn: conn, r: buf.Reader})
	})
}

// bufferedConn reads through the bufio.Reader the server already filled.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// RawStream is Upgrade writing data, then closing the connection.
func RawStream(data []byte) http.Handler {
	return Upgrade(func(_ context.Context, conn net.Conn) { _, _ = conn.Write(data) })
}

// Frame multiplexes payload as the daemon does for a container without a
// TTY: stream 1 is stdout, 2 stderr, 3 the daemon's own error.
func Frame(stream byte, payload string) []byte {
	b := make([]byte, 8, 8+len(payload))
	b[0] = stream
	binary.BigEndian.PutUint32(b[4:], uint32(len(payload)))
	return append(b, payload...)
}

// JSONLine is v marshalled and a newline: one message of a progress or
// event stream.
func JSONLine(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("enginetest.JSONLine: %v", err))
	}
	return append(b, '\n')
}

// --- Recorded answers ---

// fixtures are the responses recorded from a real daemon: testdata/README.md
// says how, testdata/recorded.json describes each (the request, the status,
// the headers).
//
//go:embed testdata/recorded.json testdata/*.json testdata/*.jsonl testdata/*.bin testdata/*.txt testdata/*.tar
var fixtures embed.FS

type recording struct {
	Name, File, Method, Path string
	Status                   int
	Header                   http.Header
}

var recordings = sync.OnceValue(func() map[string]recording {
	b, err := fixtures.ReadFile("testdata/recorded.json")
	if err != nil {
		panic(err)
	}
	var list []recording
	if err := json.Unmarshal(b, &list); err != nil {
		panic(fmt.Sprintf("enginetest: testdata/recorded.json: %v", err))
	}
	out := make(map[string]recording, len(list))
	for _, r := range list {
		out[r.Name] = r
	}
	return out
})

func recordingOf(name string) recording {
	r, ok := recordings()[name]
	if !ok {
		panic(fmt.Sprintf("enginetest: no recorded response %q (see testdata/recorded.json)", name))
	}
	return r
}

// Fixture returns the body of the response recorded as name (nil for an
// empty one), a copy the caller may change. It panics when nothing was
// recorded under that name (a typo in a test).
func Fixture(name string) []byte {
	r := recordingOf(name)
	if r.File == "" {
		return nil
	}
	b, err := fixtures.ReadFile("testdata/" + r.File)
	if err != nil {
		panic(fmt.Sprintf("enginetest: recorded response %q: %v", name, err))
	}
	return b
}

// Recorded answers with the response recorded as name: its status, its
// headers and its body. A stream of JSON messages is written a message at
// a time, each flushed; an upgraded stream (exec start) switches the
// connection first, as Upgrade does. It panics when nothing was recorded
// under that name.
func Recorded(name string) http.Handler { return replay(name, false) }

func replay(name string, follow bool) http.Handler {
	rec, body := recordingOf(name), Fixture(name)
	if rec.Status == http.StatusSwitchingProtocols {
		return RawStream(body)
	}
	var chunks [][]byte
	if strings.HasSuffix(rec.File, ".jsonl") {
		for len(body) > 0 {
			i := bytes.IndexByte(body, '\n') + 1
			if i == 0 {
				i = len(body)
			}
			chunks, body = append(chunks, body[:i]), body[i:]
		}
	} else if len(body) > 0 {
		chunks = [][]byte{body}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, vs := range rec.Header {
			w.Header()[k] = vs
		}
		if rec.Header.Get("Content-Type") == "" {
			w.Header()["Content-Type"] = nil // as recorded: none, not a sniffed one
		}
		w.WriteHeader(rec.Status)
		rc := http.NewResponseController(w)
		for _, c := range chunks {
			if _, err := w.Write(c); err != nil {
				return
			}
			_ = rc.Flush()
		}
		if follow {
			select {
			case <-r.Context().Done():
			case <-closingOf(r):
			}
		}
	})
}

// defaultRoutes are the recorded answers to every call of engine.API: a
// route's pattern and the name of its recording.
var defaultRoutes = []struct{ pattern, name string }{
	{"HEAD /_ping", "ping-head"},
	{"GET /_ping", "ping-get"},
	{"GET /version", "version"},
	{"GET /info", "info"},
	{"POST /containers/create", "container-create"},
	{"POST /containers/{id}/start", "container-start"},
	{"POST /containers/{id}/stop", "container-stop"},
	{"DELETE /containers/{id}", "container-remove"},
	{"GET /containers/json", "container-list"},
	{"GET /containers/{id}/json", "container-inspect-running"},
	{"GET /containers/{id}/logs", "container-logs"},
	{"POST /containers/{id}/wait", "container-wait"},
	{"POST /containers/{id}/exec", "exec-create"},
	{"POST /exec/{id}/start", "exec-start"},
	{"GET /exec/{id}/json", "exec-inspect-exited"},
	{"PUT /containers/{id}/archive", "archive-put"},
	{"GET /containers/{id}/archive", "archive-get"},
	{"GET /events", "events"}, // then held open, as the daemon does
	{"GET /images/json", "image-list"},
	{"GET /images/{name...}/json", "image-inspect"},
	{"POST /images/create", "pull-progress"},
	{"POST /build", "build-progress"},
	{"POST /images/load", "load-progress"},
	{"DELETE /images/{name...}", "image-remove"},
	{"POST /networks/create", "network-create"},
	{"GET /networks", "network-list"},
	{"DELETE /networks/{id}", "network-remove"},
	{"POST /networks/{id}/connect", "network-connect"},
	{"POST /networks/{id}/disconnect", "network-disconnect"},
	{"GET /volumes", "volume-list"},
	{"DELETE /volumes/{name}", "volume-remove"},
}
