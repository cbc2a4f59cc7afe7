package heph

import (
	"context"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// poll calls op until it returns nil or a permanent error
// (backoff.Permanent), waiting between tries with exponential backoff from
// initial up to maxInterval, for as long as ctx allows. It returns op's last
// error (unwrapped from Permanent) or, when ctx ends first, ctx's error
// joined with op's last error.
func poll(ctx context.Context, initial, maxInterval time.Duration, op func() error) error {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(initial),
		backoff.WithMaxInterval(maxInterval),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.1),
		backoff.WithMaxElapsedTime(0),
	)
	var last error
	err := backoff.Retry(func() error {
		last = op()
		return last
	}, backoff.WithContext(b, ctx))
	if err != nil && ctx.Err() != nil && last != nil && err != last {
		return joinCtx(ctx.Err(), last)
	}
	return err
}

// ctxError is a context error that also carries the last error seen before
// the context ended; errors.Is matches both.
type ctxError struct{ ctx, last error }

func joinCtx(ctx, last error) error { return &ctxError{ctx: ctx, last: last} }

func (e *ctxError) Error() string   { return e.ctx.Error() + ": last error: " + e.last.Error() }
func (e *ctxError) Unwrap() []error { return []error{e.ctx, e.last} }

// permanent stops poll at once with err.
func permanent(err error) error { return backoff.Permanent(err) }

// eachConcurrently calls f for every item at once and returns their errors,
// in the order of items (nil where f succeeded), when all have returned.
func eachConcurrently[T any](items []T, f func(i int, item T) error) []error {
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, item := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i, item)
		}()
	}
	wg.Wait()
	return errs
}
