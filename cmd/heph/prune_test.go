package main

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/sessions"
)

// TestPrunePartialFailure: prune removes what it can; a removal that fails
// leaves that session's resource in place, is reported on stderr and in
// the JSON errors, and makes the exit code exitFail.
func TestPrunePartialFailure(t *testing.T) {
	// A failed removal is retried for PruneRetry.MaxElapsed (30 s): 1 s here.
	saved := sessions.PruneRetry
	sessions.PruneRetry.MaxElapsed = time.Second
	t.Cleanup(func() { sessions.PruneRetry = saved })
	ctx := context.Background()
	f := enginetest.NewFake()
	mk := func(session, name string) string {
		l := map[string]string{labels.Managed: "true", labels.Session: session, labels.PID: "1", labels.Host: "elsewhere"}
		id, err := f.ContainerCreate(ctx, engine.ContainerSpec{Name: name, Image: "app", Labels: l})
		require.NoError(t, err)
		return id
	}
	mk("sess-ok", "heph-ok-1")
	stuck := mk("sess-stuck", "heph-stuck-1")
	f.Hook = func(_ context.Context, call string, arg any) error {
		if call == "ContainerRemove" && arg == stuck {
			return errors.New("driver failed to remove root filesystem: device or resource busy")
		}
		return nil
	}
	run := func(args ...string) (int, string, string) {
		e, out, errOut := testEnv(nil)
		e.connect = func() (engine.API, engine.Endpoint, error) {
			return nopClose{f}, engine.Endpoint{Host: "unix:///fake.sock"}, nil
		}
		return e.run(args), out.String(), errOut.String()
	}
	status, out, errOut := run("prune", "--session", "sess-ok", "--session", "sess-stuck", "--force", "--json")
	require.Equal(t, exitFail, status, "a removal failed: stdout %s stderr %s", out, errOut)
	require.Contains(t, errOut, "heph prune: ")
	require.Contains(t, errOut, "device or resource busy", "the failure is reported with its cause")
	var r struct {
		Errors   []string
		Sessions []struct{ Session string }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	require.Len(t, r.Errors, 1, "one error, the failed removal: %v", r.Errors)
	require.Contains(t, r.Errors[0], "device or resource busy")

	left, err := f.ContainerList(ctx, engine.Filter{})
	require.NoError(t, err)
	require.Len(t, left, 1, "the removable session was removed, the stuck one left")
	require.Equal(t, stuck, left[0].ID)

	// A resource without a session label is not removed (heph removes by
	// session): an error, the others are removed all the same.
	l := map[string]string{labels.Managed: "true"}
	_, err = f.ContainerCreate(ctx, engine.ContainerSpec{Name: "heph-orphan-1", Image: "app", Labels: l})
	require.NoError(t, err)
	mk("sess-ok2", "heph-ok-2")
	status, _, errOut = run("prune", "--all", "--force")
	require.Equal(t, exitFail, status)
	require.Contains(t, errOut, "without a "+labels.Session+" label")
	left, err = f.ContainerList(ctx, engine.Filter{})
	require.NoError(t, err)
	require.Len(t, left, 2, "the orphan and the stuck one are left: %v", left)

	// Once the cause is gone, the same prune succeeds with exit code 0.
	f.Hook = nil
	status, out, errOut = run("prune", "--session", "sess-stuck", "--force")
	require.Equal(t, exitOK, status, "stdout %s stderr %s", out, errOut)
	require.Empty(t, errOut)
	left, err = f.ContainerList(ctx, engine.Filter{})
	require.NoError(t, err)
	require.Len(t, left, 1, "only the orphan is left")
}

// nopClose keeps the fake open across runs (prune closes its API).
type nopClose struct{ *enginetest.Fake }

func (nopClose) Close() error { return nil }
