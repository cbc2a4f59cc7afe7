package heph

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
)

// volumeNames lists the fake daemon's volumes.
func volumeNames(t *testing.T, f *enginetest.Fake) []string {
	t.Helper()
	vs, err := f.VolumeList(context.Background(), nil)
	require.NoError(t, err)
	var out []string
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out
}

// TestANamedVolumeIsRemovedByItsLastUser: two sessions mount one named
// volume (the first one's mount made it). Whichever tears down first
// leaves it to the other, without an error; the last one removes it
// (issue #9: the session that made it removed it, or failed trying, under
// the other session still using it — and then nobody removed it).
func TestANamedVolumeIsRemovedByItsLastUser(t *testing.T) {
	for _, maker := range []string{"the maker", "the other"} {
		t.Run(maker+" tears down first", func(t *testing.T) {
			f := enginetest.NewFake()
			a, b := newOrchestratorOver(f, "unix:///fake.sock"), newOrchestratorOver(f, "unix:///fake.sock")
			ctx := context.Background()
			mount := []Mount{{Type: MountVolume, Source: "shared-data", Target: "/data"}}
			_, err := a.CreateContainer(ctx, ContainerConfig{Image: "app", Mounts: mount})
			require.NoError(t, err)
			_, err = b.CreateContainer(ctx, ContainerConfig{Image: "app", Mounts: mount})
			require.NoError(t, err)
			vs, err := f.VolumeList(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, a.Session(), vs[0].Labels[LabelSession], "the first mount made it")

			first, last := a, b
			if maker == "the other" {
				first, last = b, a
			}
			require.NoError(t, first.Teardown(ctx), "a volume another session uses is no failure")
			require.Equal(t, []string{"shared-data"}, volumeNames(t, f), "the volume stays while the other session uses it")
			require.NoError(t, last.Teardown(ctx))
			require.Empty(t, volumeNames(t, f), "its last user removed it")
		})
	}
}

func TestTeardownNeverRemovesAVolumeHephDidNotMake(t *testing.T) {
	f := enginetest.NewFake()
	f.AddVolume(engine.Volume{Name: "users-data", Labels: map[string]string{"team": "core"}})
	o := newOrchestratorOver(f, "unix:///fake.sock")
	ctx := context.Background()
	_, err := o.CreateContainer(ctx, ContainerConfig{Image: "app", Mounts: []Mount{{Type: MountVolume, Source: "users-data", Target: "/data"}}})
	require.NoError(t, err)
	require.NoError(t, o.Teardown(ctx))
	require.Equal(t, []string{"users-data"}, volumeNames(t, f), "mounted, not made: kept")
}
