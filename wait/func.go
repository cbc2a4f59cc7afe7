package wait

import (
	"context"
	"errors"
	"reflect"
	"runtime"
	"strings"

	"github.com/cenkalti/backoff/v4"
)

// FuncStrategy adapts a function to a Strategy; ForFunc builds it. It is
// an immutable value, safe for concurrent use when its function is.
type FuncStrategy struct {
	f     func(ctx context.Context, t Target) error
	name  string
	retry bool
	built bool // by ForFunc: the zero value is invalid
}

// ForFunc returns a strategy whose Wait is f, like http.HandlerFunc: f is
// called once, and the container is ready when it returns nil. f must
// return promptly when ctx ends; an error it returns then is reported as
// the last error of a timeout (errors.Is(err, context.DeadlineExceeded)
// holds). Use it for checks that block until ready by themselves, or
// call WithRetry to have the wait poll f.
//
// A nil f is an invalid argument reported by Validate and Wait. f may be
// called concurrently by parallel waits sharing the strategy.
func ForFunc(f func(ctx context.Context, t Target) error) FuncStrategy {
	return FuncStrategy{f: f, name: funcName(f), built: true}
}

// WithRetry returns a copy of s that calls its function again, with the
// backoff of every polling strategy (2 ms growing to 250 ms), until it
// returns nil (ready) or an error wrapped with Permanent (the wait fails
// at once with that error) or the context ends (the error wraps ctx.Err()
// and the function's last error). Any other error means "not ready yet".
func (s FuncStrategy) WithRetry() FuncStrategy {
	s.retry = true
	return s
}

// String describes s for errors: ForFunc(pkg.checkDB), followed by
// .WithRetry() when it retries.
func (s FuncStrategy) String() string {
	if !s.built {
		return "FuncStrategy{}"
	}
	str := "ForFunc(" + s.name + ")"
	if s.retry {
		str += ".WithRetry()"
	}
	return str
}

// Validate returns an error wrapping ErrInvalid when the function is nil,
// or nil.
func (s FuncStrategy) Validate() error { return Validate(s) }

func (s FuncStrategy) check() error {
	if !s.built {
		return zeroValue("FuncStrategy", "ForFunc")
	}
	if s.f == nil {
		return errors.New("nil function")
	}
	return nil
}

// Wait calls the function (once, or with retries after WithRetry) and
// returns nil when it succeeded, else its error (unwrapped from Permanent),
// wrapping ctx.Err() too when ctx has ended.
func (s FuncStrategy) Wait(ctx context.Context, t Target) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if s.retry {
		return poll(ctx, pollMaxInterval, func(ctx context.Context) error { return s.f(ctx, t) })
	}
	err := s.f(ctx, t)
	if err == nil {
		return nil
	}
	var perm *backoff.PermanentError
	if errors.As(err, &perm) {
		err = perm.Err
	}
	if ctx.Err() != nil {
		return stopped(ctx, err)
	}
	return err
}

// funcName names f for String: its package-qualified name without the
// import path, e.g. "db_test.TestQuery.func1".
func funcName(f func(ctx context.Context, t Target) error) string {
	if f == nil {
		return "nil"
	}
	fn := runtime.FuncForPC(reflect.ValueOf(f).Pointer())
	if fn == nil {
		return "func"
	}
	name := fn.Name()
	return name[strings.LastIndex(name, "/")+1:]
}
