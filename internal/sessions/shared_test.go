package sessions

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/labels"
)

// sharedContainer makes a shared container (heph.shared, no session) on the
// networks nets, with a volume the daemon made for it.
func (d daemon) sharedContainer(name string, nets ...string) string {
	d.t.Helper()
	l := map[string]string{labels.Managed: "true", labels.Shared: "aaaaaaaa11111111111111111111111111111111111111111111111111111111"}
	id, err := d.ContainerCreate(context.Background(), engine.ContainerSpec{Name: name, Image: "db", Labels: l,
		Mounts: []engine.MountSpec{{Type: "volume", Source: name + "-data", Target: "/data", VolumeLabels: l}}})
	require.NoError(d.t, err)
	for _, n := range nets {
		require.NoError(d.t, d.NetworkConnect(context.Background(), n, id, []string{"db"}))
	}
	return id
}

func TestListLeavesSharedContainersOut(t *testing.T) {
	d := newDaemon(t)
	d.network("s1", "net")
	d.container("s1", "web", "net")
	d.sharedContainer("heph-db-aaaaaaaa", "net")
	list, err := List(context.Background(), d)
	require.NoError(t, err)
	require.Len(t, list, 1, "no session of shared containers: heph ps lists them apart")
	require.Equal(t, "s1", list[0].ID)
	require.Equal(t, []string{"container web", "network net"}, names(list[0].Resources), "nor their volumes")
}

func TestRemovalDetachesASharedContainerFromTheSessionsNetwork(t *testing.T) {
	// A holder died with the shared container on its test network: the
	// network goes, the shared container (and its volume) stay.
	d := newDaemon(t)
	d.network("s1", "net")
	d.network("s2", "other")
	d.container("s1", "web", "net")
	db := d.sharedContainer("heph-db-aaaaaaaa", "net", "other")
	var log logger
	removed, _, err := Removal{API: d, Sessions: []string{"s1"}, Policy: fast, Logf: log.logf}.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"container web", "network net"}, names(removed))
	require.Contains(t, log.String(), "session s1: detached shared container heph-db-aaaaaaaa from network net")
	c, err := d.ContainerInspect(context.Background(), db)
	require.NoError(t, err)
	require.Equal(t, []string{"other"}, keys(c.Networks), "another session's network is not touched")
	cs, _, vs := d.Counts()
	require.Equal(t, [2]int{1, 1}, [2]int{cs, vs})
}

func TestRemovalDoesNotLookForSharedContainersWhileItsOwnHoldTheNetwork(t *testing.T) {
	d := newDaemon(t)
	d.network("s1", "net")
	stuck := d.container("s1", "stuck", "net")
	lookedForShared := false
	d.Hook = func(_ context.Context, call string, arg any) error {
		switch {
		case call == "ContainerRemove" && arg == stuck:
			return engine.ErrConflict
		case call == "ContainerList" && slices.Contains(arg.(engine.Filter)["label"], labels.Shared):
			lookedForShared = true
		}
		return nil
	}
	p := fast
	p.MaxElapsed = 50 * time.Millisecond
	_, _, err := Removal{API: d, Sessions: []string{"s1"}, Policy: p}.Run(context.Background())
	require.ErrorContains(t, err, "still there: container stuck, network net")
	require.False(t, lookedForShared, "the session's own container explains the endpoint")
}

func keys(m map[string]engine.Attachment) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	return out
}
