package heph

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
)

func TestPortAccess(t *testing.T) {
	bridge := client.NetworkListResult{Items: []network.Summary{{Network: network.Network{
		Name: "bridge", IPAM: network.IPAM{Config: []network.IPAMConfig{{Gateway: netip.MustParseAddr("172.17.0.1")}}},
	}}}}
	// /proc/net/route with a default route via 172.17.0.1 (little-endian hex).
	routes := "Iface\tDestination\tGateway\tFlags\n eth0\t00000000\t010011AC\t0003\n eth0\t000011AC\t00000000\t0001\n"
	addrs := func(ips ...string) func() ([]net.Addr, error) {
		return func() ([]net.Addr, error) {
			var out []net.Addr
			for _, ip := range ips {
				_, n, _ := net.ParseCIDR(ip)
				n.IP = net.ParseIP(ip[:len(ip)-3])
				out = append(out, n)
			}
			return out, nil
		}
	}
	loopback := portAccess{bindIP: "127.0.0.1", host: "127.0.0.1"}
	cases := []struct {
		reason    string
		host      string
		dockerenv bool
		addrs     func() ([]net.Addr, error)
		routes    string
		listErr   error
		want      portAccess
	}{
		{"local socket, not in a container", "unix:///var/run/docker.sock", false, nil, "", nil, loopback},
		{"tcp to loopback", "tcp://127.0.0.1:2375", false, nil, "", nil, loopback},
		{"remote daemon: its address, every interface", "tcp://10.0.0.5:2376", false, nil, "", nil, portAccess{host: "10.0.0.5"}},
		{"remote by name", "tcp://docker.example:2376", true, nil, "", nil, portAccess{host: "docker.example"}},
		{"/.dockerenv but the daemon's gateway is ours: the daemon is local", "unix:///var/run/docker.sock", true,
			addrs("127.0.0.1/8", "192.0.2.2/24", "172.17.0.1/16"), routes, nil, loopback},
		{"inside another container: the default gateway is the daemon's host", "unix:///var/run/docker.sock", true,
			addrs("127.0.0.1/8", "172.17.0.5/16"), routes, nil, portAccess{host: "172.17.0.1"}},
		{"inside a container without a default route: no guessing", "unix:///var/run/docker.sock", true,
			addrs("127.0.0.1/8", "172.17.0.5/16"), "Iface\tDestination\tGateway\n", nil, loopback},
		{"the daemon cannot list networks: no guessing", "unix:///var/run/docker.sock", true,
			addrs("172.17.0.5/16"), routes, errors.New("boom"), loopback},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			m := &mockAPI{}
			m.On("NetworkList", mock.Anything, mock.Anything).Return(bridge, tc.listErr).Maybe()
			env := hostEnv{
				dockerenv:      "/.dockerenv",
				routes:         "/proc/net/route",
				interfaceAddrs: tc.addrs,
				exists:         func(string) bool { return tc.dockerenv },
				readFile:       func(string) ([]byte, error) { return []byte(tc.routes), nil },
			}
			require.Equal(t, tc.want, decideAccess(context.Background(), dockerEndpoint{Host: tc.host}, env, m))
		})
	}
}
