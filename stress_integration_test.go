//go:build integration && stress

package heph_test

// The stress tests take much of the daemon — dozens of networks and
// containers at once, or every one of its default address pools — and
// would starve the other packages that `go test ./...` runs at the same
// time. `make stress` runs them on their own, one package at a time, after
// `make test` (.ci/run does both); the ones that exhaust the pools also hold
// a lock across processes, so two runs on one machine never overlap.

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/subnet"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/heph-go/heph/wait"
)

// TestStressManyTestsEachOnItsOwnNetwork: 20 tests × 3 containers at once,
// each on its own network, reaching its siblings and no one else.
func TestStressManyTestsEachOnItsOwnNetwork(t *testing.T) {
	testsOnTheirOwnNetworks(t, 20)
}

// TestStressStartsWhileTheDefaultPoolsAreExhausted: someone else holds
// every one of the daemon's default address pools; heph's tests start all
// the same, on subnets of heph's own, and their containers reach each
// other by name.
func TestStressStartsWhileTheDefaultPoolsAreExhausted(t *testing.T) {
	testenv.Exclusive(t, "pools", 10*time.Minute)
	image := testenv.Image(t) // built before the pools go
	own, pooled := subnet.Counters.Own.Load(), subnet.Counters.Pooled.Load()
	start := time.Now()
	n := testenv.ExhaustPools(t)
	t.Logf("made %d networks outside heph in %s: the daemon's default pools are exhausted", n, time.Since(start).Round(time.Millisecond))

	server := heph.NewContainer(image).WithCmd("-http", ":8080").WithWaitStrategy(wait.ForLog("testapp: listening "))
	concurrently(t, 3, func(t *testing.T, _ int) {
		began := time.Now()
		cs := heph.StartAll(t, server.WithName("a"), server.WithName("b"))
		t.Logf("started 2 containers on the test's own network in %s", time.Since(began).Round(time.Millisecond))
		res := execOut(t, cs[0], "/testapp", "fetch", "http://b:8080/hostname")
		require.Equal(t, 0, res.ExitCode, "a reaches b by name: %s", res.Stderr)
	})
	require.Equal(t, int64(3), subnet.Counters.Own.Load()-own, "three networks on heph's subnets")
	require.Zero(t, subnet.Counters.Pooled.Load()-pooled, "none from the exhausted pools")
}

// TestStressNetworkPoolExhaustion: with HEPH_SUBNETS=pools, 40 tests at
// once, each with its own network, more than Docker's default pools hold.
// All pass, waiting their turn; the retry path ran.
func TestStressNetworkPoolExhaustion(t *testing.T) {
	t.Setenv(heph.EnvSubnets, "pools")
	testenv.Exclusive(t, "pools", 10*time.Minute)
	const tests = 40
	before := heph.NetworkPoolRetries()
	var mu sync.Mutex
	created := 0
	released := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(released) }) }

	start := time.Now()
	concurrently(t, tests, func(t *testing.T, i int) {
		n := heph.TestNetwork(t)
		require.NotEmpty(t, n.ID())
		mu.Lock()
		created++
		if created == tests {
			release()
		}
		mu.Unlock()
		// Hold the network until some other test had to retry (or all hold
		// one, which the assertion below rejects): this makes exhaustion
		// certain instead of a matter of timing.
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		for heph.NetworkPoolRetries() == before {
			select {
			case <-released:
				return
			case <-ctx.Done():
				t.Fatal("no test retried and not all networks exist")
			case <-time.After(20 * time.Millisecond):
			}
		}
		release()
	})
	retries := heph.NetworkPoolRetries() - before
	t.Logf("%d tests with a network each: %d retries on exhausted pools, %s in all", tests, retries, time.Since(start))
	require.Positive(t, retries, "the daemon's pools were never exhausted: the retry path did not run")
}
