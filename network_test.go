package heph

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
)

func TestCreateNetwork(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	var spec engine.NetworkSpec
	f.Hook = func(_ context.Context, call string, arg any) error {
		if call == "NetworkCreate" {
			spec = arg.(engine.NetworkSpec)
		}
		return nil
	}
	ctx := context.Background()
	n, err := o.CreateNetwork(ctx, NetworkConfig{Labels: map[string]string{"team": "core"}, Internal: true})
	require.NoError(t, err)
	require.Regexp(t, `^heph-net-[0-9a-f]{8}$`, n.Name())
	require.Equal(t, n.Name(), spec.Name)
	require.True(t, spec.Internal)
	require.Equal(t, "true", spec.Labels[LabelManaged])
	require.Equal(t, o.Session(), spec.Labels[LabelSession])
	require.Equal(t, "core", spec.Labels["team"])
	require.Equal(t, map[string]string{n.ID(): n.Name()}, trackedNetworks(o))

	require.NoError(t, n.Remove(ctx))
	require.NoError(t, n.Remove(ctx), "Remove is idempotent")
	require.Equal(t, 1, f.CallCount("NetworkRemove"))
	require.Empty(t, trackedNetworks(o))
}

func TestRemovingANetworkInUseFailsAndKeepsItTracked(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	ctx := context.Background()
	n, err := o.CreateNetwork(ctx, NetworkConfig{})
	require.NoError(t, err)
	c, err := o.CreateContainer(ctx, ContainerConfig{Image: "app", Networks: []string{n.Name()}})
	require.NoError(t, err)

	err = n.Remove(ctx)
	require.ErrorIs(t, err, engine.ErrConflict)
	require.Regexp(t, `^heph: remove network "`+n.Name()+`": .*has active endpoints$`, err.Error())
	require.Equal(t, map[string]string{n.ID(): n.Name()}, trackedNetworks(o))

	require.NoError(t, c.Terminate(ctx))
	require.NoError(t, n.Remove(ctx), "once the container is gone")
	_, networks, _ := f.Counts()
	require.Zero(t, networks)
}

func TestCreateNetworkWaitsForAFreePool(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	f.MaxPoolNetworks = 1
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := o.CreateNetwork(ctx, NetworkConfig{})
	require.NoError(t, err)

	before := NetworkPoolRetries()
	f.Hook = func(_ context.Context, call string, _ any) error {
		if call == "NetworkCreate" && f.CallCount("NetworkCreate") == 3 {
			// The second attempt: another test frees its network meanwhile.
			return first.Remove(ctx)
		}
		return nil
	}
	second, err := o.CreateNetwork(ctx, NetworkConfig{})
	require.NoError(t, err)
	require.Equal(t, 3, f.CallCount("NetworkCreate"), "one refused attempt, then one that found the pool free")
	require.GreaterOrEqual(t, NetworkPoolRetries()-before, int64(1), "the retry is counted")
	require.Equal(t, map[string]string{second.ID(): second.Name()}, trackedNetworks(o))
}

func TestCreateNetworkGivesUpWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	f.MaxPoolNetworks = 1
	_, err := o.CreateNetwork(context.Background(), NetworkConfig{})
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = o.CreateNetwork(ctx, NetworkConfig{})
	require.ErrorIs(t, err, ErrNetworkPoolExhausted)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	msg := err.Error()
	require.Regexp(t, `^heph: create network: the daemon's address pools stayed exhausted: waited [0-9.]+m?s \(\d+ attempts\) for another test to free a network, then gave up: context deadline exceeded`, msg)
	require.Contains(t, msg, "could not find an available, non-overlapping IPv4 address pool", "what the daemon said")
	for _, advice := range []string{"go test -parallel", "heph prune --stale", "docker network prune --filter label=heph.managed", "default-address-pools in /etc/docker/daemon.json"} {
		require.Contains(t, msg, advice)
	}
	for _, line := range strings.Split(msg, "\n") {
		require.LessOrEqual(t, strings.Count(line, "heph:"), 1, line)
	}
	require.GreaterOrEqual(t, f.CallCount("NetworkCreate")-1, 2, "the second network: tried again until the context ended")
	require.Len(t, trackedNetworks(o), 1)
}

func TestCreateNetworkDoesNotRetryOtherErrors(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	failOn(f, "NetworkCreate", errors.New("plugin not found"))
	_, err := o.CreateNetwork(context.Background(), NetworkConfig{})
	require.Regexp(t, `^heph: create network "heph-net-[0-9a-f]{8}": plugin not found$`, err.Error())
	require.NotErrorIs(t, err, ErrNetworkPoolExhausted)
	require.Equal(t, 1, f.CallCount("NetworkCreate"))

	o, f = newTestOrchestrator()
	failOn(f, "NetworkCreate", enginetest.Unavailable("Cannot connect to the Docker daemon"))
	_, err = o.CreateNetwork(context.Background(), NetworkConfig{})
	require.ErrorIs(t, err, ErrDockerUnavailable)
	require.Equal(t, 1, f.CallCount("NetworkCreate"))

	o, f = newTestOrchestrator()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = o.CreateNetwork(ctx, NetworkConfig{})
	require.ErrorIs(t, err, context.Canceled)
	require.LessOrEqual(t, f.CallCount("NetworkCreate"), 1)
}
