package shared

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/labels"
)

// expiry is an Expiry over f and s for host "here", on c's clock.
func expiry(f *enginetest.Fake, s *Store, c *clock) Expiry {
	return Expiry{API: f, Store: s, Host: "here", Idle: Idle{D: time.Minute}, Now: c.Now}
}

func TestExpire(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

	t.Run("HeldByALiveHolder", func(t *testing.T) {
		s, f, c := newStore(t), enginetest.NewFake(), &clock{now: at}
		sharedContainer(t, f, keyA)
		liveLease(t, s, keyA)
		deadLease(t, s, keyA, Idle{D: time.Second})
		require.NoError(t, s.writeIdle(keyA, idleMark{Since: at, Until: at}))
		for _, how := range []How{Due, Unheld} {
			st, err := expiry(f, s, c).Expire(ctx, keyA, how)
			require.NoError(t, err)
			require.Equal(t, Status{State: Held, Holders: 1}, st)
		}
		leases, err := s.Leases(keyA)
		require.NoError(t, err)
		require.Len(t, leases, 1, "the dead holder's lease is gone, the live one's stays")
		_, ok := s.readIdle(keyA)
		require.False(t, ok, "held: not idle")
		cs, _, _ := f.Counts()
		require.Equal(t, 1, cs)
	})

	t.Run("IdleThenRemoved", func(t *testing.T) {
		s, f, c := newStore(t), enginetest.NewFake(), &clock{now: at}
		sharedContainer(t, f, keyA)
		sharedContainer(t, f, keyB)
		deadLease(t, s, keyA, Idle{D: 10 * time.Second})
		deadLease(t, s, keyA, Idle{D: 30 * time.Second})
		e := expiry(f, s, c)
		st, err := e.Expire(ctx, keyA, Due)
		require.NoError(t, err)
		require.Equal(t, Status{State: Waiting, Until: at.Add(30 * time.Second)}, st, "the longest idle time of the holders that ended")
		m, ok := s.readIdle(keyA)
		require.True(t, ok)
		require.Equal(t, idleMark{Since: at, Until: at.Add(30 * time.Second)}, m)

		c.add(29 * time.Second)
		st, err = e.Expire(ctx, keyA, Due)
		require.NoError(t, err)
		require.Equal(t, Waiting, st.State, "not yet")
		require.Equal(t, at.Add(30*time.Second), st.Until, "the recorded end stands")

		c.add(time.Second)
		st, err = e.Expire(ctx, keyA, Due)
		require.NoError(t, err)
		require.Equal(t, Removed, st.State)
		cs, _, vs := f.Counts()
		require.Equal(t, [2]int{1, 1}, [2]int{cs, vs}, "its container and its volume are gone; keyB's stay")
		_, ok = s.readIdle(keyA)
		require.False(t, ok)

		st, err = e.Expire(ctx, keyA, Due)
		require.NoError(t, err)
		require.Equal(t, Gone, st.State)
	})

	t.Run("Keep", func(t *testing.T) {
		s, f, c := newStore(t), enginetest.NewFake(), &clock{now: at}
		sharedContainer(t, f, keyA)
		deadLease(t, s, keyA, Idle{D: time.Second})
		deadLease(t, s, keyA, Idle{Keep: true})
		e := expiry(f, s, c)
		st, err := e.Expire(ctx, keyA, Due)
		require.NoError(t, err)
		require.Equal(t, Kept, st.State, "a holder that asked to keep it wins")
		c.add(24 * time.Hour)
		st, err = e.Expire(ctx, keyA, Due)
		require.NoError(t, err)
		require.Equal(t, Kept, st.State)
		st, err = e.Expire(ctx, keyA, Unheld)
		require.NoError(t, err)
		require.Equal(t, Removed, st.State, "a prune removes a kept one")
	})

	t.Run("OrphanGetsTheDefaultIdle", func(t *testing.T) {
		// No lease speaks for it (its store was lost): it waits Expiry.Idle.
		s, f, c := newStore(t), enginetest.NewFake(), &clock{now: at}
		sharedContainer(t, f, keyA)
		st, err := expiry(f, s, c).Expire(ctx, keyA, Due)
		require.NoError(t, err)
		require.Equal(t, Status{State: Waiting, Until: at.Add(time.Minute)}, st)
	})

	t.Run("ForceRemovesAHeldOne", func(t *testing.T) {
		s, f, c := newStore(t), enginetest.NewFake(), &clock{now: at}
		sharedContainer(t, f, keyA)
		liveLease(t, s, keyA)
		st, err := expiry(f, s, c).Expire(ctx, keyA, Force)
		require.NoError(t, err)
		require.Equal(t, Status{State: Removed, Holders: 1}, st)
		leases, err := s.Leases(keyA)
		require.NoError(t, err)
		require.Len(t, leases, 1, "the holder still holds its lease: its next take makes a new one")
	})

	t.Run("OnlyThisMachines", func(t *testing.T) {
		s, f, c := newStore(t), enginetest.NewFake(), &clock{now: at}
		sharedContainer(t, f, keyA)
		e := expiry(f, s, c)
		e.Host = "elsewhere"
		st, err := e.Expire(ctx, keyA, Force)
		require.NoError(t, err)
		require.Equal(t, Gone, st.State, "another machine's container is not this machine's to judge")
		cs, _, _ := f.Counts()
		require.Equal(t, 1, cs)
	})

	t.Run("TryWhileBusy", func(t *testing.T) {
		s, f, c := newStore(t), enginetest.NewFake(), &clock{now: at}
		sharedContainer(t, f, keyA)
		l, err := s.Lock(ctx, keyA, false) // a holder looks at it
		require.NoError(t, err)
		defer l.Unlock()
		e := expiry(f, s, c)
		e.Try = true
		st, err := e.Expire(ctx, keyA, Unheld)
		require.NoError(t, err)
		require.Equal(t, Busy, st.State)
	})

	t.Run("DaemonFails", func(t *testing.T) {
		s, f, c := newStore(t), enginetest.NewFake(), &clock{now: at}
		sharedContainer(t, f, keyA)
		f.Hook = func(_ context.Context, call string, _ any) error {
			if call == "ContainerRemove" {
				return enginetest.Unavailable("daemon gone")
			}
			return nil
		}
		_, err := expiry(f, s, c).Expire(ctx, keyA, Unheld)
		require.ErrorContains(t, err, `remove shared container "heph-db-aaaaaaaa"`)
	})
}

func TestAfterParent(t *testing.T) {
	ctx := context.Background()
	s, f := newStore(t), enginetest.NewFake()
	sharedContainer(t, f, keyA) // its holder died: removed after 50ms
	deadLease(t, s, keyA, Idle{D: 50 * time.Millisecond})
	sharedContainer(t, f, keyB) // another holder lives: left to it
	deadLease(t, s, keyB, Idle{D: 50 * time.Millisecond})
	liveLease(t, s, keyB)
	var log logBuf
	began := time.Now()
	removed := Expiry{API: f, Store: s, Host: "here", Logf: log.logf}.AfterParent(ctx, []string{keyA, keyB})
	require.Equal(t, []string{keyA}, removed)
	require.GreaterOrEqual(t, time.Since(began), 50*time.Millisecond, "not before the idle time")
	cs, _, _ := f.Counts()
	require.Equal(t, 1, cs)
	require.Contains(t, log.String(), "shared bbbbbbbb2222: held (1 live holders)")
	require.Contains(t, log.String(), "shared aaaaaaaa1111: removed container heph-db-aaaaaaaa")
}

func TestAfterParentLeavesItToALaterHolder(t *testing.T) {
	// While this watchdog waits, another holder takes the key and ends: its
	// end is later, so its watchdog removes the container, not this one.
	ctx := context.Background()
	s, f := newStore(t), enginetest.NewFake()
	sharedContainer(t, f, keyA)
	deadLease(t, s, keyA, Idle{D: 100 * time.Millisecond})
	var once sync.Once
	f.Hook = func(_ context.Context, call string, _ any) error {
		if call == "ContainerList" {
			once.Do(func() {
				go func() {
					time.Sleep(20 * time.Millisecond)
					require.NoError(t, s.writeIdle(keyA, idleMark{Since: time.Now(), Until: time.Now().Add(time.Hour)}))
				}()
			})
		}
		return nil
	}
	var log logBuf
	removed := Expiry{API: f, Store: s, Host: "here", Logf: log.logf}.AfterParent(ctx, []string{keyA})
	require.Empty(t, removed)
	require.Contains(t, log.String(), "a later holder's idle time runs until")
	cs, _, _ := f.Counts()
	require.Equal(t, 1, cs)
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s, f, c := newStore(t), enginetest.NewFake(), &clock{now: at}
	keyC := "cccccccc" + keyA[8:]
	sharedContainer(t, f, keyA) // idle time over: removed
	require.NoError(t, s.writeIdle(keyA, idleMark{Since: at.Add(-time.Hour), Until: at.Add(-time.Minute)}))
	sharedContainer(t, f, keyB) // held: stays
	liveLease(t, s, keyB)
	sharedContainer(t, f, keyC) // the caller's own key: skipped
	require.NoError(t, s.writeIdle(keyC, idleMark{Since: at.Add(-time.Hour), Until: at.Add(-time.Minute)}))
	keyD := "dddddddd" + keyA[8:]
	sharedContainer(t, f, keyD) // never used through this store: another user's
	removed, err := expiry(f, s, c).Sweep(ctx, keyC)
	require.NoError(t, err)
	require.Equal(t, []string{Name("db", keyA)}, removed)
	cs, _, _ := f.Counts()
	require.Equal(t, 3, cs)
}

func TestList(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s, f := newStore(t), enginetest.NewFake()
	sharedContainer(t, f, keyA)
	liveLease(t, s, keyA)
	sharedContainer(t, f, keyB)
	require.NoError(t, s.writeIdle(keyB, idleMark{Since: at, Until: at.Add(15 * time.Second)}))
	infos, err := List(ctx, f, s, "here")
	require.NoError(t, err)
	require.Len(t, infos, 2)
	byKey := map[string]Info{}
	for _, in := range infos {
		byKey[in.Key] = in
	}
	a, b := byKey[keyA], byKey[keyB]
	require.Equal(t, "db", a.Service)
	require.Equal(t, "running", a.State)
	require.True(t, a.Local)
	require.Len(t, a.Holders, 1)
	require.True(t, a.IdleSince.IsZero(), "held: not idle")
	require.Empty(t, b.Holders)
	require.Equal(t, at, b.IdleSince)
	require.Equal(t, at.Add(15*time.Second), b.Until)

	infos, err = List(ctx, f, newStore(t), "here")
	require.NoError(t, err)
	for _, in := range infos {
		require.False(t, in.Local, "keys another store holds are not this store's to judge")
	}
	infos, err = List(ctx, f, s, "elsewhere")
	require.NoError(t, err)
	for _, in := range infos {
		require.False(t, in.Local)
		require.Empty(t, in.Holders, "another machine's holders are not known here")
	}
}

// logBuf collects log lines.
type logBuf struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuf) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func TestTheKeysLockHoldsWhileExpiriesRemoveItsDirectory(t *testing.T) {
	// Takes create the container under the key's lock while expiries
	// remove it — and, nothing being left, the key's lock file and
	// directory. A lock on a lock file that was removed would let a take
	// create beside another: Create would meet the daemon's name conflict.
	ctx := context.Background()
	s, f := newStore(t), enginetest.NewFake()
	var inside, creates, conflicts atomic.Int32
	take := Take{API: f, Store: s, Key: keyA, Name: Name("db", keyA),
		Create: func(ctx context.Context) (string, error) {
			if inside.Add(1) != 1 {
				t.Error("two creates at once under the exclusive lock")
			}
			defer inside.Add(-1)
			creates.Add(1)
			l := map[string]string{labels.Managed: "true", labels.Shared: keyA, labels.Host: "here"}
			id, err := f.ContainerCreate(ctx, engine.ContainerSpec{Name: Name("db", keyA), Image: "db", Labels: l})
			if errors.Is(err, engine.ErrConflict) {
				conflicts.Add(1)
				return "", err
			}
			if err != nil {
				return "", err
			}
			return id, f.ContainerStart(ctx, id)
		}}
	afterOpen = func() { time.Sleep(time.Millisecond) } // widen the window an expiry's forget falls in
	t.Cleanup(func() { afterOpen = nil })
	e := Expiry{API: f, Store: s, Host: "here"}
	// Rounds of 4 takes and 2 expiries started together: they race within
	// a round, and every round lets the expiries in (a stream of takes
	// holding the shared lock would keep them waiting).
	for range 50 {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				var err error
				if i < 4 {
					_, err = take.Run(ctx)
				} else {
					_, err = e.Expire(ctx, keyA, Unheld)
				}
				if err != nil {
					t.Error(err)
				}
			}()
		}
		close(start)
		wg.Wait()
	}
	require.Zero(t, conflicts.Load(), "never a create beside another")
	require.Greater(t, creates.Load(), int32(1), "the expiries removed it (and its directory) while the takes ran")
	st, err := e.Expire(ctx, keyA, Unheld)
	require.NoError(t, err)
	require.Contains(t, []State{Removed, Gone}, st.State)
	_, err = os.Stat(filepath.Join(s.Dir(), keyA))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing left of the key: nothing left in the store")
}
