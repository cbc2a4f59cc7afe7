package heph

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
)

func labels(session, pid, host, created, test string) map[string]string {
	l := map[string]string{LabelManaged: "true", LabelSession: session, LabelPID: pid, LabelHost: host, LabelCreated: created}
	if test != "" {
		l[LabelTest] = test
	}
	return l
}

func TestListSessionsGroupsEverythingHephMadeBySession(t *testing.T) {
	t.Parallel()
	o, m := newMocked()
	host, _ := os.Hostname()
	me := strconv.Itoa(os.Getpid())
	onlyManaged := func(f client.Filters) bool {
		return f["label"][LabelManaged+"=true"] && len(f["label"]) == 1 && len(f) == 1
	}
	m.On("ContainerList", anyCtx, mock.MatchedBy(func(o client.ContainerListOptions) bool { return o.All && onlyManaged(o.Filters) })).Return(client.ContainerListResult{Items: []container.Summary{
		{ID: "c-web", Names: []string{"/heph-web-1"}, State: container.StateRunning, Created: 1700000100, Labels: labels("s-new", me, host, "2026-01-02T10:00:05Z", "TestB")},
		{ID: "c-db", Names: []string{"/heph-db-1"}, State: container.StateExited, Created: 1700000100, Labels: labels("s-new", me, host, "2026-01-02T10:00:03Z", "TestA")},
		{ID: "c-old", Names: []string{"/heph-old-1"}, State: container.StateRunning, Created: 1600000000, Labels: labels("s-old", "999999999", "elsewhere", "2025-12-01T00:00:00Z", "")},
	}}, nil).Once()
	m.On("NetworkList", anyCtx, mock.MatchedBy(func(o client.NetworkListOptions) bool { return onlyManaged(o.Filters) })).Return(client.NetworkListResult{Items: []network.Summary{
		{Network: network.Network{ID: "n-1", Name: "heph-net-1", Labels: labels("s-new", me, host, "2026-01-02T10:00:01Z", "")}},
		{Network: network.Network{ID: "n-2", Name: "heph-net-2", Created: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), Labels: map[string]string{LabelManaged: "true"}}},
	}}, nil).Once()
	m.On("VolumeList", anyCtx, mock.MatchedBy(func(o client.VolumeListOptions) bool { return onlyManaged(o.Filters) })).Return(client.VolumeListResult{Items: []volume.Volume{
		{Name: "heph-vol-1", CreatedAt: "2026-01-02T10:00:04Z", Labels: labels("s-new", me, host, "", "")},
	}}, nil).Once()

	sessions, err := o.ListSessions(context.Background())
	require.NoError(t, err)
	m.AssertExpectations(t)
	require.Len(t, sessions, 3)

	// Oldest first: the unlabelled network, then s-old, then s-new.
	require.Equal(t, "", sessions[0].ID)
	require.Equal(t, ProcessUnknown, sessions[0].Process, "no pid, no host")
	require.Equal(t, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), sessions[0].Created, "the daemon's time when heph.created is missing")

	old := sessions[1]
	require.Equal(t, "s-old", old.ID)
	require.Equal(t, 999999999, old.PID)
	require.Equal(t, ProcessUnknown, old.Process, "made on another host: not judged here")
	require.False(t, old.Stale())

	s := sessions[2]
	require.Equal(t, "s-new", s.ID)
	require.Equal(t, []string{"TestA", "TestB"}, s.Tests)
	require.Equal(t, os.Getpid(), s.PID)
	require.Equal(t, host, s.Host)
	require.Equal(t, time.Date(2026, 1, 2, 10, 0, 1, 0, time.UTC), s.Created, "the earliest heph.created")
	want := ProcessGone // this process started after the labels say it made them: a reused pid
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		want = ProcessAlive // no start times to compare
	}
	require.Equal(t, want, s.Process)
	require.True(t, s.Stale() == (want == ProcessGone))
	require.Equal(t, []string{"container heph-db-1", "container heph-web-1", "network heph-net-1", "volume heph-vol-1"}, names(s.Resources), "containers, networks, volumes; by name")
	require.Equal(t, 2, s.Count(ResourceContainer))
	require.Equal(t, "exited", s.Resources[0].State)
	require.Equal(t, time.Date(2026, 1, 2, 10, 0, 4, 0, time.UTC), s.Resources[3].Created, "a volume's CreatedAt when heph.created is missing")
}

func TestGroupSessionsJudgesOnlyThisHostsProcesses(t *testing.T) {
	t.Parallel()
	var asked []int
	alive := func(pid int, _ time.Time) ProcessState {
		asked = append(asked, pid)
		if pid == 1 {
			return ProcessAlive
		}
		return ProcessGone
	}
	items := []managedItem{
		item(ResourceContainer, "a", "a", "running", time.Time{}, labels("s1", "1", "here", "", "")),
		item(ResourceContainer, "b", "b", "running", time.Time{}, labels("s2", "2", "here", "", "")),
		item(ResourceContainer, "c", "c", "running", time.Time{}, labels("s3", "3", "there", "", "")),
		item(ResourceContainer, "d", "d", "running", time.Time{}, labels("s4", "x", "here", "", "")),
	}
	got := map[string]ProcessState{}
	for _, s := range groupSessions(items, "here", alive) {
		got[s.ID] = s.Process
	}
	require.Equal(t, map[string]ProcessState{"s1": ProcessAlive, "s2": ProcessGone, "s3": ProcessUnknown, "s4": ProcessUnknown}, got)
	require.ElementsMatch(t, []int{1, 2}, asked)
}

func TestProcessState(t *testing.T) {
	t.Parallel()
	require.Equal(t, ProcessAlive, processState(os.Getpid(), time.Now()), "this process")
	require.Equal(t, ProcessUnknown, processState(0, time.Now()))

	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	require.Equal(t, ProcessGone, processState(cmd.Process.Pid, time.Now()), "an exited, reaped process")

	if _, err := os.Stat("/proc/self/stat"); err == nil {
		require.Equal(t, ProcessGone, processState(os.Getpid(), time.Now().Add(-24*time.Hour)),
			"a process that started after the session was made holds a reused pid")
	}
}
