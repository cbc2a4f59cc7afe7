package wait

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/heph-go/heph/internal/retry"
)

// All returns a strategy that is ready once every one of strategies is,
// waiting for each in turn, in the order given, all under the same
// deadline. It fails as soon as one fails; the error names that one, e.g.
// `ForLog("ready"): log ended after 0 of 1 matching lines`. All() with no
// strategies is ready at once. A nil or invalid strategy among them is an
// invalid argument reported by Validate and Wait.
//
// The value returned also has the methods String (All(s1, s2)) and
// Validate. The slice is copied.
func All(strategies ...Strategy) Strategy {
	return allStrategy{list: slices.Clone(strategies)}
}

type allStrategy struct{ list []Strategy }

func (s allStrategy) String() string { return "All(" + describeList(s.list) + ")" }

func (s allStrategy) Validate() error { return Validate(s) }

func (s allStrategy) check() error { return checkList(s.list) }

func (s allStrategy) expectsExit() bool { return slices.ContainsFunc(s.list, expectsExit) }

func (s allStrategy) Wait(ctx context.Context, t Target) error {
	if err := s.Validate(); err != nil {
		return err
	}
	for _, c := range s.list {
		if err := c.Wait(ctx, t); err != nil {
			return within(c, err)
		}
	}
	return nil
}

// Any returns a strategy that is ready once one of strategies is: it runs
// them concurrently, and the first to succeed cancels the others (Wait
// returns after they have returned). When every one fails, the error
// joins all their errors, each naming its strategy. At least one strategy
// is needed; a nil or invalid one is an invalid argument reported by
// Validate and Wait.
//
// The value returned also has the methods String (Any(s1, s2)) and
// Validate. The slice is copied.
func Any(strategies ...Strategy) Strategy {
	return anyStrategy{list: slices.Clone(strategies)}
}

type anyStrategy struct{ list []Strategy }

func (s anyStrategy) String() string { return "Any(" + describeList(s.list) + ")" }

func (s anyStrategy) Validate() error { return Validate(s) }

func (s anyStrategy) check() error {
	if len(s.list) == 0 {
		return errors.New("no strategies: Any needs at least one")
	}
	return checkList(s.list)
}

func (s anyStrategy) expectsExit() bool { return slices.ContainsFunc(s.list, expectsExit) }

func (s anyStrategy) Wait(ctx context.Context, t Target) error {
	if err := s.Validate(); err != nil {
		return err
	}
	ctx2, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		i   int
		err error
	}
	results := make(chan result, len(s.list))
	for i, c := range s.list {
		go func() { results <- result{i, c.Wait(ctx2, t)} }()
	}
	errs := make([]error, len(s.list))
	ready := false
	for range s.list {
		r := <-results
		if r.err == nil {
			if !ready {
				ready = true
				cancel() // the losers stop; wait for them below
			}
			continue
		}
		errs[r.i] = r.err
	}
	if ready {
		return nil
	}
	if ctx.Err() != nil {
		lasts := make([]error, len(errs))
		for i, err := range errs {
			if last := lastError(err); last != nil {
				lasts[i] = fmt.Errorf("%s: %w", describe(s.list[i]), last)
			}
		}
		return stopped(ctx, errors.Join(lasts...))
	}
	for i, err := range errs {
		errs[i] = within(s.list[i], err)
	}
	return errors.Join(errs...)
}

// WithTimeout returns a strategy that waits for s at most d. It is the one
// place a per-strategy timeout lives: strategies themselves have none,
// and the whole wait is bounded by the context (heph's startup timeout).
// Use it inside All or Any, e.g. to give up on a log line after 5 s and
// let another strategy decide. When d passes the error wraps
// context.DeadlineExceeded and the last error of s. d ≤ 0 and a nil or
// invalid s are invalid arguments reported by Validate and Wait.
//
// The value returned also has the methods String (WithTimeout(5s,
// ForLog("ready"))) and Validate.
func WithTimeout(d time.Duration, s Strategy) Strategy {
	return timeoutStrategy{d: d, s: s}
}

type timeoutStrategy struct {
	d time.Duration
	s Strategy
}

func (s timeoutStrategy) String() string {
	return fmt.Sprintf("WithTimeout(%s, %s)", s.d, describe(s.s))
}

func (s timeoutStrategy) Validate() error { return Validate(s) }

func (s timeoutStrategy) check() error {
	var errs problems
	if s.d <= 0 {
		errs = errs.add(fmt.Errorf("timeout must be positive, got %s", s.d))
	}
	if err := checkChild(s.s); err != nil {
		errs = errs.add(fmt.Errorf("%s: %w", describe(s.s), err))
	}
	return errs.err()
}

func (s timeoutStrategy) expectsExit() bool { return expectsExit(s.s) }

func (s timeoutStrategy) Wait(ctx context.Context, t Target) error {
	if err := s.Validate(); err != nil {
		return err
	}
	ctx2, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	return s.s.Wait(ctx2, t)
}

// within prefixes the error of a strategy nested in All or Any with its
// name. For a wait cut short by its context the name goes on the last
// error, so that Run still reports a timeout.
func within(s Strategy, err error) error {
	if se, ok := err.(*retry.Stopped); ok {
		if se.Last == nil {
			return &retry.Stopped{Ctx: se.Ctx, Last: fmt.Errorf("%s: not ready", describe(s))}
		}
		return &retry.Stopped{Ctx: se.Ctx, Last: fmt.Errorf("%s: %w", describe(s), se.Last)}
	}
	return fmt.Errorf("%s: %w", describe(s), err)
}

func describeList(list []Strategy) string {
	names := make([]string, len(list))
	for i, s := range list {
		names[i] = describe(s)
	}
	return strings.Join(names, ", ")
}

// checkList returns the problems of the strategies in list, each naming
// its position and strategy.
func checkList(list []Strategy) error {
	var errs problems
	for i, s := range list {
		if err := checkChild(s); err != nil {
			errs = errs.add(fmt.Errorf("strategy %d (%s): %w", i+1, describe(s), err))
		}
	}
	return errs.err()
}
