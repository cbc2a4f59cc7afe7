// Package reclaim removes what a create its caller gave up on still made.
//
// The daemon does not stop a create when the client hangs up: left alone,
// the container or network would outlive the test, and a network would hold
// its address range. So a create runs on, detached from the caller's
// cancellation (for up to Grace), and what it makes is removed; when the
// request gets no answer at all, the object is looked for by the name it was
// asked for, for up to Look, and removed if it shows up. A Set counts the
// reclaims in flight so that a teardown can wait for them.
package reclaim

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

// Grace bounds how long a create the caller gave up on may still take.
const Grace = 2 * time.Minute

// Look bounds how long a Set looks, by name, for an object whose create got
// no answer (the daemon may finish it after the first look), and tries to
// remove what it found (a variable for tests).
var Look = 30 * time.Second

// Kind is a kind of object created by name: how to find one by its name and
// how to remove one by its ID.
type Kind struct {
	Name   string // "container", "network": for messages
	Find   func(ctx context.Context, name string) (id string, err error)
	Remove func(ctx context.Context, id string) error
}

// Container is the Kind of api's containers.
func Container(api engine.API) Kind {
	return Kind{
		Name: "container",
		Find: func(ctx context.Context, name string) (string, error) {
			cs, err := api.ContainerList(ctx, engine.Filter{}.Add("name", "^/"+name+"$"))
			for _, c := range cs {
				if c.Name == name {
					return c.ID, nil
				}
			}
			return "", err
		},
		Remove: api.ContainerRemove,
	}
}

// Network is the Kind of api's networks.
func Network(api engine.API) Kind {
	return Kind{
		Name: "network",
		Find: func(ctx context.Context, name string) (string, error) {
			ns, err := api.NetworkList(ctx, engine.Filter{}.Add("name", name))
			for _, n := range ns {
				if n.Name == name {
					return n.ID, nil
				}
			}
			return "", err
		},
		Remove: api.NetworkRemove,
	}
}

// Set runs the reclaims of one owner (an Orchestrator). The zero value is
// ready to use.
type Set struct {
	// Watch, when set, is told the name of each create given up on while
	// the daemon may still carry it out (the watchdog then looks for it
	// should the process end first); the function it returns is called
	// once the create is dealt with.
	Watch func(name string) (settle func())

	mu      sync.Mutex
	pending int
	idle    chan struct{} // closed while pending is 0
	errs    []error
}

// Create runs do, the daemon call that creates the object of kind k named
// name, and returns its ID. When ctx ends first, Create returns ctx's error
// at once and leaves the call running, detached, in the background:
// whatever it creates is removed there. A call cut off without an answer is
// followed up the same way.
func (s *Set) Create(ctx context.Context, k Kind, name string, do func(context.Context) (string, error)) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), Grace)
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
		if r.err != nil && Unanswered(r.err) {
			// Cut off before the answer (a broken connection): the daemon
			// may make it all the same.
			s.add()
			settle := s.watch(name)
			go func() {
				defer s.finish()
				s.reclaim(k, name, "", r.err, settle)
			}()
		}
		return r.id, r.err
	case <-ctx.Done():
	}
	s.add()
	settle := s.watch(name)
	go func() {
		defer s.finish()
		defer cancel()
		r := <-done
		s.reclaim(k, name, r.id, r.err, settle)
	}()
	return "", ctx.Err()
}

// reclaim removes what a create the caller gave up on made: the object
// itself when the daemon answered with its ID; nothing when the daemon
// answered with an error; and when no answer came, the object found by name
// within Look. A failure is kept for Wait to report. settle tells Watch
// the create is dealt with, unless the object may still show up (then the
// watchdog looks for it after the process's end).
func (s *Set) reclaim(k Kind, name, id string, createErr error, settle func()) {
	ctx, cancel := context.WithTimeout(context.Background(), Look)
	defer cancel()
	if createErr != nil && !Unanswered(createErr) {
		settle()
		return // the daemon refused: nothing was made
	}
	err := retry.Poll(ctx, retry.Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second, Jitter: 0.3}, func(ctx context.Context) error {
		if id == "" {
			found, err := k.Find(ctx, name)
			if err != nil || found == "" {
				return errors.Join(err, errNotYet)
			}
			id = found
		}
		if err := k.Remove(ctx, id); err != nil && !errors.Is(err, engine.ErrNotFound) {
			return err
		}
		return nil
	})
	if !errors.Is(err, errNotYet) {
		settle() // removed, or there with the session's label for the watchdog to find
	}
	if err != nil && !(errors.Is(err, errNotYet) && createErr != nil) {
		s.fail(fmt.Errorf("heph: remove %s %q, created after its caller gave up: %w", k.Name, name, err))
	}
}

// watch tells Watch of a create given up on.
func (s *Set) watch(name string) (settle func()) {
	if s.Watch == nil {
		return func() {}
	}
	return s.Watch(name)
}

// errNotYet: the object a create with no answer may make is not there (yet).
var errNotYet = errors.New("not there")

// Unanswered reports whether a create failed without the daemon's answer —
// the request was cut off (a context, a broken connection) — so that the
// daemon may have made the object anyway.
func Unanswered(err error) bool {
	var ne net.Error
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, engine.ErrUnavailable) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (s *Set) add() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == 0 {
		s.idle = make(chan struct{})
	}
	s.pending++
}

func (s *Set) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending--; s.pending == 0 {
		close(s.idle)
	}
}

func (s *Set) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, err)
}

// Wait waits until no reclaim runs, or ctx ends, and returns (and forgets)
// the failures of those that ran.
func (s *Set) Wait(ctx context.Context) error {
	s.mu.Lock()
	idle := s.idle
	s.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("heph: wait for the removal of what creates made after their callers gave up: %w", ctx.Err())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := errors.Join(s.errs...)
	s.errs = nil
	return err
}
