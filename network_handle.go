package heph

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Network is a Docker network heph created: containers on it reach each
// other by service name. TestNetwork gives each test its own; NewNetwork
// makes one for code without a testing.T, which then calls Remove.
type Network struct {
	o    *Orchestrator
	id   string
	name string

	mu      sync.Mutex
	removed bool
}

// ID returns the network's ID.
func (n *Network) ID() string { return n.id }

// Name returns the network's name, heph-net-<8 hex>.
func (n *Network) Name() string { return n.name }

// String returns the network's name.
func (n *Network) String() string { return n.name }

// NewNetwork creates a bridge network on o. When Docker's address pools are
// exhausted it retries with backoff, while other tests free theirs, until ctx
// ends. The caller removes it with Remove (after its containers).
func NewNetwork(ctx context.Context, o *Orchestrator) (*Network, error) {
	return newNetwork(ctx, o, nil)
}

// poolRetries counts network creations retried because the address pools
// were exhausted (read by tests).
var poolRetries atomic.Int64

func newNetwork(ctx context.Context, o *Orchestrator, labels map[string]string) (*Network, error) {
	start := time.Now()
	var info NetworkInfo
	attempts := 0
	err := poll(ctx, 50*time.Millisecond, time.Second, func() error {
		attempts++
		if attempts > 1 {
			poolRetries.Add(1)
		}
		var err error
		info, err = o.CreateNetwork(ctx, NetworkConfig{internalLabels: labels})
		if err != nil && !errors.Is(err, ErrNetworkPoolExhausted) {
			return permanent(err)
		}
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNetworkPoolExhausted) {
			return nil, fmt.Errorf("%w\nheph waited %s (%d attempts) for another test to free a network, then gave up.\n"+
				"Docker's default address pools hold about 30 bridge networks and all are in use. Run fewer tests at once (go test -parallel), "+
				"remove stale networks (heph prune --stale, or docker network prune --filter label=heph.managed), "+
				"or give the daemon more pools (default-address-pools in /etc/docker/daemon.json)",
				err, time.Since(start).Round(time.Millisecond), attempts)
		}
		return nil, err
	}
	return &Network{o: o, id: info.ID, name: info.Name}, nil
}

// Remove removes the network; containers still attached make it fail. It is
// idempotent: removing a removed network does nothing.
func (n *Network) Remove(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.removed {
		return nil
	}
	err := n.o.RemoveNetwork(ctx, n.id)
	if err == nil || errors.Is(err, ErrNetworkNotFound) {
		n.removed = true
		return nil
	}
	return err
}
