package sessions

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/retry"
)

// fast is a removal policy for tests: quick passes; a removal that works is
// done long before MaxElapsed, which only bounds a broken one.
var fast = RetryPolicy{Backoff: retry.Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond}, MaxElapsed: time.Minute}

// lbls are the labels heph puts on a resource of session (empty values are
// left out).
func lbls(session, pid, host, created, test string) map[string]string {
	l := map[string]string{labels.Managed: "true"}
	for k, v := range map[string]string{labels.Session: session, labels.PID: pid, labels.Host: host, labels.Created: created, labels.Test: test} {
		if v != "" {
			l[k] = v
		}
	}
	return l
}

// daemon is an enginetest.Fake with helpers to make heph's resources on it.
type daemon struct {
	*enginetest.Fake
	t *testing.T
}

func newDaemon(t *testing.T) daemon { return daemon{enginetest.NewFake(), t} }

// container creates a container of session s (attached to network net when
// not "", using the named volumes), and returns its ID.
func (d daemon) container(s, name, net string, volumes ...string) string {
	d.t.Helper()
	spec := engine.ContainerSpec{Name: name, Image: "app", Labels: lbls(s, "", "", "", ""), Network: net}
	for _, v := range volumes {
		spec.Mounts = append(spec.Mounts, engine.MountSpec{Type: "volume", Source: v, Target: "/" + v, VolumeLabels: lbls(s, "", "", "", "")})
	}
	id, err := d.ContainerCreate(context.Background(), spec)
	require.NoError(d.t, err)
	return id
}

// network creates a network of session s and returns its ID.
func (d daemon) network(s, name string) string {
	d.t.Helper()
	id, err := d.NetworkCreate(context.Background(), engine.NetworkSpec{Name: name, Labels: lbls(s, "", "", "", "")})
	require.NoError(d.t, err)
	return id
}

// volume adds a volume of session s that no container uses.
func (d daemon) volume(s, name string) {
	d.AddVolume(engine.Volume{Name: name, Labels: lbls(s, "", "", "", "")})
}

// logger collects what a Removal logs; it is safe for concurrent use.
type logger struct {
	mu    sync.Mutex
	lines []string
}

func (l *logger) logf(f string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(f, a...))
}

func (l *logger) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func names(rs []Resource) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, string(r.Kind)+" "+r.Name)
	}
	slices.Sort(out)
	return out
}

func TestListGroupsEverythingHephMadeBySession(t *testing.T) {
	ctx := context.Background()
	d := newDaemon(t)
	host, _ := os.Hostname()
	me := strconv.Itoa(os.Getpid())
	mk := func(name string, l map[string]string) string {
		id, err := d.ContainerCreate(ctx, engine.ContainerSpec{Name: name, Image: "app", Labels: l})
		require.NoError(t, err)
		return id
	}
	mk("heph-web-1", ident(lbls("s-new", me, host, "2026-01-02T10:00:05Z", "TestB"), Self().PIDNS, Self().Boot))
	d.Exit(mk("heph-db-1", lbls("s-new", me, host, "2026-01-02T10:00:03Z", "TestA")), 1)
	mk("heph-old-1", lbls("s-old", "999999999", "elsewhere", "2025-12-01T00:00:00Z", ""))
	d.AddNetwork(engine.Network{Name: "heph-net-1", Labels: lbls("s-new", me, host, "2026-01-02T10:00:01Z", "")})
	d.AddNetwork(engine.Network{Name: "heph-net-2", Created: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), Labels: map[string]string{labels.Managed: "true"}})
	d.AddVolume(engine.Volume{Name: "heph-vol-1", Created: time.Date(2026, 1, 2, 10, 0, 4, 0, time.UTC), Labels: lbls("s-new", me, host, "", "")})
	// Not heph's: no heph.managed=true, whatever else they carry.
	mk("user-db", map[string]string{labels.Session: "s-new"})
	mk("user-web", map[string]string{labels.Managed: "false", labels.Session: "s-new"})
	d.AddNetwork(engine.Network{Name: "bridge"})
	d.AddVolume(engine.Volume{Name: "user-data", Labels: map[string]string{"team": "core"}})

	var filters []engine.Filter
	d.Hook = func(_ context.Context, call string, arg any) error {
		if strings.HasSuffix(call, "List") {
			filters = append(filters, arg.(engine.Filter))
		}
		return nil
	}
	before := len(d.Calls())
	sessions, err := List(ctx, d)
	require.NoError(t, err)
	require.Equal(t, []string{"ContainerList", "NetworkList", "VolumeList"}, d.Calls()[before:], "three list calls, nothing else")
	onlyManaged := engine.Filter{"label": {"heph.managed=true"}}
	require.Equal(t, []engine.Filter{onlyManaged, onlyManaged, onlyManaged}, filters, "every session, by the managed label alone")
	require.Len(t, sessions, 3)

	// Oldest first: the unlabelled network, then s-old, then s-new.
	require.Equal(t, "", sessions[0].ID)
	require.Equal(t, ProcessUnknown, sessions[0].Process, "no pid, no host")
	require.Equal(t, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), sessions[0].Created, "the daemon's time when heph.created is missing")

	old := sessions[1]
	require.Equal(t, "s-old", old.ID)
	require.Equal(t, 999999999, old.PID)
	require.Equal(t, "elsewhere", old.Host)
	require.Equal(t, ProcessUnknown, old.Process, "made on another host: not judged here")
	require.False(t, old.Stale())
	require.Empty(t, old.Tests)

	s := sessions[2]
	require.Equal(t, "s-new", s.ID)
	require.Equal(t, []string{"TestA", "TestB"}, s.Tests)
	require.Equal(t, os.Getpid(), s.PID)
	require.Equal(t, host, s.Host)
	require.Equal(t, time.Date(2026, 1, 2, 10, 0, 1, 0, time.UTC), s.Created, "the earliest heph.created")
	require.Equal(t, Self().PIDNS, s.PIDNS)
	require.Equal(t, Self().Boot, s.Boot)
	want := ProcessGone // this process started after the labels say it made them: a reused pid
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		want = ProcessAlive // no start times to compare
	}
	if Self().PIDNS == "" {
		want = ProcessUnknown // not Linux: no pid namespace to pin the pid down
	}
	require.Equal(t, want, s.Process)
	require.Equal(t, want == ProcessGone, s.Stale())
	require.Equal(t, []string{"container heph-db-1", "container heph-web-1", "network heph-net-1", "volume heph-vol-1"},
		[]string{"container " + s.Resources[0].Name, "container " + s.Resources[1].Name, "network " + s.Resources[2].Name, "volume " + s.Resources[3].Name},
		"containers, networks, volumes; by name")
	require.Equal(t, 2, s.Count(ResourceContainer))
	require.Equal(t, 1, s.Count(ResourceNetwork))
	require.Equal(t, 1, s.Count(ResourceVolume))
	require.Equal(t, "exited", s.Resources[0].State)
	require.Equal(t, "created", s.Resources[1].State)
	require.Equal(t, "TestA", s.Resources[0].Test)
	require.Equal(t, "", s.Resources[2].State, "a network has no state")
	require.Equal(t, "heph-vol-1", s.Resources[3].ID, "a volume's ID is its name")
	require.Equal(t, time.Date(2026, 1, 2, 10, 0, 4, 0, time.UTC), s.Resources[3].Created, "a volume's CreatedAt when heph.created is missing")
}

func TestListFails(t *testing.T) {
	for _, call := range []string{"ContainerList", "NetworkList", "VolumeList"} {
		t.Run(call, func(t *testing.T) {
			d := newDaemon(t)
			d.Hook = func(_ context.Context, c string, _ any) error {
				if c == call {
					return enginetest.Unavailable("dial unix /var/run/docker.sock: connect: connection refused")
				}
				return nil
			}
			got, err := List(context.Background(), d)
			require.Nil(t, got)
			require.ErrorIs(t, err, errs.DockerUnavailable, "a daemon out of reach is said so")
			kind := strings.ToLower(strings.TrimSuffix(call, "List")) + "s"
			require.EqualError(t, err, "heph: list heph's "+kind+": dial unix /var/run/docker.sock: connect: connection refused")
		})
	}
	// Listing one session names it.
	d := newDaemon(t)
	d.Hook = func(context.Context, string, any) error { return errors.New("boom") }
	_, err := listManaged(context.Background(), d, "s1")
	require.EqualError(t, err, `heph: list containers of session "s1": boom`)
}

// here is the identity the tests judge from.
var here = Identity{PID: 99, Host: "here", PIDNS: "pid:[4026531836]", Boot: "boot-1"}

// ident adds heph.pidns and heph.boot to labels l.
func ident(l map[string]string, pidns, boot string) map[string]string {
	if pidns != "" {
		l[labels.PIDNS] = pidns
	}
	if boot != "" {
		l[labels.Boot] = boot
	}
	return l
}

func TestGroupSessionsJudgesOnlyWhereThePidMeansTheSameProcess(t *testing.T) {
	var asked []int
	alive := func(pid int, _ time.Time) ProcessState {
		asked = append(asked, pid)
		switch pid {
		case 1:
			return ProcessAlive
		case 7:
			return ProcessUnknown // cannot look at it
		}
		return ProcessGone
	}
	ns, boot := here.PIDNS, here.Boot
	cases := []struct {
		session string
		labels  map[string]string
		want    ProcessState
		why     string
	}{
		{"alive", ident(lbls("alive", "1", "here", "", ""), ns, boot), ProcessAlive, ""},
		{"gone", ident(lbls("gone", "2", "here", "", ""), ns, boot), ProcessGone, ""},
		{"other-host", ident(lbls("other-host", "3", "there", "", ""), ns, boot), ProcessUnknown, `it was made on host "there", not on this one`},
		{"other-pidns", ident(lbls("other-pidns", "4", "here", "", ""), "pid:[4026532999]", boot), ProcessUnknown, "it was made in another pid namespace (pid:[4026532999]): its pid means another process here"},
		{"other-boot", ident(lbls("other-boot", "5", "here", "", ""), ns, "boot-0"), ProcessUnknown, `it was made during another boot of this machine, or on another machine named "here"`},
		{"old-heph", lbls("old-heph", "6", "here", "", ""), ProcessUnknown, "its resources carry no heph.pidns or heph.boot (an older heph made them): its pid cannot be pinned down"},
		{"no-boot", ident(lbls("no-boot", "6", "here", "", ""), ns, ""), ProcessUnknown, "its resources carry no heph.pidns or heph.boot (an older heph made them): its pid cannot be pinned down"},
		{"unreadable", ident(lbls("unreadable", "7", "here", "", ""), ns, boot), ProcessUnknown, "its process could not be looked at"},
		{"no-pid", ident(lbls("no-pid", "x", "here", "", ""), ns, boot), ProcessUnknown, "its resources carry no heph.pid or heph.host"},
		{"negative-pid", ident(lbls("negative-pid", "-5", "here", "", ""), ns, boot), ProcessUnknown, "its resources carry no heph.pid or heph.host"},
		{"no-host", ident(lbls("no-host", "6", "", "", ""), ns, boot), ProcessUnknown, "its resources carry no heph.pid or heph.host"},
	}
	var items []managedItem
	for _, tc := range cases {
		items = append(items, item(ResourceContainer, tc.session, tc.session, "running", time.Time{}, tc.labels))
	}
	got := map[string]Session{}
	for _, s := range groupSessions(items, here, alive) {
		got[s.ID] = s
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, got[tc.session].Process, tc.session)
		require.Equal(t, tc.why, got[tc.session].Why, tc.session)
		require.Equal(t, tc.want == ProcessGone, got[tc.session].Stale(), tc.session)
	}
	require.ElementsMatch(t, []int{1, 2, 7}, asked, "only pids of this host, pid namespace and boot are looked at")

	blind := here
	blind.PIDNS = ""
	require.Equal(t, ProcessUnknown, groupSessions(items[:2], blind, alive)[0].Process, "a process that cannot read its own namespace judges nothing")
	require.Equal(t, ProcessUnknown, groupSessions(items[:1], here, nil)[0].Process, "no judge: unknown")
}

func TestSelf(t *testing.T) {
	id := Self()
	require.Equal(t, os.Getpid(), id.PID)
	host, _ := os.Hostname()
	require.Equal(t, host, id.Host)
	if runtime.GOOS == "linux" {
		require.Regexp(t, `^pid:\[\d+\]$`, id.PIDNS)
		require.Regexp(t, `^[0-9a-f-]{36}$`, id.Boot)
	}
	want := map[string]string{labels.PID: strconv.Itoa(id.PID), labels.Host: host, labels.PIDNS: id.PIDNS, labels.Boot: id.Boot}
	require.Equal(t, os.Getenv(labels.EnvRun), id.Run)
	if id.Run != "" {
		want[labels.Run] = id.Run
	}
	require.Equal(t, want, id.Labels())
	require.Equal(t, map[string]string{labels.PID: "1", labels.Host: "h"}, Identity{PID: 1, Host: "h"}.Labels(), "only what is known")
	require.Equal(t, map[string]string{labels.PID: "1", labels.Host: "h", labels.Run: "r1"}, Identity{PID: 1, Host: "h", Run: "r1"}.Labels(), "the test run")
}

func TestGroupSessions(t *testing.T) {
	at := func(s string) time.Time { tm, _ := time.Parse(time.RFC3339, s); return tm }
	items := []managedItem{
		item(ResourceVolume, "v", "vol", "", time.Time{}, lbls("s1", "", "", "2026-01-01T00:00:09Z", "")),
		item(ResourceContainer, "c2", "web", "running", time.Time{}, lbls("s1", "42", "h", "2026-01-01T00:00:05Z", "TestB")),
		item(ResourceNetwork, "n", "net", "", time.Time{}, lbls("s1", "", "", "2026-01-01T00:00:02Z", "")),
		item(ResourceContainer, "c1", "db", "exited", time.Time{}, lbls("s1", "43", "other", "2026-01-01T00:00:07Z", "TestA")),
		item(ResourceContainer, "c3", "cache", "running", time.Time{}, lbls("s1", "", "", "2026-01-01T00:00:08Z", "TestB")),
		item(ResourceContainer, "x", "x", "running", time.Time{}, lbls("s0", "", "", "2026-01-01T00:00:02Z", "")),
		item(ResourceContainer, "y", "y", "running", time.Time{}, lbls("s2", "", "", "2025-12-31T00:00:00Z", "")),
	}
	got := groupSessions(items, Identity{Host: "h"}, func(int, time.Time) ProcessState { return ProcessAlive })
	require.Equal(t, []string{"s2", "s0", "s1"}, []string{got[0].ID, got[1].ID, got[2].ID},
		"oldest first; the same time is ordered by id")
	s := got[2]
	require.Equal(t, []string{"TestA", "TestB"}, s.Tests, "distinct and sorted")
	require.Equal(t, 42, s.PID, "the first resource that has a pid gives it")
	require.Equal(t, "h", s.Host, "and the first that has a host")
	require.Equal(t, at("2026-01-01T00:00:02Z"), s.Created, "the earliest of its resources")
	require.Equal(t, []string{"cache", "db", "web", "net", "vol"}, func() []string {
		var n []string
		for _, r := range s.Resources {
			n = append(n, r.Name)
		}
		return n
	}(), "containers, networks, volumes, each by name")
	require.Equal(t, ProcessUnknown, s.Process, "no heph.pidns nor heph.boot: unknown")

	require.Empty(t, groupSessions(nil, here, nil), "nothing listed: no session")
}

func TestItemCreated(t *testing.T) {
	daemonTime := time.Date(2025, 5, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	cases := []struct {
		reason  string
		label   string
		daemon  time.Time
		want    time.Time
		wantSet bool
	}{
		{"heph.created wins over the daemon's time", "2026-01-02T10:00:05Z", daemonTime, time.Date(2026, 1, 2, 10, 0, 5, 0, time.UTC), true},
		{"without the label, the daemon's time, in UTC", "", daemonTime, daemonTime.UTC(), true},
		{"a label that is no time is passed over", "yesterday", daemonTime, daemonTime.UTC(), true},
		{"a label with an offset is kept, in UTC", "2026-01-02T12:00:05+02:00", time.Time{}, time.Date(2026, 1, 2, 10, 0, 5, 0, time.UTC), true},
		{"no time at all: zero", "", time.Time{}, time.Time{}, false},
		{"the epoch (a daemon's \"0\") is no time", "", time.Unix(0, 0), time.Time{}, false},
	}
	for _, tc := range cases {
		l := map[string]string{}
		if tc.label != "" {
			l[labels.Created] = tc.label
		}
		got := item(ResourceNetwork, "n", "n", "", tc.daemon, l).Created
		require.Equal(t, tc.wantSet, !got.IsZero(), tc.reason)
		if tc.wantSet {
			require.True(t, tc.want.Equal(got), "%s: got %v", tc.reason, got)
			require.Equal(t, time.UTC, got.Location(), tc.reason)
		}
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"4f1c0a52-9d5e-4d0b-8f7e-0c8e2f1b6a11": true,
		"A.b_c-9":                              true,
		strings.Repeat("a", 128):               true,
		"":                                     false,
		"a b":                                  false,
		"a,b":                                  false, // would split a filter
		"a=b":                                  false, // would change a label filter
		"a\nb":                                 false, // would end a command line
		"é":                                    false,
		strings.Repeat("a", 129):               false,
	} {
		require.Equal(t, want, ValidID(id), "%q", id)
	}
}

func TestRemovalRetriesUntilAPassFindsNothing(t *testing.T) {
	d := newDaemon(t)
	ctx := context.Background()
	d.network("s1", "net")
	d.container("s1", "web", "net")
	db := d.container("s1", "db", "net")
	d.volume("s1", "vol")
	// db is being removed by the daemon already (a teardown that timed out
	// on our side): the first remove meets a conflict, and by the second
	// the daemon has finished, so it is not there any more.
	var mu sync.Mutex
	dbRemoves := 0
	d.Hook = func(ctx context.Context, call string, arg any) error {
		if call != "ContainerRemove" || arg != db {
			return nil
		}
		mu.Lock()
		dbRemoves++
		n := dbRemoves
		mu.Unlock()
		switch n {
		case 1:
			return enginetest.Conflict("removal of container %s is already in progress", db)
		case 2:
			if err := d.ContainerRemove(ctx, db); err != nil { // the daemon's own removal ends
				return err
			}
			return enginetest.NotFound("No such container: %s", db)
		}
		return nil
	}
	var log logger
	removed, kept, err := Removal{API: d, Sessions: []string{"s1"}, Policy: fast, Logf: log.logf}.Run(ctx)
	require.NoError(t, err)
	require.Empty(t, kept)
	require.Equal(t, []string{"container web", "network net", "volume vol"}, names(removed),
		"db was removed by the daemon, not by us: a resource already gone is not a failure")
	require.Contains(t, log.String(), `remove network net: `, "a failure is logged")
	require.Contains(t, log.String(), "has active endpoints", "the network still had db on the first pass")
	require.NotContains(t, log.String(), "in progress", "a removal in progress is not a failure")
	require.Equal(t, 3, d.CallCount("ContainerList"), "one pass with failures, one that removes the rest, one that finds nothing")
	c, n, v := d.Counts()
	require.Equal(t, [3]int{0, 0, 0}, [3]int{c, n, v})
}

func TestRemovalInProgressToTheEnd(t *testing.T) {
	// A removal the daemon never finishes: the container is named as left,
	// without a failure of ours joined to the error.
	d := newDaemon(t)
	id := d.container("s1", "db", "")
	d.Hook = func(_ context.Context, call string, _ any) error {
		if call == "ContainerRemove" {
			return enginetest.Conflict("removal of container %s is already in progress", id)
		}
		return nil
	}
	p := fast
	p.MaxElapsed = 300 * time.Millisecond
	removed, _, err := Removal{API: d, Sessions: []string{"s1"}, Policy: p}.Run(context.Background())
	require.Empty(t, removed)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "still there: container db")
	require.NotContains(t, err.Error(), "remove container", "no failure of ours")
	require.Greater(t, d.CallCount("ContainerRemove"), 1, "it kept asking")
}

func TestRemovalSettlesBeforeTheLastPass(t *testing.T) {
	d := newDaemon(t)
	ctx := context.Background()
	// Nothing at first; a container whose create was in flight when the
	// owner died lands before the pass after the settle time, and is
	// removed; then nothing again.
	var mu sync.Mutex
	lists := 0
	d.Hook = func(ctx context.Context, call string, _ any) error {
		if call != "ContainerList" {
			return nil
		}
		mu.Lock()
		lists++
		n := lists
		mu.Unlock()
		if n == 2 {
			_, err := d.ContainerCreate(ctx, engine.ContainerSpec{Name: "late", Image: "app", Labels: lbls("s1", "", "", "", "")})
			return err
		}
		return nil
	}
	p := fast
	p.Settle = 20 * time.Millisecond
	start := time.Now()
	removed, _, err := Removal{API: d, Sessions: []string{"s1"}, Policy: p}.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"container late"}, names(removed))
	require.GreaterOrEqual(t, time.Since(start), p.Settle)
	require.Equal(t, 3, d.CallCount("ContainerList"), "empty, settle, the late one, then empty again")
}

func TestRemovalSettleIsCutByTheContext(t *testing.T) {
	// The caller's deadline ends the settle wait: an hour's settle time is
	// not waited for. (The first pass over the fake takes microseconds; the
	// deadline leaves it a second.)
	d := newDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	p := fast
	p.Settle = time.Hour
	removed, _, err := Removal{API: d, Sessions: []string{"s1"}, Policy: p}.Run(ctx)
	require.Empty(t, removed)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotContains(t, err.Error(), "still there", "nothing was left")
	require.Equal(t, 1, d.CallCount("ContainerList"), "one pass; the settle wait never ended")
}

func TestRemovalOnlyAsksForItsSessions(t *testing.T) {
	d := newDaemon(t)
	for _, s := range []string{"s1", "s2", "s3"} {
		d.network(s, "net-"+s)
		d.container(s, "c-"+s, "net-"+s, "vol-"+s)
	}
	// A user's container that copied heph's session label, without
	// heph.managed: not heph's.
	_, err := d.ContainerCreate(context.Background(), engine.ContainerSpec{Name: "user", Image: "app", Labels: map[string]string{labels.Session: "s1"}})
	require.NoError(t, err)
	var mu sync.Mutex
	var filters []engine.Filter
	d.Hook = func(_ context.Context, call string, arg any) error {
		if strings.HasSuffix(call, "List") {
			mu.Lock()
			filters = append(filters, arg.(engine.Filter))
			mu.Unlock()
		}
		return nil
	}
	removed, _, err := Removal{API: d, Sessions: []string{"s1", "s2"}, Policy: fast}.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"container c-s1", "container c-s2", "network net-s1", "network net-s2", "volume vol-s1", "volume vol-s2"}, names(removed))
	for _, f := range filters {
		require.Len(t, f, 1)
		require.Contains(t, [][]string{{"heph.managed=true", "heph.session=s1"}, {"heph.managed=true", "heph.session=s2"}}, f["label"],
			"every list call carries one of the two session filters")
	}
	left, err := d.ContainerList(context.Background(), nil)
	require.NoError(t, err)
	require.Equal(t, []string{"c-s3", "user"}, []string{left[0].Name, left[1].Name}, "another session, and what is not heph's, are never touched")
	_, n, v := d.Counts()
	require.Equal(t, 1, n)
	require.Equal(t, 1, v)
}

func TestRemovalGivesUpWithWhatIsLeft(t *testing.T) {
	d := newDaemon(t)
	d.container("s1", "stuck", "")
	cause := errors.New("driver failed to remove root filesystem")
	d.Hook = func(_ context.Context, call string, _ any) error {
		if call == "ContainerRemove" {
			return cause
		}
		return nil
	}
	p := fast
	p.MaxElapsed = 300 * time.Millisecond
	var log logger
	start := time.Now()
	removed, _, err := Removal{API: d, Sessions: []string{"s1"}, Policy: p, Logf: log.logf}.Run(context.Background())
	require.Empty(t, removed)
	require.ErrorIs(t, err, cause)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "still there: container stuck")
	lines := strings.Split(err.Error(), "\n")
	require.Regexp(t, `^heph: remove sessions s1: gave up after \d+(\.\d+)?m?s; still there: container stuck$`, lines[0])
	require.Equal(t, `heph: remove container "stuck": driver failed to remove root filesystem`, lines[1])
	for _, l := range lines {
		require.LessOrEqual(t, strings.Count(l, "heph:"), 1, "one prefix per message: %q", l)
	}
	require.Less(t, time.Since(start), 30*time.Second, "MaxElapsed ends it")
	require.Greater(t, d.CallCount("ContainerRemove"), 2, "it retried")
	require.Contains(t, log.String(), "session s1: remove container stuck: driver failed")
}

func TestRemovalRetriesWhileTheDaemonIsDown(t *testing.T) {
	d := newDaemon(t)
	d.container("s1", "web", "")
	down := enginetest.Unavailable("dial unix /var/run/docker.sock: connect: connection refused")
	var mu sync.Mutex
	failures := 2
	d.Hook = func(_ context.Context, call string, _ any) error {
		mu.Lock()
		defer mu.Unlock()
		if call == "ContainerList" && failures > 0 {
			failures--
			return down
		}
		return nil
	}
	removed, _, err := Removal{API: d, Sessions: []string{"s1"}, Policy: fast}.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"container web"}, names(removed))

	// The daemon never comes back: the error says so, though the end came
	// in the middle of a pass (the third list call waits for it).
	d = newDaemon(t)
	lists := 0
	d.Hook = func(ctx context.Context, _ string, _ any) error {
		mu.Lock()
		lists++
		n := lists
		mu.Unlock()
		if n == 3 {
			<-ctx.Done()
			return ctx.Err()
		}
		return down
	}
	p := fast
	p.MaxElapsed = 300 * time.Millisecond
	_, _, err = Removal{API: d, Sessions: []string{"s1"}, Policy: p}.Run(context.Background())
	require.ErrorIs(t, err, errs.DockerUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, `heph: list containers of session "s1": dial unix`)
	require.Equal(t, 3, d.CallCount("ContainerList"))
}

func TestRemovalKeepsWhatItIsToldAndWhatKeptContainersUse(t *testing.T) {
	for _, by := range []string{"id", "name"} {
		t.Run("kept by "+by, func(t *testing.T) {
			d := newDaemon(t)
			d.network("s1", "net")
			web := d.container("s1", "web", "net", "vol")
			d.container("s1", "db", "net")
			d.volume("s1", "spare")
			keep := map[string]bool{web: true}
			if by == "name" {
				keep = map[string]bool{"web": true}
			}
			// web is kept, db is not; the network and the volume are not
			// kept themselves but web still uses them.
			var log logger
			removed, kept, err := Removal{API: d, Sessions: []string{"s1"}, Keep: keep, Policy: fast, Logf: log.logf}.Run(context.Background())
			require.NoError(t, err)
			require.Equal(t, []string{"container db", "volume spare"}, names(removed))
			require.Equal(t, []string{"container web", "network net", "volume vol"}, names(kept), "each once, though every pass met them")
			require.NotContains(t, log.String(), "has active endpoints", "not logged as a failure")
			require.NotContains(t, log.String(), "in use", "not logged as a failure")
			require.Contains(t, log.String(), "session s1: kept container web")
			c, n, v := d.Counts()
			require.Equal(t, [3]int{1, 1, 1}, [3]int{c, n, v})
		})
	}
}

func TestRemovalWithoutKeptContainersFailsOnANetworkInUse(t *testing.T) {
	// A network of the session that a container of another (kept by
	// nobody) still uses is a failure, not something kept.
	d := newDaemon(t)
	d.network("s1", "net")
	d.container("s2", "intruder", "net")
	p := fast
	p.MaxElapsed = 300 * time.Millisecond
	_, kept, err := Removal{API: d, Sessions: []string{"s1"}, Policy: p}.Run(context.Background())
	require.Empty(t, kept)
	require.ErrorContains(t, err, "still there: network net")
	require.ErrorIs(t, err, engine.ErrConflict)
}

func TestRemovalCutWhileListingStillSaysWhatIsLeft(t *testing.T) {
	// The end comes while a pass lists (a slow daemon): the error names what
	// the pass before left, not only the list call that was cut.
	d := newDaemon(t)
	d.container("s1", "stuck", "")
	d.network("s1", "net")
	var mu sync.Mutex
	lists := 0
	d.Hook = func(ctx context.Context, call string, _ any) error {
		switch call {
		case "ContainerRemove":
			return errors.New("device or resource busy")
		case "ContainerList":
			mu.Lock()
			lists++
			n := lists
			mu.Unlock()
			if n == 2 {
				<-ctx.Done() // the daemon does not answer before the end
			}
		}
		return nil
	}
	p := fast
	p.MaxElapsed = 200 * time.Millisecond
	removed, _, err := Removal{API: d, Sessions: []string{"s1"}, Policy: p}.Run(context.Background())
	require.Equal(t, []string{"network net"}, names(removed), "the network went on the first pass")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "still there: container stuck")
	require.ErrorContains(t, err, `heph: remove container "stuck": device or resource busy`, "why it is still there, from the pass before")
	require.NotContains(t, err.Error(), "list containers", "not the call the end cut short")
	require.Equal(t, 2, d.CallCount("ContainerList"))
}

func TestRemovalStoppedByTheCaller(t *testing.T) {
	// The caller's context ends the retries at once, between two passes.
	d := newDaemon(t)
	d.container("s1", "stuck", "")
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	tries := 0
	d.Hook = func(_ context.Context, call string, _ any) error {
		if call != "ContainerRemove" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if tries++; tries == 3 {
			cancel()
		}
		return errors.New("device or resource busy")
	}
	removed, _, err := Removal{API: d, Sessions: []string{"s1"}, Policy: fast}.Run(ctx)
	require.Empty(t, removed)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "still there: container stuck")
	require.Equal(t, 3, d.CallCount("ContainerRemove"), "no pass after the caller gave up")
}

func TestRemove(t *testing.T) {
	d := newDaemon(t)
	_, err := Remove(context.Background(), d, "a b")
	require.ErrorIs(t, err, errs.InvalidConfig)
	require.ErrorContains(t, err, `session id "a b"`)
	require.Empty(t, d.Calls(), "refused before any Docker call")

	d.network("s1", "net")
	d.container("s1", "web", "net")
	d.container("s2", "other", "")
	removed, err := Remove(context.Background(), d, "s1")
	require.NoError(t, err)
	require.Equal(t, []string{"container web", "network net"}, names(removed))
	c, n, _ := d.Counts()
	require.Equal(t, 1, c, "the other session's container is left")
	require.Zero(t, n)

	removed, err = Remove(context.Background(), d, "s-none")
	require.NoError(t, err, "a session with nothing left is no error")
	require.Empty(t, removed)
}
