//go:build integration

package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/shared"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/heph-go/heph/wait"
	"github.com/stretchr/testify/require"
)

// TestPsAndPruneShared: heph ps shows a real shared container with its key
// and this process as its holder; heph prune --shared keeps it while it is
// held and removes it once it is not.
func TestPsAndPruneShared(t *testing.T) {
	t.Parallel()
	bin := hephBinary(t)
	ctx := context.Background()
	o := testenv.Orchestrator(t)
	service := "psshared" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	c, err := heph.NewContainer(testenv.Image(t)).WithName(service).WithCmd("-http", ":8080").WithExposedPorts("8080").
		WithWaitStrategy(wait.ForHTTP("/healthz")).Shared().Run(ctx, o)
	require.NoError(t, err)
	info, err := c.Inspect(ctx)
	require.NoError(t, err)
	key := info.Labels["heph.shared"]
	store, err := shared.Open()
	require.NoError(t, err)
	t.Cleanup(func() { shared.Process.Release(store, key) })

	find := func(vs []sharedView) *sharedView {
		for i := range vs {
			if vs[i].Name == c.Name() {
				return &vs[i]
			}
		}
		return nil
	}
	status, out, errOut := hephCmd(t, bin, nil, "ps", "--json")
	require.Equal(t, 0, status, errOut)
	var ps psReport
	require.NoError(t, json.Unmarshal([]byte(out), &ps))
	v := find(ps.Shared)
	require.NotNil(t, v, "heph ps lists the shared container:\n%s", out)
	require.Equal(t, key, v.Key)
	require.Equal(t, service, v.Service)
	require.True(t, v.HoldersKnown)
	require.Len(t, v.Holders, 1)
	require.Equal(t, os.Getpid(), v.Holders[0].PID, "this test process holds it")
	for _, s := range ps.Sessions {
		for _, r := range s.Resources {
			require.NotEqual(t, c.Name(), r.Name, "it is no session's")
		}
	}
	status, out, _ = hephCmd(t, bin, nil, "ps")
	require.Equal(t, 0, status)
	require.Contains(t, out, key[:12]+"  "+service)

	status, out, errOut = hephCmd(t, bin, nil, "prune", "--shared")
	require.Equal(t, 0, status, errOut)
	require.Contains(t, out, "kept "+c.Name()+": held by 1 (pid ")
	_, err = c.Inspect(ctx)
	require.NoError(t, err, "a held one stays")

	shared.Process.Release(store, key) // as if this process had ended
	status, out, errOut = hephCmd(t, bin, nil, "prune", "--shared", "--json")
	require.Equal(t, 0, status, errOut)
	var pr pruneReport
	require.NoError(t, json.Unmarshal([]byte(out), &pr))
	require.NotNil(t, find(pr.Shared), "removed once no one holds it:\n%s", out)
	_, err = c.Inspect(ctx)
	require.ErrorIs(t, err, heph.ErrContainerNotFound)
}
