package daemon

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
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
	// SameNetNS says whether the daemon behind a unix socket shares this
	// process's network namespace, and whether that could be told; nil
	// cannot tell.
	SameNetNS func(socket string) (same, known bool)
	Hostname  func() (string, error) // os.Hostname; nil: unknown
}

// OSHostEnv is the real machine.
func OSHostEnv() HostEnv {
	return HostEnv{
		DockerEnv:      "/.dockerenv",
		Routes:         "/proc/net/route",
		InterfaceAddrs: net.InterfaceAddrs,
		Exists:         pathExists,
		ReadFile:       os.ReadFile,
		SameNetNS:      sameNetNS,
		Hostname:       os.Hostname,
	}
}

// Access says where published ports are bound and reached.
type Access struct {
	// BindIP is the host address ports are published on: "127.0.0.1", the
	// address they are reached at (a daemon seen from inside a container),
	// or "" for every interface (a daemon on another machine, reached there).
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
//     on machines whose daemon is local). The evidence, first to last: the
//     process serving the daemon's unix socket is in this process's network
//     namespace (SO_PEERCRED, then /proc/<pid>/ns/net); one of the daemon's
//     bridge gateways is an address of this machine. Podman creates its
//     bridge only when a container runs, so the gateways alone would send
//     heph to the default gateway on a machine that is the daemon's host;
//   - a local daemon seen from inside another container (/.dockerenv, and no
//     daemon gateway among our addresses): every interface, reached through
//     this container's default gateway, which is the daemon's host. No address
//     is guessed: without a default route heph stays on 127.0.0.1.
func Decide(ctx context.Context, ep engine.Endpoint, env HostEnv, api engine.API) Access {
	if !isLocal(ep, env) {
		host := ep.Hostname()
		if host == "" {
			return Loopback
		}
		return Access{Host: host}
	}
	if !env.Exists(env.DockerEnv) {
		return Loopback
	}
	if ep.IsSocket() && env.SameNetNS != nil {
		if same, known := env.SameNetNS(socketPath(ep)); known {
			if same {
				return Loopback
			}
			if gw, ok := defaultGateway(env); ok {
				return Access{BindIP: gw, Host: gw}
			}
			return Loopback
		}
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
	// Bound where it is dialled: the daemon's host's address on our side,
	// not every interface of that host.
	return Access{BindIP: gw, Host: gw}
}

// socketPath is the path of a unix:// endpoint.
func socketPath(ep engine.Endpoint) string {
	if len(ep.Host) > len("unix://") && strings.EqualFold(ep.Host[:len("unix://")], "unix://") {
		return ep.Host[len("unix://"):]
	}
	if ep.Host == "" {
		return strings.TrimPrefix(DefaultHost, "unix://")
	}
	return ""
}

// isLocal reports whether the daemon runs on this machine: a unix socket or
// named pipe, or TCP to this machine however it is spelt — a loopback or
// unspecified address (127.1 too), localhost in any case with or without
// its final dot, this machine's host name, or an address of one of its
// interfaces. Anything else is another machine.
func isLocal(ep engine.Endpoint, env HostEnv) bool {
	if ep.IsSocket() {
		return true
	}
	host := strings.TrimSuffix(strings.ToLower(ep.Hostname()), ".")
	if host == "" {
		return false
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if env.Hostname != nil {
		if name, err := env.Hostname(); err == nil && strings.TrimSuffix(strings.ToLower(name), ".") == host {
			return true
		}
	}
	ip, ok := parseIP(host)
	if !ok {
		return false
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	if env.InterfaceAddrs != nil {
		if addrs, err := env.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == ip {
					return true
				}
			}
		}
	}
	return false
}

// parseIP parses an IP address as a dial does, including the short IPv4
// forms of inet_aton ("127.1", "127.0.1", "2130706433") in decimal.
func parseIP(host string) (netip.Addr, bool) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap(), true
	}
	parts := strings.Split(host, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var nums []uint64
	for _, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		nums = append(nums, n)
	}
	// Every part but the last is one byte; the last fills the rest.
	var v uint64
	for i, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false
		}
		v |= n << (24 - 8*i)
	}
	last, room := nums[len(nums)-1], uint(32-8*(len(nums)-1))
	if last >= 1<<room {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// daemonGateways returns the gateway addresses of the daemon's bridge
// networks.
func daemonGateways(ctx context.Context, api engine.API) map[netip.Addr]bool {
	nets, err := api.NetworkList(ctx, engine.Filter{}.Add("driver", "bridge"))
	if err != nil {
		return nil
	}
	gws := map[netip.Addr]bool{}
	for _, g := range Gateways(nets) {
		gws[g] = true
	}
	return gws
}

// Gateways returns the gateway addresses of the IPv4 subnets of nets: the
// one the daemon reports, else the subnet's first address, which the daemon
// takes when none was asked for (it does not report the default bridge's).
func Gateways(nets []engine.Network) []netip.Addr {
	var gws []netip.Addr
	for _, n := range nets {
		for _, s := range n.Subnets {
			switch {
			case s.Gateway.IsValid():
				gws = append(gws, s.Gateway.Unmap())
			case s.Prefix.IsValid() && s.Prefix.Addr().Is4() && s.Prefix.Bits() < 31:
				gws = append(gws, s.Prefix.Masked().Addr().Next())
			}
		}
	}
	return gws
}

// defaultGateway reads the IPv4 default route's gateway from
// /proc/net/route.
func defaultGateway(env HostEnv) (string, bool) {
	rs, err := readRoutes(env)
	if err != nil {
		return "", false
	}
	for _, r := range rs {
		if r.dest.Bits() == 0 && r.gateway.IsValid() && !r.gateway.IsUnspecified() {
			return r.gateway.String(), true
		}
	}
	return "", false
}

// route is one line of /proc/net/route.
type route struct {
	dest    netip.Prefix
	gateway netip.Addr
}

// readRoutes reads the IPv4 routes of the main table from /proc/net/route,
// whose addresses are little-endian hex; malformed lines are passed over.
func readRoutes(env HostEnv) ([]route, error) {
	if env.ReadFile == nil {
		return nil, errors.New("no route table to read")
	}
	b, err := env.ReadFile(env.Routes)
	if err != nil {
		return nil, err
	}
	hexAddr := func(s string) (netip.Addr, bool) {
		raw, err := hex.DecodeString(s)
		if err != nil || len(raw) != 4 {
			return netip.Addr{}, false
		}
		var ip [4]byte
		binary.BigEndian.PutUint32(ip[:], binary.LittleEndian.Uint32(raw))
		return netip.AddrFrom4(ip), true
	}
	var out []route
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		dest, ok1 := hexAddr(f[1])
		gw, ok2 := hexAddr(f[2])
		if !ok1 || !ok2 {
			continue
		}
		bits := 0 // a line cut before its mask is taken for the default route only
		if len(f) >= 8 {
			mask, ok := hexAddr(f[7])
			if !ok {
				continue
			}
			m := mask.As4()
			for v := binary.BigEndian.Uint32(m[:]); v&(1<<31) != 0; v <<= 1 {
				bits++
			}
		} else if !dest.IsUnspecified() {
			continue
		}
		out = append(out, route{dest: netip.PrefixFrom(dest, bits).Masked(), gateway: gw})
	}
	return out, nil
}

// HostPrefixes returns the address ranges in use on the daemon's host — the
// destinations of its routes (but the default route) and the networks of
// its interface addresses — for choosing a network's subnet that clashes
// with none of them. gateways are the gateways of the daemon's networks
// (see Gateways).
//
// ok is false when this process cannot see the daemon's host network: a
// remote daemon; a local daemon seen from inside another container
// (/.dockerenv, and none of gateways among this process's addresses); or
// interface addresses that cannot be read. A route table that cannot be
// read (not Linux) leaves the interface addresses alone.
func HostPrefixes(ep engine.Endpoint, env HostEnv, gateways []netip.Addr) (prefixes []netip.Prefix, ok bool) {
	if !isLocal(ep, env) || env.InterfaceAddrs == nil {
		return nil, false
	}
	addrs, err := env.InterfaceAddrs()
	if err != nil {
		return nil, false
	}
	own := map[netip.Addr]bool{}
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		own[p.Addr().Unmap()] = true
		if p.Addr().Is4() {
			prefixes = append(prefixes, p.Masked())
		}
	}
	if env.Exists != nil && env.Exists(env.DockerEnv) {
		shared := false
		for _, g := range gateways {
			shared = shared || own[g.Unmap()]
		}
		if !shared {
			return nil, false
		}
	}
	rs, _ := readRoutes(env)
	for _, r := range rs {
		if r.dest.Bits() > 0 {
			prefixes = append(prefixes, r.dest)
		}
	}
	return prefixes, true
}
