package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// lineWriter serialises writes from concurrent goroutines; after close it drops them.
type lineWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return len(p), nil
	}
	return l.w.Write(p)
}

// printf writes one line in a single Write.
func (l *lineWriter) printf(format string, a ...any) {
	fmt.Fprintf(l, format+"\n", a...)
}

func (l *lineWriter) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

// closers closes everything registered with it, once; what arrives later is refused.
type closers struct {
	mu     sync.Mutex
	closed bool
	next   int
	m      map[int]func()
}

// add registers f and returns a function that unregisters it; ok is false (and f is not
// registered) when closeAll has already run: the caller must close the resource itself.
func (c *closers) add(f func()) (remove func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, false
	}
	if c.m == nil {
		c.m = map[int]func(){}
	}
	id := c.next
	c.next++
	c.m[id] = f
	return func() {
		c.mu.Lock()
		delete(c.m, id)
		c.mu.Unlock()
	}, true
}

// closeAll runs every registered function concurrently and waits for them.
func (c *closers) closeAll() {
	c.mu.Lock()
	c.closed = true
	fs := c.m
	c.m = nil
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, f := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	wg.Wait()
}

// server is one run of server mode.
type server struct {
	cfg     config
	out     *lineWriter
	errw    *lineWriter
	tracked closers
	wg      sync.WaitGroup
	tlsCert *tls.Certificate
	mem     []byte
}

func now() int64 { return time.Now().UnixNano() }

// goFunc runs f in a goroutine that run waits for before it returns.
func (s *server) goFunc(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

func (s *server) run(sigs <-chan os.Signal) int {
	s.out.printf("testapp: started pid=%d at %d", os.Getpid(), now())
	code := s.prelude()
	if code < 0 {
		code = s.loop(sigs)
	}
	s.tracked.closeAll()
	s.waitGoroutines(2 * time.Second)
	s.out.close()
	s.errw.close()
	runtime.KeepAlive(s.mem)
	return code
}

// prelude does the synchronous start-up work; it returns an exit code, or -1 to go on.
func (s *server) prelude() int {
	cfg := s.cfg
	if cfg.printEnv {
		env := os.Environ()
		sort.Strings(env)
		for _, kv := range env {
			s.out.printf("env %s", kv)
		}
		host, err := os.Hostname()
		if err != nil {
			host = "unknown: " + err.Error()
		}
		s.out.printf("hostname %s", host)
	}
	for _, w := range cfg.writes {
		file, content, _ := strings.Cut(w, "=")
		if err := writeFile(file, content); err != nil {
			s.errw.printf("testapp: -write: %v", err)
			return 1
		}
	}
	for _, file := range cfg.cats {
		b, err := os.ReadFile(file)
		if err != nil {
			s.errw.printf("cat %s: error: %v", file, err)
			continue
		}
		s.out.printf("cat %s: %s", file, strings.TrimSuffix(string(b), "\n"))
	}
	if cfg.alloc > 0 {
		s.mem = make([]byte, cfg.alloc)
		for i := 0; i < len(s.mem); i += 4096 {
			s.mem[i] = 1
		}
		s.out.printf("testapp: allocated %d bytes at %d", cfg.alloc, now())
	}
	if len(cfg.https) > 0 {
		cert, err := selfSignedCert()
		if err != nil {
			s.errw.printf("testapp: certificate: %v", err)
			return 1
		}
		s.tlsCert = &cert
	}
	return -1
}

func writeFile(file, content string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return os.WriteFile(file, []byte(content), 0o644)
}

// loop starts the timelines and waits for the end: a signal, -exit, or a listen error.
func (s *server) loop(sigs <-chan os.Signal) int {
	cfg := s.cfg
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// With nothing to wait for, the health file is written before the timelines start.
	listeners := len(cfg.http) + len(cfg.https) + len(cfg.tcp)
	healthNow := !cfg.unhealthy && (cfg.healthyAfterSet && cfg.healthyAfter == 0 || !cfg.healthyAfterSet && listeners == 0)
	if healthNow {
		s.writeHealth()
	}

	logDone := make(chan struct{})
	s.goFunc(func() {
		defer close(logDone)
		s.logSequence(ctx)
	})

	fatal := make(chan error, listeners)
	var up sync.WaitGroup
	for _, a := range cfg.http {
		s.startListener(ctx, &up, fatal, "http", a, cfg.httpDelay)
	}
	for _, a := range cfg.https {
		s.startListener(ctx, &up, fatal, "https", a, cfg.httpDelay)
	}
	for _, a := range cfg.tcp {
		s.startListener(ctx, &up, fatal, "tcp", a, cfg.tcpDelay)
	}

	switch {
	case cfg.unhealthy, healthNow:
	case cfg.healthyAfterSet:
		s.goFunc(func() {
			if sleepCtx(ctx, cfg.healthyAfter) {
				s.writeHealth()
			}
		})
	default:
		s.goFunc(func() {
			up.Wait()
			if ctx.Err() == nil {
				s.writeHealth()
			}
		})
	}

	var exitc chan struct{}
	if cfg.exitCode >= 0 {
		exitc = make(chan struct{})
		endless := cfg.logRepeat == 0 && len(cfg.logs)+len(cfg.stderrs) > 0
		s.goFunc(func() {
			if !sleepCtx(ctx, cfg.exitAfter) {
				return
			}
			if !endless {
				select {
				case <-logDone:
				case <-ctx.Done():
					return
				}
			}
			close(exitc)
		})
	}

	for {
		select {
		case sig := <-sigs:
			name := signalName(sig)
			switch {
			case sig == syscall.SIGTERM && cfg.ignoreSigterm:
				s.out.printf("testapp: ignoring SIGTERM")
			case sig == syscall.SIGTERM || sig == syscall.SIGINT:
				s.out.printf("testapp: terminating on %s", name)
				s.out.close() // the last line on stdout
				return 0
			default:
				s.out.printf("testapp: received %s", name)
			}
		case err := <-fatal:
			s.errw.printf("testapp: %v", err)
			return 1
		case <-exitc:
			s.out.printf("testapp: exiting code=%d at %d", cfg.exitCode, now())
			s.out.close() // the last line on stdout
			return cfg.exitCode
		}
	}
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return sig.String()
}

// waitGoroutines waits up to d for the goroutines started with goFunc.
func (s *server) waitGoroutines(d time.Duration) {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		s.errw.printf("testapp: goroutines still running after %v", d)
	}
}

// sleepCtx sleeps d; it reports false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *server) writeHealth() {
	if err := writeFile(s.cfg.healthFile, "healthy\n"); err != nil {
		s.errw.printf("testapp: health file: %v", err)
		return
	}
	s.out.printf("testapp: healthy %s at %d", s.cfg.healthFile, now())
}

// logSequence prints the -log/-stderr passes, the filler and the -log-after lines.
func (s *server) logSequence(ctx context.Context) {
	cfg := s.cfg
	if !sleepCtx(ctx, cfg.logDelay) {
		return
	}
	stamp := func(line string) string {
		if cfg.stamp {
			return line + " at " + strconv.FormatInt(now(), 10)
		}
		return line
	}
	if len(cfg.logs)+len(cfg.stderrs) > 0 {
		for pass := 0; cfg.logRepeat == 0 || pass < cfg.logRepeat; pass++ {
			if pass > 0 && !sleepCtx(ctx, cfg.logEvery) {
				return
			}
			for _, l := range cfg.logs {
				s.out.printf("%s", stamp(l))
			}
			for _, l := range cfg.stderrs {
				s.errw.printf("%s", stamp(l))
			}
		}
	}
	if cfg.logBytes > 0 && !writeFiller(ctx, s.out, cfg.logBytes) {
		return
	}
	for _, l := range cfg.logAfter {
		s.out.printf("%s", stamp(l))
	}
}

const fillerLineLen = 100

// writeFiller writes ceil(n/100) lines of exactly 100 bytes, "filler 0000000001 xxx…\n",
// in chunks of whole lines (so that concurrent lines are never split); false if ctx ended.
func writeFiller(ctx context.Context, w io.Writer, n int64) bool {
	const chunk = 256 << 10
	line := []byte("filler 0000000000 " + strings.Repeat("x", fillerLineLen-19) + "\n")
	buf := make([]byte, 0, chunk+fillerLineLen)
	lines := (n + fillerLineLen - 1) / fillerLineLen
	var digits []byte
	for seq := int64(1); seq <= lines; seq++ {
		digits = strconv.AppendInt(digits[:0], seq, 10)
		if len(digits) <= 10 {
			copy(line[7:17], "0000000000")
			copy(line[17-len(digits):17], digits)
		}
		buf = append(buf, line...)
		if len(buf) >= chunk || seq == lines {
			if ctx.Err() != nil {
				return false
			}
			if _, err := w.Write(buf); err != nil {
				return false
			}
			buf = buf[:0]
		}
	}
	return true
}

// startListener listens on addr after delay, reports it, calls up.Done once listening (or
// when it gives up), and serves until closeAll.
func (s *server) startListener(ctx context.Context, up *sync.WaitGroup, fatal chan<- error, proto, addr string, delay time.Duration) {
	up.Add(1)
	s.goFunc(func() {
		upDone := sync.OnceFunc(up.Done)
		defer upDone()
		if !sleepCtx(ctx, delay) {
			return
		}
		ln, err := net.Listen("tcp", addr)
		at := now()
		if err != nil {
			fatal <- fmt.Errorf("listen %s %s: %v", proto, addr, err)
			return
		}
		if _, ok := s.tracked.add(func() { ln.Close() }); !ok {
			ln.Close()
			return
		}
		s.out.printf("testapp: listening %s %s at %d", proto, ln.Addr(), at)
		upDone()
		switch proto {
		case "tcp":
			s.serveTCP(ln)
		case "https":
			s.serveHTTP(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*s.tlsCert}}))
		default:
			s.serveHTTP(ln)
		}
	})
}

func (s *server) serveHTTP(ln net.Listener) {
	srv := &http.Server{
		Handler:           newHandler(s.out),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(s.errw, "testapp: http: ", 0),
	}
	if _, ok := s.tracked.add(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
	}); !ok {
		ln.Close()
		return
	}
	srv.Serve(ln) // returns ErrServerClosed after Shutdown
}

// serveTCP echoes every connection's bytes back to it.
func (s *server) serveTCP(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return // closed
		}
		remove, ok := s.tracked.add(func() { conn.Close() })
		if !ok {
			conn.Close()
			return
		}
		s.goFunc(func() {
			defer remove()
			defer conn.Close()
			echo(conn)
		})
	}
}

// echo writes back what it reads until EOF or an error (a plain loop: no splice tricks).
func echo(conn net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			if _, werr := conn.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
