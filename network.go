package heph

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/heph-go/heph/internal/daemon"
	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/retry"
	"github.com/heph-go/heph/internal/subnet"
	"github.com/heph-go/heph/internal/turns"
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

// maxOverlaps bounds the subnets one create tries that the daemon says
// overlap: a few when processes race for the same ones, while a daemon that
// refuses every one (it sees a clash heph cannot) sends heph to its pools.
const maxOverlaps = 32

// poolWindow is how many waiters in line try the daemon's pools at once:
// one at a time leaves pools idle between turns, a few keep them busy and
// still serve in order (see internal/turns' BenchmarkFairness).
const poolWindow = 4

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
// other tests free theirs, until ctx ends; then the error matches
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
	if !plan.Pools() {
		n, err := o.createOwnNetworkInTurn(ctx, plan, spec, cfg.createTimeout)
		if n != nil || err != nil {
			return n, err
		}
		subnet.Counters.Fallbacks.Add(1)
	}
	return o.createPooledNetwork(ctx, spec, plan)
}

// createWindow is how many creates of heph's own networks run at once on
// the daemon, across this user's processes. The daemon makes networks
// little faster with more at once (24 creates on this project's 2-core
// machine: 11 s one at a time, 7 s four at a time, 5-6.5 s all at once),
// and creates beyond a few only queue there, where each test's deadline
// runs while it waits, and a create given up on is carried out all the
// same and then removed: work for nothing, under a load that makes the
// next creates slower still. In heph's line they wait at no cost, in the
// order they came, and the tests' containers start as their networks come
// instead of all at once.
const createWindow = 6

// createLine is the line of network creates (see createWindow).
var createLine struct {
	once sync.Once
	gate *turns.Gate
}

func createGate() *turns.Gate {
	createLine.once.Do(func() { createLine.gate = turns.NewGate("network-creates", createWindow) })
	return createLine.gate
}

// createOwnNetworkInTurn is createOwnNetwork once the create's turn has
// come (within ctx); with timeout > 0 the create itself then has timeout,
// however long the turn took to come.
func (o *Orchestrator) createOwnNetworkInTurn(ctx context.Context, plan subnet.Plan, spec engine.NetworkSpec, timeout time.Duration) (*Network, error) {
	start := time.Now()
	leave, err := createGate().Enter(ctx)
	if err != nil {
		return nil, errs.Op("create network", "", nil, fmt.Errorf(
			"waited %s for a turn to create it, in line with %d other network creates of this user's heph processes (at most %d at once): %w",
			time.Since(start).Round(time.Millisecond), createGate().Waiting(), createWindow, err))
	}
	defer leave()
	cctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	n, err := o.createOwnNetwork(cctx, plan, spec)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: the daemon did not create it within %s (it is busy); a longer startup timeout (WithStartupTimeout) or fewer tests at once (go test -parallel) would help", err, timeout)
	}
	return n, err
}

// createOwnNetwork creates the network on a free subnet of plan's ranges.
// It returns neither network nor error when the plan cannot serve here: the
// default ranges and a daemon whose host heph cannot see, no subnet left, or
// maxOverlaps subnets refused as overlapping.
func (o *Orchestrator) createOwnNetwork(ctx context.Context, plan subnet.Plan, spec engine.NetworkSpec) (*Network, error) {
	nets, err := o.api.NetworkList(ctx, engine.Filter{})
	if err != nil {
		return nil, wrap("list networks", "", err, nil)
	}
	var taken []netip.Prefix
	for _, n := range nets {
		for _, s := range n.Subnets {
			if s.Prefix.IsValid() {
				taken = append(taken, s.Prefix)
			}
		}
	}
	host, sees := daemon.HostPrefixes(o.endpoint, o.hostEnv, daemon.Gateways(nets))
	if !sees && !plan.Explicit {
		return nil, nil
	}
	overlaps := 0
	for s := range plan.Walk(append(taken, host...), nil) {
		release, ok := subnet.Reserve(s)
		if !ok {
			continue // another goroutine of this process is trying it
		}
		spec.Subnet = s
		n, err := o.createNetwork(ctx, spec)
		release()
		switch {
		case err == nil:
			subnet.Counters.Own.Add(1)
			return n, nil
		case subnet.IsOverlap(err) && ctx.Err() == nil:
			subnet.Counters.Overlaps.Add(1) // another process took it first
			if overlaps++; overlaps == maxOverlaps {
				return nil, nil
			}
		default:
			return nil, err
		}
	}
	return nil, nil
}

var poolLine struct {
	once sync.Once
	line *turns.Line // nil when the runtime dir is unusable: no line
}

// createPooledNetwork creates the network on the daemon's default pools.
// While nobody waits for them it tries at once; when they are exhausted (or
// others wait) it joins the cross-process line and tries, with backoff,
// among the first poolWindow waiters.
func (o *Orchestrator) createPooledNetwork(ctx context.Context, spec engine.NetworkSpec, plan subnet.Plan) (*Network, error) {
	poolLine.once.Do(func() { poolLine.line, _ = turns.Open("network-pools") })
	line := poolLine.line
	start := time.Now()
	attempts := 0
	var n *Network
	var said error = errors.New("nothing: others were ahead in line all along") // the daemon's last refusal
	try := func(ctx context.Context) error {
		if attempts++; attempts > 1 {
			subnet.Counters.PoolRetries.Add(1)
		}
		var err error
		n, err = o.createNetwork(ctx, spec)
		if op := new(errs.OpError); errors.Is(err, ErrNetworkPoolExhausted) && errors.As(err, &op) {
			said = op.Err // the daemon's own words, without heph's prefix
		}
		return err
	}
	poll := func(ctx context.Context) error {
		switch err := try(ctx); {
		case errors.Is(err, ErrNetworkPoolExhausted):
			return errors.New("exhausted")
		case err != nil && retry.Ending(ctx):
			return err // cut short while waiting for a pool: the pools are the reason
		default:
			return retry.Permanent(err) // nil, or a failure of its own
		}
	}
	if line == nil || !line.Busy() {
		if err := try(ctx); !errors.Is(err, ErrNetworkPoolExhausted) {
			if err == nil {
				subnet.Counters.Pooled.Add(1)
			}
			return n, err
		}
	}
	policy := retry.Policy{Initial: 20 * time.Millisecond, Max: 250 * time.Millisecond, Jitter: 0.3}
	var err error
	if line != nil {
		var turn *turns.Turn
		if turn, err = line.Join(ctx, poolWindow); err == nil {
			err = retry.Poll(ctx, policy, poll)
			turn.Done()
		} else if ctx.Err() == nil { // the line is unreadable: wait without it
			err = retry.Poll(ctx, policy, poll)
		}
	} else {
		err = retry.Poll(ctx, policy, poll)
	}
	if err == nil {
		subnet.Counters.Pooled.Add(1)
		return n, nil
	}
	var stopped *retry.Stopped
	if !errors.As(err, &stopped) {
		return nil, err // a failure of its own (the daemon is gone, …)
	}
	own := "heph's own subnets (" + EnvSubnets + "=" + plan.String() + ") could not be used here"
	if plan.Pools() {
		own = EnvSubnets + "=" + os.Getenv(EnvSubnets) + " leaves subnets to the daemon"
	}
	ctxErr := ctx.Err()
	if ctxErr == nil {
		ctxErr = context.DeadlineExceeded
	}
	return nil, errs.Op("create network", "", ErrNetworkPoolExhausted, fmt.Errorf(
		"the daemon's address pools stayed exhausted: waited %s (%d attempts) for another test to free a network, then gave up: %w; the daemon said: %w\n"+
			"It waited its turn with the other heph processes of this user. %s, and Docker's default address pools hold about 30 bridge networks, all in use. "+
			"Give heph a free range of its own (%s=10.213.0.0/16), run fewer tests at once (go test -parallel), "+
			"remove stale networks (heph prune --stale, or docker network prune --filter label=heph.managed), "+
			"or give the daemon more pools (default-address-pools in /etc/docker/daemon.json)",
		time.Since(start).Round(time.Millisecond), attempts, ctxErr, said, own, EnvSubnets))
}

// createNetwork makes one attempt at creating the network spec (named here).
func (o *Orchestrator) createNetwork(ctx context.Context, spec engine.NetworkSpec) (*Network, error) {
	spec.Name = newName("net")
	id, err := o.create(ctx, networkObject, spec.Name, func(ctx context.Context) (string, error) {
		return o.api.NetworkCreate(ctx, spec)
	})
	if err != nil {
		if subnet.IsPoolExhausted(err) {
			return nil, errs.Op("create network", spec.Name, ErrNetworkPoolExhausted, err)
		}
		return nil, wrap("create network", spec.Name, err, nil)
	}
	o.mu.Lock()
	o.networks[id] = spec.Name
	o.mu.Unlock()
	return &Network{o: o, id: id, name: spec.Name}, nil
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
