package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and a polling reader.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // closed and replaced on every write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written != nil {
		close(s.written)
		s.written = nil
	}
	return s.b.Write(p)
}

// next returns the buffer's content and a channel closed at the next write.
func (s *syncBuffer) next() (string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written == nil {
		s.written = make(chan struct{})
	}
	return s.b.String(), s.written
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a server-mode run in a goroutine, signalled through a fake channel.
type proc struct {
	stdout, stderr *syncBuffer
	sigs           chan os.Signal
	done           chan int
}

func startServer(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{stdout: &syncBuffer{}, stderr: &syncBuffer{}, sigs: make(chan os.Signal, 4), done: make(chan int, 1)}
	go func() { p.done <- runServer(args, p.stdout, p.stderr, p.sigs) }()
	t.Cleanup(func() {
		p.sigs <- syscall.SIGINT
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Errorf("server %q did not stop on SIGINT", args)
		}
	})
	return p
}

// wait returns the exit code once the run has ended.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-p.done:
		p.done <- code // for the cleanup
		return code
	case <-time.After(5 * time.Second):
		t.Fatalf("server did not exit; stdout:\n%s\nstderr:\n%s", p.stdout, p.stderr)
		return 0
	}
}

// waitFor polls buf until re matches and returns the submatches.
func waitFor(t *testing.T, buf *syncBuffer, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(5 * time.Second)
	for {
		text, written := buf.next()
		if m := rx.FindStringSubmatch(text); m != nil {
			return m
		}
		select {
		case <-written:
		case <-timeout:
			t.Fatalf("no match for %q in:\n%s", re, buf)
			return nil
		}
	}
}

// listenAddr waits for the listening line of proto and returns the address.
func (p *proc) listenAddr(t *testing.T, proto string) string {
	t.Helper()
	return waitFor(t, p.stdout, `testapp: listening `+proto+` (\S+) at \d+`)[1]
}

func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func stampOf(t *testing.T, s, re string) int64 {
	t.Helper()
	m := regexp.MustCompile(re + ` at (\d+)`).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %q line in:\n%s", re, s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "1234", want: 1234},
		{in: "12B", want: 12},
		{in: "10KB", want: 10_000},
		{in: "50MB", want: 50_000_000},
		{in: "2GB", want: 2_000_000_000},
		{in: "1KiB", want: 1024},
		{in: "1MiB", want: 1 << 20},
		{in: "3GiB", want: 3 << 30},
		{in: "64m", want: 64 << 20}, // docker run --memory style
		{in: "1k", want: 1024},
		{in: "5mib", want: 5 << 20}, // case-insensitive
		{in: "", bad: true},
		{in: "MB", bad: true},
		{in: "-1", bad: true},
		{in: "1.5MB", bad: true},
		{in: "10XB", bad: true},
		{in: "99999999999999999999", bad: true},
		{in: "9999999999999GiB", bad: true}, // overflows int64
	} {
		got, err := parseSize(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseSize(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestServerFlagsStrict(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		reason string
		msg    string
	}{
		{[]string{"-nope"}, "unknown flag", "flag provided but not defined: -nope"},
		{[]string{"-http-delay", "soon"}, "bad duration", `invalid value "soon" for flag -http-delay`},
		{[]string{"-log-delay", "-1s"}, "negative duration", "negative duration"},
		{[]string{"-log-bytes", "lots"}, "bad size", `invalid size "lots"`},
		{[]string{"-alloc", "1XB"}, "bad unit", `unknown unit "XB"`},
		{[]string{"-exit", "256"}, "exit code out of range", "not in 0-255"},
		{[]string{"-exit", "-1"}, "negative exit code", "not in 0-255"},
		{[]string{"-exit-after", "1s"}, "-exit-after alone", "-exit-after needs -exit"},
		{[]string{"-log", "x", "-log-repeat", "0"}, "endless tight loop", "needs -log-every"},
		{[]string{"-log-repeat", "-2"}, "negative repeat", "negative"},
		{[]string{"-unhealthy", "-healthy-after", "1s"}, "contradiction", "exclude each other"},
		{[]string{"-http", "8080"}, "address without colon", `invalid value "8080" for flag -http`},
		{[]string{"-tcp", ":http"}, "named port", "bad port"},
		{[]string{"-write", "noequals"}, "-write without =", "want FILE=CONTENT"},
		{[]string{"-write", "=x"}, "-write without file", "want FILE=CONTENT"},
		{[]string{"-log", "x", "extra"}, "stray argument", `unexpected argument "extra"`},
	} {
		var stdout, stderr bytes.Buffer
		code := runServer(tc.args, &stdout, &stderr, nil)
		if code != 2 || !strings.Contains(stderr.String(), tc.msg) || !strings.Contains(stderr.String(), "usage: testapp") {
			t.Errorf("%s: runServer(%q) = %d, stderr %q; want 2 and %q and the usage", tc.reason, tc.args, code, stderr.String(), tc.msg)
		}
		if stdout.Len() != 0 {
			t.Errorf("%s: stdout %q, want nothing (not even the started line)", tc.reason, stdout.String())
		}
	}

	var stdout, stderr bytes.Buffer
	if code := runServer([]string{"-h"}, &stdout, &stderr, nil); code != 0 || !strings.Contains(stdout.String(), "-log-bytes SIZE") {
		t.Errorf("-h = %d, stdout %q; want 0 and the usage", code, stdout.String())
	}
}

func TestUsageListsEveryFlagAndCommandInPackageDoc(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(src[:bytes.Index(src, []byte("package main"))])
	newServerFlags(&config{}).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(doc, "//\t-"+f.Name+" ") {
			t.Errorf("flag -%s is not listed in the package doc", f.Name)
		}
	})
	for _, c := range []string{"health", "fetch", "dial", "resolve", "echo", "echo-stderr", "exit", "sleep", "cat", "ls", "write", "help"} {
		if !strings.Contains(doc, "//\ttestapp "+c+" ") {
			t.Errorf("command %s is not listed in the package doc", c)
		}
		if !strings.Contains(commandsUsage, "\n  "+c+" ") {
			t.Errorf("command %s is not listed in the usage", c)
		}
	}
}

func TestHandlerRoutes(t *testing.T) {
	out := &syncBuffer{}
	srv := httptest.NewServer(newHandler(&lineWriter{w: out}))
	defer srv.Close()
	host, _ := os.Hostname()
	t.Setenv("TESTAPP_ROUTE_VAR", "v1")

	for _, tc := range []struct {
		path     string
		code     int
		body     string // exact, unless contains is set
		contains bool
	}{
		{"/", 200, "ok", false},
		{"/healthz", 200, "healthy", false},
		{"/status/418", 418, "418 I'm a teapot", false},
		{"/status/503", 503, "503 Service Unavailable", false},
		{"/status/99", 400, "bad status code", true},
		{"/status/abc", 400, "bad status code", true},
		{"/hostname", 200, host, false},
		{"/env", 200, "\nTESTAPP_ROUTE_VAR=v1\n", true},
		{"/slow?d=20ms", 200, "slept 20ms", false},
		{"/slow?d=later", 400, "bad duration", true},
		{"/log?line=from+http", 200, "logged", false},
		{"/nothing-here", 404, "404 page not found\n", false},
		{"/fetch", 400, "missing url", true},
		{"/dial", 400, "missing addr", true},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := string(b)
		if resp.StatusCode != tc.code || (!tc.contains && body != tc.body) || (tc.contains && !strings.Contains(body, tc.body)) {
			t.Errorf("GET %s = %d %q; want %d %q", tc.path, resp.StatusCode, body, tc.code, tc.body)
		}
	}
	if got := out.String(); got != "from http\n" {
		t.Errorf("/log printed %q, want %q", got, "from http\n")
	}
}

func TestHandlerEcho(t *testing.T) {
	srv := httptest.NewServer(newHandler(&lineWriter{w: io.Discard}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/echo?q=1", strings.NewReader("payload\x00bytes"))
	req.Header.Set("X-Custom", "abc")
	req.Header.Add("Accept", "a/b")
	req.Header.Set("Content-Type", "application/x-test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "payload\x00bytes" {
		t.Errorf("body %q", b)
	}
	for k, want := range map[string]string{
		"X-Echo-Method":       "PUT",
		"X-Echo-Uri":          "/echo?q=1",
		"X-Echo-Host":         strings.TrimPrefix(srv.URL, "http://"),
		"X-Echo-X-Custom":     "abc",
		"X-Echo-Accept":       "a/b",
		"X-Echo-Content-Type": "application/x-test",
		"Content-Type":        "application/x-test",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

func TestHandlerFetchAndDial(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "from upstream")
	}))
	defer upstream.Close()
	tlsUpstream := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure")
	}))
	tlsUpstream.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	tlsUpstream.StartTLS()
	defer tlsUpstream.Close()
	srv := httptest.NewServer(newHandler(&lineWriter{w: io.Discard}))
	defer srv.Close()
	closed := closedAddr(t)

	get := func(path string) (int, string, http.Header) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, body, h := get("/fetch?url=" + upstream.URL); code != 201 || body != "from upstream" || h.Get("X-Fetch-Status") != "201" {
		t.Errorf("/fetch ok upstream = %d %q %v", code, body, h)
	}
	if code, body, h := get("/fetch?url=http://" + closed); code != 502 || !strings.Contains(body, "connection refused") || h.Get("X-Fetch-Error") != "1" {
		t.Errorf("/fetch refused = %d %q", code, body)
	}
	if code, body, _ := get("/fetch?url=" + tlsUpstream.URL); code != 502 || !strings.Contains(body, "certificate") {
		t.Errorf("/fetch self-signed without insecure = %d %q; want 502 about the certificate", code, body)
	}
	if code, body, _ := get("/fetch?insecure=1&url=" + tlsUpstream.URL); code != 200 || body != "secure" {
		t.Errorf("/fetch insecure = %d %q", code, body)
	}
	if code, body, _ := get("/dial?addr=" + strings.TrimPrefix(upstream.URL, "http://")); code != 200 || body != "connected" {
		t.Errorf("/dial open = %d %q", code, body)
	}
	if code, body, _ := get("/dial?timeout=1s&addr=" + closed); code != 502 || !strings.Contains(body, "connection refused") {
		t.Errorf("/dial closed = %d %q", code, body)
	}
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestTCPEcho(t *testing.T) {
	p := startServer(t, "-tcp", "127.0.0.1:0", "-tcp", "127.0.0.1:0", "-unhealthy")
	waitFor(t, p.stdout, `(?s)listening tcp.*listening tcp \S+ at \d+\n`)
	addrs := regexp.MustCompile(`testapp: listening tcp (\S+) at`).FindAllStringSubmatch(p.stdout.String(), -1)
	if len(addrs) != 2 {
		t.Fatalf("want 2 tcp listeners, got %v", addrs)
	}
	for _, a := range addrs {
		conn, err := net.Dial("tcp", a[1])
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(conn)
		for _, msg := range []string{"hello\n", strings.Repeat("z", 100_000) + "\n"} {
			if _, err := io.WriteString(conn, msg); err != nil {
				t.Fatal(err)
			}
			got, err := r.ReadString('\n')
			if err != nil || got != msg {
				t.Fatalf("echo from %s: %d bytes, %v; want %d bytes", a[1], len(got), err, len(msg))
			}
		}
		conn.(*net.TCPConn).CloseWrite()
		if _, err := r.ReadByte(); err != io.EOF {
			t.Errorf("after half-close: %v, want EOF", err)
		}
		conn.Close()
	}
	// An open connection must not delay termination.
	conn, err := net.Dial("tcp", addrs[0][1])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	p.sigs <- syscall.SIGTERM
	if code := p.wait(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("termination took %v", d)
	}
	if !strings.HasSuffix(p.stdout.String(), "testapp: terminating on SIGTERM\n") {
		t.Errorf("stdout:\n%s", p.stdout)
	}
}

func TestHTTPAndHTTPSListeners(t *testing.T) {
	p := startServer(t, "-http", "127.0.0.1:0", "-https", "127.0.0.1:0", "-unhealthy")
	httpAddr, httpsAddr := p.listenAddr(t, "http"), p.listenAddr(t, "https")

	resp, err := http.Get("http://" + httpAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Errorf("http / = %q", b)
	}

	// The certificate verifies for localhost and 127.0.0.1 once trusted as its own root.
	conn, err := tls.Dial("tcp", httpsAddr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	cert := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	_, port, _ := net.SplitHostPort(httpsAddr)
	for _, name := range []string{"localhost", "127.0.0.1"} {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := client.Get("https://" + net.JoinHostPort(name, port) + "/healthz")
		if err != nil {
			t.Errorf("https via %s: %v", name, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "healthy" {
			t.Errorf("https via %s /healthz = %q", name, b)
		}
	}
	if host, _ := os.Hostname(); host != "" {
		if err := cert.VerifyHostname(host); err != nil {
			t.Errorf("certificate does not name the hostname: %v", err)
		}
	}
}

func TestOutputOrderShortRun(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sub", "w.txt")
	var stdout, stderr syncBuffer
	t.Setenv("TESTAPP_ORDER", "yes")
	code := runServer([]string{
		"-log-after", "after1", "-log", "first", "-stderr", "err1", "-log", "second", "-log-after", "after2",
		"-log-bytes", "250", "-stamp", "-print-env", "-write", file + "=a=b", "-cat", file,
		"-cat", filepath.Join(dir, "missing"), "-alloc", "1MiB", "-log-delay", "20ms",
		"-health-file", filepath.Join(dir, "healthy"), "-exit", "3",
	}, &stdout, &stderr, nil)
	if code != 3 {
		t.Errorf("exit code %d, want 3; stderr:\n%s", code, stderr.String())
	}
	var got []string
	for _, l := range lines(stdout.String()) {
		if strings.HasPrefix(l, "env ") && !strings.HasPrefix(l, "env TESTAPP_ORDER=") {
			continue
		}
		l = regexp.MustCompile(` at \d+$`).ReplaceAllString(l, " at T")
		l = regexp.MustCompile(`pid=\d+`).ReplaceAllString(l, "pid=P")
		l = regexp.MustCompile(`^hostname .*`).ReplaceAllString(l, "hostname H")
		got = append(got, l)
	}
	x := strings.Repeat("x", 81)
	want := []string{
		"testapp: started pid=P at T",
		"env TESTAPP_ORDER=yes",
		"hostname H",
		"cat " + file + ": a=b",
		"testapp: allocated 1048576 bytes at T",
		"testapp: healthy " + filepath.Join(dir, "healthy") + " at T", // no listeners: at once
		"first at T",
		"second at T",
		"filler 0000000001 " + x,
		"filler 0000000002 " + x,
		"filler 0000000003 " + x,
		"after1 at T",
		"after2 at T",
		"testapp: exiting code=3 at T",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stdout:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !regexp.MustCompile(`^cat \S+missing: error: .*no such file or directory\nerr1 at \d+\n$`).MatchString(stderr.String()) {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "a=b" {
		t.Errorf("-write wrote %q, %v", b, err)
	}
	// -log-delay is counted from the start, and the exit waited for the log sequence.
	out := stdout.String()
	if d := stampOf(t, out, "first") - stampOf(t, out, "testapp: started pid=\\d+"); d < int64(20*time.Millisecond) {
		t.Errorf("first -log line %v after start, want >= 20ms", time.Duration(d))
	}
}

func TestExitAfterAndEndlessLog(t *testing.T) {
	var stdout, stderr syncBuffer
	start := time.Now()
	code := runServer([]string{"-log", "tick", "-log-every", "10ms", "-log-repeat", "0", "-exit", "0", "-exit-after", "100ms", "-unhealthy"}, &stdout, &stderr, nil)
	took := time.Since(start)
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if took < 100*time.Millisecond || took > 2*time.Second {
		t.Errorf("run took %v, want about 100ms", took)
	}
	ls := lines(stdout.String())
	ticks := strings.Count(stdout.String(), "tick\n")
	if ticks < 2 || ticks > 12 || !strings.HasPrefix(ls[len(ls)-1], "testapp: exiting code=0 at ") {
		t.Errorf("%d ticks; stdout:\n%s", ticks, stdout.String())
	}
}

func TestLogRepeatSpacing(t *testing.T) {
	var stdout syncBuffer
	code := runServer([]string{"-log", "a", "-log", "b", "-log-every", "30ms", "-log-repeat", "3", "-stamp", "-exit", "0", "-unhealthy"}, &stdout, io.Discard, nil)
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	var stamps []int64
	for _, l := range lines(stdout.String()) {
		if m := regexp.MustCompile(`^a at (\d+)$`).FindStringSubmatch(l); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			stamps = append(stamps, n)
		}
	}
	if len(stamps) != 3 || strings.Count(stdout.String(), "\nb at ") != 3 {
		t.Fatalf("stdout:\n%s", stdout.String())
	}
	for i := 1; i < len(stamps); i++ {
		if d := time.Duration(stamps[i] - stamps[i-1]); d < 30*time.Millisecond {
			t.Errorf("pass %d came %v after the previous one, want >= 30ms", i, d)
		}
	}
}

func TestHealthFile(t *testing.T) {
	t.Run("when listeners are up", func(t *testing.T) {
		health := filepath.Join(t.TempDir(), "h", "healthy")
		p := startServer(t, "-http", "127.0.0.1:0", "-tcp", "127.0.0.1:0", "-tcp-delay", "150ms", "-health-file", health)
		p.listenAddr(t, "http")
		if _, err := os.Stat(health); err == nil {
			t.Errorf("health file written before the delayed tcp listener is up")
		}
		waitFor(t, p.stdout, `testapp: healthy `)
		out := p.stdout.String()
		if stampOf(t, out, "testapp: healthy \\S+") < stampOf(t, out, "testapp: listening tcp \\S+") {
			t.Errorf("healthy before the last listener:\n%s", out)
		}
		if code := runCommand("health", []string{"-file", health}, io.Discard, io.Discard); code != 0 {
			t.Errorf("health subcommand = %d after the file was written", code)
		}
	})
	t.Run("healthy-after ignores listeners", func(t *testing.T) {
		health := filepath.Join(t.TempDir(), "healthy")
		p := startServer(t, "-http", "127.0.0.1:0", "-http-delay", "10s", "-healthy-after", "50ms", "-health-file", health)
		waitFor(t, p.stdout, `testapp: healthy `)
		if d := stampOf(t, p.stdout.String(), "testapp: healthy \\S+") - stampOf(t, p.stdout.String(), "started pid=\\d+"); d < int64(50*time.Millisecond) {
			t.Errorf("healthy %v after start, want >= 50ms", time.Duration(d))
		}
	})
	t.Run("unhealthy", func(t *testing.T) {
		health := filepath.Join(t.TempDir(), "healthy")
		p := startServer(t, "-http", "127.0.0.1:0", "-unhealthy", "-health-file", health)
		p.listenAddr(t, "http")
		time.Sleep(50 * time.Millisecond)
		if _, err := os.Stat(health); err == nil || strings.Contains(p.stdout.String(), "healthy") {
			t.Errorf("-unhealthy wrote the health file")
		}
	})
}

func TestHTTPDelay(t *testing.T) {
	p := startServer(t, "-http", "127.0.0.1:0", "-http-delay", "100ms", "-tcp", "127.0.0.1:0", "-log", "now", "-unhealthy")
	p.listenAddr(t, "http")
	out := p.stdout.String()
	start := stampOf(t, out, "started pid=\\d+")
	if d := time.Duration(stampOf(t, out, "listening http \\S+") - start); d < 100*time.Millisecond || d > time.Second {
		t.Errorf("http listened %v after start, want just over 100ms", d)
	}
	if d := time.Duration(stampOf(t, out, "listening tcp \\S+") - start); d > 100*time.Millisecond {
		t.Errorf("tcp without delay listened %v after start", d)
	}
	if strings.Index(out, "now\n") > strings.Index(out, "listening http") {
		t.Errorf("-log line after the delayed listener:\n%s", out)
	}
}

func TestSignals(t *testing.T) {
	p := startServer(t, "-ignore-sigterm", "-unhealthy")
	waitFor(t, p.stdout, "started")
	p.sigs <- syscall.SIGTERM
	p.sigs <- syscall.SIGHUP
	waitFor(t, p.stdout, "testapp: ignoring SIGTERM\ntestapp: received SIGHUP\n")
	select {
	case code := <-p.done:
		t.Fatalf("exited with %d on SIGTERM despite -ignore-sigterm", code)
	case <-time.After(50 * time.Millisecond):
	}
	p.sigs <- syscall.SIGINT
	if code := p.wait(t); code != 0 {
		t.Errorf("exit code %d on SIGINT", code)
	}
	if !strings.HasSuffix(p.stdout.String(), "testapp: terminating on SIGINT\n") {
		t.Errorf("stdout:\n%s", p.stdout)
	}
}

func TestStartupFailuresExit1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stderr syncBuffer
	if code := runServer([]string{"-http", ln.Addr().String(), "-unhealthy"}, io.Discard, &stderr, nil); code != 1 || !strings.Contains(stderr.String(), "address already in use") {
		t.Errorf("busy port: code %d, stderr %q", code, stderr.String())
	}
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o644)
	stderr = syncBuffer{}
	if code := runServer([]string{"-write", notDir + "/x=y", "-unhealthy"}, io.Discard, &stderr, nil); code != 1 || !strings.Contains(stderr.String(), "-write") {
		t.Errorf("bad -write: code %d, stderr %q", code, stderr.String())
	}
}

func TestWriteFiller(t *testing.T) {
	for _, n := range []int64{1, 100, 101, 1000, 3 << 20} {
		var b bytes.Buffer
		if !writeFiller(context.Background(), &b, n) {
			t.Fatal("writeFiller reported cancellation")
		}
		want := (n + 99) / 100
		if int64(b.Len()) != want*100 {
			t.Errorf("n=%d: %d bytes, want %d", n, b.Len(), want*100)
		}
		ls := lines(b.String())
		if int64(len(ls)) != want || ls[len(ls)-1][:18] != "filler "+strconv.FormatInt(1e10+want, 10)[1:]+" " {
			t.Errorf("n=%d: %d lines, last %q", n, len(ls), ls[len(ls)-1])
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if writeFiller(ctx, io.Discard, 1<<20) {
		t.Error("writeFiller ignored a cancelled context")
	}
}

// Lines printed concurrently with the filler stay whole.
func TestFillerKeepsLinesWhole(t *testing.T) {
	var stdout syncBuffer
	done := make(chan int)
	go func() {
		done <- runServer([]string{"-log-bytes", "5MB", "-log-after", "end", "-exit", "0", "-tcp", "127.0.0.1:0", "-unhealthy"}, &stdout, io.Discard, nil)
	}()
	<-done
	for i, l := range lines(stdout.String()) {
		if strings.HasPrefix(l, "filler ") && len(l) != 99 {
			t.Fatalf("line %d split: %q", i, l)
		}
	}
	if !strings.Contains(stdout.String(), "testapp: listening tcp") || !strings.Contains(stdout.String(), "\nend\n") {
		t.Error("missing listening or end line")
	}
}

func TestParseMixed(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		pos     string
		timeout time.Duration
	}{
		{[]string{"u"}, "u", 2 * time.Second},
		{[]string{"u", "-timeout", "1s"}, "u", time.Second},
		{[]string{"-timeout=3s", "u", "v"}, "u v", 3 * time.Second},
		{[]string{"--", "-timeout", "1s"}, "-timeout 1s", 2 * time.Second},
	} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		timeout := fs.Duration("timeout", 2*time.Second, "")
		pos, err := parseMixed(fs, tc.args)
		if err != nil || strings.Join(pos, " ") != tc.pos || *timeout != tc.timeout {
			t.Errorf("parseMixed(%q) = %q, %v, timeout %v", tc.args, pos, err, *timeout)
		}
	}
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	health := filepath.Join(dir, "healthy")
	srv := httptest.NewServer(newHandler(&lineWriter{w: io.Discard}))
	defer srv.Close()
	closed := closedAddr(t)
	os.MkdirAll(filepath.Join(dir, "tree", "b", "c"), 0o755)
	os.WriteFile(filepath.Join(dir, "tree", "a.txt"), []byte("hello"), 0o600)
	os.WriteFile(filepath.Join(dir, "tree", "b", "c", "d.bin"), make([]byte, 1234), 0o644)
	os.Symlink("a.txt", filepath.Join(dir, "tree", "link"))

	for _, tc := range []struct {
		args   []string
		code   int
		stdout string // exact
		stderr string // substring
	}{
		{[]string{"echo", "a", "-n", "b"}, 0, "a -n b\n", ""},
		{[]string{"echo"}, 0, "\n", ""},
		{[]string{"echo-stderr", "oops", "x"}, 0, "", "oops x\n"},
		{[]string{"exit", "0"}, 0, "", ""},
		{[]string{"exit", "42"}, 42, "", ""},
		{[]string{"exit", "300"}, 2, "", "want 0-255"},
		{[]string{"exit"}, 2, "", "usage: testapp exit N"},
		{[]string{"sleep", "10ms"}, 0, "", ""},
		{[]string{"sleep", "0.01"}, 0, "", ""},
		{[]string{"sleep", "soon"}, 2, "", "bad duration"},
		{[]string{"health", "-file", health}, 1, "", "unhealthy: stat " + health + ": no such file"},
		{[]string{"health", "extra"}, 2, "", "unexpected argument"},
		{[]string{"write", health, "yes"}, 0, "", ""},
		{[]string{"health", "-file", health}, 0, "", ""},
		{[]string{"write", filepath.Join(dir, "new", "deep", "f"), "content"}, 0, "", ""},
		{[]string{"cat", health, filepath.Join(dir, "new", "deep", "f")}, 0, "yescontent", ""},
		{[]string{"cat", health, filepath.Join(dir, "nope")}, 1, "yes", "no such file"},
		{[]string{"cat"}, 2, "", "usage"},
		{[]string{"write", "onlyfile"}, 2, "", "usage: testapp write FILE CONTENT"},
		{[]string{"ls", filepath.Join(dir, "tree")}, 0, "a.txt 5 -rw-------\nb 0 drwxr-xr-x\nb/c 0 drwxr-xr-x\nb/c/d.bin 1234 -rw-r--r--\nlink 5 Lrwxrwxrwx -> a.txt\n", ""},
		{[]string{"ls", filepath.Join(dir, "tree", "a.txt")}, 0, "a.txt 5 -rw-------\n", ""},
		{[]string{"ls", filepath.Join(dir, "nope")}, 1, "", "no such file"},
		{[]string{"fetch", srv.URL + "/healthz"}, 0, "healthy", ""},
		{[]string{"fetch", "-timeout", "1s", srv.URL + "/status/500"}, 1, "500 Internal Server Error", "status 500"},
		{[]string{"fetch", "http://" + closed + "/"}, 1, "", "connection refused"},
		{[]string{"fetch", srv.URL + "/slow?d=1s", "-timeout", "50ms"}, 1, "", "Timeout"},
		{[]string{"fetch"}, 2, "", "want one URL"},
		{[]string{"fetch", "u", "-timeout", "x"}, 2, "", "invalid value"},
		{[]string{"dial", strings.TrimPrefix(srv.URL, "http://")}, 0, "connected\n", ""},
		{[]string{"dial", closed, "-timeout", "1s"}, 1, "", "connection refused"},
		{[]string{"dial", "-bogus", "x"}, 2, "", "flag provided but not defined"},
		{[]string{"resolve", "localhost"}, 0, "", ""},
		{[]string{"resolve", "no-such-host.invalid", "-timeout", "1s"}, 1, "", "resolve no-such-host.invalid"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"help"}, 0, "", ""},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		okStdout := stdout.String() == tc.stdout || (tc.args[0] == "resolve" || tc.args[0] == "help") && code == 0
		if code != tc.code || !okStdout || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("testapp %q = %d, stdout %q, stderr %q; want %d, %q, ...%q...", tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
		}
	}

	var stdout bytes.Buffer
	if code := run([]string{"resolve", "localhost"}, &stdout, io.Discard); code != 0 || net.ParseIP(lines(stdout.String())[0]) == nil {
		t.Errorf("resolve localhost = %d %q", code, stdout.String())
	}
}

func TestRunDispatchesServerMode(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-log", "via run", "-exit", "7", "-unhealthy"}, &stdout, &stderr); code != 7 || !strings.Contains(stdout.String(), "\nvia run\n") {
		t.Errorf("run = %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	if code := run([]string{"-bogus"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("run -bogus = %d, want 2", code)
	}
}
