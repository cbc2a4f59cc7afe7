package daemon

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
)

// procRoutes is a real /proc/net/route: a default route via 192.0.2.1, the
// LAN 192.0.2.0/24, docker0's 172.17.0.0/16, a VPN's 10.8.0.0/24, a host
// route and a malformed line.
const procRoutes = `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	010200C0	0003	0	0	0	00000000	0	0	0
docker0	000011AC	00000000	0001	0	0	0	0000FFFF	0	0	0
eth0	000200C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
tun0	0000080A	00000000	0001	0	0	0	00FFFFFF	0	0	0
tun0	0501A8C0	00000000	0005	0	0	0	FFFFFFFF	0	0	0
bad	zz	00000000	0001	0	0	0	00FFFFFF	0	0	0
`

// ifaceAddrs fakes net.InterfaceAddrs with these CIDRs ("192.0.2.2/24").
func ifaceAddrs(list ...string) func() ([]net.Addr, error) {
	return func() ([]net.Addr, error) {
		var out []net.Addr
		for _, c := range list {
			ip, n, err := net.ParseCIDR(c)
			if err != nil {
				return nil, err
			}
			n.IP = ip
			out = append(out, n)
		}
		return out, nil
	}
}

func cidrs(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func TestHostPrefixes(t *testing.T) {
	local := engine.Endpoint{Host: "unix:///var/run/docker.sock"}
	routeFile := func(string) ([]byte, error) { return []byte(procRoutes), nil }
	noFile := func(string) ([]byte, error) { return nil, errors.New("no such file") }
	gw := []netip.Addr{netip.MustParseAddr("172.17.0.1")}
	all := []string{"127.0.0.0/8", "192.0.2.0/24", "172.17.0.0/16", "172.17.0.0/16", "192.0.2.0/24", "10.8.0.0/24", "192.168.1.5/32"}
	for _, c := range []struct {
		reason    string
		ep        engine.Endpoint
		dockerenv bool
		addrs     func() ([]net.Addr, error)
		readFile  func(string) ([]byte, error)
		want      []string // nil: ok is false
	}{
		{reason: "local daemon: every route but the default one, and every address's network",
			ep: local, addrs: ifaceAddrs("127.0.0.1/8", "192.0.2.2/24", "172.17.0.1/16"), readFile: routeFile, want: all},
		{reason: "loopback tcp is local too",
			ep: engine.Endpoint{Host: "tcp://127.0.0.1:2375"}, addrs: ifaceAddrs("127.0.0.1/8", "192.0.2.2/24", "172.17.0.1/16"), readFile: routeFile, want: all},
		{reason: "in a container sharing the daemon's network (a bridge gateway is ours)",
			ep: local, dockerenv: true, addrs: ifaceAddrs("127.0.0.1/8", "192.0.2.2/24", "172.17.0.1/16"), readFile: routeFile, want: all},
		{reason: "IPv6 addresses are passed over",
			ep: local, addrs: ifaceAddrs("192.0.2.2/24", "fe80::1/64"), readFile: noFile, want: []string{"192.0.2.0/24"}},
		{reason: "no route table (not Linux): the addresses alone",
			ep: local, addrs: ifaceAddrs("192.0.2.2/24"), readFile: noFile, want: []string{"192.0.2.0/24"}},
		{reason: "a remote daemon's host is not ours to see",
			ep: engine.Endpoint{Host: "tcp://203.0.113.7:2376"}, addrs: ifaceAddrs("192.0.2.2/24"), readFile: routeFile},
		{reason: "in another container: the routes we read are not the daemon's",
			ep: local, dockerenv: true, addrs: ifaceAddrs("172.17.0.5/16"), readFile: routeFile},
		{reason: "interface addresses unreadable",
			ep: local, addrs: func() ([]net.Addr, error) { return nil, errors.New("boom") }, readFile: routeFile},
	} {
		t.Run(c.reason, func(t *testing.T) {
			env := HostEnv{DockerEnv: "/.dockerenv", Routes: "/proc/net/route", InterfaceAddrs: c.addrs,
				Exists: func(string) bool { return c.dockerenv }, ReadFile: c.readFile}
			got, ok := HostPrefixes(c.ep, env, gw)
			require.Equal(t, c.want != nil, ok, c.reason)
			if c.want != nil {
				require.ElementsMatch(t, c.want, cidrs(got), c.reason)
			}
		})
	}
	_, ok := HostPrefixes(local, HostEnv{Exists: func(string) bool { return false }}, nil)
	require.False(t, ok, "an environment without interface addresses sees nothing")
}

func TestDefaultGatewayFromTheRouteTable(t *testing.T) {
	env := HostEnv{Routes: "/proc/net/route", ReadFile: func(string) ([]byte, error) { return []byte(procRoutes), nil }}
	gw, ok := defaultGateway(env)
	require.True(t, ok)
	require.Equal(t, "192.0.2.1", gw)
	_, ok = defaultGateway(HostEnv{})
	require.False(t, ok, "no route table, no gateway")
}

func TestGateways(t *testing.T) {
	nets := []engine.Network{
		{Name: "bridge", Subnets: []engine.Subnet{{Prefix: netip.MustParsePrefix("172.17.0.0/16")}}}, // Docker reports none
		{Name: "mine", Subnets: []engine.Subnet{{Prefix: netip.MustParsePrefix("10.213.4.0/26"), Gateway: netip.MustParseAddr("10.213.4.62")}}},
		{Name: "v6", Subnets: []engine.Subnet{{Prefix: netip.MustParsePrefix("fd00::/64")}}},
		{Name: "host"},
	}
	require.Equal(t, []netip.Addr{netip.MustParseAddr("172.17.0.1"), netip.MustParseAddr("10.213.4.62")}, Gateways(nets))
}
