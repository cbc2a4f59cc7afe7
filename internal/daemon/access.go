package daemon

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/heph-go/heph/internal/engine"
)

// HostEnv is what deciding where published ports are reached looks at, so
// tests can fake it.
type HostEnv struct {
	DockerEnv      string                       // "/.dockerenv"
	Routes         string                       // "/proc/net/route"
	InterfaceAddrs func() ([]net.Addr, error)   // net.InterfaceAddrs
	Exists         func(path string) bool       // os.Stat
	ReadFile       func(string) ([]byte, error) // os.ReadFile
}

// OSHostEnv is the real machine.
func OSHostEnv() HostEnv {
	return HostEnv{
		DockerEnv:      "/.dockerenv",
		Routes:         "/proc/net/route",
		InterfaceAddrs: net.InterfaceAddrs,
		Exists:         pathExists,
		ReadFile:       os.ReadFile,
	}
}

// Access says where published ports are bound and reached.
type Access struct {
	// BindIP is the host address ports are published on: "127.0.0.1", or
	// "" for every interface.
	BindIP string
	// Host is where a test dials them.
	Host string
}

// Loopback is the access of a daemon on this machine.
var Loopback = Access{BindIP: "127.0.0.1", Host: "127.0.0.1"}

// Decide decides where published ports are bound and reached:
//   - a remote daemon (tcp:// to another machine): every interface, reached at
//     that machine's address;
//   - a local daemon, and this process in the daemon's network namespace:
//     127.0.0.1 — a file /.dockerenv alone does not say otherwise (it exists
//     on machines whose daemon is local), so heph checks whether one of the
//     daemon's bridge gateways is an address of this machine;
//   - a local daemon seen from inside another container (/.dockerenv, and no
//     daemon gateway among our addresses): every interface, reached through
//     this container's default gateway, which is the daemon's host. No address
//     is guessed: without a default route heph stays on 127.0.0.1.
func Decide(ctx context.Context, ep engine.Endpoint, env HostEnv, api engine.API) Access {
	if !isLocal(ep) {
		host := ep.Hostname()
		if host == "" {
			return Loopback
		}
		return Access{Host: host}
	}
	if !env.Exists(env.DockerEnv) {
		return Loopback
	}
	gateways := daemonGateways(ctx, api)
	addrs, err := env.InterfaceAddrs()
	if err != nil || len(gateways) == 0 {
		return Loopback
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && gateways[p.Addr().Unmap()] {
			return Loopback // we share the daemon's network namespace
		}
	}
	gw, ok := defaultGateway(env)
	if !ok {
		return Loopback
	}
	return Access{Host: gw}
}

// isLocal reports whether the daemon runs on this machine: a unix socket or
// named pipe, or TCP to a loopback address.
func isLocal(ep engine.Endpoint) bool {
	if ep.IsSocket() {
		return true
	}
	return isLoopback(ep.Hostname())
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// daemonGateways returns the gateway addresses of the daemon's bridge
// networks.
func daemonGateways(ctx context.Context, api engine.API) map[netip.Addr]bool {
	nets, err := api.NetworkList(ctx, engine.Filter{}.Add("driver", "bridge"))
	if err != nil {
		return nil
	}
	gws := map[netip.Addr]bool{}
	for _, n := range nets {
		for _, s := range n.Subnets {
			if s.Gateway.IsValid() {
				gws[s.Gateway.Unmap()] = true
			}
		}
	}
	return gws
}

// defaultGateway reads the IPv4 default route's gateway from
// /proc/net/route.
func defaultGateway(env HostEnv) (string, bool) {
	b, err := env.ReadFile(env.Routes)
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != "00000000" {
			continue
		}
		raw, err := hex.DecodeString(f[2])
		if err != nil || len(raw) != 4 {
			continue
		}
		var ip [4]byte
		binary.BigEndian.PutUint32(ip[:], binary.LittleEndian.Uint32(raw))
		if a := netip.AddrFrom4(ip); !a.IsUnspecified() {
			return a.String(), true
		}
	}
	return "", false
}
