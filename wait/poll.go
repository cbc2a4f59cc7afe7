package wait

import (
	"context"
	"errors"
	"time"

	"github.com/heph-go/heph/internal/retry"
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

// poll calls probe until it returns nil (ready: poll returns nil), an error
// wrapped with Permanent (give up: poll returns the unwrapped error at once)
// or ctx ends (poll returns a *retry.Stopped with the last error probe
// returned). Any other error means "not ready yet, try again" after a
// backoff of at most maxInterval. It is heph's one polling loop.
func poll(ctx context.Context, maxInterval time.Duration, probe func(ctx context.Context) error) error {
	return retry.Poll(ctx, retry.Policy{
		Initial: pollInitial, Max: maxInterval, Multiplier: pollMultiplier, Jitter: pollRandomFactor,
	}, probe)
}

// ending reports whether ctx is done or its deadline has passed.
func ending(ctx context.Context) bool { return retry.Ending(ctx) }

// stopped returns the error of a wait cut short by the end of ctx; last is
// the last reason the container was not ready. errors.Is(err,
// context.DeadlineExceeded) holds for a timeout.
func stopped(ctx context.Context, last error) error { return retry.Stop(ctx, last) }

// lastError returns the reason behind err for the Cause of an *Error: the
// last "not ready" error of a stopped wait, nil for a bare context error,
// else err itself.
func lastError(err error) error {
	var se *retry.Stopped
	if errors.As(err, &se) {
		return se.Last
	}
	if err == context.Canceled || err == context.DeadlineExceeded {
		return nil
	}
	return err
}
