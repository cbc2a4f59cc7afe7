package shared

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
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
	"github.com/heph-go/heph/internal/port"
)

// The test binary doubles as a lease holder for the liveness test: with
// SHARED_TEST_HOLD=<dir>:<key> it takes a lease, says "held", and waits
// until it is killed.
func TestMain(m *testing.M) {
	if v := os.Getenv("SHARED_TEST_HOLD"); v != "" {
		dir, key, _ := strings.Cut(v, ":")
		s, err := OpenDir(dir)
		if err == nil {
			_, err = Process.Hold(s, key, Idle{D: time.Second})
		}
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("held")
		select {}
	}
	os.Exit(m.Run())
}

const (
	keyA = "aaaaaaaa11111111111111111111111111111111111111111111111111111111"
	keyB = "bbbbbbbb22222222222222222222222222222222222222222222222222222222"
)

func newStore(t *testing.T) *Store {
	s, err := OpenDir(filepath.Join(t.TempDir(), "shared"))
	require.NoError(t, err)
	return s
}

// clock is a settable time for Expiry.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// sharedContainer makes a running shared container of key on f, on host
// "here", publishing 8080/tcp, with a volume the daemon made for it.
func sharedContainer(t *testing.T, f *enginetest.Fake, key string) string {
	t.Helper()
	ctx := context.Background()
	l := map[string]string{labels.Managed: "true", labels.Shared: key, labels.Host: "here", labels.Service: "db"}
	id, err := f.ContainerCreate(ctx, engine.ContainerSpec{
		Name: Name("db", key), Image: "db:1", Labels: l,
		Ports:  []engine.PortSpec{{Port: port.Port{Num: 8080, Proto: "tcp"}, HostIP: "127.0.0.1"}},
		Mounts: []engine.MountSpec{{Type: "volume", Source: "data-" + key[:8], Target: "/data", VolumeLabels: l}},
	})
	require.NoError(t, err)
	require.NoError(t, f.ContainerStart(ctx, id))
	return id
}

// deadLease writes a lease of key whose holder has ended (its lock is
// gone, its file is not).
func deadLease(t *testing.T, s *Store, key string, idle Idle) {
	t.Helper()
	f, _, err := s.hold(key, Lease{PID: 999999, Host: "here", Since: time.Now(), Idle: idle})
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// liveLease writes a lease of key held until the test ends.
func liveLease(t *testing.T, s *Store, key string) {
	t.Helper()
	f, _, err := s.hold(key, Lease{PID: os.Getpid(), Host: "here", Since: time.Now(), Idle: Idle{D: time.Second}})
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
}

func TestKey(t *testing.T) {
	s := Spec{Daemon: "unix:///var/run/docker.sock", Host: "ci", ImageID: "sha256:1", Service: "db",
		Env: map[string]string{"A": "1"}, Ports: []string{"5432/tcp"}, Files: []File{{Path: "/a", Mode: 0o644, Content: []byte("x")}}}
	k := s.Key()
	require.True(t, ValidKey(k))
	require.Equal(t, "293a33e5ceda1c72189beeb7a2f1458b1d040de24a0e7fbf9419f79b50dcf6a4", k,
		"a spec's key never changes across heph versions without a new keyVersion (a running shared container would not be found)")
	// Order matters where it means something: of two files at one path the
	// last wins.
	two := s
	two.Files = []File{{Path: "/a", Content: []byte("1")}, {Path: "/a", Content: []byte("2")}}
	swapped := s
	swapped.Files = []File{{Path: "/a", Content: []byte("2")}, {Path: "/a", Content: []byte("1")}}
	require.NotEqual(t, two.Key(), swapped.Key())
	require.Equal(t, "heph-db-293a33e5", Name("db", k))
	empty := s
	empty.Cmd, empty.Labels = []string{}, map[string]string{}
	require.Equal(t, k, empty.Key(), "empty is empty, nil or not")

	for _, tc := range []struct {
		key  string
		want bool
	}{{k, true}, {strings.ToUpper(k), false}, {k[:63], false}, {k + "0", false}, {"../" + k[3:], false}, {"", false}} {
		require.Equal(t, tc.want, ValidKey(tc.key), "%q", tc.key)
	}
}

func TestParseIdle(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Idle
		err  bool
	}{
		{"", Idle{D: DefaultIdle}, false},
		{"30s", Idle{D: 30 * time.Second}, false},
		{" 10m ", Idle{D: 10 * time.Minute}, false},
		{"0", Idle{}, false},
		{"keep", Idle{Keep: true}, false},
		{"KEEP", Idle{Keep: true}, false},
		{"-1s", Idle{}, true},
		{"forever", Idle{}, true},
		{"30", Idle{}, true},
	} {
		got, err := ParseIdle(tc.in)
		if tc.err {
			require.Error(t, err, "%q", tc.in)
			continue
		}
		require.NoError(t, err, "%q", tc.in)
		require.Equal(t, tc.want, got, "%q", tc.in)
	}
	require.Equal(t, "keep", Idle{Keep: true}.String())
	require.Equal(t, "15s", Idle{D: 15 * time.Second}.String())
}

func TestOpenDirRefusesADirectoryOthersMayWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "open")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.Chmod(dir, 0o777))
	_, err := OpenDir(dir)
	require.ErrorContains(t, err, "others may write to it")
}

func TestLeaseOfAProcessIsAliveUntilItDies(t *testing.T) {
	s := newStore(t)
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), "SHARED_TEST_HOLD="+s.Dir()+":"+keyA)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	require.Equal(t, "held\n", line)

	leases, err := s.Leases(keyA)
	require.NoError(t, err)
	require.Len(t, leases, 1)
	require.True(t, leases[0].Alive, "the holder runs")
	require.Equal(t, cmd.Process.Pid, leases[0].PID)

	require.NoError(t, cmd.Process.Kill()) // SIGKILL: no cleanup of its own
	_ = cmd.Wait()
	leases, err = s.Leases(keyA)
	require.NoError(t, err)
	require.Len(t, leases, 1, "its file is still there")
	require.False(t, leases[0].Alive, "the kernel dropped its lock: the lease is dead")
}

func TestHolder(t *testing.T) {
	s := newStore(t)
	var h Holder
	first, err := h.Hold(s, keyA, Idle{D: time.Second})
	require.NoError(t, err)
	require.True(t, first)
	first, err = h.Hold(s, keyA, Idle{D: time.Second})
	require.NoError(t, err)
	require.False(t, first, "one lease per key and process")
	other := newStore(t)
	first, err = h.Hold(other, keyA, Idle{D: time.Second})
	require.NoError(t, err)
	require.True(t, first, "another store is another lease")
	require.Len(t, h.Leases(), 2)

	leases, err := s.Leases(keyA)
	require.NoError(t, err)
	require.Len(t, leases, 1)
	require.True(t, leases[0].Alive)
	require.Equal(t, os.Getpid(), leases[0].PID)
	require.Equal(t, Idle{D: time.Second}, leases[0].Idle)

	require.True(t, h.Release(s, keyA))
	require.False(t, h.Release(s, keyA))
	leases, err = s.Leases(keyA)
	require.NoError(t, err)
	require.Empty(t, leases, "a released lease is gone, not dead")
	require.True(t, h.FirstSweep())
	require.False(t, h.FirstSweep())
	h.Release(other, keyA)
}

func TestTakeCreatesOnceAndTheOthersJoin(t *testing.T) {
	s, f := newStore(t), enginetest.NewFake()
	var creates atomic.Int32
	take := Take{API: f, Store: s, Key: keyA, Name: Name("db", keyA), Ports: []string{"8080/tcp"},
		Create: func(ctx context.Context) (string, error) {
			creates.Add(1)
			time.Sleep(30 * time.Millisecond) // a slow start, while the others ask
			return sharedContainer(t, f, keyA), nil
		}}
	const n = 16
	got := make([]Taken, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = take.Run(context.Background())
		}()
	}
	wg.Wait()
	created := 0
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, got[0].ID, got[i].ID)
		if got[i].Created {
			created++
		}
	}
	require.Equal(t, int32(1), creates.Load())
	require.Equal(t, 1, created)
}

func TestTakeReplacesABrokenContainer(t *testing.T) {
	s, f := newStore(t), enginetest.NewFake()
	old := sharedContainer(t, f, keyA)
	f.Exit(old, 1)
	require.NoError(t, s.writeIdle(keyA, idleMark{Since: time.Now(), Until: time.Now().Add(time.Hour)}))
	take := Take{API: f, Store: s, Key: keyA, Name: Name("db", keyA),
		Create: func(ctx context.Context) (string, error) { return sharedContainer(t, f, keyA), nil }}
	got, err := take.Run(context.Background())
	require.NoError(t, err)
	require.True(t, got.Created)
	require.True(t, got.Replaced)
	require.Equal(t, "it exited with code 1", got.Why)
	require.NotEqual(t, old, got.ID)
	_, ok := s.readIdle(keyA)
	require.False(t, ok, "taken: no longer idle")

	// One a holder found not ready (Bad) is replaced although it runs.
	take.Bad = got.ID
	again, err := take.Run(context.Background())
	require.NoError(t, err)
	require.True(t, again.Replaced)
	require.NotEqual(t, got.ID, again.ID)
}

func TestTakeRefusesANameOfAnotherKey(t *testing.T) {
	s, f := newStore(t), enginetest.NewFake()
	sharedContainer(t, f, keyA)
	take := Take{API: f, Store: s, Key: "aaaaaaaa" + keyB[8:], Name: Name("db", keyA),
		Create: func(ctx context.Context) (string, error) { return "", errors.New("not called") }}
	_, err := take.Run(context.Background())
	require.ErrorContains(t, err, "is taken by a container that is not the shared container of key aaaaaaaa2222")
}

func TestTakeJoinsWhenTheNameIsTakenOutsideTheStore(t *testing.T) {
	// A process that keeps its state elsewhere creates it first: the daemon
	// refuses the second name; the take waits until it runs.
	s, f := newStore(t), enginetest.NewFake()
	var theirs string
	take := Take{API: f, Store: s, Key: keyA, Name: Name("db", keyA),
		Create: func(ctx context.Context) (string, error) {
			l := map[string]string{labels.Managed: "true", labels.Shared: keyA}
			id, err := f.ContainerCreate(ctx, engine.ContainerSpec{Name: Name("db", keyA), Image: "db:1", Labels: l})
			require.NoError(t, err)
			theirs = id
			go func() {
				time.Sleep(20 * time.Millisecond)
				_ = f.ContainerStart(context.Background(), id)
			}()
			_, err = f.ContainerCreate(ctx, engine.ContainerSpec{Name: Name("db", keyA), Image: "db:1"})
			return "", fmt.Errorf("create: %w", err)
		}}
	got, err := take.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, theirs, got.ID)
	require.False(t, got.Created)
}

func TestCheck(t *testing.T) {
	running := engine.Container{Status: "running", Ports: map[string][]netip.AddrPort{"8080/tcp": {netip.MustParseAddrPort("127.0.0.1:32768")}}}
	for _, tc := range []struct {
		c    engine.Container
		want string
	}{
		{running, ""},
		{engine.Container{Status: "exited", ExitCode: 137}, "it exited with code 137"},
		{engine.Container{Status: "paused"}, "it is paused, not running"},
		{engine.Container{Status: "running", Health: "unhealthy", Ports: running.Ports}, "its health check says unhealthy"},
		{engine.Container{Status: "running", Health: "healthy", Ports: running.Ports}, ""},
		{engine.Container{Status: "running"}, "its port 8080/tcp is no longer published"},
	} {
		err := Check(tc.c, []string{"8080/tcp"})
		if tc.want == "" {
			require.NoError(t, err)
			continue
		}
		require.EqualError(t, err, tc.want)
	}
}
