package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/shared"
)

// sharedFixture is a daemon's worth of shared containers: held ones, idle
// ones, one kept, one made for another machine.
func sharedFixture() []shared.Info {
	at := func(ago time.Duration) time.Time { return now.Add(-ago) }
	return []shared.Info{
		{
			Key: "4f1c0a52e1d0c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a", ID: "c10", Name: "heph-db-4f1c0a52", Service: "db",
			State: "running", Host: "ci-runner-7", Local: true, Created: at(3 * time.Minute),
			Holders: []shared.Lease{
				{PID: 48211, Host: "ci-runner-7", Since: at(3 * time.Minute), Idle: shared.Idle{D: 15 * time.Second}},
				{PID: 48230, Host: "ci-runner-7", Since: at(2 * time.Minute), Idle: shared.Idle{D: 15 * time.Second}},
			},
			Networks: []string{"heph-net-1a2b3c4d", "heph-net-5e6f7a8b"},
		},
		{
			Key: "9a7b3c1d0e2f4a6b8c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b", ID: "c11", Name: "heph-cache-9a7b3c1d", Service: "cache",
			State: "running", Host: "ci-runner-7", Local: true, Created: at(10 * time.Minute),
			IdleSince: at(12 * time.Second), Until: now.Add(3 * time.Second),
		},
		{
			Key: "b52e0011aa22bb33cc44dd55ee66ff77b52e0011aa22bb33cc44dd55ee66ff77", ID: "c12", Name: "heph-web-b52e0011", Service: "web",
			State: "exited", Host: "ci-runner-7", Local: true, Created: at(26 * time.Hour),
			IdleSince: at(25 * time.Hour), Keep: true,
		},
		{
			Key: "77aa88bb99cc00dd11ee22ff33aa44bb77aa88bb99cc00dd11ee22ff33aa44bb", ID: "c13", Name: "heph-api-77aa88bb", Service: "api",
			State: "running", Host: "laptop", Created: at(time.Hour),
		},
	}
}

func TestPsSharedGolden(t *testing.T) {
	r := psReport{Daemon: daemonHost, Sessions: views(fixture()[2:3], now, "ci-runner-7"), Shared: sharedViews(sharedFixture(), now)}
	var text, js bytes.Buffer
	writePs(&text, r)
	golden(t, "ps_shared.golden", text.Bytes())
	require.NoError(t, writeJSON(&js, r))
	golden(t, "ps_shared.json.golden", js.Bytes())
	for _, l := range strings.Split(text.String(), "\n") {
		require.LessOrEqual(t, len([]rune(l)), 120, "fits a terminal: %q", l)
		require.Equal(t, strings.TrimRight(l, " "), l, "no trailing spaces")
	}

	// Only shared containers: the sessions' line says there are none.
	text.Reset()
	writePs(&text, psReport{Daemon: daemonHost, Sessions: views(nil, now, "ci-runner-7"), Shared: sharedViews(sharedFixture()[1:2], now)})
	golden(t, "ps_shared_only.golden", text.Bytes())
}

func TestPruneSharedGolden(t *testing.T) {
	all := sharedViews(sharedFixture(), now)
	dry := pruneReport{Daemon: daemonHost, DryRun: true, Errors: []string{}, shared: true, onlyShared: true, Shared: all[1:3], KeptShared: []sharedView{all[0], all[3]}}
	var text, js bytes.Buffer
	writePrune(&text, dry)
	golden(t, "prune_shared_dry_run.golden", text.Bytes())
	require.NoError(t, writeJSON(&js, dry))
	golden(t, "prune_shared_dry_run.json.golden", js.Bytes())

	done := dry
	done.DryRun = false
	done.KeptShared = nil
	text.Reset()
	writePrune(&text, done)
	golden(t, "prune_shared.golden", text.Bytes())

	text.Reset()
	writePrune(&text, pruneReport{Daemon: daemonHost, Sessions: []sessionView{}, Errors: []string{}, shared: true, onlyShared: true, Shared: []sharedView{}})
	golden(t, "prune_shared_nothing.golden", text.Bytes())
}

// holdLease holds a lease of key in store until the test ends.
func holdLease(t *testing.T, store *shared.Store, key string) {
	var h shared.Holder
	_, err := h.Hold(store, key, shared.Idle{D: time.Minute})
	require.NoError(t, err)
	t.Cleanup(func() { h.Release(store, key) })
}

func TestPruneShared(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	ctx := context.Background()
	f := enginetest.NewFake()
	store, err := shared.Open()
	require.NoError(t, err)
	mk := func(key, host string) {
		l := map[string]string{labels.Managed: "true", labels.Shared: key, labels.Host: host, labels.Service: "db"}
		_, err := f.ContainerCreate(ctx, engine.ContainerSpec{Name: shared.Name("db", key), Image: "db", Labels: l})
		require.NoError(t, err)
	}
	held, unheld, foreign := strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64)
	mk(held, thisHost())
	holdLease(t, store, held)
	mk(unheld, thisHost())
	l, err := store.Lock(ctx, unheld, true) // its holders came and went through this store
	require.NoError(t, err)
	l.Unlock()
	mk(foreign, "laptop")
	stranger := strings.Repeat("d", 64)
	mk(stranger, thisHost()) // held through another user's store: not this one's to judge

	removed, kept, errs := pruneShared(ctx, f, now, false, true)
	require.Empty(t, errs)
	require.Equal(t, []string{"heph-db-bbbbbbbb"}, viewNames(removed), "dry run")
	require.Equal(t, []string{"heph-db-aaaaaaaa", "heph-db-cccccccc", "heph-db-dddddddd"}, viewNames(kept))
	cs, _, _ := f.Counts()
	require.Equal(t, 4, cs, "a dry run removes nothing")

	removed, kept, errs = pruneShared(ctx, f, now, false, false)
	require.Empty(t, errs)
	require.Equal(t, []string{"heph-db-bbbbbbbb"}, viewNames(removed), "the one no one holds")
	require.Equal(t, []string{"heph-db-aaaaaaaa", "heph-db-cccccccc", "heph-db-dddddddd"}, viewNames(kept), "a held one, another machine's, another store's")

	removed, kept, errs = pruneShared(ctx, f, now, true, false)
	require.Empty(t, errs)
	require.Equal(t, []string{"heph-db-aaaaaaaa", "heph-db-cccccccc", "heph-db-dddddddd"}, viewNames(removed), "--force")
	require.Empty(t, kept)
	cs, _, _ = f.Counts()
	require.Zero(t, cs)
}

func viewNames(vs []sharedView) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out
}

func TestPruneSharedCommandLine(t *testing.T) {
	e, _, errOut := testEnv(nil)
	require.Equal(t, exitUsage, e.run([]string{"prune", "--force"}))
	require.Contains(t, errOut.String(), "--force goes with a session selector or --shared")
	e, _, errOut = testEnv(nil)
	require.Equal(t, exitFail, e.run([]string{"prune", "--shared"}))
	require.Contains(t, errOut.String(), "heph prune: no Docker in unit tests")
}
