package shared

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/labels"
)

// Labels turns the labels heph puts on a new resource into a shared
// container's (or its volume's) for key: heph.shared=<key> instead of
// heph.session and heph.pid, so that no session's teardown, watchdog or
// prune removes it. An empty key leaves l as it is.
func Labels(l map[string]string, key string) map[string]string {
	if key != "" {
		delete(l, labels.Session)
		delete(l, labels.PID)
		delete(l, labels.Run) // it outlives the run, on purpose
		l[labels.Shared] = key
	}
	return l
}

// Attachment is one holder's use of a shared container's networking: Join
// attaches the container to a network of the holder under its service
// name, Leave detaches it from every network it joined, so that another
// test's network cannot reach it once the test let it go. It is safe for
// concurrent use.
type Attachment struct {
	API      engine.API
	ID, Name string // the container's ID and name
	Service  string
	// NotFound is the sentinel a join to a network that does not exist
	// matches.
	NotFound error

	mu   sync.Mutex
	nets []string
}

// Join attaches the container to the network net with the service name as
// alias.
func (a *Attachment) Join(ctx context.Context, net string) error {
	if err := a.API.NetworkConnect(ctx, net, a.ID, []string{a.Service}); err != nil {
		return engine.Op(fmt.Sprintf("connect shared container %q to network", a.Name), net, err, a.NotFound)
	}
	a.mu.Lock()
	a.nets = append(a.nets, net)
	a.mu.Unlock()
	return nil
}

// Leave detaches the container from every network it joined; a network or
// container already gone is not an error.
func (a *Attachment) Leave(ctx context.Context) error {
	a.mu.Lock()
	nets := a.nets
	a.nets = nil
	a.mu.Unlock()
	var all []error
	for _, n := range nets {
		if err := a.API.NetworkDisconnect(ctx, n, a.ID); err != nil && !errors.Is(err, engine.ErrNotFound) {
			all = append(all, engine.Op(fmt.Sprintf("disconnect shared container %q from network", a.Name), n, err, nil))
		}
	}
	return errors.Join(all...)
}
