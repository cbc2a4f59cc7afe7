// Package waittest provides a fake wait.Target, for unit tests of wait
// strategies (heph's own, and yours) without Docker.
//
// A Target starts as a running container on host 127.0.0.1 with no
// published port, no IP address, an empty log and no health check. The test
// shapes it with its setters, before or during a wait, from any goroutine:
// Publish and SetIPs for ports (point them at real listeners on loopback to
// test network strategies), Write and Log to append to the container's
// output, SetHealth to send health events, SetExec for commands, Exit to
// stop the container, SetError to make a method fail. Calls counts how often
// each method was called.
//
// A Target needs no cleanup: everything it starts ends with the context
// passed to the method that started it.
package waittest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/heph-go/heph/internal/port"
	"github.com/heph-go/heph/wait"
)

// Method names a method of wait.Target, for SetError and Calls.
type Method string

// The methods of wait.Target.
const (
	MethodHost         Method = "Host"
	MethodMappedPort   Method = "MappedPort"
	MethodLogs         Method = "Logs"
	MethodExec         Method = "Exec"
	MethodState        Method = "State"
	MethodWaitExit     Method = "WaitExit"
	MethodHealthEvents Method = "HealthEvents"
)

// Target is a fake wait.Target. Its zero value is not usable: call New.
// All its methods are safe for concurrent use.
type Target struct {
	mu        sync.Mutex
	host      string
	state     wait.State
	stateFunc func(ctx context.Context) (wait.State, error)
	exec      func(ctx context.Context, cmd []string) (wait.ExecResult, error)
	errs      map[Method]error
	calls     map[Method]int

	log       []byte        // everything written, kept whole
	logMore   chan struct{} // closed (and replaced) on each write and when the log ends
	logEnded  bool          // no more output: followers get io.EOF at the end
	exited    chan struct{} // closed by Exit
	subs      map[*subscription]struct{}
	healthLen int // how many health outputs State keeps
}

var _ wait.Target = (*Target)(nil)

// New returns a running fake container on host 127.0.0.1.
func New() *Target {
	return &Target{
		host: "127.0.0.1",
		state: wait.State{
			Status:    "running",
			Running:   true,
			Ports:     map[string]int{},
			StartedAt: time.Now(),
		},
		errs:      map[Method]error{},
		calls:     map[Method]int{},
		logMore:   make(chan struct{}),
		exited:    make(chan struct{}),
		subs:      map[*subscription]struct{}{},
		healthLen: 5,
	}
}

// SetHost sets what Host returns (default "127.0.0.1").
func (t *Target) SetHost(host string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.host = host
}

// Publish publishes the container port port ("8080" means "8080/tcp") on
// hostPort: MappedPort returns it and State lists it in Ports.
func (t *Target) Publish(port string, hostPort int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.state.Ports[normalisePort(port)] = hostPort
}

// SetIPs sets the container's own addresses (State.IPs).
func (t *Target) SetIPs(ips ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.state.IPs = slices.Clone(ips)
}

// Write appends p to the container's output, as if the container had
// written it (stdout and stderr are one stream). Followers of the log see
// it at once. It never fails, even after the log ended (the bytes are
// then dropped).
func (t *Target) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.logEnded {
		t.log = append(t.log, p...)
		t.wakeLog()
	}
	return len(p), nil
}

// Log appends each of lines to the container's output, followed by a
// newline.
func (t *Target) Log(lines ...string) {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	t.Write([]byte(b.String()))
}

// EndLog ends the container's output: followers of the log get io.EOF once
// they have read everything, as when a container stops. Exit calls it.
func (t *Target) EndLog() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.endLog()
}

func (t *Target) endLog() {
	if !t.logEnded {
		t.logEnded = true
		t.wakeLog()
	}
}

// wakeLog tells the followers of the log that something changed. t.mu is
// held.
func (t *Target) wakeLog() {
	close(t.logMore)
	t.logMore = make(chan struct{})
}

// SetExec sets the function Exec runs. Without one, Exec fails with
// "waittest: no exec function".
func (t *Target) SetExec(f func(ctx context.Context, cmd []string) (wait.ExecResult, error)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.exec = f
}

// UpdateState changes the container's state with f, under the Target's
// lock (f must not call the Target). Use it for fields no other setter
// covers, e.g. OOMKilled before Exit.
func (t *Target) UpdateState(f func(st *wait.State)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(&t.state)
}

// SetStateFunc makes State return what f returns instead of the state the
// Target keeps (nil restores that). WaitExit still returns the kept state.
func (t *Target) SetStateFunc(f func(ctx context.Context) (wait.State, error)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stateFunc = f
}

// SetHealth sets the container's health status ("starting", "healthy",
// "unhealthy"), appends output (the output of the check) to State.HealthLog
// when given, and sends status to every HealthEvents subscriber.
func (t *Target) SetHealth(status string, output ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.state.Health = status
	if len(output) > 0 {
		hl := append(slices.Clone(t.state.HealthLog), strings.Join(output, "\n"))
		if len(hl) > t.healthLen {
			hl = hl[len(hl)-t.healthLen:]
		}
		t.state.HealthLog = hl
	}
	for s := range t.subs {
		s.queue = append(s.queue, status)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Exit stops the container with code: the state becomes "exited", the log
// ends and WaitExit returns. A second call changes nothing.
func (t *Target) Exit(code int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.exited:
		return
	default:
	}
	t.state.Status = "exited"
	t.state.Running = false
	t.state.ExitCode = code
	t.state.FinishedAt = time.Now()
	t.endLog()
	close(t.exited)
}

// SetError makes method m fail with err from now on (nil: succeed again).
func (t *Target) SetError(m Method, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil {
		delete(t.errs, m)
		return
	}
	t.errs[m] = err
}

// Calls returns how many times method m has been called.
func (t *Target) Calls(m Method) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.calls[m]
}

// enter counts a call of m and returns the error it must fail with: the
// context's, or one set by SetError. t.mu is held.
func (t *Target) enter(ctx context.Context, m Method) error {
	t.calls[m]++
	if err := ctx.Err(); err != nil {
		return err
	}
	return t.errs[m]
}

// Host returns the host set by SetHost.
func (t *Target) Host(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.enter(ctx, MethodHost); err != nil {
		return "", err
	}
	return t.host, nil
}

// MappedPort returns the host port Publish set for port, or an error when
// it is not published.
func (t *Target) MappedPort(ctx context.Context, port string) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.enter(ctx, MethodMappedPort); err != nil {
		return 0, err
	}
	p, ok := t.state.Ports[normalisePort(port)]
	if !ok {
		return 0, fmt.Errorf("waittest: port %s is not published", normalisePort(port))
	}
	return p, nil
}

// Logs returns the container's output from the start, or its last
// opts.Tail lines. Without Follow the stream ends with what was written
// when Logs was called; with Follow it delivers new output as it is
// written, until the log ends (Exit, EndLog: io.EOF) or ctx ends (the
// context's error). Close may be called concurrently with Read.
func (t *Target) Logs(ctx context.Context, opts wait.LogOptions) (io.ReadCloser, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.enter(ctx, MethodLogs); err != nil {
		return nil, err
	}
	r := &logReader{t: t, ctx: ctx, end: -1, closed: make(chan struct{})}
	if opts.Tail > 0 {
		r.off = tailOffset(t.log, opts.Tail)
	}
	if !opts.Follow {
		r.end = len(t.log)
	}
	return r, nil
}

// tailOffset returns where the last n lines of log start.
func tailOffset(log []byte, n int) int {
	i := len(log)
	if i > 0 && log[i-1] == '\n' {
		i-- // the final newline ends the last line
	}
	for ; n > 0; n-- {
		j := bytes.LastIndexByte(log[:i], '\n')
		if j < 0 {
			return 0
		}
		i = j
	}
	return i + 1
}

// logReader reads the fake log from off.
type logReader struct {
	t         *Target
	ctx       context.Context
	off       int
	end       int // -1: follow
	closeOnce sync.Once
	closed    chan struct{}
}

var errClosed = errors.New("waittest: read from a closed log stream")

func (r *logReader) Read(p []byte) (int, error) {
	for {
		r.t.mu.Lock()
		limit := len(r.t.log)
		if r.end >= 0 {
			limit = r.end
		}
		if r.off < limit {
			n := copy(p, r.t.log[r.off:limit])
			r.off += n
			r.t.mu.Unlock()
			return n, nil
		}
		if r.end >= 0 || r.t.logEnded {
			r.t.mu.Unlock()
			return 0, io.EOF
		}
		more := r.t.logMore
		r.t.mu.Unlock()
		select {
		case <-more:
		case <-r.closed:
			return 0, errClosed
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

func (r *logReader) Close() error {
	r.closeOnce.Do(func() { close(r.closed) })
	return nil
}

// Exec runs the function set by SetExec.
func (t *Target) Exec(ctx context.Context, cmd []string) (wait.ExecResult, error) {
	t.mu.Lock()
	err := t.enter(ctx, MethodExec)
	f := t.exec
	t.mu.Unlock()
	if err != nil {
		return wait.ExecResult{}, err
	}
	if f == nil {
		return wait.ExecResult{}, errors.New("waittest: no exec function")
	}
	return f(ctx, slices.Clone(cmd))
}

// State returns a copy of the container's state, or what the function set
// by SetStateFunc returns.
func (t *Target) State(ctx context.Context) (wait.State, error) {
	t.mu.Lock()
	err := t.enter(ctx, MethodState)
	f := t.stateFunc
	st := copyState(t.state)
	t.mu.Unlock()
	if err != nil {
		return wait.State{}, err
	}
	if f != nil {
		return f(ctx)
	}
	return st, nil
}

// WaitExit blocks until Exit is called (or ctx ends) and returns the
// state then; it returns at once after Exit.
func (t *Target) WaitExit(ctx context.Context) (wait.State, error) {
	t.mu.Lock()
	err := t.enter(ctx, MethodWaitExit)
	exited := t.exited
	t.mu.Unlock()
	if err != nil {
		return wait.State{}, err
	}
	select {
	case <-exited:
	case <-ctx.Done():
		return wait.State{}, ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return copyState(t.state), nil
}

// subscription is one HealthEvents caller: SetHealth queues statuses, a
// goroutine delivers them in order until ctx ends.
type subscription struct {
	queue []string // guarded by Target.mu
	wake  chan struct{}
}

// HealthEvents delivers every status SetHealth sets from now on, in order,
// until ctx ends; the channel is closed then.
func (t *Target) HealthEvents(ctx context.Context) (<-chan string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.enter(ctx, MethodHealthEvents); err != nil {
		return nil, err
	}
	s := &subscription{wake: make(chan struct{}, 1)}
	t.subs[s] = struct{}{}
	out := make(chan string)
	go func() {
		defer close(out)
		defer func() {
			t.mu.Lock()
			delete(t.subs, s)
			t.mu.Unlock()
		}()
		for {
			t.mu.Lock()
			batch := s.queue
			s.queue = nil
			t.mu.Unlock()
			for _, h := range batch {
				select {
				case out <- h:
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-s.wake:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func copyState(st wait.State) wait.State {
	st.Ports = maps.Clone(st.Ports)
	st.IPs = slices.Clone(st.IPs)
	st.HealthLog = slices.Clone(st.HealthLog)
	return st
}

// normalisePort gives a port in canonical form with heph's one port
// parser; a malformed port is kept as given, so that it is never found.
func normalisePort(p string) string {
	if n, err := port.Normalize(p); err == nil {
		return n
	}
	return p
}
