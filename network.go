package heph

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/retry"
)

// Network is a Docker network heph created: containers on it reach each
// other by service name. TestNetwork gives each test its own;
// Orchestrator.CreateNetwork makes one for code without a testing.T, which
// then calls Remove (or the Orchestrator's Teardown).
type Network struct {
	o    *Orchestrator
	id   string
	name string

	mu      sync.Mutex
	removed bool
}

// ID returns the network's ID.
func (n *Network) ID() string { return n.id }

// Name returns the network's name, heph-net-<8 hex>; containers join it by
// this name (ContainerConfig.Networks).
func (n *Network) Name() string { return n.name }

// poolRetries counts network creations retried because the address pools
// were exhausted (read by tests).
var poolRetries atomic.Int64

// CreateNetwork creates a bridge network named heph-net-<8 hex>, labelled
// with this session, and tracks it until Network.Remove or Teardown. When
// Docker's address pools are exhausted it retries with backoff, while other
// tests free theirs, until ctx ends; then the error matches
// ErrNetworkPoolExhausted and says what to do.
func (o *Orchestrator) CreateNetwork(ctx context.Context, cfg NetworkConfig) (*Network, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	attempts, exhausted := 0, false
	var n *Network
	err := retry.Poll(ctx, retry.Policy{Initial: 50 * time.Millisecond, Max: time.Second, Jitter: 0.3}, func(ctx context.Context) error {
		attempts++
		if attempts > 1 {
			poolRetries.Add(1)
		}
		var err error
		n, err = o.createNetwork(ctx, cfg)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrNetworkPoolExhausted):
			exhausted = true
			return err
		case exhausted && retry.Ending(ctx):
			// Cut short while waiting for a pool: the pools are the reason.
			return err
		}
		return retry.Permanent(err)
	})
	var stopped *retry.Stopped
	if errors.As(err, &stopped) && errors.Is(err, ErrNetworkPoolExhausted) {
		said := stopped.Last
		var op *errs.OpError
		if errors.As(said, &op) {
			said = op.Err // the daemon's own words, without heph's prefix
		}
		return nil, errs.Op("create network", "", ErrNetworkPoolExhausted, fmt.Errorf(
			"the daemon's address pools stayed exhausted: waited %s (%d attempts) for another test to free a network, then gave up: %w; the daemon said: %w\n"+
				"Docker's default address pools hold about 30 bridge networks and all are in use. Run fewer tests at once (go test -parallel), "+
				"remove stale networks (heph prune --stale, or docker network prune --filter label=heph.managed), "+
				"or give the daemon more pools (default-address-pools in /etc/docker/daemon.json)",
			time.Since(start).Round(time.Millisecond), attempts, stopped.Ctx, said))
	}
	return n, err
}

// createNetwork makes one attempt at creating the network.
func (o *Orchestrator) createNetwork(ctx context.Context, cfg NetworkConfig) (*Network, error) {
	if err := o.watch(); err != nil {
		return nil, err
	}
	name := newName("net")
	id, err := o.api.NetworkCreate(ctx, engine.NetworkSpec{
		Name: name, Internal: cfg.Internal, Labels: o.resourceLabels(cfg.Labels, cfg.internalLabels),
	})
	if err != nil {
		if isPoolExhausted(err) {
			return nil, errs.Op("create network", name, ErrNetworkPoolExhausted, err)
		}
		return nil, wrap("create network", name, err, nil)
	}
	o.mu.Lock()
	o.networks[id] = name
	o.mu.Unlock()
	return &Network{o: o, id: id, name: name}, nil
}

// isPoolExhausted reports whether a network create failed because no
// address pool is left.
func isPoolExhausted(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "non-overlapping IPv4 address pool") || strings.Contains(msg, "could not find an available")
}

// removeNetwork removes a network and stops tracking it.
func (o *Orchestrator) removeNetwork(ctx context.Context, id string) error {
	o.mu.Lock()
	name, ok := o.networks[id]
	o.mu.Unlock()
	if !ok {
		name = id
	}
	err := o.api.NetworkRemove(ctx, id)
	if err == nil || errors.Is(err, engine.ErrNotFound) {
		o.mu.Lock()
		delete(o.networks, id)
		o.mu.Unlock()
	}
	return wrap("remove network", name, err, ErrNetworkNotFound)
}

// Remove removes the network; containers still attached make it fail. It is
// idempotent: removing a removed network does nothing.
func (n *Network) Remove(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.removed {
		return nil
	}
	err := n.o.removeNetwork(ctx, n.id)
	if err == nil || errors.Is(err, ErrNetworkNotFound) {
		n.removed = true
		return nil
	}
	return err
}
