package wait

import (
	"context"
	"errors"
	"fmt"
)

// ExitStrategy waits for a one-shot container to finish; ForExit builds
// it.
type ExitStrategy struct {
	exitCode int
	built    bool // by ForExit: the zero value is invalid
}

// ForExit returns a strategy for one-shot containers (migrations,
// seeders): it is ready once the container has stopped with exit code 0
// (see WithExitCode). It is event-driven (Target.WaitExit, Docker's
// container wait). Run does not fail fast when the container exits under
// ForExit, nor under All, Any or WithTimeout containing it.
//
// Another exit code fails at once, naming both: "container exited with
// code 3, want 0" (with " (OOM-killed)" when the kernel killed it). When the
// context ends first the error wraps ctx.Err() with "container still
// running". A failing WaitExit is retried with backoff.
func ForExit() ExitStrategy { return ExitStrategy{built: true} }

// WithExitCode returns a copy of s that expects the exit code code
// (default 0).
func (s ExitStrategy) WithExitCode(code int) ExitStrategy {
	s.exitCode = code
	return s
}

// String describes s for errors: ForExit(), followed by .WithExitCode(n)
// when n is not 0.
func (s ExitStrategy) String() string {
	if !s.built {
		return "ExitStrategy{}"
	}
	if s.exitCode != 0 {
		return fmt.Sprintf("ForExit().WithExitCode(%d)", s.exitCode)
	}
	return "ForExit()"
}

// Validate returns nil for a strategy ForExit built (every exit code is
// valid), and an error wrapping ErrInvalid for the zero value.
func (s ExitStrategy) Validate() error { return Validate(s) }

func (s ExitStrategy) check() error {
	if !s.built {
		return zeroValue("ExitStrategy", "ForExit")
	}
	return nil
}

func (ExitStrategy) expectsExit() bool { return true }

var errStillRunning = errors.New("container still running")

// Wait blocks until the container stops: nil for the expected exit code,
// else an error naming both codes; an error wrapping ctx.Err() when ctx
// ends first.
func (s ExitStrategy) Wait(ctx context.Context, t Target) error {
	if err := s.Validate(); err != nil {
		return err
	}
	return poll(ctx, pollMaxInterval, func(ctx context.Context) error {
		st, err := t.WaitExit(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return errStillRunning
			}
			return fmt.Errorf("wait for exit: %w", err)
		}
		if st.ExitCode != s.exitCode {
			oom := ""
			if st.OOMKilled {
				oom = " (OOM-killed)"
			}
			return Permanent(fmt.Errorf("container exited with code %d%s, want %d", st.ExitCode, oom, s.exitCode))
		}
		return nil
	})
}
