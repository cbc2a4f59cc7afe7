package heph

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/daemon"
	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/netalloc"
	"github.com/heph-go/heph/internal/parallel"
	"github.com/heph-go/heph/internal/subnet"
	"github.com/heph-go/heph/internal/turns"
)

// hostRoutes is this machine's /proc/net/route as a fake: a default route
// via 192.0.2.1, the LAN 192.0.2.0/24, docker0's 172.17.0.0/16 and a VPN's
// 10.213.64.0/18 — a quarter of heph's default range.
const hostRoutes = `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	010200C0	0003	0	0	0	00000000	0	0	0
docker0	000011AC	00000000	0001	0	0	0	0000FFFF	0	0	0
eth0	000200C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
tun0	0040D50A	00000000	0001	0	0	0	00C0FFFF	0	0	0
`

// netTestOrchestrator returns an Orchestrator over a fake daemon holding the
// default bridge, at host (a local socket when ""), on a host with
// hostRoutes; dockerenv says whether /.dockerenv exists. Pool waits use a
// line of the test's own.
func netTestOrchestrator(t *testing.T, host string, dockerenv bool) (*Orchestrator, *enginetest.Fake) {
	t.Helper()
	t.Setenv(EnvSubnets, "")
	if host == "" {
		host = "unix:///var/run/docker.sock"
	}
	f := enginetest.NewFake()
	// Docker reports no gateway for its default bridge: it is 172.17.0.1.
	f.AddNetwork(engine.Network{Name: "bridge", Subnets: []engine.Subnet{{Prefix: netip.MustParsePrefix("172.17.0.0/16")}}})
	o := newOrchestrator(f, engine.Endpoint{Host: host}, nil)
	o.hostEnv = daemon.HostEnv{
		DockerEnv: "/.dockerenv", Routes: "/proc/net/route",
		Exists:   func(string) bool { return dockerenv },
		ReadFile: func(string) ([]byte, error) { return []byte(hostRoutes), nil },
		InterfaceAddrs: func() ([]net.Addr, error) {
			if dockerenv { // a container's own address on the default bridge
				return []net.Addr{&net.IPNet{IP: net.ParseIP("172.17.0.5").To4(), Mask: net.CIDRMask(16, 32)}}, nil
			}
			return []net.Addr{
				&net.IPNet{IP: net.ParseIP("192.0.2.2").To4(), Mask: net.CIDRMask(24, 32)},
				&net.IPNet{IP: net.ParseIP("172.17.0.1").To4(), Mask: net.CIDRMask(16, 32)},
			}, nil
		},
	}
	useLine(t)
	return o, f
}

// useLine makes pooled creates of this process wait in a line of the
// test's own, not the user's.
func useLine(t *testing.T) {
	t.Helper()
	l, err := turns.OpenDir(t.TempDir())
	require.NoError(t, err)
	netalloc.PoolLine.Once.Do(func() {})
	old := netalloc.PoolLine.Line
	netalloc.PoolLine.Line = l
	oldGate := netalloc.CreateGate()
	netalloc.CreateLine.Gate = turns.NewGateDir(t.TempDir(), netalloc.CreateWindow)
	t.Cleanup(func() { netalloc.PoolLine.Line, netalloc.CreateLine.Gate = old, oldGate })
}

// subnetOf returns the subnet the fake daemon gave network id ("" for one
// from the default pools).
func subnetOf(t *testing.T, f *enginetest.Fake, id string) string {
	t.Helper()
	nets, err := f.NetworkList(context.Background(), engine.Filter{})
	require.NoError(t, err)
	for _, n := range nets {
		if n.ID == id {
			if len(n.Subnets) == 0 {
				return ""
			}
			return n.Subnets[0].Prefix.String()
		}
	}
	t.Fatalf("no network %s", id)
	return ""
}

func TestNetworksGetSubnetsOfTheirOwn(t *testing.T) {
	o, f := netTestOrchestrator(t, "", false)
	f.MaxPoolNetworks = 1 // the pools would hold one: every network below is heph's
	own := subnet.Counters.Own.Load()
	ctx := context.Background()
	vpn := netip.MustParsePrefix("10.213.64.0/18")
	seen := map[string]bool{}
	for range 100 {
		n, err := o.CreateNetwork(ctx, NetworkConfig{})
		require.NoError(t, err)
		s := netip.MustParsePrefix(subnetOf(t, f, n.ID()))
		require.Equal(t, 26, s.Bits())
		require.True(t, netip.MustParsePrefix(subnet.DefaultRange).Overlaps(s), "%s is in heph's range", s)
		require.False(t, vpn.Overlaps(s), "%s avoids the host's VPN route", s)
		require.False(t, seen[s.String()], "%s given twice", s)
		seen[s.String()] = true
	}
	require.Equal(t, int64(100), subnet.Counters.Own.Load()-own)
	require.NoError(t, o.Teardown(ctx))
	_, nets, _ := f.Counts()
	require.Equal(t, 1, nets, "only the default bridge is left")
}

func TestSubnetsSkipWhatIsInUseThenFallBackToThePools(t *testing.T) {
	o, f := netTestOrchestrator(t, "", false)
	t.Setenv(EnvSubnets, "10.213.64.0/24, 10.9.0.0/25") // 4 subnets behind the VPN's route, 2 more
	f.AddNetwork(engine.Network{Name: "users", Subnets: []engine.Subnet{{Prefix: netip.MustParsePrefix("10.9.0.0/27")}}})
	fallbacks := subnet.Counters.Fallbacks.Load()
	ctx := context.Background()

	n, err := o.CreateNetwork(ctx, NetworkConfig{})
	require.NoError(t, err)
	require.Equal(t, "10.9.0.64/26", subnetOf(t, f, n.ID()), "the only subnet neither routed nor a user's network's")
	n, err = o.CreateNetwork(ctx, NetworkConfig{})
	require.NoError(t, err)
	require.Empty(t, subnetOf(t, f, n.ID()), "no subnet left: the daemon's pools")
	require.Equal(t, int64(1), subnet.Counters.Fallbacks.Load()-fallbacks)
}

func TestASubnetAnotherProcessTookFirstIsPassedOver(t *testing.T) {
	o, f := netTestOrchestrator(t, "", false)
	t.Setenv(EnvSubnets, "10.9.0.0/25")
	overlaps := subnet.Counters.Overlaps.Load()
	var once sync.Once
	var stolen netip.Prefix
	f.Hook = func(_ context.Context, call string, arg any) error {
		if spec, ok := arg.(engine.NetworkSpec); ok && call == "NetworkCreate" && spec.Subnet.IsValid() {
			once.Do(func() { // another process creates a network on it just before
				stolen = spec.Subnet
				f.AddNetwork(engine.Network{Name: "other", Subnets: []engine.Subnet{{Prefix: spec.Subnet}}})
			})
		}
		return nil
	}
	n, err := o.CreateNetwork(context.Background(), NetworkConfig{})
	require.NoError(t, err)
	got := subnetOf(t, f, n.ID())
	require.NotEmpty(t, got)
	require.NotEqual(t, stolen.String(), got)
	require.Equal(t, int64(1), subnet.Counters.Overlaps.Load()-overlaps)
	require.Equal(t, 2, f.CallCount("NetworkCreate"))
}

func TestWhereHephCannotSeeTheHostItUsesThePools(t *testing.T) {
	for _, c := range []struct {
		reason    string
		host      string
		dockerenv bool
		subnets   string
		own       bool
	}{
		{reason: "a local daemon: heph's range", own: true},
		{reason: "a remote daemon: its routes are unknown", host: "tcp://203.0.113.7:2376"},
		{reason: "a remote daemon with ranges the user chose", host: "tcp://203.0.113.7:2376", subnets: "10.50.0.0/16", own: true},
		{reason: "inside another container: its routes are not the daemon's", dockerenv: true},
		{reason: "HEPH_SUBNETS=pools", subnets: "pools"},
		{reason: "HEPH_SUBNETS=off", subnets: "off"},
	} {
		t.Run(c.reason, func(t *testing.T) {
			o, f := netTestOrchestrator(t, c.host, c.dockerenv)
			t.Setenv(EnvSubnets, c.subnets)
			n, err := o.CreateNetwork(context.Background(), NetworkConfig{})
			require.NoError(t, err)
			require.Equal(t, c.own, subnetOf(t, f, n.ID()) != "", c.reason)
		})
	}
}

func TestABadHEPH_SUBNETSIsRefusedBeforeAnyDockerCall(t *testing.T) {
	o, f := netTestOrchestrator(t, "", false)
	t.Setenv(EnvSubnets, "10.213.1.0/16")
	_, err := o.CreateNetwork(context.Background(), NetworkConfig{})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.EqualError(t, err, `heph: invalid configuration: HEPH_SUBNETS "10.213.1.0/16": "10.213.1.0/16": has host bits set (did you mean 10.213.0.0/16?)`)
	require.Empty(t, f.Calls())
}

func TestExhaustedPoolsWaitTheirTurn(t *testing.T) {
	o, f := netTestOrchestrator(t, "", false)
	t.Setenv(EnvSubnets, "pools")
	f.MaxPoolNetworks = 2
	ctx := context.Background()
	first, err := o.CreateNetwork(ctx, NetworkConfig{})
	require.NoError(t, err)
	_, err = o.CreateNetwork(ctx, NetworkConfig{})
	require.NoError(t, err)

	retries := subnet.Counters.PoolRetries.Load()
	got := make(chan error, 1)
	go func() {
		_, err := o.CreateNetwork(ctx, NetworkConfig{})
		got <- err
	}()
	require.Eventually(t, func() bool { return subnet.Counters.PoolRetries.Load() > retries }, 10*time.Second, time.Millisecond, "the third waits for the pools")
	require.True(t, netalloc.PoolLine.Line.Busy(), "in line")
	require.NoError(t, first.Remove(ctx))
	select {
	case err := <-got:
		require.NoError(t, err, "it got the freed pool")
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting create did not get the freed pool")
	}
	require.False(t, netalloc.PoolLine.Line.Busy(), "and left the line")

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = o.CreateNetwork(short, NetworkConfig{})
	require.ErrorIs(t, err, ErrNetworkPoolExhausted)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "then gave up: context deadline exceeded; the daemon said: Error response from daemon: could not find an available")
	require.ErrorContains(t, err, "It waited its turn with the other heph processes of this user. HEPH_SUBNETS=pools leaves subnets to the daemon, and Docker's default address pools")

	// A context without a deadline waits MaxPoolWait, not forever.
	defer func(d time.Duration) { netalloc.MaxPoolWait = d }(netalloc.MaxPoolWait)
	netalloc.MaxPoolWait = 200 * time.Millisecond
	_, err = o.CreateNetwork(context.Background(), NetworkConfig{})
	require.ErrorIs(t, err, ErrNetworkPoolExhausted)
	require.NoError(t, o.Teardown(ctx))
}

func TestANewComerQueuesBehindWaiters(t *testing.T) {
	o, f := netTestOrchestrator(t, "", false)
	t.Setenv(EnvSubnets, "pools")
	// Others wait in line (other processes), as many as try at once: a new
	// create, although a pool is free, does not jump the line; its turn
	// comes when one of them leaves.
	var others []*turns.Turn
	for range netalloc.PoolWindow {
		other, err := netalloc.PoolLine.Line.Join(context.Background(), netalloc.PoolWindow)
		require.NoError(t, err)
		others = append(others, other)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := o.CreateNetwork(ctx, NetworkConfig{})
	require.ErrorIs(t, err, ErrNetworkPoolExhausted, "it waited in line until its context ended")
	require.Zero(t, f.CallCount("NetworkCreate"), "without trying the pools")
	others[0].Done()
	_, err = o.CreateNetwork(context.Background(), NetworkConfig{})
	require.NoError(t, err)
	require.NoError(t, o.Teardown(context.Background()))
	for _, other := range others[1:] {
		other.Done()
	}
}

// namedT is the part of a testing.TB the test state uses.
type namedT struct {
	testing.TB
	name string
}

func (t namedT) Name() string { return t.name }

func TestAllStartsOfATestShareOneNetworkAttempt(t *testing.T) {
	o, f := netTestOrchestrator(t, "", false)
	boom := errors.New("the daemon is having a bad day")
	f.Hook = func(_ context.Context, call string, _ any) error {
		if call == "NetworkCreate" {
			return boom
		}
		return nil
	}
	st := &testState{t: namedT{name: "TestX"}}
	errs := parallel.Each(make([]int, 4), func(int, int) error {
		_, err := st.network(context.Background(), o, time.Minute)
		return err
	})
	for _, err := range errs {
		require.ErrorIs(t, err, boom)
	}
	require.Equal(t, 1, f.CallCount("NetworkCreate"), "one attempt for the test, not one per start")
	f.Hook = nil
	_, err := st.network(context.Background(), o, time.Minute)
	require.ErrorIs(t, err, boom, "a later start of the failed test fails the same way")
}

func TestADaemonThatRefusesEverySubnetSendsHephToThePools(t *testing.T) {
	o, f := netTestOrchestrator(t, "", false)
	f.Hook = func(_ context.Context, call string, arg any) error {
		if spec, ok := arg.(engine.NetworkSpec); ok && call == "NetworkCreate" && spec.Subnet.IsValid() {
			return errors.New("Error response from daemon: Pool overlaps with other one on this address space")
		}
		return nil
	}
	n, err := o.CreateNetwork(context.Background(), NetworkConfig{})
	require.NoError(t, err)
	require.Empty(t, subnetOf(t, f, n.ID()), "from the pools")
	require.Equal(t, netalloc.MaxOverlaps+1, f.CallCount("NetworkCreate"), "after a bounded number of refused subnets")
}

// TestANetworkCreateWaitsItsTurnOutsideItsTimeout: the creates of other
// tests (here, of this process) hold every turn; a create with a timeout of
// its own waits for its turn beyond that timeout, within its context, and
// then has the whole timeout for the create; a create whose context ends in
// line says it waited for a turn, without a call to the daemon.
func TestANetworkCreateWaitsItsTurnOutsideItsTimeout(t *testing.T) {
	o, f := netTestOrchestrator(t, "", false)
	var leaves []func()
	for range netalloc.CreateWindow {
		leave, err := netalloc.CreateGate().Enter(context.Background())
		require.NoError(t, err)
		leaves = append(leaves, leave)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := o.CreateNetwork(ctx, NetworkConfig{createTimeout: time.Minute})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "for a turn to create it, in line with")
	require.Zero(t, f.CallCount("NetworkCreate"), "no call while others had the turns")

	created := make(chan error, 1)
	go func() {
		_, err := o.CreateNetwork(context.Background(), NetworkConfig{createTimeout: 50 * time.Millisecond})
		created <- err
	}()
	time.Sleep(200 * time.Millisecond) // longer than its timeout, in line
	require.Zero(t, f.CallCount("NetworkCreate"))
	leaves[0]()
	require.NoError(t, <-created, "its timeout counts from its turn")
	require.Equal(t, 1, f.CallCount("NetworkCreate"))
	for _, leave := range leaves[1:] {
		leave()
	}
	require.NoError(t, o.Teardown(context.Background()))
}
