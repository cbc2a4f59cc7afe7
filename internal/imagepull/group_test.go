package imagepull

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// blockingJob is a job whose work runs until its context ends or release
// is closed, counting its runs; stopped receives the work's context error.
func blockingJob(runs *atomic.Int32, release <-chan struct{}, stopped chan<- error) Job {
	return Job{
		Key: "pull x", Op: "pull image", Subject: "x", Timeout: time.Minute,
		Work: func(ctx context.Context, _ *Reporter) (string, error) {
			runs.Add(1)
			select {
			case <-release:
				return "done", nil
			case <-ctx.Done():
				stopped <- ctx.Err()
				return "", ctx.Err()
			}
		},
	}
}

func TestGroupSharesOneJobThatOutlivesACallerWhoGivesUp(t *testing.T) {
	var g Group
	var runs atomic.Int32
	release := make(chan struct{})
	stopped := make(chan error, 1)
	j := blockingJob(&runs, release, stopped)

	quitter, quit := context.WithCancel(context.Background())
	quitterErr := make(chan error, 1)
	go func() { _, err := g.Do(quitter, j); quitterErr <- err }()
	stayerRes := make(chan string, 1)
	require.Eventually(t, func() bool { return g.Running() == 1 }, 10*time.Second, time.Millisecond)
	go func() { r, _ := g.Do(context.Background(), j); stayerRes <- r }()
	require.Eventually(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.calls["pull x"].waiters == 2 }, 10*time.Second, time.Millisecond)

	quit()
	require.ErrorIs(t, <-quitterErr, context.Canceled, "the caller who gave up hears so at once")
	select {
	case err := <-stopped:
		t.Fatalf("the job stopped (%v) though a caller still waits", err)
	default:
	}
	close(release)
	require.Equal(t, "done", <-stayerRes)
	require.EqualValues(t, 1, runs.Load(), "one job for both")
}

func TestGroupStopsTheJobWhenEveryCallerGaveUp(t *testing.T) {
	var g Group
	var runs atomic.Int32
	stopped := make(chan error, 1)
	j := blockingJob(&runs, nil, stopped)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := g.Do(ctx, j); errc <- err }()
	require.Eventually(t, func() bool { return g.Running() == 1 }, 10*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)
	require.True(t, errors.Is(<-stopped, context.Canceled), "the work's context ended with its last caller")

	// A later caller starts afresh instead of joining the stopping job.
	release := make(chan struct{})
	close(release)
	r, err := g.Do(context.Background(), blockingJob(&runs, release, stopped))
	require.NoError(t, err)
	require.Equal(t, "done", r)
	require.EqualValues(t, 2, runs.Load())
}
