// Package sessions finds heph's resources on a daemon by their labels,
// whoever made them, groups them by session, judges whether each session's
// process still runs, and removes a session's resources. The watchdog and
// the heph command share it.
package sessions

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/retry"
)

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
	// host, in this pid namespace, during this boot, and started before the
	// session's resources were created.
	ProcessAlive ProcessState = "alive"
	// ProcessGone means it is proved that the session's process has exited:
	// the session was made on this host (heph.host), in this process's pid
	// namespace (heph.pidns) during this boot (heph.boot), and no process has
	// its pid (or a zombie has, or a process that started after the
	// session's resources were made).
	ProcessGone ProcessState = "gone"
	// ProcessUnknown means it cannot be proved either way from here: the
	// session was made on another host, in another pid namespace (a test in
	// a container sharing the host's name, a pod's sidecar), during another
	// boot, by a heph that did not record its pid namespace and boot, or its
	// resources carry no heph.pid. Session.Why says which.
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
	// PIDNS and Boot are the heph.pidns and heph.boot labels: that
	// process's pid namespace and its machine's boot id ("" when absent).
	PIDNS, Boot string
	// Created is the earliest creation time of its resources.
	Created time.Time
	// Process says whether PID is still running (judged only where the pid
	// means the same process: see ProcessState).
	Process ProcessState
	// Why says why Process is ProcessUnknown ("" otherwise).
	Why string
	// Resources are its containers, then networks, then volumes, each
	// sorted by name.
	Resources []Resource
}

// Stale reports whether the session's process is proved gone: nothing will
// remove its resources but heph prune (or the session's watchdog, if it
// runs).
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

// List returns every container (running or not), network and volume on the
// daemon labelled heph.managed=true — whoever made it, in this process or
// another — grouped by their heph.session label, oldest session first;
// shared containers (heph.shared) and their volumes are no session's and
// are left out (package shared lists them). Whether each session's process
// is alive is judged only where its pid means the same process (see
// ProcessState). It changes nothing. It fails when a list call fails; the
// error names the call and matches errs.DockerUnavailable when the daemon
// cannot be reached.
func List(ctx context.Context, api engine.API) ([]Session, error) {
	items, err := listManaged(ctx, api, "")
	if err != nil {
		return nil, err
	}
	items = slices.DeleteFunc(items, isShared) // no session's: heph ps lists them apart
	return groupSessions(items, Self(), processState), nil
}

// Remove removes every container (forced, with its anonymous volumes),
// network and volume labelled heph.session=id and heph.managed=true, whoever
// made them, with the heph-made named volumes its containers mounted, and
// returns what it removed. A named volume a container of another session
// still uses is left in place: that session removes it (see RemoveVolumes). It lists again after each pass and
// retries, with backoff, until nothing is left, for up to 30 s or until ctx
// ends. It removes the resources of a session whose process still runs too:
// the caller checks Session.Process first.
//
// An id that is not a session id gives errs.InvalidConfig before any Docker
// call. When something is still there at the end, the error names it and
// joins the last failures; a resource that is already gone is not a failure.
func Remove(ctx context.Context, api engine.API, id string) ([]Resource, error) {
	if !ValidID(id) {
		return nil, errs.Invalid("session id", id, "is not a heph session id")
	}
	removed, _, err := Removal{API: api, Sessions: []string{id}, Policy: PruneRetry}.Run(ctx)
	return removed, err
}

// managedItem is a listed resource with the labels grouping needs.
type managedItem struct {
	Resource
	labels  map[string]string
	volumes []string // a container's volume mounts
}

// managedFilter selects heph's resources, of one session when id != "".
func managedFilter(id string) engine.Filter {
	f := engine.Filter{}.Add("label", labels.Managed+"=true")
	if id != "" {
		f.Add("label", labels.Session+"="+id)
	}
	return f
}

// listManaged lists heph's containers, networks and volumes (of session id
// when id != "").
func listManaged(ctx context.Context, api engine.API, id string) ([]managedItem, error) {
	f := managedFilter(id)
	// "list containers of session "s1"", or "list heph's containers".
	fail := func(kind string, err error) error {
		if id == "" {
			return engine.Op("list heph's "+kind, "", err, nil)
		}
		return engine.Op("list "+kind+" of session", id, err, nil)
	}
	var items []managedItem
	cs, err := api.ContainerList(ctx, f)
	if err != nil {
		return nil, fail("containers", err)
	}
	for _, c := range cs {
		it := item(ResourceContainer, c.ID, c.Name, c.Status, c.Created, c.Labels)
		it.volumes = c.Volumes
		items = append(items, it)
	}
	ns, err := api.NetworkList(ctx, f)
	if err != nil {
		return nil, fail("networks", err)
	}
	for _, n := range ns {
		items = append(items, item(ResourceNetwork, n.ID, n.Name, "", n.Created, n.Labels))
	}
	vs, err := api.VolumeList(ctx, f)
	if err != nil {
		return nil, fail("volumes", err)
	}
	for _, v := range vs {
		items = append(items, item(ResourceVolume, v.Name, v.Name, "", v.Created, v.Labels))
	}
	return items, nil
}

func item(kind ResourceKind, id, name, state string, created time.Time, l map[string]string) managedItem {
	if t, err := time.Parse(time.RFC3339, l[labels.Created]); err == nil {
		created = t
	}
	if created.Unix() <= 0 {
		created = time.Time{}
	}
	return managedItem{
		Resource: Resource{Kind: kind, ID: id, Name: name, Test: l[labels.Test], State: state, Created: created.UTC()},
		labels:   l,
	}
}

var kindOrder = map[ResourceKind]int{ResourceContainer: 0, ResourceNetwork: 1, ResourceVolume: 2}

// groupSessions groups items by session, judging each session's process
// from here (see judge).
func groupSessions(items []managedItem, here Identity, alive func(pid int, created time.Time) ProcessState) []Session {
	byID := map[string]*Session{}
	tests := map[string]map[string]bool{}
	var order []string
	for _, it := range items {
		id := it.labels[labels.Session]
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
			if pid, err := strconv.Atoi(it.labels[labels.PID]); err == nil && pid > 0 {
				s.PID = pid
			}
		}
		if s.Host == "" {
			s.Host = it.labels[labels.Host]
		}
		if s.PIDNS == "" {
			s.PIDNS = it.labels[labels.PIDNS]
		}
		if s.Boot == "" {
			s.Boot = it.labels[labels.Boot]
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
		s.Process, s.Why = judge(*s, here, alive)
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

// ValidID reports whether id can be a session id (a heph.session label value
// heph puts in a filter) or a resource id in the watchdog's protocol: 1–128
// letters, digits, '.', '_' or '-'.
func ValidID(id string) bool {
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

// RetryPolicy bounds a removal.
type RetryPolicy struct {
	// Backoff paces the passes; MaxElapsed bounds the whole removal.
	Backoff    retry.Policy
	MaxElapsed time.Duration
	// Settle, when non-zero, is how long to wait after the first pass that
	// finds nothing before a last confirming pass: it catches a create that
	// was in flight when the owner died.
	Settle time.Duration
}

var (
	// PruneRetry is Remove's policy.
	PruneRetry = RetryPolicy{Backoff: retry.Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second, Jitter: 0.5}, MaxElapsed: 30 * time.Second}
	// WatchdogRetry is the watchdog's: it has nothing else to do.
	WatchdogRetry = RetryPolicy{Backoff: retry.Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second, Jitter: 0.5}, MaxElapsed: 2 * time.Minute, Settle: time.Second}
)

// Removal removes everything labelled with some sessions but what it is
// told to keep.
type Removal struct {
	API      engine.API
	Sessions []string
	// Keep holds the IDs (or names) of resources to leave in place
	// (HEPH_KEEP). Networks and volumes that kept containers still use are
	// left too.
	Keep   map[string]bool
	Policy RetryPolicy
	// Logf, when not nil, is told of every removal, keep and failure.
	Logf func(string, ...any)
}

// Run removes pass after pass, until a pass lists nothing to remove (and,
// with Policy.Settle, a pass after the settle time lists nothing again), or
// Policy.MaxElapsed or ctx ends. It returns what it removed and what it left
// in place on purpose; the error says what is left and why.
func (r Removal) Run(ctx context.Context) (removed, kept []Resource, err error) {
	if r.Logf == nil {
		r.Logf = func(string, ...any) {}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, r.Policy.MaxElapsed)
	defer cancel()
	b := r.Policy.Backoff.BackOff()
	settled := r.Policy.Settle == 0
	keptSeen := map[string]bool{}
	states := map[string]*passState{}
	// The failures of the last pass the context did not cut: when the end
	// comes during a pass, its failures say only "context deadline
	// exceeded", the pass before says why nothing worked.
	var failures []error
	for {
		var (
			now, left []Resource
			errs      []error
		)
		for _, id := range r.Sessions {
			st := states[id]
			if st == nil {
				st = &passState{mounted: map[string]bool{}, shared: map[string]bool{}}
				states[id] = st
			}
			rm, l, k, err := r.pass(ctx, id, st)
			st.left = l
			now = append(now, rm...)
			left = append(left, l...)
			if err != nil {
				errs = append(errs, err)
			}
			for _, res := range k {
				if !keptSeen[res.ID] {
					keptSeen[res.ID] = true
					kept = append(kept, res)
					r.Logf("session %s: kept %s %s", id, res.Kind, res.Name)
				}
			}
		}
		removed = append(removed, now...)
		switch {
		case ctx.Err() == nil:
			failures = errs
		case failures == nil:
			// A pass the end cut short: its calls that failed only
			// because of the end are no failure of ours.
			failures = slices.DeleteFunc(errs, func(err error) bool {
				return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
			})
		}
		clean := len(left) == 0 && len(errs) == 0
		switch {
		case clean && len(now) == 0 && settled:
			return removed, kept, nil
		case clean && len(now) == 0:
			settled = true
			if err := retry.Sleep(ctx, r.Policy.Settle); err != nil {
				return removed, kept, leftError(r.Sessions, nil, time.Since(start), nil, err)
			}
			continue
		case clean:
			b.Reset() // everything found is removed: confirm at once
		}
		if err := retry.Sleep(ctx, b.NextBackOff()); err != nil {
			return removed, kept, leftError(r.Sessions, left, time.Since(start), failures, err)
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

// passState is what a session's passes carry from one to the next.
type passState struct {
	left    []Resource      // what the last pass left
	mounted map[string]bool // the volumes the session's containers mounted
	shared  map[string]bool // volumes left to another session: said once
}

// RemoveVolumes removes a session's named volumes: own (labelled with the
// session) and, of mounted (the named volumes its containers mounted), those
// heph made (heph.managed=true), and returns the names removed. A named
// volume is shared by name: one a container still uses — another session's
// — is left in place for its last user to remove, and is no failure; nor is
// one already gone. The error joins the other failures.
func RemoveVolumes(ctx context.Context, api engine.API, own, mounted []string) ([]string, error) {
	var rest []string
	for _, v := range mounted {
		if !slices.Contains(own, v) {
			rest = append(rest, v)
		}
	}
	heph, err := hephVolumes(ctx, api, rest)
	if err != nil {
		return nil, err
	}
	var (
		removed []string
		errs    []error
	)
	for _, v := range append(slices.Clone(own), heph...) {
		switch err := api.VolumeRemove(ctx, v); {
		case err == nil:
			removed = append(removed, v)
		case errors.Is(err, engine.ErrNotFound), volumeInUse(err):
		default:
			errs = append(errs, engine.Op("remove volume", v, err, nil))
		}
	}
	return removed, errors.Join(errs...)
}

// hephVolumes returns, of names, those of volumes heph made
// (heph.managed=true), sorted.
func hephVolumes(ctx context.Context, api engine.API, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	vols, err := api.VolumeList(ctx, engine.Filter{}.Add("label", labels.Managed+"=true").Add("name", names...))
	if err != nil {
		return nil, engine.Op("list heph's volumes", "", err, nil)
	}
	var out []string
	for _, v := range vols {
		if want[v.Name] { // Docker's name filter matches parts of names too
			out = append(out, v.Name)
			delete(want, v.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// volumeInUse reports whether err is the daemon's refusal to remove a
// volume a container uses.
func volumeInUse(err error) bool {
	return errors.Is(err, engine.ErrConflict) && strings.Contains(err.Error(), "in use")
}

// pass lists session id's resources and removes them: containers
// concurrently (forced, with anonymous volumes), then networks, then volumes:
// those labelled with the session and the heph-made ones its containers
// mounted (st.mounted gathers their names across passes). It returns what it
// removed, what it found but could not remove, and what it left on purpose;
// a resource already gone is none of them, nor is a volume another session's
// container still uses (its last user removes it). When it cannot list, what
// the previous pass left (st.left) is taken as still there, so that a
// removal cut short while listing still says what is left.
func (r Removal) pass(ctx context.Context, id string, st *passState) (removed, left, kept []Resource, err error) {
	items, err := listManaged(ctx, r.API, id)
	if err != nil {
		r.Logf("session %s: %v", id, err)
		return nil, st.left, nil, err
	}
	for _, it := range items {
		if it.Kind == ResourceContainer && !(r.Keep[it.ID] || r.Keep[it.Name]) {
			for _, v := range it.volumes {
				st.mounted[v] = true
			}
		}
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
			r.Logf("session %s: removed %s %s", id, res.Kind, res.Name)
		case errors.Is(err, engine.ErrNotFound):
		case keptContainers && (strings.Contains(msg, "active endpoints") || strings.Contains(msg, "in use")):
			kept = append(kept, res) // a kept container still uses it
		case errors.Is(err, engine.ErrConflict) && strings.Contains(msg, "in progress"):
			left = append(left, res) // the daemon is already removing it
		default:
			left = append(left, res)
			errs = append(errs, engine.Op("remove "+string(res.Kind), res.Name, err, nil))
			r.Logf("session %s: remove %s %s: %v", id, res.Kind, res.Name, err)
		}
	}
	var rest []managedItem
	for _, it := range items {
		if r.Keep[it.ID] || (it.Name != "" && r.Keep[it.Name]) {
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
			done(it.Resource, r.API.ContainerRemove(ctx, it.ID))
		}()
	}
	wg.Wait()
	mu.Lock()
	ownLeft := keptContainers || len(left) > 0 // a container of the session may hold a network
	mu.Unlock()
	for _, it := range rest {
		if it.Kind == ResourceNetwork {
			done(it.Resource, r.removeNetwork(ctx, id, it.Resource, ownLeft))
		}
	}
	// Volumes: its own (labelled with it) and the heph-made ones its
	// containers mounted, each unless a container still uses it.
	byName := map[string]Resource{}
	for _, it := range rest {
		if it.Kind == ResourceVolume {
			byName[it.ID] = it.Resource
		}
	}
	var mountedNames []string
	for v := range st.mounted {
		if _, ok := byName[v]; !ok {
			mountedNames = append(mountedNames, v)
		}
	}
	others, err := hephVolumes(ctx, r.API, mountedNames)
	if err != nil {
		errs = append(errs, err)
		r.Logf("session %s: %v", id, err)
	}
	for _, v := range mountedNames {
		if err == nil && !slices.Contains(others, v) {
			delete(st.mounted, v) // not heph's (or anonymous, or gone): never removed here
		}
	}
	for _, v := range others {
		byName[v] = Resource{Kind: ResourceVolume, ID: v, Name: v}
	}
	names := make([]string, 0, len(byName))
	for v := range byName {
		names = append(names, v)
	}
	sort.Strings(names)
	for _, v := range names {
		err := r.API.VolumeRemove(ctx, v)
		if volumeInUse(err) && !keptContainers {
			// Another session's container uses it (this session's own
			// are in left, and the next pass tries again).
			if !st.shared[v] {
				st.shared[v] = true
				r.Logf("session %s: left volume %s: a container of another session uses it, and removes it when it is done", id, v)
			}
			continue
		}
		if err == nil || errors.Is(err, engine.ErrNotFound) {
			delete(st.mounted, v) // gone: not asked about again
		}
		done(byName[v], err)
	}
	return removed, left, kept, errors.Join(errs...)
}

// Kept is a container a test leaves in place (HEPH_KEEP), as the note about
// it shows it.
type Kept struct {
	Name, Service, Host string
	Ports               map[string]int // container port → host port
}

// KeepNote says what a test (named test) leaves in place under
// <env>=<mode> — each container with how to read its logs, exec in it and
// reach its ports, and the network — and the one command that removes them.
func KeepNote(env, mode, test string, containers []Kept, network string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "heph: %s=%s: keeping what %s made:", env, mode, test)
	var remove []string
	if len(containers) > 0 {
		names := make([]string, 0, len(containers))
		for _, c := range containers {
			names = append(names, c.Name)
			fmt.Fprintf(&b, "\n  container %s (service %s): docker logs %s; docker exec %s <command>", c.Name, c.Service, c.Name, c.Name)
			for _, p := range slices.Sorted(maps.Keys(c.Ports)) {
				fmt.Fprintf(&b, "; %s at %s:%d", p, c.Host, c.Ports[p])
			}
		}
		remove = append(remove, "docker rm -f "+strings.Join(names, " "))
	}
	if network != "" {
		fmt.Fprintf(&b, "\n  network %s", network)
		remove = append(remove, "docker network rm "+network)
	}
	fmt.Fprintf(&b, "\n  remove them with: %s", strings.Join(remove, " && "))
	return b.String()
}

// RemoveSessionVolumes removes the named volumes labelled with session and,
// of mounted, those heph made (see RemoveVolumes), and returns the names
// removed.
func RemoveSessionVolumes(ctx context.Context, api engine.API, session string, mounted []string) ([]string, error) {
	vols, err := api.VolumeList(ctx, engine.Filter{}.Add("label", labels.Session+"="+session))
	if err != nil {
		return nil, engine.Op("list volumes of session", session, err, nil)
	}
	own := make([]string, 0, len(vols))
	for _, v := range vols {
		own = append(own, v.Name)
	}
	return RemoveVolumes(ctx, api, own, mounted)
}
