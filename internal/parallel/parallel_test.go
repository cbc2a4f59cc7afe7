package parallel

import (
	"errors"
	"sync/atomic"
	"testing"
)

func TestEachRunsAllAtOnceAndKeepsTheOrder(t *testing.T) {
	boom := errors.New("boom")
	var running, most atomic.Int32
	release := make(chan struct{})
	var arrived atomic.Int32
	errs := Each([]int{1, 2, 3}, func(i, item int) error {
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if arrived.Add(1) == 3 {
			close(release) // all three are in f at once
		}
		<-release
		running.Add(-1)
		if item == 2 {
			return boom
		}
		return nil
	})
	if len(errs) != 3 || errs[0] != nil || !errors.Is(errs[1], boom) || errs[2] != nil {
		t.Fatalf("errors = %v, want [nil boom nil]", errs)
	}
	if most.Load() != 3 {
		t.Fatalf("at most %d ran at once, want 3", most.Load())
	}
}
