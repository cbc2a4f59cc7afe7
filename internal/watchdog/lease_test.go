package watchdog

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/shared"
)

const (
	leaseA = "aaaaaaaa11111111111111111111111111111111111111111111111111111111"
	leaseB = "bbbbbbbb22222222222222222222222222222222222222222222222222222222"
)

func TestReadLeases(t *testing.T) {
	var log logger
	in := "session s1\nlease " + leaseA + "\nlease " + leaseB + "\nlease " + leaseA + "\nlease not-a-key\nlease " + strings.ToUpper(leaseB) + "\n"
	c, err := Read(strings.NewReader(in), log.logf)
	require.NoError(t, err)
	require.Equal(t, []string{"s1"}, c.Sessions)
	require.Equal(t, []string{leaseA, leaseB}, c.Leases, "distinct, in the order they came")
	require.Contains(t, log.all(), `ignored line "lease not-a-key": not a shared key`)
	require.Contains(t, log.all(), "parent holds shared aaaaaaaa1111")
}

func TestLeaseIsToldOnceAndAgainToAReplacement(t *testing.T) {
	f := &fakeWatchdogs{}
	set := &Set{Start: f.start}
	require.NoError(t, set.Lease(sock, leaseA), "a lease starts the watchdog")
	require.NoError(t, set.Announce("s1", sock))
	require.NoError(t, set.Lease(sock, leaseA))
	require.Equal(t, 1, f.starts())
	err := set.Lease(sock, "no key")
	require.ErrorIs(t, err, errs.Watchdog)
	require.ErrorContains(t, err, `shared key "no key" cannot be leased`)
	close(f.watchdog(0).exited) // it dies: the next command replaces it
	require.NoError(t, set.Lease(sock, leaseB))
	require.Equal(t, 2, f.starts())
	require.Equal(t, []string{"lease " + leaseA, "session s1"}, f.watchdog(0).lines(t))
	require.Equal(t, []string{"session s1", "lease " + leaseA, "lease " + leaseB}, f.watchdog(1).lines(t),
		"the replacement is told every lease again")
}

func TestServeExpiresTheParentsSharedContainers(t *testing.T) {
	// The parent held a shared container and died: after the session's
	// removal (which detaches the shared container from the session's
	// network), the watchdog waits out the idle time and removes it.
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", dir)
	t.Setenv(shared.EnvIdle, "30ms")
	host, _ := os.Hostname()
	f := enginetest.NewFake()
	_, err := f.NetworkCreate(ctx, engine.NetworkSpec{Name: "net", Labels: of("s1")})
	require.NoError(t, err)
	sl := map[string]string{labels.Managed: "true", labels.Shared: leaseA, labels.Host: host}
	_, err = f.ContainerCreate(ctx, engine.ContainerSpec{Name: "heph-db-aaaaaaaa", Image: "db", Labels: sl, Network: "net"})
	require.NoError(t, err)
	// The parent's lease: its holder is gone (the file stays, unlocked).
	store, err := shared.Open()
	require.NoError(t, err)
	var h shared.Holder
	_, err = h.Hold(store, leaseA, shared.Idle{D: 30 * time.Millisecond})
	require.NoError(t, err)
	leases, err := filepath.Glob(filepath.Join(store.Dir(), leaseA, "lease-*"))
	require.NoError(t, err)
	require.Len(t, leases, 1)
	kept, err := os.ReadFile(leases[0])
	require.NoError(t, err)
	h.Release(store, leaseA) // the lock drops; put the file back as a dead holder leaves it
	require.NoError(t, os.WriteFile(leases[0], kept, 0o600))

	var log logger
	began := time.Now()
	removed, _, err := Serve(ctx, f, strings.NewReader("session s1\nlease "+leaseA+"\n"), fast, log.logf)
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(began), 30*time.Millisecond, "after the idle time")
	require.Equal(t, []string{"container shared aaaaaaaa1111", "network net"}, names(removed))
	c, n, _ := f.Counts()
	require.Equal(t, [2]int{0, 0}, [2]int{c, n})
	require.Contains(t, strings.Join(log.all(), "\n"), "detached shared container heph-db-aaaaaaaa from network net")
}
