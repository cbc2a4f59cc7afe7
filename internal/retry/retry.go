// Package retry is heph's one polling loop: exponential backoff with jitter,
// bounded by a context, that separates "keep trying" (any error) from "give
// up now" (Permanent). The Orchestrator, the watchdog, sessions and package
// wait all poll through it.
package retry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/heph-go/heph/internal/errs"
)

// Policy shapes the waits between tries: the first is about Initial, each
// next one Multiplier times longer (±Jitter, a fraction), never longer than
// Max. There is no limit on the number of tries: the context bounds a poll.
type Policy struct {
	Initial, Max time.Duration
	Multiplier   float64 // 0 means 2
	Jitter       float64 // 0 means no jitter
}

// BackOff returns p as a backoff.BackOff for loops that pace themselves
// (NextBackOff gives the next wait).
func (p Policy) BackOff() *backoff.ExponentialBackOff {
	m := p.Multiplier
	if m == 0 {
		m = 2
	}
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.Initial),
		backoff.WithMaxInterval(p.Max),
		backoff.WithMultiplier(m),
		backoff.WithRandomizationFactor(p.Jitter),
		backoff.WithMaxElapsedTime(0),
	)
}

// Permanent wraps err so that Poll stops at once and returns err. It is
// backoff.Permanent: errors wrapped by that package stop Poll too. A nil err
// gives nil.
func Permanent(err error) error { return backoff.Permanent(err) }

// Stopped is what Poll returns when its context ends first: the context's
// error and the last error op returned (nil when op never failed for another
// reason). errors.Is matches both.
type Stopped struct {
	Ctx  error // context.DeadlineExceeded or context.Canceled
	Last error
}

func (e *Stopped) Error() string {
	if e.Last == nil {
		return e.Ctx.Error()
	}
	return e.Ctx.Error() + ": last error: " + e.Last.Error()
}

// Unwrap returns the context's error and the last error.
func (e *Stopped) Unwrap() []error {
	if e.Last == nil {
		return []error{e.Ctx}
	}
	return []error{e.Ctx, e.Last}
}

// Poll calls op until it returns nil (Poll returns nil), an error wrapped
// with Permanent (Poll returns the unwrapped error at once), or ctx ends
// (Poll returns a *Stopped holding op's last error). Any other error means
// "try again" after the next wait of p. An error op returns while ctx is
// ending (often only "i/o timeout") does not replace the previous one.
func Poll(ctx context.Context, p Policy, op func(ctx context.Context) error) error {
	var last error
	gaveUp := false
	err := backoff.Retry(func() error {
		err := op(ctx)
		if err == nil {
			return nil
		}
		var perm *backoff.PermanentError
		if errors.As(err, &perm) {
			gaveUp = true
			return err
		}
		if !Ending(ctx) || last == nil {
			last = err
		}
		return err
	}, backoff.WithContext(p.BackOff(), ctx))
	switch {
	case err == nil:
		return nil
	case gaveUp:
		return err
	case ctx.Err() != nil:
		return Stop(ctx, last)
	}
	return err
}

// Stop returns the *Stopped for a wait that ctx cut short, with last as the
// reason it had not succeeded (dropped when it is only a context error; the
// Last of a *Stopped is taken over).
func Stop(ctx context.Context, last error) error {
	ctxErr := ctx.Err()
	if ctxErr == nil {
		ctxErr = context.Canceled
	}
	if last == context.Canceled || last == context.DeadlineExceeded {
		last = nil
	}
	if se, ok := last.(*Stopped); ok {
		last = se.Last
	}
	return &Stopped{Ctx: ctxErr, Last: last}
}

// Ending reports whether ctx is done or its deadline has passed (a dial sees
// the deadline pass a moment before ctx.Err() is set).
func Ending(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// Sleep waits d, or until ctx ends; then it returns ctx's error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Teardown paces a removal while the daemon does not answer (Answered), for
// up to TeardownPatience (variables for tests).
var (
	Teardown         = Policy{Initial: 100 * time.Millisecond, Max: 2 * time.Second, Jitter: 0.3}
	TeardownPatience = 30 * time.Second
)

// Answered calls remove until it does not fail for want of the daemon
// (errs.DockerUnavailable: a daemon restarting, a socket briefly gone), for
// up to TeardownPatience or until ctx ends, and returns how long it waited
// for the daemon and remove's last error — which, when the daemon never
// answered, says how long it was tried.
func Answered(ctx context.Context, remove func() error) (time.Duration, error) {
	start := time.Now()
	var last error
	tries := 0
	pctx, cancel := context.WithTimeout(ctx, TeardownPatience)
	defer cancel()
	_ = Poll(pctx, Teardown, func(context.Context) error {
		tries++
		if last = remove(); errors.Is(last, errs.DockerUnavailable) {
			return last
		}
		return nil
	})
	if tries == 1 {
		return 0, last
	}
	waited := time.Since(start).Round(time.Millisecond)
	if errors.Is(last, errs.DockerUnavailable) {
		return waited, fmt.Errorf("%w (the daemon did not answer %d tries over %s)", last, tries, waited)
	}
	return waited, last
}
