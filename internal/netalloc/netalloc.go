// Package netalloc decides where a network's addresses come from: a subnet
// of heph's own ranges (HEPH_SUBNETS, see package subnet) that no network
// and no route of the daemon's host overlaps, else the daemon's default
// address pools, waited for in turn with the other heph processes of this
// user (package turns) while they are exhausted.
package netalloc

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

// MaxOverlaps bounds the subnets one create tries that the daemon says
// overlap: a few when processes race for the same ones, while a daemon that
// refuses every one (it sees a clash heph cannot) sends heph to its pools.
const MaxOverlaps = 32

// PoolWindow is how many waiters in line try the daemon's pools at once:
// one at a time leaves pools idle between turns, a few keep them busy and
// still serve in order (see package turns' BenchmarkFairness).
const PoolWindow = 4

// MaxPoolWait bounds the wait for the daemon's pools when the caller's
// context has no deadline of its own (a variable for tests).
var MaxPoolWait = 5 * time.Minute

// Try makes one attempt at creating spec (with spec.Subnet, or none for the
// pools) and returns the network's ID. An error matching
// errs.NetworkPoolExhausted says the pools are exhausted.
type Try func(ctx context.Context, spec engine.NetworkSpec) (id string, err error)

// Request is a network to create.
type Request struct {
	API      engine.API
	Endpoint engine.Endpoint // the daemon, to judge whether heph sees its host
	HostEnv  daemon.HostEnv
	Plan     subnet.Plan
	Spec     engine.NetworkSpec
	// CreateTimeout, when > 0, bounds the create of a network of heph's own
	// once its turn has come (see CreateWindow), however long the turn took.
	CreateTimeout time.Duration
}

// CreateWindow is how many creates of heph's own networks run at once on
// the daemon, across this user's processes. The daemon makes networks
// little faster with more at once (24 creates on this project's 2-core
// machine: 11 s one at a time, 7 s four at a time, 5-6.5 s all at once),
// and creates beyond a few only queue there, where each test's deadline
// runs while it waits, and a create given up on is carried out all the
// same and then removed: work for nothing, under a load that makes the
// next creates slower still. In heph's line they wait at no cost, in the
// order they came, and the tests' containers start as their networks come
// instead of all at once.
const CreateWindow = 6

// CreateLine is the line of network creates (see CreateWindow); Gate makes
// it on first use. Gate may be set by tests.
var CreateLine struct {
	Once sync.Once
	Gate *turns.Gate
}

// CreateGate returns the line of network creates.
func CreateGate() *turns.Gate {
	CreateLine.Once.Do(func() {
		if CreateLine.Gate == nil {
			CreateLine.Gate = turns.NewGate("network-creates", CreateWindow)
		}
	})
	return CreateLine.Gate
}

// Create creates the network of q through try: on a subnet of its own when
// the plan serves here, once its turn in the line of creates has come, else
// on the daemon's pools.
func Create(ctx context.Context, q Request, try Try) (string, error) {
	if !q.Plan.Pools() {
		id, err := ownInTurn(ctx, q, try)
		if id != "" || err != nil {
			return id, err
		}
		subnet.Counters.Fallbacks.Add(1)
	}
	return pooled(ctx, q, try)
}

// ownInTurn is own once the create's turn has come (within ctx); with
// q.CreateTimeout > 0 the create itself then has that long.
func ownInTurn(ctx context.Context, q Request, try Try) (string, error) {
	start := time.Now()
	leave, err := CreateGate().Enter(ctx)
	if err != nil {
		return "", errs.Op("create network", "", nil, fmt.Errorf(
			"waited %s for a turn to create it, in line with %d other network creates of this user's heph processes (at most %d at once): %w",
			time.Since(start).Round(time.Millisecond), CreateGate().Waiting(), CreateWindow, err))
	}
	defer leave()
	cctx, cancel := ctx, context.CancelFunc(func() {})
	if q.CreateTimeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, q.CreateTimeout)
	}
	defer cancel()
	id, err := own(cctx, q, try)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: the daemon did not create it within %s (it is busy); a longer startup timeout (WithStartupTimeout) or fewer tests at once (go test -parallel) would help", err, q.CreateTimeout)
	}
	return id, err
}

// own creates the network on a free subnet of the plan's ranges. It
// returns neither ID nor error when the plan cannot serve here: the default
// ranges and a daemon whose host heph cannot see, no subnet left, or
// MaxOverlaps subnets refused as overlapping.
func own(ctx context.Context, q Request, try Try) (string, error) {
	nets, err := q.API.NetworkList(ctx, engine.Filter{})
	if err != nil {
		return "", engine.Op("list networks", "", err, nil)
	}
	var taken []netip.Prefix
	for _, n := range nets {
		for _, s := range n.Subnets {
			if s.Prefix.IsValid() {
				taken = append(taken, s.Prefix)
			}
		}
	}
	host, sees := daemon.HostPrefixes(q.Endpoint, q.HostEnv, daemon.Gateways(nets))
	if !sees && !q.Plan.Explicit {
		return "", nil
	}
	overlaps := 0
	spec := q.Spec
	for s := range q.Plan.Walk(append(taken, host...), nil) {
		release, ok := subnet.Reserve(s)
		if !ok {
			continue // another goroutine of this process is trying it
		}
		spec.Subnet = s
		id, err := try(ctx, spec)
		release()
		switch {
		case err == nil:
			subnet.Counters.Own.Add(1)
			return id, nil
		case subnet.IsOverlap(err) && ctx.Err() == nil:
			subnet.Counters.Overlaps.Add(1) // another process took it first
			if overlaps++; overlaps == MaxOverlaps {
				return "", nil
			}
		default:
			return "", err
		}
	}
	return "", nil
}

// PoolLine is the cross-process line for the daemon's pools (Line is nil
// when the runtime directory is unusable: no line). A variable for tests.
var PoolLine struct {
	Once sync.Once
	Line *turns.Line
}

// pooled creates the network on the daemon's default pools. While nobody
// waits for them it tries at once; when they are exhausted (or others wait)
// it joins the cross-process line and tries, with backoff, among the first
// PoolWindow waiters, until ctx ends (or MaxPoolWait, when ctx has no
// deadline).
func pooled(ctx context.Context, q Request, try Try) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, MaxPoolWait)
		defer cancel()
	}
	PoolLine.Once.Do(func() { PoolLine.Line, _ = turns.Open("network-pools") })
	line := PoolLine.Line
	start := time.Now()
	attempts := 0
	var id string
	var said error = errors.New("nothing: others were ahead in line all along") // the daemon's last refusal
	once := func(ctx context.Context) error {
		if attempts++; attempts > 1 {
			subnet.Counters.PoolRetries.Add(1)
		}
		var err error
		id, err = try(ctx, q.Spec)
		if op := new(errs.OpError); errors.Is(err, errs.NetworkPoolExhausted) && errors.As(err, &op) {
			said = op.Err // the daemon's own words, without heph's prefix
		}
		return err
	}
	poll := func(ctx context.Context) error {
		switch err := once(ctx); {
		case errors.Is(err, errs.NetworkPoolExhausted):
			return errors.New("exhausted")
		case err != nil && retry.Ending(ctx):
			return err // cut short while waiting for a pool: the pools are the reason
		default:
			return retry.Permanent(err) // nil, or a failure of its own
		}
	}
	if line == nil || !line.Busy() {
		if err := once(ctx); !errors.Is(err, errs.NetworkPoolExhausted) {
			if err == nil {
				subnet.Counters.Pooled.Add(1)
			}
			return id, err
		}
	}
	policy := retry.Policy{Initial: 20 * time.Millisecond, Max: 250 * time.Millisecond, Jitter: 0.3}
	var err error
	if line != nil {
		var turn *turns.Turn
		if turn, err = line.Join(ctx, PoolWindow); err == nil {
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
		return id, nil
	}
	var stopped *retry.Stopped
	if !errors.As(err, &stopped) {
		return "", err // a failure of its own (the daemon is gone, …)
	}
	ownRanges := "heph's own subnets (" + subnet.Env + "=" + q.Plan.String() + ") could not be used here"
	if q.Plan.Pools() {
		ownRanges = subnet.Env + "=" + os.Getenv(subnet.Env) + " leaves subnets to the daemon"
	}
	ctxErr := ctx.Err()
	if ctxErr == nil {
		ctxErr = context.DeadlineExceeded
	}
	return "", errs.Op("create network", "", errs.NetworkPoolExhausted, fmt.Errorf(
		"the daemon's address pools stayed exhausted: waited %s (%d attempts) for another test to free a network, then gave up: %w; the daemon said: %w\n"+
			"It waited its turn with the other heph processes of this user. %s, and Docker's default address pools hold about 30 bridge networks, all in use. "+
			"Give heph a free range of its own (%s=10.213.0.0/16), run fewer tests at once (go test -parallel), "+
			"remove stale networks (heph prune --stale, or docker network prune --filter label=heph.managed), "+
			"or give the daemon more pools (default-address-pools in /etc/docker/daemon.json)",
		time.Since(start).Round(time.Millisecond), attempts, ctxErr, said, ownRanges, subnet.Env))
}
