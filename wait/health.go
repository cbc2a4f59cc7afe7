package wait

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/heph-go/heph/internal/retry"
)

// HealthStrategy waits for the image's HEALTHCHECK to report "healthy";
// ForHealthCheck builds it.
type HealthStrategy struct {
	built bool // by ForHealthCheck: the zero value is invalid
}

// ForHealthCheck returns a strategy that is ready once Docker reports the
// container healthy, as decided by the image's HEALTHCHECK (or the one
// heph set). It is event-driven: it checks the state once (already healthy:
// ready at once) and then follows the health events, so it reacts the
// moment the status changes.
//
// A container without a health check fails at once: "the image has no
// HEALTHCHECK". While it is "starting" or "unhealthy" the strategy keeps
// waiting, since an unhealthy container can recover; when the context ends
// the error wraps ctx.Err() and quotes the status and the output of the
// last check, e.g. `health is unhealthy: last check: "connection refused"`.
func ForHealthCheck() HealthStrategy { return HealthStrategy{built: true} }

// String describes s for errors: ForHealthCheck().
func (s HealthStrategy) String() string {
	if !s.built {
		return "HealthStrategy{}"
	}
	return "ForHealthCheck()"
}

// Validate returns nil for a strategy ForHealthCheck built, and an error
// wrapping ErrInvalid for the zero value.
func (s HealthStrategy) Validate() error { return Validate(s) }

func (s HealthStrategy) check() error {
	if !s.built {
		return zeroValue("HealthStrategy", "ForHealthCheck")
	}
	return nil
}

// errNoHealthcheck is the permanent error of ForHealthCheck on a container
// without a health check.
var errNoHealthcheck = errors.New("the image has no HEALTHCHECK")

// Wait returns nil once t is healthy, an error at once when it has no
// health check, or an error wrapping ctx.Err() and the last health output
// when ctx ends. A failing State or event subscription is retried with
// backoff.
func (s HealthStrategy) Wait(ctx context.Context, t Target) error {
	if err := s.Validate(); err != nil {
		return err
	}
	var last error    // the last health status seen, with its output
	var output string // the output of the last check seen in a state
	// describe is the status with the last check's output seen so far: an
	// event may come before the state shows its check (Podman, where heph
	// runs the checks and reports the status itself, writes the log after).
	describe := func(st State) error {
		if n := len(st.HealthLog); n > 0 {
			output = snippet([]byte(strings.TrimSpace(st.HealthLog[n-1])))
		}
		if output == "" {
			return fmt.Errorf("health is %s", st.Health)
		}
		return fmt.Errorf("health is %s: last check: %s", st.Health, output)
	}
	err := poll(ctx, pollMaxInterval, func(ctx context.Context) error {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		// Subscribe first, then look at the state: no change is missed.
		events, err := t.HealthEvents(sctx)
		if err != nil {
			return fmt.Errorf("health events: %w", err)
		}
		st, err := t.State(sctx)
		if err != nil {
			return fmt.Errorf("state: %w", err)
		}
		switch st.Health {
		case "":
			return Permanent(errNoHealthcheck)
		case "healthy":
			return nil
		}
		last = describe(st)
		for {
			select {
			case <-ctx.Done():
				return last
			case h, ok := <-events:
				switch {
				case !ok:
					return fmt.Errorf("health events ended; %w", last)
				case h == "healthy":
					return nil
				}
				// The state is newer than the event: its status wins.
				st, err := t.State(sctx)
				switch {
				case err != nil || st.Health == "":
					st = State{Health: h}
				case st.Health == "healthy":
					return nil
				}
				last = describe(st)
			}
		}
	})
	var se *retry.Stopped
	if errors.As(err, &se) && last != nil {
		return stopped(ctx, last)
	}
	return err
}
