package shared

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/retry"
)

// Take describes one take of a shared container by a holder that already
// holds a lease of Key (Holder.Hold).
type Take struct {
	API   engine.API
	Store *Store
	Key   string
	// Name is the container's name (Name(service, Key)).
	Name string
	// Ports are the container ports it publishes ("8080/tcp"): a container
	// that lost one is replaced.
	Ports []string
	// Create creates, starts and waits for the container named Name; it is
	// called under Key's exclusive lock, with no container of that name on
	// the daemon. On failure it has removed what it made. An error matching
	// engine.ErrConflict means the name was taken meanwhile (by a process
	// that does not share this Store): the take then joins that container.
	Create func(ctx context.Context) (id string, err error)
	// Ready, when set, is the holder's wait for the container it took
	// (its wait strategy), run outside the lock. When it fails and the
	// container turns out broken (see Check), the take replaces it, once.
	Ready func(ctx context.Context, id string) error
	// Bad, when set, is the ID of the container a previous take of this
	// holder found broken: it is replaced, not handed out again.
	Bad string
}

// Taken is what a take found.
type Taken struct {
	ID string
	// Created is true when this take created the container; Replaced when
	// it removed a broken one first (its reason in Why).
	Created, Replaced bool
	Why               string
}

// Run returns the ID of a running container of the key, creating it when
// there is none and replacing one that exited, is unhealthy or lost a
// published port, then runs Ready. Most takes find it under the shared
// lock and cost one inspect; a create or replacement happens under the
// exclusive lock, so among every process using the Store exactly one
// creates and the others wait for it, then join.
func (t Take) Run(ctx context.Context) (Taken, error) {
	for retried := false; ; retried = true {
		got, err := t.take(ctx)
		if err != nil || t.Ready == nil {
			return got, err
		}
		err = t.Ready(ctx, got.ID)
		if err == nil {
			return got, nil
		}
		if c, ierr := t.API.ContainerInspect(ctx, got.ID); retried || (ierr == nil && Check(c, t.Ports) == nil) {
			return got, err // it runs: the wait's failure is the holder's
		}
		t.Bad = got.ID // it broke while we waited: replace it, once
	}
}

// take is one attempt of Run, without Ready.
func (t Take) take(ctx context.Context) (Taken, error) {
	l, err := t.Store.Lock(ctx, t.Key, false)
	if err != nil {
		return Taken{}, err
	}
	c, found, err := t.look(ctx)
	if err == nil && found && c.ID != t.Bad && Check(c, t.Ports) == nil {
		t.Store.clearIdle(t.Key)
		l.Unlock()
		return Taken{ID: c.ID}, nil
	}
	l.Unlock()
	if err != nil {
		return Taken{}, err
	}

	l, err = t.Store.Lock(ctx, t.Key, true)
	if err != nil {
		return Taken{}, err
	}
	defer l.Unlock()
	c, found, err = t.look(ctx)
	if err != nil {
		return Taken{}, err
	}
	var out Taken
	if found {
		why := Check(c, t.Ports)
		if why == nil && c.ID != t.Bad {
			t.Store.clearIdle(t.Key)
			return Taken{ID: c.ID}, nil // another holder made or mended it meanwhile
		}
		if why == nil {
			why = errors.New("it was not ready for a holder")
		}
		if err := t.API.ContainerRemove(ctx, c.ID); err != nil && !errors.Is(err, engine.ErrNotFound) {
			return Taken{}, engine.Op("replace shared container", t.Name, err, nil)
		}
		out.Replaced, out.Why = true, why.Error()
	}
	t.Store.clearIdle(t.Key)
	id, err := t.Create(ctx)
	if errors.Is(err, engine.ErrConflict) {
		id, err = t.joinUnlocked(ctx)
		return Taken{ID: id}, err
	}
	if err != nil {
		return Taken{}, err
	}
	out.ID, out.Created = id, true
	return out, nil
}

// look inspects the container named t.Name; found is false when there is
// none. A container of that name that carries another key is an error.
func (t Take) look(ctx context.Context) (engine.Container, bool, error) {
	c, err := t.API.ContainerInspect(ctx, t.Name)
	switch {
	case errors.Is(err, engine.ErrNotFound):
		return engine.Container{}, false, nil
	case err != nil:
		return engine.Container{}, false, engine.Op("inspect shared container", t.Name, err, nil)
	case c.Labels[labels.Shared] != t.Key:
		return engine.Container{}, false, fmt.Errorf("heph: the name %s is taken by a container that is not the shared container of key %s (its %s label is %q): remove it",
			t.Name, t.Key[:12], labels.Shared, c.Labels[labels.Shared])
	}
	return c, true, nil
}

// joinUnlocked waits for a container another process is creating without
// this Store's lock (it keeps its state elsewhere) until it runs.
func (t Take) joinUnlocked(ctx context.Context) (string, error) {
	var id string
	err := retry.Poll(ctx, retry.Policy{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond, Jitter: 0.3}, func(ctx context.Context) error {
		c, found, err := t.look(ctx)
		switch {
		case err != nil:
			return retry.Permanent(err)
		case !found:
			return errors.New("it is not there (yet)")
		case c.Status != "running" && c.Status != "created":
			return retry.Permanent(fmt.Errorf("heph: shared container %s, made by another process, is %s", t.Name, c.Status))
		case c.Status != "running":
			return errors.New("it is not running yet")
		}
		id = c.ID
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("heph: join shared container %s made by another process: %w", t.Name, err)
	}
	return id, nil
}

// Check says why a shared container cannot be handed out: it is not
// running (exited, dead, paused, …), its health check says unhealthy, or
// one of ports is no longer published. nil means it can.
func Check(c engine.Container, ports []string) error {
	switch {
	case c.Status != "running":
		if c.Status == "exited" || c.Status == "dead" {
			return fmt.Errorf("it %s with code %d", c.Status, c.ExitCode)
		}
		return fmt.Errorf("it is %s, not running", c.Status)
	case c.Health == "unhealthy":
		return errors.New("its health check says unhealthy")
	}
	for _, p := range ports {
		if len(c.Ports[p]) == 0 {
			return fmt.Errorf("its port %s is no longer published", p)
		}
	}
	return nil
}
