package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

var fast = Policy{Initial: time.Millisecond, Max: 2 * time.Millisecond}

func TestPollSucceedsAfterRetries(t *testing.T) {
	n := 0
	err := Poll(context.Background(), fast, func(context.Context) error {
		n++
		if n < 4 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || n != 4 {
		t.Fatalf("Poll = %v after %d tries; want nil after 4", err, n)
	}
}

func TestPollPermanentStopsAtOnce(t *testing.T) {
	boom := errors.New("boom")
	n := 0
	err := Poll(context.Background(), fast, func(context.Context) error { n++; return Permanent(boom) })
	if err != boom || n != 1 {
		t.Fatalf("Poll = %v after %d tries; want boom itself after 1", err, n)
	}
}

func TestPollStoppedKeepsLastError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	last := errors.New("refused")
	err := Poll(ctx, fast, func(ctx context.Context) error {
		if Ending(ctx) {
			return errors.New("i/o timeout")
		}
		return last
	})
	var st *Stopped
	if !errors.As(err, &st) || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, last) {
		t.Fatalf("Poll = %v; want a *Stopped matching DeadlineExceeded and the last real error", err)
	}
	if got, want := err.Error(), "context deadline exceeded: last error: refused"; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
}

func TestStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Stop(ctx, context.Canceled); err.Error() != "context canceled" {
		t.Fatalf("a context error as last is dropped: %v", err)
	}
	inner := Stop(ctx, errors.New("x"))
	if err := Stop(ctx, inner); err.(*Stopped).Last.Error() != "x" {
		t.Fatalf("a *Stopped's Last is taken over: %v", err)
	}
	if err := Stop(context.Background(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop on a live context says canceled: %v", err)
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled ctx = %v", err)
	}
}

func TestBackOffGrowsToMax(t *testing.T) {
	b := Policy{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond}.BackOff()
	var got []time.Duration
	for range 4 {
		got = append(got, b.NextBackOff())
	}
	want := []time.Duration{10, 20, 40, 40}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("waits %v, want %v ms (no jitter, multiplier 2)", got, want)
		}
	}
}
