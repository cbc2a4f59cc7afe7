package heph

import (
	"context"
	"errors"
	"os"
	"sync"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/netalloc"
	"github.com/heph-go/heph/internal/reclaim"
	"github.com/heph-go/heph/internal/subnet"
)

// EnvSubnets is HEPH_SUBNETS, the address ranges heph gives its networks.
//
// Docker's default address pools hold about 30 bridge networks, shared by
// every process on the machine; a suite whose tests each have a network
// needs more. So heph gives each network it creates a subnet of its own,
// from 10.213.0.0/16 carved into /26s: 1024 networks of up to 61
// containers. It skips every subnet that overlaps an existing Docker network
// or a route or address of the daemon's host, and moves on when another
// process takes a subnet first.
//
// HEPH_SUBNETS sets other ranges: "10.50.0.0/16", "10.50.0.0/16:24" for
// /24 subnets, several separated by commas. "pools" (or off) leaves the
// choice to the daemon's default pools, as does a remote daemon or a daemon
// seen from inside another container, whose routes heph cannot see (unless
// HEPH_SUBNETS names ranges), and ranges where no subnet is free. On the
// pools, a create that finds them exhausted waits in line with the other
// heph processes of this user, in turn, until its context ends; then the
// error matches ErrNetworkPoolExhausted. A malformed value is refused with
// ErrInvalidConfig before any Docker call.
const EnvSubnets = subnet.Env

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

// CreateNetwork creates a bridge network named heph-net-<8 hex>, labelled
// with this session, on a subnet of its own (see EnvSubnets), and tracks it
// until Network.Remove or Teardown. When it falls back to Docker's address
// pools and finds them exhausted, it waits its turn with backoff, while
// other tests free theirs, until ctx ends (for at most 5 minutes when ctx has
// no deadline); then the error matches
// ErrNetworkPoolExhausted and says what to do. A network the daemon still
// creates after ctx ended is removed (Teardown waits for that).
func (o *Orchestrator) CreateNetwork(ctx context.Context, cfg NetworkConfig) (*Network, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	plan, err := subnet.Parse(os.Getenv(EnvSubnets))
	if err != nil {
		return nil, invalid(EnvSubnets, os.Getenv(EnvSubnets), err.Error())
	}
	if err := o.watch(); err != nil {
		return nil, err
	}
	spec := engine.NetworkSpec{Internal: cfg.Internal, Labels: o.resourceLabels(cfg.Labels, cfg.internalLabels)}
	var name string
	id, err := netalloc.Create(ctx, netalloc.Request{API: o.api, Endpoint: o.endpoint, HostEnv: o.hostEnv, Plan: plan, Spec: spec, CreateTimeout: cfg.createTimeout},
		func(ctx context.Context, spec engine.NetworkSpec) (string, error) {
			spec.Name = newName("net")
			id, err := o.reclaims.Create(ctx, reclaim.Network(o.api), spec.Name, func(ctx context.Context) (string, error) {
				return o.api.NetworkCreate(ctx, spec)
			})
			if err != nil && subnet.IsPoolExhausted(err) {
				return "", errs.Op("create network", spec.Name, ErrNetworkPoolExhausted, err)
			}
			name = spec.Name
			return id, wrap("create network", spec.Name, err, nil)
		})
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	o.networks[id] = name
	o.mu.Unlock()
	return &Network{o: o, id: id, name: name}, nil
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
