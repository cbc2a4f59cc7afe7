package wait

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/cenkalti/backoff/v4"
	"github.com/heph-go/heph/internal/port"
)

// ErrInvalid is wrapped by every error reporting a strategy built with bad
// arguments (a bad regexp, a malformed port, an occurrence below 1, a nil
// strategy, …): errors.Is(err, ErrInvalid) tells a programmer error from a
// container that is not ready. Validate and Run return such errors before
// any call to the Target.
var ErrInvalid = errors.New("invalid strategy")

// ErrExited is wrapped by the *Error that Run returns when the container
// stopped while a strategy that does not expect it to stop was waiting.
var ErrExited = errors.New("container exited")

// Permanent wraps err so that a polling strategy gives up at once instead
// of trying again: return Permanent(err) from a ForFunc(…).WithRetry()
// function when waiting longer cannot help. It returns nil for a nil err.
// The error the strategy returns is err itself, not the wrapper. It is
// backoff.Permanent: errors wrapped with github.com/cenkalti/backoff/v4's
// Permanent are recognised too.
func Permanent(err error) error {
	return backoff.Permanent(err)
}

// validator is what Validate checks: every strategy of this package, and
// any user strategy that wants its arguments checked before a wait starts.
type validator interface {
	Validate() error
}

// checker is implemented by the strategies of this package: check returns
// the problems with the strategy's arguments, without the "wait: invalid
// strategy X:" prefix Validate adds.
type checker interface {
	check() error
}

// exitExpecter is implemented by strategies that wait for the container to
// stop (ForExit, and All, Any and WithTimeout containing it): Run does not
// fail fast when such a container exits.
type exitExpecter interface {
	expectsExit() bool
}

// Validate reports whether s was built with valid arguments. It returns an
// error wrapping ErrInvalid for a nil strategy or for a strategy of this
// package built with bad arguments, naming the strategy and every problem,
// e.g.
//
//	wait: invalid strategy ForLogRegexp("(").WithOccurrence(0): bad regexp: error parsing regexp: missing closing ): `(`
//	occurrence must be at least 1, got 0
//
// A strategy of another package is checked when it has a method
// Validate() error; its error is returned as is. heph calls Validate when a
// container starts, before any Docker call; Run and every Wait of this
// package call it too, so a bad strategy fails at once and never panics.
func Validate(s Strategy) error {
	if isNil(s) {
		return fmt.Errorf("wait: %w: nil strategy", ErrInvalid)
	}
	if c, ok := s.(checker); ok {
		if err := c.check(); err != nil {
			return fmt.Errorf("wait: %w %s: %w", ErrInvalid, describe(s), err)
		}
		return nil
	}
	if v, ok := s.(validator); ok {
		return v.Validate()
	}
	return nil
}

// checkChild returns the problems of a strategy nested in All, Any or
// WithTimeout.
func checkChild(s Strategy) error {
	if isNil(s) {
		return errors.New("nil strategy")
	}
	if c, ok := s.(checker); ok {
		return c.check()
	}
	if v, ok := s.(validator); ok {
		return v.Validate()
	}
	return nil
}

// isNil reports a nil interface or an interface holding a nil pointer, map,
// func, … (calling a method on it would likely panic).
func isNil(s Strategy) bool {
	if s == nil {
		return true
	}
	v := reflect.ValueOf(s)
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Slice, reflect.Chan, reflect.Interface:
		return v.IsNil()
	}
	return false
}

// expectsExit reports whether s waits for the container to stop.
func expectsExit(s Strategy) bool {
	e, ok := s.(exitExpecter)
	return ok && e.expectsExit()
}

// describe names s in errors: its String method, else its type.
func describe(s Strategy) string {
	if isNil(s) {
		return "<nil>"
	}
	if st, ok := s.(fmt.Stringer); ok {
		return st.String()
	}
	return fmt.Sprintf("%T", s)
}

// problems collects the argument errors of a strategy value. add never
// modifies the receiver's backing array, so values sharing it stay
// unchanged.
type problems []error

func (p problems) add(err error) problems {
	return append(p[:len(p):len(p)], err)
}

func (p problems) err() error {
	return errors.Join(p...)
}

// zeroValue is the problem of a strategy's zero value: only its For…
// function builds a strategy that waits for something.
func zeroValue(typ, build string) error {
	return fmt.Errorf("zero value %s{}: build it with %s", typ, build)
}

// parsePort normalises a container port with heph's one port parser:
// "8080" → "8080/tcp", "53/UDP" → "53/udp".
func parsePort(p string) (string, error) {
	pp, err := port.Parse(p)
	if err != nil {
		return "", fmt.Errorf("bad port %q: %w", p, err)
	}
	return pp.String(), nil
}
