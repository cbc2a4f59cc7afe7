package heph

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"
)

// hostEnv is what deciding where published ports are reached looks at, so
// tests can fake it.
type hostEnv struct {
	dockerenv      string                       // "/.dockerenv"
	routes         string                       // "/proc/net/route"
	interfaceAddrs func() ([]net.Addr, error)   // net.InterfaceAddrs
	exists         func(path string) bool       // os.Stat
	readFile       func(string) ([]byte, error) // os.ReadFile
}

func defaultHostEnv() hostEnv {
	return hostEnv{
		dockerenv:      "/.dockerenv",
		routes:         "/proc/net/route",
		interfaceAddrs: net.InterfaceAddrs,
		exists:         func(p string) bool { _, err := os.Stat(p); return err == nil },
		readFile:       os.ReadFile,
	}
}

// portAccess says where published ports are bound and reached.
type portAccess struct {
	bindIP string // "127.0.0.1", or "" for every interface
	host   string // where a test dials them
}

// access decides, once per Orchestrator, where published ports are bound and
// reached:
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
func (o *Orchestrator) access(ctx context.Context) portAccess {
	o.accessOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		o.ports = decideAccess(ctx, o.endpoint, o.hostEnv, o.api)
	})
	return o.ports
}

func decideAccess(ctx context.Context, ep dockerEndpoint, env hostEnv, api dockerAPI) portAccess {
	loopback := portAccess{bindIP: "127.0.0.1", host: "127.0.0.1"}
	if !ep.isLocal() {
		host := ep.hostname()
		if host == "" {
			return loopback
		}
		return portAccess{host: host}
	}
	if !env.exists(env.dockerenv) {
		return loopback
	}
	gateways := daemonGateways(ctx, api)
	addrs, err := env.interfaceAddrs()
	if err != nil || len(gateways) == 0 {
		return loopback
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && gateways[p.Addr().Unmap()] {
			return loopback // we share the daemon's network namespace
		}
	}
	gw, ok := defaultGateway(env)
	if !ok {
		return loopback
	}
	return portAccess{host: gw}
}

// daemonGateways returns the gateway addresses of the daemon's bridge
// networks.
func daemonGateways(ctx context.Context, api dockerAPI) map[netip.Addr]bool {
	res, err := api.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("driver", "bridge")})
	if err != nil {
		return nil
	}
	gws := map[netip.Addr]bool{}
	for _, n := range res.Items {
		for _, c := range n.IPAM.Config {
			if c.Gateway.IsValid() {
				gws[c.Gateway.Unmap()] = true
			}
		}
	}
	return gws
}

// defaultGateway reads the IPv4 default route's gateway from
// /proc/net/route.
func defaultGateway(env hostEnv) (string, bool) {
	b, err := env.readFile(env.routes)
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

// publishedHost returns where tests dial published ports.
func (o *Orchestrator) publishedHost() string {
	return o.access(context.Background()).host
}

// accessState is embedded in Orchestrator.
type accessState struct {
	hostEnv    hostEnv
	accessOnce sync.Once
	ports      portAccess
}
