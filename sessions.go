package heph

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// This file finds heph's resources on a daemon by their labels, whoever made
// them, groups them by session, and removes a session's resources. The
// watchdog (reaper.go) and the heph command (cmd/heph) share it.

// ResourceKind says what a Resource is.
type ResourceKind string

// The kinds of resources heph makes.
const (
	ResourceContainer ResourceKind = "container"
	ResourceNetwork   ResourceKind = "network"
	ResourceVolume    ResourceKind = "volume"
)

// Resource is one container, network or volume labelled heph.managed=true.
type Resource struct {
	// Kind is container, network or volume.
	Kind ResourceKind
	// ID is the Docker ID (for a volume, its name).
	ID string
	// Name is the container, network or volume name, without a leading "/".
	Name string
	// Test is the heph.test label: the test that made it; "" when absent.
	Test string
	// State is a container's state as Docker spells it ("running",
	// "exited", …); "" for networks and volumes.
	State string
	// Created is the heph.created label, else the daemon's creation time;
	// zero when neither is known.
	Created time.Time
}

// ProcessState says whether the process that made a session still runs.
type ProcessState string

// Process states of a Session.
const (
	// ProcessAlive means a process with the session's heph.pid runs on this
	// host and started before the session's resources were created.
	ProcessAlive ProcessState = "alive"
	// ProcessGone means the session was made on this host and its process
	// has exited (or its pid now belongs to a younger process).
	ProcessGone ProcessState = "gone"
	// ProcessUnknown means it cannot be judged from here: the session was
	// made on another host (heph.host differs), or its resources carry no
	// heph.pid.
	ProcessUnknown ProcessState = "unknown"
)

// Session is everything on the daemon labelled with one heph.session id:
// what one Orchestrator made and has not removed.
type Session struct {
	// ID is the heph.session label ("" for heph resources without one).
	ID string
	// Tests are the distinct non-empty heph.test labels of its resources,
	// sorted.
	Tests []string
	// PID and Host are the heph.pid and heph.host labels: the process that
	// made the session and the host it ran on (0 and "" when absent).
	PID  int
	Host string
	// Created is the earliest creation time of its resources.
	Created time.Time
	// Process says whether PID is still running (judged only on Host).
	Process ProcessState
	// Resources are its containers, then networks, then volumes, each
	// sorted by name.
	Resources []Resource
}

// Stale reports whether the session's process is gone: nothing will remove
// its resources but heph prune (or the session's watchdog, if it runs).
func (s Session) Stale() bool { return s.Process == ProcessGone }

// Count returns how many of the session's resources are of kind k.
func (s Session) Count(k ResourceKind) int {
	n := 0
	for _, r := range s.Resources {
		if r.Kind == k {
			n++
		}
	}
	return n
}

// ListSessions returns every container (running or not), network and volume
// on o's daemon labelled heph.managed=true — whoever made it, in this process
// or another — grouped by their heph.session label, oldest session first.
// Whether each session's process is alive is judged on this host only (see
// ProcessState). It changes nothing. It fails when a list call fails; the
// error names the call and matches ErrDockerUnavailable when the daemon
// cannot be reached.
func (o *Orchestrator) ListSessions(ctx context.Context) ([]Session, error) {
	items, err := listManaged(ctx, o.api, "")
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	return groupSessions(items, host, processState), nil
}

// RemoveSession removes every container (forced, with its anonymous
// volumes), network and volume labelled heph.session=id and
// heph.managed=true, whoever made them, and returns what it removed. It lists
// again after each pass and retries, with backoff, until nothing is left, for
// up to 30 s or until ctx ends. It removes the resources of a session whose
// process still runs too: check Session.Process first.
//
// An id that is not a session id (empty, or with characters other than
// letters, digits, '.', '_' and '-') gives ErrInvalidConfig before any
// Docker call. When something is still there at the end, the error names it
// and joins the last failures; a resource that is already gone is not a
// failure.
func (o *Orchestrator) RemoveSession(ctx context.Context, id string) ([]Resource, error) {
	if !validID(id) {
		return nil, invalid("session id", id, "is not a heph session id")
	}
	removed, _, err := removal{api: o.api, sessions: []string{id}, policy: pruneRetry}.run(ctx)
	return removed, err
}

// managedItem is a listed resource with the labels grouping needs.
type managedItem struct {
	Resource
	labels map[string]string
}

// managedFilter selects heph's resources, of one session when id != "".
func managedFilter(id string) client.Filters {
	f := make(client.Filters).Add("label", LabelManaged+"=true")
	if id != "" {
		f.Add("label", LabelSession+"="+id)
	}
	return f
}

// listManaged lists heph's containers, networks and volumes (of session id
// when id != "").
func listManaged(ctx context.Context, api dockerAPI, id string) ([]managedItem, error) {
	f := managedFilter(id)
	var items []managedItem
	cs, err := api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, wrap("list containers of session", id, err, nil)
	}
	for _, c := range cs.Items {
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		items = append(items, item(ResourceContainer, c.ID, name, string(c.State), time.Unix(c.Created, 0), c.Labels))
	}
	ns, err := api.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return nil, wrap("list networks of session", id, err, nil)
	}
	for _, n := range ns.Items {
		items = append(items, item(ResourceNetwork, n.ID, n.Name, "", n.Created, n.Labels))
	}
	vs, err := api.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return nil, wrap("list volumes of session", id, err, nil)
	}
	for _, v := range vs.Items {
		created, _ := time.Parse(time.RFC3339Nano, v.CreatedAt)
		items = append(items, item(ResourceVolume, v.Name, v.Name, "", created, v.Labels))
	}
	return items, nil
}

func item(kind ResourceKind, id, name, state string, created time.Time, labels map[string]string) managedItem {
	if t, err := time.Parse(time.RFC3339, labels[LabelCreated]); err == nil {
		created = t
	}
	if created.Unix() <= 0 {
		created = time.Time{}
	}
	return managedItem{
		Resource: Resource{Kind: kind, ID: id, Name: name, Test: labels[LabelTest], State: state, Created: created.UTC()},
		labels:   labels,
	}
}

var kindOrder = map[ResourceKind]int{ResourceContainer: 0, ResourceNetwork: 1, ResourceVolume: 2}

// groupSessions groups items by session, judging each session's process with
// alive when it was made on thisHost.
func groupSessions(items []managedItem, thisHost string, alive func(pid int, created time.Time) ProcessState) []Session {
	byID := map[string]*Session{}
	tests := map[string]map[string]bool{}
	var order []string
	for _, it := range items {
		id := it.labels[LabelSession]
		s, ok := byID[id]
		if !ok {
			s = &Session{ID: id}
			byID[id] = s
			tests[id] = map[string]bool{}
			order = append(order, id)
		}
		s.Resources = append(s.Resources, it.Resource)
		if it.Test != "" {
			tests[id][it.Test] = true
		}
		if s.PID == 0 {
			if pid, err := strconv.Atoi(it.labels[LabelPID]); err == nil && pid > 0 {
				s.PID = pid
			}
		}
		if s.Host == "" {
			s.Host = it.labels[LabelHost]
		}
		if !it.Created.IsZero() && (s.Created.IsZero() || it.Created.Before(s.Created)) {
			s.Created = it.Created
		}
	}
	sessions := make([]Session, 0, len(order))
	for _, id := range order {
		s := byID[id]
		for t := range tests[id] {
			s.Tests = append(s.Tests, t)
		}
		sort.Strings(s.Tests)
		sort.Slice(s.Resources, func(i, j int) bool {
			a, b := s.Resources[i], s.Resources[j]
			if a.Kind != b.Kind {
				return kindOrder[a.Kind] < kindOrder[b.Kind]
			}
			return a.Name < b.Name
		})
		s.Process = ProcessUnknown
		if s.PID > 0 && s.Host != "" && s.Host == thisHost && alive != nil {
			s.Process = alive(s.PID, s.Created)
		}
		sessions = append(sessions, *s)
	}
	sort.SliceStable(sessions, func(i, j int) bool {
		if !sessions[i].Created.Equal(sessions[j].Created) {
			return sessions[i].Created.Before(sessions[j].Created)
		}
		return sessions[i].ID < sessions[j].ID
	})
	return sessions
}

// validID reports whether id can be a session id (a heph.session label value
// heph puts in a filter) or a resource id in the watchdog's protocol: 1–128
// letters, digits, '.', '_' or '-'.
func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}

// retryPolicy bounds a removal.
type retryPolicy struct {
	// initial and max are the backoff's first and longest wait between
	// passes; maxElapsed bounds the whole removal.
	initial, max, maxElapsed time.Duration
	// settle, when non-zero, is how long to wait after the first pass that
	// finds nothing before a last confirming pass: it catches a create that
	// was in flight when the owner died.
	settle time.Duration
}

var (
	// pruneRetry is RemoveSession's policy.
	pruneRetry = retryPolicy{initial: 50 * time.Millisecond, max: 2 * time.Second, maxElapsed: 30 * time.Second}
	// watchdogRetry is the watchdog's: it has nothing else to do.
	watchdogRetry = retryPolicy{initial: 50 * time.Millisecond, max: 2 * time.Second, maxElapsed: 2 * time.Minute, settle: time.Second}
)

// removal removes everything labelled with some sessions but what it is told
// to keep.
type removal struct {
	api      dockerAPI
	sessions []string
	// keep holds the IDs (or names) of resources to leave in place
	// (HEPH_KEEP). Networks and volumes that kept containers still use are
	// left too.
	keep   map[string]bool
	policy retryPolicy
	// logf, when not nil, is told of every removal, keep and failure.
	logf func(string, ...any)
}

// run removes pass after pass, until a pass lists nothing to remove (and,
// with policy.settle, a pass after the settle time lists nothing again), or
// policy.maxElapsed or ctx ends. It returns what it removed and what it left
// in place on purpose; the error says what is left and why.
func (r removal) run(ctx context.Context) (removed, kept []Resource, err error) {
	if r.logf == nil {
		r.logf = func(string, ...any) {}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, r.policy.maxElapsed)
	defer cancel()
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(r.policy.initial),
		backoff.WithMaxInterval(r.policy.max),
		backoff.WithMaxElapsedTime(0), // ctx bounds the whole removal
	)
	settled := r.policy.settle == 0
	keptSeen := map[string]bool{}
	for {
		var (
			now, left []Resource
			errs      []error
		)
		for _, id := range r.sessions {
			rm, l, k, err := r.pass(ctx, id)
			now = append(now, rm...)
			left = append(left, l...)
			if err != nil {
				errs = append(errs, err)
			}
			for _, res := range k {
				if !keptSeen[res.ID] {
					keptSeen[res.ID] = true
					kept = append(kept, res)
					r.logf("session %s: kept %s %s", id, res.Kind, res.Name)
				}
			}
		}
		removed = append(removed, now...)
		clean := len(left) == 0 && len(errs) == 0
		switch {
		case clean && len(now) == 0 && settled:
			return removed, kept, nil
		case clean && len(now) == 0:
			settled = true
			if err := sleepCtx(ctx, r.policy.settle); err != nil {
				return removed, kept, leftError(r.sessions, nil, time.Since(start), nil, err)
			}
			continue
		case clean:
			b.Reset() // everything found is removed: confirm at once
		}
		if err := sleepCtx(ctx, b.NextBackOff()); err != nil {
			return removed, kept, leftError(r.sessions, left, time.Since(start), errs, err)
		}
	}
}

func leftError(ids []string, left []Resource, elapsed time.Duration, errs []error, ctxErr error) error {
	names := make([]string, 0, len(left))
	for _, r := range left {
		names = append(names, string(r.Kind)+" "+r.Name)
	}
	msg := fmt.Sprintf("heph: remove sessions %s: gave up after %s", strings.Join(ids, ", "), elapsed.Round(time.Millisecond))
	if len(names) > 0 {
		msg += "; still there: " + strings.Join(names, ", ")
	}
	all := append([]error{errors.New(msg)}, errs...)
	if ctxErr != nil {
		all = append(all, ctxErr)
	}
	return errors.Join(all...)
}

// pass lists session id's resources and removes them: containers
// concurrently (forced, with anonymous volumes), then networks, then volumes.
// It returns what it removed, what it found but could not remove, and what
// it left on purpose; a resource already gone is none of them.
func (r removal) pass(ctx context.Context, id string) (removed, left, kept []Resource, err error) {
	items, err := listManaged(ctx, r.api, id)
	if err != nil {
		r.logf("session %s: %v", id, err)
		return nil, nil, nil, err
	}
	var (
		mu             sync.Mutex
		errs           []error
		wg             sync.WaitGroup
		keptContainers bool
	)
	done := func(res Resource, err error) {
		mu.Lock()
		defer mu.Unlock()
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		switch {
		case err == nil:
			removed = append(removed, res)
			r.logf("session %s: removed %s %s", id, res.Kind, res.Name)
		case cerrdefs.IsNotFound(err):
		case keptContainers && (strings.Contains(msg, "active endpoints") || strings.Contains(msg, "in use")):
			kept = append(kept, res) // a kept container still uses it
		case cerrdefs.IsConflict(err) && strings.Contains(msg, "in progress"):
			left = append(left, res) // the daemon is already removing it
		default:
			left = append(left, res)
			errs = append(errs, wrap("remove "+string(res.Kind), res.Name, err, nil))
			r.logf("session %s: remove %s %s: %v", id, res.Kind, res.Name, err)
		}
	}
	var rest []managedItem
	for _, it := range items {
		if r.keep[it.ID] || (it.Name != "" && r.keep[it.Name]) {
			kept = append(kept, it.Resource)
			keptContainers = keptContainers || it.Kind == ResourceContainer
			continue
		}
		rest = append(rest, it)
	}
	for _, it := range rest {
		if it.Kind != ResourceContainer {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.api.ContainerRemove(ctx, it.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
			done(it.Resource, err)
		}()
	}
	wg.Wait()
	for _, it := range rest {
		if it.Kind == ResourceNetwork {
			_, err := r.api.NetworkRemove(ctx, it.ID, client.NetworkRemoveOptions{})
			done(it.Resource, err)
		}
	}
	for _, it := range rest {
		if it.Kind == ResourceVolume {
			_, err := r.api.VolumeRemove(ctx, it.ID, client.VolumeRemoveOptions{Force: true})
			done(it.Resource, err)
		}
	}
	return removed, left, kept, errors.Join(errs...)
}

// sleepCtx waits d, or until ctx ends (then it returns ctx's error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
