package wait

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

const (
	// tailLines is how many of the container's last log lines an *Error
	// carries.
	tailLines = 20
	// maxTailLine is the longest log line an *Error keeps; longer lines are
	// cut.
	maxTailLine = 1000
	// diagnoseTimeout bounds the State and Logs calls that describe a
	// failed wait: the wait's own context may be over by then.
	diagnoseTimeout = 2 * time.Second
	// exitGrace is how long Run waits for the exit watcher's report when a
	// strategy failed by itself: Docker's wait API has been seen to report
	// an exit about 200 ms after it happened; a container still running is
	// reported as such after this grace.
	exitGrace = 250 * time.Millisecond
	// logEndGrace replaces exitGrace when the strategy failed because the
	// log ended: the container's output closed, so it is almost certainly
	// exiting, and on a loaded machine Docker's wait API has been seen to
	// report the exit more than 250 ms after the log's end.
	logEndGrace = 5 * time.Second
)

// Run waits until the container behind t is ready according to s. It is
// what heph calls when a container starts, with ctx carrying the startup
// deadline; tests of custom strategies can call it with a waittest.Target.
//
// Run first validates s (an invalid strategy returns the error of Validate
// at once, without calling t). Then it runs s.Wait and, concurrently,
// watches t.WaitExit: if the container stops while s waits, s is cancelled
// and Run fails at once rather than at the deadline. Strategies that expect
// the container to stop (ForExit, and All, Any or WithTimeout containing
// it) are not watched.
//
// Every failure is an *Error describing the strategy, how long it waited,
// why it ended, the last "not ready" error, the container's state and its
// last 20 log lines (fetched with a fresh 2 s timeout), e.g.
//
//	wait: ForListeningPort(8080/tcp): container exited with code 3 (OOM-killed) after 512ms: last error: dial tcp 172.17.0.2:8080: connect: connection refused
//	  state: exited, exit code 3, OOM-killed
//	  last 2 log lines:
//	    testapp: started pid=1 at 1700000000000000000
//	    fatal: cannot allocate memory
//
// errors.Is(err, context.DeadlineExceeded) holds when the deadline passed,
// errors.Is(err, ErrExited) when the container stopped, and errors.As
// gives the *Error.
func Run(ctx context.Context, s Strategy, t Target) error {
	if err := Validate(s); err != nil {
		return err
	}
	if t == nil {
		return errors.New("wait: nil target")
	}
	start := time.Now()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()

	exited := make(chan State, 1)
	var watcher sync.WaitGroup
	if !expectsExit(s) {
		watcher.Add(1)
		go func() {
			defer watcher.Done()
			st, err := t.WaitExit(wctx)
			if err == nil {
				exited <- st
				cancel() // fail fast: stop the strategy now
			}
		}()
	}
	err := s.Wait(wctx, t)
	waited := time.Since(start)
	var exit *State
	if err != nil && wctx.Err() == nil && !expectsExit(s) {
		// The strategy failed by itself (a log that ended, a refused
		// connection): the container may just have exited, and Docker's
		// wait API reports it a moment later. Give the report a short grace.
		grace := exitGrace
		if errors.Is(err, errLogEnded) {
			grace = logEndGrace
		}
		select {
		case st := <-exited:
			exit = &st
		case <-time.After(grace):
		}
	}
	cancel()
	watcher.Wait()
	if err == nil {
		return nil
	}
	if exit == nil {
		select {
		case st := <-exited:
			exit = &st
		default:
		}
	}
	return diagnose(ctx, s, t, err, waited, exit)
}

// diagnose builds the *Error of a failed wait: why it ended, the
// container's state and its last log lines. exit is the final state when
// the exit watcher saw the container stop.
func diagnose(ctx context.Context, s Strategy, t Target, err error, waited time.Duration, exit *State) *Error {
	e := &Error{Strategy: describe(s), Waited: waited}
	switch {
	case exit != nil:
		e.Err, e.Cause = ErrExited, lastError(err)
	case errors.Is(err, context.DeadlineExceeded):
		e.Err, e.Cause = context.DeadlineExceeded, lastError(err)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		e.Err, e.Cause = context.Canceled, lastError(err)
	default:
		e.Cause = err
	}

	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), diagnoseTimeout)
	defer cancel()
	switch st, serr := t.State(dctx); {
	case serr != nil:
		e.State, e.stateErr = exit, serr
	case exit != nil && st.Running:
		e.State = exit // restarted since (a restart policy): keep the exit
	default:
		e.State = &st
	}
	// A strategy that failed on its own (a log that ended, a refused
	// connection) may have lost the race with the exit watcher: the
	// container's state says what happened.
	if e.Err == nil && e.State != nil && !e.State.Running && !expectsExit(s) &&
		(e.State.Status == "exited" || e.State.Status == "dead") {
		e.Err = ErrExited
	}
	e.LogTail, e.logErr = logTail(dctx, t, tailLines)
	return e
}

// Error is the error of a failed Run: which strategy, how long it waited,
// why it ended, the last reason the container was not ready, and what the
// container looked like then. Its message has the form
//
//	wait: <strategy>: timed out after 30s: last error: <cause>
//	wait: <strategy>: container exited with code 3 (OOM-killed) after 512ms[: last error: <cause>]
//	wait: <strategy>: canceled after 2s[: last error: <cause>]
//	wait: <strategy>: failed after 40ms: <cause>
//
// followed by indented lines with the container's state and its last log
// lines. Unwrap returns Err and Cause, so errors.Is(err,
// context.DeadlineExceeded), errors.Is(err, ErrExited) and errors.Is on the
// cause all work.
type Error struct {
	// Strategy is the String of the strategy that failed.
	Strategy string
	// Waited is how long the wait lasted.
	Waited time.Duration
	// Err is why the wait ended early: context.DeadlineExceeded (timeout),
	// context.Canceled, ErrExited (the container stopped), or nil when the
	// strategy gave up by itself (Cause says why).
	Err error
	// Cause is the last error of the strategy: the last reason the
	// container was not ready, or why the strategy gave up. It may be nil.
	Cause error
	// State is the container's state after the failure; nil if it could
	// not be read.
	State *State
	// LogTail holds the container's last log lines (at most 20, each cut
	// at 1000 bytes), oldest first.
	LogTail []string

	stateErr, logErr error // why State or LogTail are missing
}

// Error formats e as described on the type, on several lines.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "wait: %s: ", e.Strategy)
	waited := formatDuration(e.Waited)
	switch {
	case errors.Is(e.Err, ErrExited):
		b.WriteString("container exited")
		if e.State != nil {
			fmt.Fprintf(&b, " with code %d", e.State.ExitCode)
			if e.State.OOMKilled {
				b.WriteString(" (OOM-killed)")
			}
		}
		b.WriteString(" after " + waited)
	case errors.Is(e.Err, context.DeadlineExceeded):
		b.WriteString("timed out after " + waited)
	case errors.Is(e.Err, context.Canceled):
		b.WriteString("canceled after " + waited)
	case e.Err != nil:
		fmt.Fprintf(&b, "%v after %s", e.Err, waited)
	default:
		b.WriteString("failed after " + waited)
	}
	if e.Cause != nil {
		if e.Err != nil {
			b.WriteString(": last error")
		}
		b.WriteString(": " + e.Cause.Error())
	}

	switch {
	case e.State != nil:
		b.WriteString("\n  state: " + formatState(*e.State))
	case e.stateErr != nil:
		fmt.Fprintf(&b, "\n  state: unknown: %v", e.stateErr)
	}
	switch {
	case len(e.LogTail) == 1:
		b.WriteString("\n  last log line:\n    " + e.LogTail[0])
	case len(e.LogTail) > 1:
		fmt.Fprintf(&b, "\n  last %d log lines:", len(e.LogTail))
		for _, l := range e.LogTail {
			b.WriteString("\n    " + l)
		}
	case e.logErr != nil:
		fmt.Fprintf(&b, "\n  logs: unavailable: %v", e.logErr)
	default:
		b.WriteString("\n  logs: (no output)")
	}
	return b.String()
}

// Unwrap returns Err and Cause (those that are not nil).
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// formatState describes st on one line: "exited, exit code 3, OOM-killed,
// health unhealthy (last check: "…")".
func formatState(st State) string {
	parts := []string{st.Status}
	if st.Status == "" {
		parts[0] = "unknown"
	}
	if !st.Running && (st.Status == "exited" || st.Status == "dead") {
		parts = append(parts, fmt.Sprintf("exit code %d", st.ExitCode))
	}
	if st.OOMKilled {
		parts = append(parts, "OOM-killed")
	}
	if st.Error != "" {
		parts = append(parts, fmt.Sprintf("error %q", st.Error))
	}
	if st.Health != "" {
		h := "health " + st.Health
		if n := len(st.HealthLog); n > 0 {
			h += " (last check: " + snippet([]byte(strings.TrimSpace(st.HealthLog[n-1]))) + ")"
		}
		parts = append(parts, h)
	}
	return strings.Join(parts, ", ")
}

// formatDuration rounds d for a message: to the microsecond under a
// millisecond, to the millisecond under a second, to a tenth of a second
// above.
func formatDuration(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// logTail returns the last n lines of t's log, each cut at maxTailLine
// bytes.
func logTail(ctx context.Context, t Target, n int) ([]string, error) {
	rc, err := t.Logs(ctx, LogOptions{Tail: n})
	if err != nil {
		return nil, err
	}
	defer closeWhenDone(ctx, rc)()
	br := bufio.NewReaderSize(rc, 4096)
	var (
		lines []string
		line  []byte
		cut   bool
	)
	for {
		frag, err := br.ReadSlice('\n')
		full := err == bufio.ErrBufferFull
		room := maxTailLine - len(line)
		if len(frag) > room {
			frag, cut = frag[:room], true
		}
		line = append(line, frag...)
		if full {
			continue
		}
		if len(line) > 0 {
			l := string(trimEOL(line))
			if cut {
				l += "…"
			}
			lines = append(lines, l)
			if len(lines) > n {
				lines = lines[1:]
			}
		}
		line, cut = line[:0], false
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return lines, err
		}
	}
}

// trimEOL removes a trailing "\n" or "\r\n".
func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// closeWhenDone closes rc as soon as ctx ends — a blocked Read returns then,
// whether or not the Target honours ctx itself — and returns the function
// that closes it at the latest (call it when done with rc).
func closeWhenDone(ctx context.Context, rc io.Closer) (closeNow func()) {
	var once sync.Once
	closeRC := func() { once.Do(func() { rc.Close() }) }
	stop := context.AfterFunc(ctx, closeRC)
	return func() {
		stop()
		closeRC()
	}
}
