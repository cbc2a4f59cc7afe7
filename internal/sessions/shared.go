package sessions

import (
	"context"
	"errors"
	"strings"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/labels"
)

// isShared reports whether a listed resource belongs to a shared container
// (heph.shared): it is no session's, whatever else it carries.
func isShared(it managedItem) bool {
	_, ok := it.labels[labels.Shared]
	return ok
}

// removeNetwork removes a session's network. When Docker refuses because
// containers are attached, none of the session's own is left (ownLeft is
// false), and shared containers (heph.shared) are among them — a holder
// whose process died left them on its test network — it detaches those and
// tries again. The shared containers themselves are not the session's and
// stay.
func (r Removal) removeNetwork(ctx context.Context, id string, n Resource, ownLeft bool) error {
	err := r.API.NetworkRemove(ctx, n.ID)
	if err == nil || ownLeft || !strings.Contains(err.Error(), "active endpoints") {
		return err
	}
	cs, lerr := r.API.ContainerList(ctx, engine.Filter{}.Add("label", labels.Managed+"=true", labels.Shared))
	if lerr != nil {
		r.Logf("session %s: list shared containers: %v", id, lerr)
		return err
	}
	detached := false
	for _, c := range cs {
		if _, ok := c.Networks[n.Name]; !ok {
			continue
		}
		if derr := r.API.NetworkDisconnect(ctx, n.Name, c.ID); derr != nil && !errors.Is(derr, engine.ErrNotFound) {
			r.Logf("session %s: detach shared container %s from network %s: %v", id, c.Name, n.Name, derr)
			continue
		}
		r.Logf("session %s: detached shared container %s from network %s", id, c.Name, n.Name)
		detached = true
	}
	if !detached {
		return err
	}
	return r.API.NetworkRemove(ctx, n.ID)
}
