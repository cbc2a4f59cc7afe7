//go:build integration

package heph_test

import (
	"context"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/heph-go/heph/wait"
)

// TestANamedVolumeSharedBySessionsAgainstTheDaemon: two Orchestrators (two
// sessions) run a container each on one named volume, made by the first
// one's mount. The first session's Teardown leaves the volume, with no
// error, while the second's container uses it; the data is still there for
// it; the second session's Teardown removes the volume.
func TestANamedVolumeSharedBySessionsAgainstTheDaemon(t *testing.T) {
	t.Parallel()
	image := testenv.Image(t)
	docker := testenv.Docker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a, b := testenv.Orchestrator(t), testenv.Orchestrator(t)
	vol := "heph-shared-" + a.Session()[:8]
	mount := []heph.Mount{{Type: heph.MountVolume, Source: vol, Target: "/data"}}

	ca, err := a.CreateContainer(ctx, heph.ContainerConfig{Image: image, Service: "writer", Cmd: []string{"-write", "/data/note=kept", "-http", ":8080"}, Mounts: mount,
		WaitStrategy: wait.ForExec("/testapp", "cat", "/data/note")})
	require.NoError(t, err)
	require.NoError(t, ca.Start(ctx))
	cb, err := b.CreateContainer(ctx, heph.ContainerConfig{Image: image, Service: "reader", Cmd: []string{"-http", ":8080"}, Mounts: mount})
	require.NoError(t, err)
	require.NoError(t, cb.Start(ctx))
	vs, err := docker.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("name", vol)})
	require.NoError(t, err)
	require.Len(t, vs.Items, 1)
	require.Equal(t, a.Session(), vs.Items[0].Labels[heph.LabelSession], "the first session's mount made it")

	require.NoError(t, a.Teardown(ctx), "the volume another session uses is no failure")
	res, err := cb.Exec(ctx, "/testapp", "cat", "/data/note")
	require.NoError(t, err)
	require.Equal(t, "kept", string(res.Stdout), "the other session's container still has its data")

	require.NoError(t, b.Teardown(ctx))
	vs, err = docker.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("name", vol)})
	require.NoError(t, err)
	require.Empty(t, vs.Items, "its last user removed it")
}
