package daemon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
)

// addrs fakes net.InterfaceAddrs with these CIDRs ("172.17.0.5/16").
func addrs(cidrs ...string) func() ([]net.Addr, error) {
	return func() ([]net.Addr, error) {
		var out []net.Addr
		for _, c := range cidrs {
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

// routes is /proc/net/route with a default route via 172.17.0.1
// (little-endian hex) and the bridge's own route.
const routes = "Iface\tDestination\tGateway\tFlags\n eth0\t00000000\t010011AC\t0003\n eth0\t000011AC\t00000000\t0001\n"

func TestDecide(t *testing.T) {
	bridge := engine.Network{Name: "bridge", Subnets: []engine.Subnet{{
		Prefix: netip.MustParsePrefix("172.17.0.0/16"), Gateway: netip.MustParseAddr("172.17.0.1"),
	}}}
	cases := []struct {
		reason    string
		host      string
		dockerenv bool
		addrs     func() ([]net.Addr, error)
		routes    string
		routesErr error
		networks  []engine.Network // besides the default bridge
		listErr   error
		want      Access
		asks      bool // whether the daemon is asked for its networks
	}{
		{reason: "local socket, not in a container", host: "unix:///var/run/docker.sock", want: Loopback},
		{reason: "tcp to loopback", host: "tcp://127.0.0.1:2375", want: Loopback},
		{reason: "tcp to localhost by name", host: "tcp://localhost:2375", want: Loopback},
		{reason: "tcp to IPv6 loopback", host: "tcp://[::1]:2375", want: Loopback},
		{reason: "a named pipe is local", host: "npipe:////./pipe/docker_engine", want: Loopback},
		{reason: "localhost in capitals is this machine", host: "tcp://LOCALHOST:2375", want: Loopback},
		{reason: "localhost with its final dot is this machine", host: "tcp://localhost.:2375", want: Loopback},
		{reason: "a name under .localhost is this machine", host: "tcp://docker.localhost:2375", want: Loopback},
		{reason: "127.1, inet_aton's short form, is loopback", host: "tcp://127.1:2375", want: Loopback},
		{reason: "2130706433, inet_aton's one-number form, is loopback", host: "tcp://2130706433:2375", want: Loopback},
		{reason: "0.0.0.0 dials this machine", host: "tcp://0.0.0.0:2375", want: Loopback},
		{reason: "the unspecified IPv6 address dials this machine", host: "tcp://[::]:2375", want: Loopback},
		{reason: "this machine's own host name", host: "tcp://Build-Box.:2375", want: Loopback},
		{reason: "an address of one of this machine's interfaces", host: "tcp://192.168.1.7:2375", addrs: addrs("127.0.0.1/8", "192.168.1.7/24"), want: Loopback},
		{reason: "an address on this machine's subnet is another machine", host: "tcp://192.168.1.8:2375", addrs: addrs("127.0.0.1/8", "192.168.1.7/24"), want: Access{Host: "192.168.1.8"}},
		{reason: "127.256.1 is no address: a name of another machine", host: "tcp://127.256.1:2375", want: Access{Host: "127.256.1"}},
		{reason: "remote daemon: its address, every interface", host: "tcp://10.0.0.5:2376", want: Access{Host: "10.0.0.5"}},
		{reason: "remote by name, even from a container", host: "tcp://docker.example:2376", dockerenv: true, want: Access{Host: "docker.example"}},
		{reason: "a tcp address without a host name names no machine: loopback, no guess", host: "tcp://:2375", want: Loopback},
		{reason: "remote by IPv6 address: the bare address, for the caller to bracket", host: "tcp://[2001:db8::5]:2376", want: Access{Host: "2001:db8::5"}},
		{reason: "/.dockerenv but the daemon's gateway is ours: the daemon is local", host: "unix:///var/run/docker.sock", dockerenv: true,
			addrs: addrs("127.0.0.1/8", "192.0.2.2/24", "172.17.0.1/16"), routes: routes, want: Loopback, asks: true},
		{reason: "/.dockerenv and a user network's gateway is ours: still the daemon's host", host: "unix:///var/run/docker.sock", dockerenv: true,
			addrs: addrs("127.0.0.1/8", "172.18.0.1/16"), routes: routes, want: Loopback, asks: true,
			networks: []engine.Network{{Name: "mine", Subnets: []engine.Subnet{{Prefix: netip.MustParsePrefix("172.18.0.0/16"), Gateway: netip.MustParseAddr("172.18.0.1")}}}}},
		{reason: "a gateway of a network that is not a bridge says nothing about our namespace", host: "unix:///var/run/docker.sock", dockerenv: true,
			addrs: addrs("127.0.0.1/8", "10.9.0.1/24", "172.17.0.5/16"), routes: routes, want: Access{BindIP: "172.17.0.1", Host: "172.17.0.1"}, asks: true,
			networks: []engine.Network{{Name: "lan", Driver: "macvlan", Subnets: []engine.Subnet{{Prefix: netip.MustParsePrefix("10.9.0.0/24"), Gateway: netip.MustParseAddr("10.9.0.1")}}}}},
		{reason: "an IPv4-mapped interface address matches the IPv4 gateway", host: "unix:///var/run/docker.sock", dockerenv: true,
			addrs: addrs("::ffff:172.17.0.1/112"), routes: routes, want: Loopback, asks: true},
		{reason: "inside another container: the default gateway is the daemon's host", host: "unix:///var/run/docker.sock", dockerenv: true,
			addrs: addrs("127.0.0.1/8", "172.17.0.5/16"), routes: routes, want: Access{BindIP: "172.17.0.1", Host: "172.17.0.1"}, asks: true},
		{reason: "inside a container without a default route: no guessing", host: "unix:///var/run/docker.sock", dockerenv: true,
			addrs: addrs("127.0.0.1/8", "172.17.0.5/16"), routes: "Iface\tDestination\tGateway\n", want: Loopback, asks: true},
		{reason: "a default route without a gateway (point-to-point) names no host", host: "unix:///var/run/docker.sock", dockerenv: true,
			addrs: addrs("172.17.0.5/16"), routes: "Iface\tDestination\tGateway\n tun0\t00000000\t00000000\t0001\n", want: Loopback, asks: true},
		{reason: "a malformed route line is passed over for the next", host: "unix:///var/run/docker.sock", dockerenv: true,
			addrs: addrs("172.17.0.5/16"), routes: "Iface\tDestination\tGateway\n eth1\t00000000\tZZ\n eth0\t00000000\t010011AC\t0003\n", want: Access{BindIP: "172.17.0.1", Host: "172.17.0.1"}, asks: true},
		{reason: "the route table cannot be read: no guessing", host: "unix:///var/run/docker.sock", dockerenv: true,
			addrs: addrs("172.17.0.5/16"), routesErr: os.ErrPermission, want: Loopback, asks: true},
		{reason: "the daemon cannot list networks: no guessing", host: "unix:///var/run/docker.sock", dockerenv: true,
			addrs: addrs("172.17.0.5/16"), routes: routes, listErr: errors.New("boom"), want: Loopback, asks: true},
		{reason: "our own addresses cannot be listed: no guessing", host: "unix:///var/run/docker.sock", dockerenv: true,
			addrs: func() ([]net.Addr, error) { return nil, errors.New("netlink: permission denied") }, routes: routes, want: Loopback, asks: true},
		{reason: "tcp to loopback from a container is judged as a socket is: the gateways decide", host: "tcp://127.0.0.1:2375", dockerenv: true,
			addrs: addrs("172.17.0.5/16"), routes: routes, want: Access{BindIP: "172.17.0.1", Host: "172.17.0.1"}, asks: true},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			f := enginetest.NewFake()
			f.AddNetwork(bridge)
			for _, n := range tc.networks {
				f.AddNetwork(n)
			}
			f.Hook = func(_ context.Context, call string, _ any) error {
				if call == "NetworkList" {
					return tc.listErr
				}
				return nil
			}
			var looked []string
			env := HostEnv{
				DockerEnv:      "/.dockerenv",
				Routes:         "/proc/net/route",
				InterfaceAddrs: tc.addrs,
				Hostname:       func() (string, error) { return "build-box", nil },
				Exists: func(p string) bool {
					looked = append(looked, p)
					return tc.dockerenv && p == "/.dockerenv"
				},
				ReadFile: func(p string) ([]byte, error) {
					require.Equal(t, "/proc/net/route", p)
					return []byte(tc.routes), tc.routesErr
				},
			}
			got := Decide(context.Background(), engine.Endpoint{Host: tc.host}, env, f)
			require.Equal(t, tc.want, got, tc.reason)
			if tc.asks {
				require.Equal(t, []string{"NetworkList"}, f.Calls(), "only the networks are asked for")
			} else {
				require.Empty(t, f.Calls(), "no daemon call is needed")
			}
			if isLocal(engine.Endpoint{Host: tc.host}, env) {
				require.Equal(t, []string{"/.dockerenv"}, looked)
			}
		})
	}
}

func TestDecideAsksOnlyForBridges(t *testing.T) {
	f := enginetest.NewFake()
	var asked engine.Filter
	f.Hook = func(_ context.Context, call string, arg any) error {
		asked = arg.(engine.Filter)
		return nil
	}
	env := HostEnv{Exists: func(string) bool { return true }, InterfaceAddrs: addrs("172.17.0.5/16"),
		ReadFile: func(string) ([]byte, error) { return []byte(routes), nil }}
	require.Equal(t, Loopback, Decide(context.Background(), engine.Endpoint{Host: "unix:///x.sock"}, env, f),
		"a daemon without bridge networks gives nothing to compare with: loopback")
	require.Equal(t, engine.Filter{"driver": {"bridge"}}, asked)
}

func TestDecideHonoursTheContext(t *testing.T) {
	// A caller that gave up gets loopback at once, not a guess.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := enginetest.NewFake()
	f.AddNetwork(engine.Network{Name: "bridge", Subnets: []engine.Subnet{{Gateway: netip.MustParseAddr("172.17.0.1")}}})
	env := HostEnv{Exists: func(string) bool { return true }, InterfaceAddrs: addrs("172.17.0.5/16"),
		ReadFile: func(string) ([]byte, error) { return []byte(routes), nil }}
	require.Equal(t, Loopback, Decide(ctx, engine.Endpoint{Host: "unix:///x.sock"}, env, f))
}

func TestOSHostEnv(t *testing.T) {
	env := OSHostEnv()
	require.Equal(t, "/.dockerenv", env.DockerEnv)
	require.Equal(t, "/proc/net/route", env.Routes)
	require.True(t, env.Exists(t.TempDir()))
	_, err := env.InterfaceAddrs()
	require.NoError(t, err)
	// Whatever this machine is, a daemon with no bridge network gives no
	// gateway to reach it by: loopback.
	require.Equal(t, Loopback, Decide(context.Background(), engine.Endpoint{Host: DefaultHost}, env, enginetest.NewFake()))
}

// TestDecideTheSocketsNamespaceComesFirst: Podman's bridge exists only
// while a container runs, so no gateway of the daemon is among our
// addresses, yet the daemon's process shares our network namespace: that
// evidence wins over /.dockerenv, and the daemon is not asked.
func TestDecideTheSocketsNamespaceComesFirst(t *testing.T) {
	for _, tc := range []struct {
		reason      string
		host        string
		same, known bool
		want        Access
		asks        bool
	}{
		{reason: "same namespace: loopback", host: "unix:///run/podman/podman.sock", same: true, known: true, want: Loopback},
		{reason: "another namespace: the default gateway", host: "unix:///run/podman/podman.sock", known: true, want: Access{BindIP: "172.17.0.1", Host: "172.17.0.1"}},
		{reason: "cannot tell: the gateways decide", host: "unix:///run/podman/podman.sock", want: Access{BindIP: "172.17.0.1", Host: "172.17.0.1"}, asks: true},
		{reason: "tcp to loopback has no peer to ask", host: "tcp://127.0.0.1:2375", same: true, known: true, want: Access{BindIP: "172.17.0.1", Host: "172.17.0.1"}, asks: true},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			f := enginetest.NewFake()
			f.AddNetwork(engine.Network{Name: "podman", Driver: "bridge", Subnets: []engine.Subnet{{Gateway: netip.MustParseAddr("10.88.0.1")}}})
			var asked []string
			env := HostEnv{Exists: func(string) bool { return true }, InterfaceAddrs: addrs("127.0.0.1/8", "172.17.0.5/16"),
				ReadFile:  func(string) ([]byte, error) { return []byte(routes), nil },
				SameNetNS: func(s string) (bool, bool) { asked = append(asked, s); return tc.same, tc.known }}
			require.Equal(t, tc.want, Decide(context.Background(), engine.Endpoint{Host: tc.host}, env, f))
			if tc.asks {
				require.Equal(t, []string{"NetworkList"}, f.Calls())
			} else {
				require.Empty(t, f.Calls())
			}
			if engine.Endpoint.IsSocket(engine.Endpoint{Host: tc.host}) {
				require.Equal(t, []string{"/run/podman/podman.sock"}, asked)
			}
		})
	}
}

func TestSameNetNSOfAListenerInThisProcess(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	same, known := sameNetNS(sock)
	require.True(t, known, "our own process can be read")
	require.True(t, same)
	_, known = sameNetNS(filepath.Join(t.TempDir(), "none.sock"))
	require.False(t, known, "no socket: cannot tell")
}
