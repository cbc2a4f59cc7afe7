package wait

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/heph-go/heph/internal/redact"
)

// ExecStrategy waits until a command run in the container succeeds;
// ForExec builds it. It is an immutable value: every With… method returns
// a modified copy, and one value may serve any number of parallel waits.
type ExecStrategy struct {
	cmd      []string
	exitCode int
	matcher  func([]byte) bool
	errs     problems
	built    bool // by ForExec: the zero value is invalid
}

// ForExec returns a strategy that is ready once cmd, run in the container
// (Target.Exec, like docker exec), exits with code 0 (see WithExitCode) and
// its standard output satisfies WithOutputMatcher, if set. It polls with
// backoff (up to 250 ms between runs). It needs the command in the image:
// on a FROM scratch image use ForListeningPort, ForHTTP or ForLog instead.
//
// A failed exec, another exit code or output the matcher rejects mean "not
// ready yet"; when the context ends the error wraps ctx.Err() and the last
// of them, e.g. `exit code 1, want 0 (stdout: "", stderr: "no response")`.
// An empty cmd is an invalid argument reported by Validate and Wait.
func ForExec(cmd ...string) ExecStrategy {
	s := ExecStrategy{cmd: slices.Clone(cmd), built: true}
	if len(cmd) == 0 || cmd[0] == "" {
		s.errs = s.errs.add(errors.New("empty command"))
	}
	return s
}

// WithExitCode returns a copy of s that is ready when the command exits
// with code (default 0).
func (s ExecStrategy) WithExitCode(code int) ExecStrategy {
	s.exitCode = code
	return s
}

// WithOutputMatcher returns a copy of s that is ready only when match
// returns true for the command's standard output. match may be called
// concurrently by parallel waits. A nil match is an invalid argument.
func (s ExecStrategy) WithOutputMatcher(match func(stdout []byte) bool) ExecStrategy {
	if match == nil {
		s.errs = s.errs.add(errors.New("nil output matcher"))
	}
	s.matcher = match
	return s
}

// String describes s for errors: ForExec("pg_isready", "-U", "app"),
// followed by .WithExitCode(n) when n is not 0. Secrets on the command line
// are masked (ForExec("mysql", "-p[redacted]"): see the README's Security
// section).
func (s ExecStrategy) String() string {
	if !s.built {
		return "ExecStrategy{}"
	}
	q := make([]string, len(s.cmd))
	for i, a := range redact.Args(s.cmd) {
		q[i] = fmt.Sprintf("%q", a)
	}
	str := "ForExec(" + strings.Join(q, ", ") + ")"
	if s.exitCode != 0 {
		str += fmt.Sprintf(".WithExitCode(%d)", s.exitCode)
	}
	return str
}

// Validate returns an error wrapping ErrInvalid that lists every bad
// argument s was built with, or nil.
func (s ExecStrategy) Validate() error { return Validate(s) }

func (s ExecStrategy) check() error {
	if !s.built {
		return zeroValue("ExecStrategy", "ForExec")
	}
	return s.errs.err()
}

// Wait runs the command with backoff until it succeeds (nil) or ctx ends
// (an error wrapping ctx.Err() and the last failure).
func (s ExecStrategy) Wait(ctx context.Context, t Target) error {
	if err := s.Validate(); err != nil {
		return err
	}
	// The command's own secrets (-psecret) are masked where its output
	// quotes them.
	known := redact.ArgSecrets(s.cmd)
	return poll(ctx, pollMaxInterval, func(ctx context.Context) error {
		res, err := t.Exec(ctx, slices.Clone(s.cmd))
		if err != nil {
			return fmt.Errorf("exec: %w", err)
		}
		if res.ExitCode != s.exitCode {
			return fmt.Errorf("exit code %d, want %d (stdout: %s, stderr: %s)", res.ExitCode, s.exitCode, maskedSnippet(known, res.Stdout), maskedSnippet(known, res.Stderr))
		}
		if s.matcher != nil && !s.matcher(res.Stdout) {
			return fmt.Errorf("stdout rejected by the output matcher (stdout: %s)", maskedSnippet(known, res.Stdout))
		}
		return nil
	})
}
