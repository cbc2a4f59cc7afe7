package shared

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/retry"
)

// State is what an expiry found.
type State string

// States of a key after Expire.
const (
	// Held: a live holder holds it; nothing was removed.
	Held State = "held"
	// Waiting: no one holds it; it is kept until Status.Until.
	Waiting State = "waiting"
	// Kept: no one holds it and its last holder asked to keep it
	// (HEPH_SHARED_IDLE=keep): only a prune removes it.
	Kept State = "kept"
	// Removed: its container (and volumes) were removed now.
	Removed State = "removed"
	// Gone: there was no container of the key.
	Gone State = "gone"
	// Busy: another process holds the key's lock (Try only).
	Busy State = "busy"
)

// Status is the outcome of Expire.
type Status struct {
	State   State
	Holders int       // live holders
	Until   time.Time // Waiting: when it expires
}

// How says when Expire removes an unheld container.
type How int

const (
	// Due removes it once its idle time is over (the watchdog, sweeps).
	Due How = iota
	// Unheld removes it at once when no live holder holds it (heph prune
	// --shared, the leak check of heph's own tests).
	Unheld
	// Force removes it at once, held or not (heph prune --shared --force).
	Force
)

// Expiry removes shared containers whose holders are gone, on one daemon,
// for one machine.
type Expiry struct {
	API   engine.API
	Store *Store
	// Host is this machine's name: only containers labelled with it are
	// touched (holders on other machines cannot be seen from here).
	Host string
	// Idle is the idle time for a container no lease speaks for (its
	// leases were lost: a cleared runtime directory).
	Idle Idle
	// Try gives up at once (Busy) when another process holds the key's
	// lock, instead of waiting for it.
	Try bool
	// Now is the clock (nil: time.Now).
	Now  func() time.Time
	Logf func(string, ...any)
}

func (e Expiry) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e Expiry) logf(format string, args ...any) {
	if e.Logf != nil {
		e.Logf(format, args...)
	}
}

// Expire judges key under its exclusive lock: it removes the leases of
// holders that died; while a live holder is left the container is Held.
// When none is, it records when the idle time ends — the longest idle time
// of the leases that ended now, counted from now (an earlier record stands
// when it is later) — and removes the container and the volumes the daemon
// made for it as how says.
func (e Expiry) Expire(ctx context.Context, key string, how How) (Status, error) {
	var l *Lock
	var err error
	if e.Try {
		var ok bool
		if l, ok, err = e.Store.TryLock(key, true); err == nil && !ok {
			return Status{State: Busy}, nil
		}
	} else {
		l, err = e.Store.Lock(ctx, key, true)
	}
	if err != nil {
		return Status{}, err
	}
	defer l.Unlock()

	leases, err := e.Store.Leases(key)
	if err != nil {
		return Status{}, err
	}
	now := e.now().UTC()
	var ended []Lease
	live := 0
	for _, ls := range leases {
		if ls.Alive {
			live++
			continue
		}
		ended = append(ended, ls)
	}
	cs, err := e.containers(ctx, key)
	if err != nil {
		return Status{}, err
	}
	for _, ls := range ended {
		if err := os.Remove(ls.path); err == nil {
			e.logf("shared %s: holder %d ended", key[:12], ls.PID)
		}
	}
	st := Status{Holders: live}
	switch {
	case live > 0 && how != Force:
		e.Store.clearIdle(key)
		st.State = Held
		return st, nil
	case len(cs) == 0:
		if live == 0 {
			e.Store.forget(key)
		}
		st.State = Gone
		return st, nil
	}

	if how == Due {
		m, ok := e.Store.readIdle(key)
		if len(ended) > 0 || !ok {
			next := idleMark{Since: now}
			switch {
			case len(ended) == 0:
				next.Until = now.Add(e.Idle.D)
				next.Keep = e.Idle.Keep
			default:
				for _, ls := range ended {
					next.Keep = next.Keep || ls.Idle.Keep
					if u := now.Add(ls.Idle.D); u.After(next.Until) {
						next.Until = u
					}
				}
			}
			if ok && !m.Keep && m.Until.After(next.Until) && !next.Keep {
				next.Until = m.Until // an earlier record promised more time
			}
			if err := e.Store.writeIdle(key, next); err != nil {
				return Status{}, fmt.Errorf("heph: shared container %s: record its idle time: %w", key[:12], err)
			}
			m = next
		}
		switch {
		case m.Keep:
			st.State = Kept
			return st, nil
		case now.Before(m.Until):
			st.State, st.Until = Waiting, m.Until
			return st, nil
		}
	}
	if err := e.remove(ctx, key, cs); err != nil {
		return Status{}, err
	}
	e.Store.clearIdle(key)
	if live == 0 {
		e.Store.forget(key)
	}
	st.State = Removed
	return st, nil
}

// containers lists key's containers on this machine.
func (e Expiry) containers(ctx context.Context, key string) ([]engine.Container, error) {
	cs, err := e.API.ContainerList(ctx, e.filter(key))
	if err != nil {
		return nil, engine.Op("list shared containers of key", key[:12], err, nil)
	}
	return cs, nil
}

func (e Expiry) filter(key string) engine.Filter {
	return engine.Filter{}.Add("label", labels.Managed+"=true", labels.Shared+"="+key, labels.Host+"="+e.Host)
}

// remove force-removes cs and then the volumes labelled with key.
func (e Expiry) remove(ctx context.Context, key string, cs []engine.Container) error {
	var errs []error
	for _, c := range cs {
		if err := e.API.ContainerRemove(ctx, c.ID); err != nil && !errors.Is(err, engine.ErrNotFound) {
			errs = append(errs, engine.Op("remove shared container", c.Name, err, nil))
			continue
		}
		e.logf("shared %s: removed container %s", key[:12], c.Name)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	vs, err := e.API.VolumeList(ctx, e.filter(key))
	if err != nil {
		return engine.Op("list volumes of shared key", key[:12], err, nil)
	}
	for _, v := range vs {
		if err := e.API.VolumeRemove(ctx, v.Name); err != nil && !errors.Is(err, engine.ErrNotFound) {
			errs = append(errs, engine.Op("remove volume", v.Name, err, nil))
			continue
		}
		e.logf("shared %s: removed volume %s", key[:12], v.Name)
	}
	return errors.Join(errs...)
}

// afterParentRetry paces the watchdog's attempts when the daemon fails.
var afterParentRetry = retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.3}

// AfterParent is the watchdog's part once its parent has ended: for each
// key the parent held it drops the parent's lease, then waits out the idle
// time and removes the container — unless a live holder holds it (its own
// watchdog takes over), or a holder that ended later set a later end (its
// watchdog waits for that). It returns when every key is settled or ctx
// ends. It returns the keys whose container it removed.
func (e Expiry) AfterParent(ctx context.Context, keys []string) (removed []string) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, key := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if e.watch(ctx, key) {
				mu.Lock()
				removed = append(removed, key)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return removed
}

// watch settles key for AfterParent; it reports whether it removed it.
func (e Expiry) watch(ctx context.Context, key string) bool {
	var mine time.Time
	b := afterParentRetry.BackOff()
	for {
		st, err := e.Expire(ctx, key, Due)
		wait := time.Duration(0)
		switch {
		case err != nil:
			e.logf("shared %s: %v", key[:12], err)
			wait = b.NextBackOff()
		case st.State == Waiting && !mine.IsZero() && st.Until.After(mine):
			e.logf("shared %s: a later holder's idle time runs until %s: its watchdog removes it", key[:12], st.Until.Format(time.RFC3339))
			return false
		case st.State == Waiting:
			if mine.IsZero() {
				e.logf("shared %s: no holder left; removing it at %s unless one comes", key[:12], st.Until.Format(time.RFC3339))
			}
			mine = st.Until
			wait = time.Until(st.Until) + 10*time.Millisecond
		default:
			e.logf("shared %s: %s (%d live holders)", key[:12], st.State, st.Holders)
			return st.State == Removed
		}
		if retry.Sleep(ctx, wait) != nil {
			return false
		}
	}
}

// Sweep expires, without waiting for any lock, every shared container of
// this machine and this Store on the daemon but skip's, as Due: those whose
// idle time is over and that no one holds — their last holder's watchdog
// was killed before it could remove them, or never ran (HEPH_REAPER=off).
// Keys never used through this Store are left alone: their holders are
// counted elsewhere. It returns what it removed.
func (e Expiry) Sweep(ctx context.Context, skip string) ([]string, error) {
	cs, err := e.API.ContainerList(ctx, engine.Filter{}.Add("label", labels.Managed+"=true", labels.Shared, labels.Host+"="+e.Host))
	if err != nil {
		return nil, engine.Op("list shared containers", "", err, nil)
	}
	e.Try = true
	seen := map[string]bool{skip: true}
	var removed []string
	var errs []error
	for _, c := range cs {
		key := c.Labels[labels.Shared]
		if seen[key] || !e.Store.has(key) {
			continue
		}
		seen[key] = true
		st, err := e.Expire(ctx, key, Due)
		if err != nil {
			errs = append(errs, err)
		} else if st.State == Removed {
			removed = append(removed, c.Name)
		}
	}
	return removed, errors.Join(errs...)
}
