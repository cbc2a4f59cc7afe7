package wait

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Backoff parameters shared by every polling strategy. The first retry comes
// after about 2 ms, each interval is 1.5 times the previous one (±20 %
// jitter) up to the cap; there is no maximum elapsed time: the context
// bounds the wait.
const (
	pollInitial      = 2 * time.Millisecond
	pollMultiplier   = 1.5
	pollRandomFactor = 0.2
	// pollMaxInterval caps probes that cost the daemon something (exec,
	// inspect, re-opening a log).
	pollMaxInterval = 250 * time.Millisecond
	// pollFastMaxInterval caps cheap probes on the host (a TCP connect, an
	// HTTP request): a lower cap keeps the delay between "the app listens"
	// and "ready" within a few ms.
	pollFastMaxInterval = 15 * time.Millisecond
)

// newBackOff returns the exponential backoff of every poll, capped at maxInterval.
func newBackOff(maxInterval time.Duration) *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(pollInitial),
		backoff.WithMultiplier(pollMultiplier),
		backoff.WithRandomizationFactor(pollRandomFactor),
		backoff.WithMaxInterval(maxInterval),
		backoff.WithMaxElapsedTime(0),
	)
}

// poll calls probe until it returns nil (ready: poll returns nil), an error
// wrapped with Permanent (give up: poll returns the unwrapped error at once)
// or ctx ends (poll returns a *stoppedError with the last error probe
// returned). Any other error means "not ready yet, try again" after a
// backoff of at most maxInterval.
func poll(ctx context.Context, maxInterval time.Duration, probe func(ctx context.Context) error) error {
	var last error
	gaveUp := false
	err := backoff.Retry(func() error {
		err := probe(ctx)
		if err == nil {
			return nil
		}
		var perm *backoff.PermanentError
		if errors.As(err, &perm) {
			gaveUp = true
			return err
		}
		// A probe cut short by the end of ctx usually says only that ("i/o
		// timeout"); keep the error of the previous attempt then.
		if !ending(ctx) || last == nil {
			last = err
		}
		return err
	}, backoff.WithContext(newBackOff(maxInterval), ctx))
	switch {
	case err == nil:
		return nil
	case gaveUp:
		return err
	case ctx.Err() != nil:
		return stopped(ctx, last)
	}
	return err
}

// ending reports whether ctx is done or its deadline has passed (a dial
// sees the deadline pass a moment before ctx.Err() is set).
func ending(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// stoppedError is what a strategy returns when its context ends before the
// container is ready: the context's error plus the last reason it was not
// ready. errors.Is(err, context.DeadlineExceeded) holds for a timeout.
type stoppedError struct {
	ctxErr error // context.DeadlineExceeded or context.Canceled
	last   error // the last "not ready" error; may be nil
}

// stopped returns the error of a wait cut short by the end of ctx; last is
// the last reason the container was not ready (dropped when it is only the
// context's own error).
func stopped(ctx context.Context, last error) error {
	ctxErr := ctx.Err()
	if ctxErr == nil {
		ctxErr = context.Canceled
	}
	if last == context.Canceled || last == context.DeadlineExceeded {
		last = nil
	}
	if se, ok := last.(*stoppedError); ok {
		last = se.last
	}
	return &stoppedError{ctxErr: ctxErr, last: last}
}

func (e *stoppedError) Error() string {
	if e.last == nil {
		return e.ctxErr.Error()
	}
	return e.ctxErr.Error() + ": last error: " + e.last.Error()
}

func (e *stoppedError) Unwrap() []error {
	if e.last == nil {
		return []error{e.ctxErr}
	}
	return []error{e.ctxErr, e.last}
}

// lastError returns the reason behind err for the Cause of an *Error: the
// last "not ready" error of a stopped wait, nil for a bare context error,
// else err itself.
func lastError(err error) error {
	var se *stoppedError
	if errors.As(err, &se) {
		return se.last
	}
	if err == context.Canceled || err == context.DeadlineExceeded {
		return nil
	}
	return err
}
