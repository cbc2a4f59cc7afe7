package sessions

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
)

// TestRemovalLeavesAVolumeAnotherSessionUses: the watchdog (or heph prune)
// of the session whose mount made a named volume removes its containers
// but leaves the volume a live session's container uses — without failing
// or retrying until it gives up; that session's removal then removes it,
// though the label names the first (issue #9).
func TestRemovalLeavesAVolumeAnotherSessionUses(t *testing.T) {
	d := newDaemon(t)
	ctx := context.Background()
	d.container("s1", "c-s1", "", "shared")
	d.container("s2", "c-s2", "", "shared") // the volume exists: it keeps s1's label
	d.container("s2", "c-s2-own", "", "own-s2")
	d.AddVolume(engine.Volume{Name: "users", Labels: map[string]string{"team": "core"}})
	d.container("s2", "c-s2-users", "", "users") // a volume heph did not make

	log := &logger{}
	removed, kept, err := Removal{API: d, Sessions: []string{"s1"}, Policy: fast, Logf: log.logf}.Run(ctx)
	require.NoError(t, err, "a volume another session uses is no failure")
	require.Equal(t, []string{"container c-s1"}, names(removed))
	require.Empty(t, kept)
	require.Contains(t, log.String(), "session s1: left volume shared: a container of another session uses it, and removes it when it is done")
	require.Equal(t, 1, strings.Count(log.String(), "left volume shared"), "said once")

	removed, _, err = Removal{API: d, Sessions: []string{"s2"}, Policy: fast}.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"container c-s2", "container c-s2-own", "container c-s2-users", "volume own-s2", "volume shared"}, names(removed),
		"the last user removes the shared volume made by another session's mount")
	vs, err := d.VolumeList(ctx, nil)
	require.NoError(t, err)
	require.Len(t, vs, 1)
	require.Equal(t, "users", vs[0].Name, "a volume heph did not make is never removed")
}

func TestRemoveVolumes(t *testing.T) {
	d := newDaemon(t)
	ctx := context.Background()
	d.volume("s1", "own")
	d.volume("s9", "made-by-another")
	d.AddVolume(engine.Volume{Name: "users", Labels: map[string]string{"team": "core"}})
	d.container("s9", "user-of-it", "", "busy")
	removed, err := RemoveVolumes(ctx, d, []string{"own", "gone"}, []string{"made-by-another", "users", "busy", "own"})
	require.NoError(t, err, "gone and in use are no failures")
	require.Equal(t, []string{"own", "made-by-another"}, removed)
	vs, err := d.VolumeList(ctx, nil)
	require.NoError(t, err)
	require.Len(t, vs, 2, "busy (in use) and users (not heph's) stay")
}
