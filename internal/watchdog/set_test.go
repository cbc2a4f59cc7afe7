package watchdog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
)

// The parent's bookkeeping (Set) over fake watchdogs: each is a pipe the
// test reads, and an exited channel the test closes to make it die.

type fakeWatchdogs struct {
	mu      sync.Mutex
	fail    error // the next starts fail with it
	deaf    bool  // the next start's pipe is already broken
	started []*fakeWatchdog
}

type fakeWatchdog struct {
	w      *Watchdog
	r      *os.File // the watchdog's end of the pipe
	exited chan struct{}
}

func (f *fakeWatchdogs) start(engine.Endpoint) (*Watchdog, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	if f.deaf {
		f.deaf = false
		_ = r.Close()
	}
	fw := &fakeWatchdog{w: NewFake(w, make(chan struct{})), r: r}
	fw.exited = fw.w.exited
	f.started = append(f.started, fw)
	return fw.w, nil
}

func (f *fakeWatchdogs) starts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.started)
}

// watchdog returns the i-th watchdog started.
func (f *fakeWatchdogs) watchdog(i int) *fakeWatchdog {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.started[i]
}

// lines closes the parent's end of the pipe (when the set has not already)
// and returns the lines the watchdog was told.
func (fw *fakeWatchdog) lines(t *testing.T) []string {
	t.Helper()
	_ = fw.w.pipe.Close()
	b, err := io.ReadAll(fw.r)
	require.NoError(t, err)
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// closed reports whether the parent's end of the pipe was closed (the
// watchdog would see EOF).
func (fw *fakeWatchdog) closed() bool {
	_, err := fw.w.pipe.Write([]byte("x"))
	return errors.Is(err, os.ErrClosed)
}

var sock = engine.Endpoint{Host: "unix:///var/run/docker.sock", Source: "default socket"}

func TestAnnounceStartsOneWatchdogAndTellsEachSessionOnce(t *testing.T) {
	f := &fakeWatchdogs{}
	set := &Set{Start: f.start}
	var wg sync.WaitGroup
	errc := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- set.Announce(fmt.Sprintf("s%d", i%5), sock)
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		require.NoError(t, err)
	}
	require.Equal(t, 1, f.starts())
	got := f.watchdog(0).lines(t)
	slices.Sort(got)
	require.Equal(t, []string{"session s0", "session s1", "session s2", "session s3", "session s4"}, got)
}

func TestAnnounceStartsOneWatchdogPerDaemon(t *testing.T) {
	f := &fakeWatchdogs{}
	set := &Set{Start: f.start}
	a, b := engine.Endpoint{Host: "unix:///a.sock"}, engine.Endpoint{Host: "tcp://b:2376", TLS: true}
	aAgain := engine.Endpoint{Host: "unix:///a.sock", Source: "WithDaemon", APIVersion: "1.41"}
	bOtherCert := engine.Endpoint{Host: "tcp://b:2376", TLS: true, CertFile: "/other/cert.pem"}
	require.NoError(t, set.Announce("s1", a))
	require.NoError(t, set.Announce("s2", b))
	require.NoError(t, set.Announce("s3", a))
	require.NoError(t, set.Announce("s4", aAgain))
	require.Equal(t, 2, f.starts(), "how an endpoint was found, and the API version, do not make it another daemon")
	require.NoError(t, set.Announce("s5", bOtherCert))
	require.Equal(t, 3, f.starts(), "other TLS files may reach another daemon behind the same address")
	require.Equal(t, []string{"session s1", "session s3", "session s4"}, f.watchdog(0).lines(t))
	require.Equal(t, []string{"session s2"}, f.watchdog(1).lines(t))
	require.Equal(t, []string{"session s5"}, f.watchdog(2).lines(t))
}

func TestAnnounceFailsWhenTheWatchdogCannotStartAndTriesAgainNextTime(t *testing.T) {
	f := &fakeWatchdogs{fail: fmt.Errorf("%w: fork/exec: resource temporarily unavailable", errs.Watchdog)}
	set := &Set{Start: f.start}
	require.ErrorIs(t, set.Announce("s1", sock), errs.Watchdog)
	f.fail = nil
	require.NoError(t, set.Announce("s1", sock))
	require.Equal(t, 1, f.starts())
	require.Equal(t, []string{"session s1"}, f.watchdog(0).lines(t))

	err := set.Announce("bad id", sock)
	require.ErrorIs(t, err, errs.Watchdog)
	require.ErrorContains(t, err, `session id "bad id" cannot be announced`)
	require.Equal(t, 1, f.starts(), "a bad id starts nothing")
}

func TestKeepTellsTheWatchdogWhatToLeave(t *testing.T) {
	f := &fakeWatchdogs{}
	set := &Set{Start: f.start}
	require.NoError(t, set.Keep(sock, "c1"), "no watchdog yet: nothing would remove it")
	require.Zero(t, f.starts())
	require.NoError(t, set.Announce("s1", sock))
	require.NoError(t, set.Keep(sock, "c1", "n1"))
	err := set.Keep(sock, "c3", "c 2")
	require.ErrorIs(t, err, errs.Watchdog)
	require.ErrorContains(t, err, `resource id "c 2" cannot be kept`)
	require.NoError(t, set.Keep(engine.Endpoint{Host: "unix:///other.sock"}, "c4"), "another daemon has no watchdog")
	require.Equal(t, []string{"session s1", "keep c1", "keep n1"}, f.watchdog(0).lines(t),
		"a batch with a bad id is refused whole, before any line")
}

func TestAnnounceReplacesAWatchdogWithABrokenPipeAndTellsItEverything(t *testing.T) {
	f := &fakeWatchdogs{}
	set := &Set{Start: f.start}
	require.NoError(t, set.Announce("s2", sock))
	require.NoError(t, set.Announce("s1", sock))
	require.NoError(t, set.Keep(sock, "c1"))
	require.NoError(t, f.watchdog(0).r.Close()) // the watchdog dies: our writes fail
	require.NoError(t, set.Announce("s3", sock))
	require.Equal(t, 2, f.starts())
	require.True(t, f.watchdog(0).closed(), "the dead one's pipe is closed")
	require.Equal(t, []string{"session s1", "session s2", "keep c1", "session s3"}, f.watchdog(1).lines(t),
		"everything again, then the new session")
}

func TestAnnounceReplacesADeadWatchdogEvenForAKnownSession(t *testing.T) {
	// The watchdog died (OOM, kill -9): its pipe still takes our writes for
	// a moment, but nobody reads. The next Announce — even of a session it
	// was told — starts another and tells it everything, once.
	f := &fakeWatchdogs{}
	set := &Set{Start: f.start}
	require.NoError(t, set.Announce("s1", sock))
	require.NoError(t, set.Keep(sock, "c1"))
	close(f.watchdog(0).exited)
	require.NoError(t, set.Announce("s1", sock))
	require.Equal(t, 2, f.starts(), "a dead watchdog is replaced")
	require.True(t, f.watchdog(0).closed())
	require.Equal(t, []string{"session s1", "keep c1"}, f.watchdog(1).lines(t), "each command once")
	require.Equal(t, []string{"session s1", "keep c1"}, f.watchdog(0).lines(t), "the dead one was told nothing more")
}

func TestKeepReplacesADeadWatchdog(t *testing.T) {
	f := &fakeWatchdogs{}
	set := &Set{Start: f.start}
	require.NoError(t, set.Announce("s1", sock))
	close(f.watchdog(0).exited)
	require.NoError(t, set.Keep(sock, "c1"))
	require.Equal(t, 2, f.starts())
	require.Equal(t, []string{"session s1", "keep c1"}, f.watchdog(1).lines(t))
}

func TestADeadWatchdogWhoseReplacementCannotStartLosesNothing(t *testing.T) {
	f := &fakeWatchdogs{}
	set := &Set{Start: f.start}
	require.NoError(t, set.Announce("s1", sock))
	require.NoError(t, set.Keep(sock, "c1"))
	close(f.watchdog(0).exited)

	f.fail = fmt.Errorf("%w: fork/exec: resource temporarily unavailable", errs.Watchdog)
	require.ErrorIs(t, set.Announce("s2", sock), errs.Watchdog)
	require.ErrorIs(t, set.Announce("s1", sock), errs.Watchdog, "a known session is not taken for guarded while its watchdog is dead")
	require.ErrorIs(t, set.Keep(sock, "c2"), errs.Watchdog)

	f.fail = nil
	require.NoError(t, set.Announce("s2", sock))
	require.Equal(t, 2, f.starts())
	require.Equal(t, []string{"session s1", "keep c1", "session s2"}, f.watchdog(1).lines(t),
		"what the dead one was told is told to the one that finally started")
}

func TestAReplacementThatCannotBeToldIsReplacedInTurn(t *testing.T) {
	// The new watchdog dies before it hears the replay: the error says so,
	// and the next call starts a third, which hears everything.
	f := &fakeWatchdogs{}
	set := &Set{Start: f.start}
	require.NoError(t, set.Announce("s1", sock))
	close(f.watchdog(0).exited)
	f.deaf = true
	err := set.Announce("s2", sock)
	require.ErrorIs(t, err, errs.Watchdog)
	require.ErrorContains(t, err, "tell it session s1")
	require.NoError(t, set.Announce("s3", sock))
	require.Equal(t, 3, f.starts())
	require.Equal(t, []string{"session s1", "session s2", "session s3"}, f.watchdog(2).lines(t))
}

func TestAnnounceOfAKnownSessionWritesNothing(t *testing.T) {
	f := &fakeWatchdogs{}
	set := &Set{Start: f.start}
	for range 3 {
		require.NoError(t, set.Announce("s1", sock))
	}
	require.Equal(t, []string{"session s1"}, f.watchdog(0).lines(t))
}

func TestSetStartsTheProcessByDefault(t *testing.T) {
	// A Set without Start starts the real watchdog process: over an
	// endpoint nobody answers at, that fails, and says how to go on.
	set := &Set{}
	err := set.Announce("s1", engine.Endpoint{Host: "unix:///nonexistent/heph-test.sock", Source: "test"})
	removeLogOf(t, err)
	require.ErrorIs(t, err, errs.Watchdog)
	require.ErrorContains(t, err, "exited before it was ready")
	require.ErrorContains(t, err, "HEPH_REAPER=off")
}

func TestPendingCreatesAreToldAndReplayedUntilSettled(t *testing.T) {
	f := &fakeWatchdogs{}
	set := &Set{Start: f.start}
	require.NoError(t, set.Pending(sock, "heph-net-1"), "no watchdog yet: nothing to tell")
	require.Zero(t, f.starts())
	require.NoError(t, set.Announce("s1", sock))
	require.NoError(t, set.Pending(sock, "heph-net-1"))
	require.NoError(t, set.Pending(sock, "heph-net-2"))
	require.NoError(t, set.Settled(sock, "heph-net-1"))
	require.ErrorContains(t, set.Pending(sock, "a b"), `name "a b" cannot be pending`)
	require.Equal(t, []string{"session s1", "pending heph-net-1", "pending heph-net-2", "settled heph-net-1"}, f.watchdog(0).lines(t))
	close(f.watchdog(0).exited)
	require.NoError(t, set.Settled(sock, "heph-net-3"))
	require.Equal(t, []string{"session s1", "pending heph-net-2"}, f.watchdog(1).lines(t),
		"a replacement is told what is still pending, and nothing of what never was")
}
