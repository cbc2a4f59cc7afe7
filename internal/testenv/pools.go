package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/heph-go/heph/internal/turns"
)

// Exclusive makes the test the only one holding name among every process
// of this user on this machine, until it ends: it waits (up to wait) for
// the tests of other processes — other packages, other clones — that hold
// it. Tests that take something from the whole daemon (its address pools)
// take it, so they never overlap.
func Exclusive(t testing.TB, name string, wait time.Duration) {
	t.Helper()
	line, err := turns.Open("test-" + name)
	if err != nil {
		t.Fatalf("exclusive %s: %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	start := time.Now()
	turn, err := line.Join(ctx, 1)
	if err != nil {
		t.Fatalf("exclusive %s: another process held it for %s: %v", name, wait, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Logf("exclusive %s: waited %s for other processes' tests", name, d.Round(time.Millisecond))
	}
	t.Cleanup(turn.Done)
}

// ExhaustPools creates bridge networks from the daemon's default address
// pools — through the SDK, as someone else's program would, not labelled as
// heph's — until the daemon refuses for want of a pool, and returns how many
// it made. They are removed when the test ends. The test should hold
// Exclusive(t, "pools", …): other tests on this daemon that need a pool wait
// meanwhile.
func ExhaustPools(t testing.TB) int {
	t.Helper()
	c := Docker(t)
	var names []string
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, n := range names {
			if _, err := c.NetworkRemove(ctx, n, client.NetworkRemoveOptions{}); err != nil {
				t.Errorf("remove the network %s that exhausted the pools: %v", n, err)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	removeDeadExhausters(ctx, t, c)
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatalf("made %d networks and the daemon's pools are not exhausted", i)
		}
		name := fmt.Sprintf("exhaust-pools-%d-%d", os.Getpid(), i)
		_, err := c.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: map[string]string{"heph-tests.exhaust": "true"}})
		if err == nil {
			names = append(names, name)
			continue
		}
		if strings.Contains(err.Error(), "could not find an available, non-overlapping IPv4 address pool") {
			return len(names)
		}
		t.Fatalf("exhaust the pools: network %d: %v", i, err)
	}
}

// removeDeadExhausters removes the networks an earlier ExhaustPools left
// behind when its process died before its cleanup.
func removeDeadExhausters(ctx context.Context, t testing.TB, c *client.Client) {
	t.Helper()
	ns, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("label", "heph-tests.exhaust=true")})
	if err != nil {
		t.Fatalf("list the networks of earlier runs: %v", err)
	}
	for _, n := range ns.Items {
		var pid, i int
		if _, err := fmt.Sscanf(n.Name, "exhaust-pools-%d-%d", &pid, &i); err != nil || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if _, err := c.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil {
			t.Logf("remove %s, left by a dead test process: %v", n.Name, err)
		}
	}
}
