package heph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/retry"
)

// A create the caller gave up on (its context ended) may still be carried
// out by the daemon, which does not stop when the client hangs up: left
// alone, the container or network would outlive the test, and a network
// would hold its address range. So heph lets the request run on, detached
// from the caller's cancellation, and removes what it creates; when the
// request gets no answer at all, heph looks for the object by the name it
// asked for, for a while, and removes it if it shows up.
const createGrace = 2 * time.Minute // how long a create the caller gave up on may still take

// reclaimLook bounds how long heph looks, by name, for an object whose
// create got no answer (the daemon may finish it after the first look), and
// tries to remove what it found (a variable for tests).
var reclaimLook = 30 * time.Second

// object is a kind of object heph creates by name.
type object struct {
	kind   string
	find   func(o *Orchestrator, ctx context.Context, name string) (id string, err error)
	remove func(o *Orchestrator, ctx context.Context, id string) error
}

var (
	containerObject = object{
		kind: "container",
		find: func(o *Orchestrator, ctx context.Context, name string) (string, error) {
			cs, err := o.api.ContainerList(ctx, engine.Filter{}.Add("name", "^/"+name+"$"))
			for _, c := range cs {
				if c.Name == name {
					return c.ID, nil
				}
			}
			return "", err
		},
		remove: func(o *Orchestrator, ctx context.Context, id string) error { return o.api.ContainerRemove(ctx, id) },
	}
	networkObject = object{
		kind: "network",
		find: func(o *Orchestrator, ctx context.Context, name string) (string, error) {
			ns, err := o.api.NetworkList(ctx, engine.Filter{}.Add("name", name))
			for _, n := range ns {
				if n.Name == name {
					return n.ID, nil
				}
			}
			return "", err
		},
		remove: func(o *Orchestrator, ctx context.Context, id string) error { return o.api.NetworkRemove(ctx, id) },
	}
)

// reclaims are the creates heph cleans up after; Teardown waits for them.
type reclaims struct {
	mu      sync.Mutex
	pending int
	idle    chan struct{} // closed while pending is 0
	errs    []error
}

// create runs do, the daemon call that creates the object named name, and
// returns its ID. When ctx ends first, create returns ctx's error at once
// and leaves the call running, detached, in the background: whatever it
// creates is removed there (see reclaim). A call cut off without an answer
// is followed up the same way.
func (o *Orchestrator) create(ctx context.Context, obj object, name string, do func(context.Context) (string, error)) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createGrace)
	type result struct {
		id  string
		err error
	}
	done := make(chan result, 1)
	go func() {
		id, err := do(dctx)
		done <- result{id, err}
	}()
	select {
	case r := <-done:
		cancel()
		if r.err != nil && unanswered(r.err) {
			// Cut off before the answer (a broken connection): the daemon
			// may make it all the same.
			o.reclaims.add()
			settle := o.pending(name)
			go func() {
				defer o.reclaims.finish()
				o.reclaim(obj, name, "", r.err, settle)
			}()
		}
		return r.id, r.err
	case <-ctx.Done():
	}
	o.reclaims.add()
	settle := o.pending(name)
	go func() {
		defer o.reclaims.finish()
		defer cancel()
		r := <-done
		o.reclaim(obj, name, r.id, r.err, settle)
	}()
	return "", ctx.Err()
}

// reclaim removes what a create the caller gave up on made: the object
// itself when the daemon answered with its ID; nothing when the daemon
// answered with an error; and when no answer came, the object found by name
// within reclaimLook. A failure is kept for Teardown to report. settle
// tells the watchdog the create is dealt with, unless the object may still
// show up (then the watchdog looks for it after the process's end).
func (o *Orchestrator) reclaim(obj object, name, id string, createErr error, settle func()) {
	ctx, cancel := context.WithTimeout(context.Background(), reclaimLook)
	defer cancel()
	if createErr != nil && !unanswered(createErr) {
		settle()
		return // the daemon refused: nothing was made
	}
	err := retry.Poll(ctx, retry.Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second, Jitter: 0.3}, func(ctx context.Context) error {
		if id == "" {
			found, err := obj.find(o, ctx, name)
			if err != nil || found == "" {
				return errors.Join(err, errNotYet)
			}
			id = found
		}
		if err := obj.remove(o, ctx, id); err != nil && !errors.Is(err, engine.ErrNotFound) {
			return err
		}
		return nil
	})
	if !errors.Is(err, errNotYet) {
		settle() // removed, or there with the session's label for the watchdog to find
	}
	if err != nil && !(errors.Is(err, errNotYet) && createErr != nil) {
		o.reclaims.fail(fmt.Errorf("heph: remove %s %q, created after its caller gave up: %w", obj.kind, name, err))
	}
}

// pending tells the watchdog that the create of name was given up on while
// the daemon may still carry it out, so that the watchdog looks for it
// should the process end first (see watchdog.Set.Pending); it returns the
// function that tells the watchdog the create is dealt with.
func (o *Orchestrator) pending(name string) (settle func()) {
	if on, _ := reaperOn(); !on || o.watchdogs == nil {
		return func() {}
	}
	ep := o.watchdogEndpoint()
	_ = o.watchdogs.Pending(ep, name) // at worst, the watchdog's usual removal
	return func() { _ = o.watchdogs.Settled(ep, name) }
}

// errNotYet: the object a create with no answer may make is not there (yet).
var errNotYet = errors.New("not there")

// unanswered reports whether a create failed without the daemon's answer —
// the request was cut off (a context, a broken connection) — so that the
// daemon may have made the object anyway.
func unanswered(err error) bool {
	var ne net.Error
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, engine.ErrUnavailable) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (r *reclaims) add() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == 0 {
		r.idle = make(chan struct{})
	}
	r.pending++
}

func (r *reclaims) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending--; r.pending == 0 {
		close(r.idle)
	}
}

func (r *reclaims) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

// wait waits until no reclaim runs, or ctx ends, and returns (and forgets)
// the failures of those that ran.
func (r *reclaims) wait(ctx context.Context) error {
	r.mu.Lock()
	idle := r.idle
	r.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("heph: wait for the removal of what creates made after their callers gave up: %w", ctx.Err())
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	err := errors.Join(r.errs...)
	r.errs = nil
	return err
}
