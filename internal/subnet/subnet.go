// Package subnet chooses the address range of every network heph creates,
// so that heph does not depend on the daemon's default address pools (about
// 30 bridge networks on a default Docker Engine, shared by every process on
// the machine).
//
// heph owns a range (HEPH_SUBNETS, default 10.213.0.0/16) carved into small
// subnets (default /26: 1024 networks of up to 61 containers each). For each
// new network it walks the subnets in a random order of its own — so that
// processes creating networks at the same moment rarely pick the same one —
// skipping every subnet that overlaps something in use: a route or an
// address of the daemon's host, an existing Docker network, or a subnet
// another goroutine of this process is trying at this moment (Reserve). When
// the daemon still says the subnet overlaps (another process took it first),
// the caller moves on to the next candidate.
//
// Parse reads HEPH_SUBNETS; Plan.Walk lists the candidates; Counters counts
// what happened, for tests and the scale benchmark.
package subnet

import (
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/heph-go/heph/internal/envflag"
)

// Env is the environment variable that sets heph's ranges.
const Env = "HEPH_SUBNETS"

// The default range and subnet size.
//
// 10.213.0.0/16 is private (RFC 1918), so a container network there never
// hides a public address; it is none of Docker's default pools
// (172.17-31.0.0/16 and 192.168.0.0/16 in /20s), and it stays clear of the
// 10.x ranges that LANs, VPNs, clouds and cluster tools pick by default:
// 10.0-10.10 (home and office routers, Docker swarm's overlays in 10.0.x,
// OpenVPN's 10.8.0.0/24, Azure's 10.0.0.0/16), 10.42-10.43 (k3s), 10.88-10.89
// (Podman), 10.96-10.111 (Kubernetes services), 10.100 and 10.200 (round
// numbers people choose), 10.147 (ZeroTier), 10.244 (Kubernetes pods).
// Whatever a host uses anyway is skipped (its routes and addresses).
//
// /26 gives 1024 networks in the /16 — far more than one daemon runs at
// once — of 61 containers each (64 addresses less the network, broadcast and
// gateway addresses), more than any one test starts.
const (
	DefaultRange = "10.213.0.0/16"
	DefaultBits  = 26
	// MaxBits is the smallest subnet allowed: a /29 holds 5 containers.
	MaxBits = 29
)

// Range is one range heph owns, carved into subnets of Bits.
type Range struct {
	Base netip.Prefix
	Bits int
}

// String formats r as HEPH_SUBNETS does: "10.213.0.0/16:26".
func (r Range) String() string { return r.Base.String() + ":" + strconv.Itoa(r.Bits) }

// count is the number of subnets in r.
func (r Range) count() uint64 { return 1 << (r.Bits - r.Base.Bits()) }

// subnet returns the i-th subnet of r.
func (r Range) subnet(i uint64) netip.Prefix {
	a := r.Base.Addr().As4()
	base := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v := base + uint32(i)<<(32-r.Bits)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), r.Bits)
}

// Plan is what HEPH_SUBNETS says.
type Plan struct {
	// Ranges are heph's own ranges; empty means the daemon's default pools.
	Ranges []Range
	// Explicit is true when the user set the ranges (not the default):
	// heph then uses them also on a daemon whose host it cannot see.
	Explicit bool
}

// Pools reports whether the plan leaves address ranges to the daemon.
func (p Plan) Pools() bool { return len(p.Ranges) == 0 }

// String formats the plan as HEPH_SUBNETS would say it.
func (p Plan) String() string {
	if p.Pools() {
		return "pools"
	}
	s := make([]string, len(p.Ranges))
	for i, r := range p.Ranges {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}

// reserved are ranges no network may use: this-network, loopback,
// link-local, multicast and the reserved block up to broadcast.
var reserved = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// Syntax describes HEPH_SUBNETS's values, for messages.
const Syntax = `an IPv4 range such as 10.213.0.0/16, optionally ":<bits>" for the subnet size (10.213.0.0/16:24), several separated by commas; or "pools" (or off) for the daemon's default pools`

// Parse reads a HEPH_SUBNETS value: empty (or on, 1, true, yes) is the
// default; "pools" (or off, 0, false, no) leaves ranges to the daemon;
// otherwise a comma-separated list of IPv4 ranges, each "a.b.c.d/n" carved
// into subnets of DefaultBits (or of n when n is longer), or "a.b.c.d/n:m"
// carved into /m. A range must be canonical (no host bits set), outside
// loopback, link-local, multicast and reserved space, no subnet smaller
// than /29, and no two ranges may overlap. The error says what is wrong with
// which part; it does not name the variable (the caller does).
func Parse(value string) (Plan, error) {
	v := strings.TrimSpace(value)
	if strings.EqualFold(v, "pools") {
		return Plan{}, nil
	}
	if on, err := envflag.Bool(Env, v, true); err == nil {
		if !on {
			return Plan{}, nil
		}
		return Plan{Ranges: []Range{{Base: netip.MustParsePrefix(DefaultRange), Bits: DefaultBits}}}, nil
	}
	var p Plan
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return Plan{}, errors.New("an empty entry: want " + Syntax)
		}
		r, err := parseRange(item)
		if err != nil {
			return Plan{}, fmt.Errorf("%q: %w", item, err)
		}
		for _, o := range p.Ranges {
			if o.Base.Overlaps(r.Base) {
				return Plan{}, fmt.Errorf("%q overlaps %s", item, o.Base)
			}
		}
		p.Ranges = append(p.Ranges, r)
	}
	p.Explicit = true
	return p, nil
}

func parseRange(item string) (Range, error) {
	cidr, size, hasSize := strings.Cut(item, ":")
	base, err := netip.ParsePrefix(strings.TrimSpace(cidr))
	if err != nil {
		if strings.Count(item, ":") > 1 {
			return Range{}, errors.New("IPv6 ranges are not supported: heph's networks are IPv4")
		}
		return Range{}, fmt.Errorf("not a range (want %s)", Syntax)
	}
	if !base.Addr().Is4() {
		return Range{}, errors.New("IPv6 ranges are not supported: heph's networks are IPv4")
	}
	if base.Masked() != base {
		return Range{}, fmt.Errorf("has host bits set (did you mean %s?)", base.Masked())
	}
	for _, r := range reserved {
		if r.Overlaps(base) {
			return Range{}, fmt.Errorf("overlaps %s, which no network may use", r)
		}
	}
	bits := max(DefaultBits, base.Bits())
	if hasSize {
		n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(size), "/"))
		if err != nil {
			return Range{}, fmt.Errorf("subnet size %q is not a number of bits (want %s)", size, Syntax)
		}
		bits = n
	}
	switch {
	case bits < base.Bits():
		return Range{}, fmt.Errorf("subnets of /%d do not fit in a /%d", bits, base.Bits())
	case bits > MaxBits:
		return Range{}, fmt.Errorf("subnets of /%d are too small for containers: want /%d at most", bits, MaxBits)
	case bits-base.Bits() > 24:
		return Range{}, fmt.Errorf("carving a /%d into /%d gives more than 2^24 subnets: use larger subnets", base.Bits(), bits)
	}
	return Range{Base: base, Bits: bits}, nil
}

// Walk yields the plan's subnets that overlap none of taken (nor a subnet
// reserved in this process), each once, in a random order drawn from rnd: a
// random start and a random stride coprime with the number of subnets, so
// that two processes that collide on one subnet go different ways after it.
// A nil rnd uses the global source.
func (p Plan) Walk(taken []netip.Prefix, rnd *rand.Rand) iter.Seq[netip.Prefix] {
	return func(yield func(netip.Prefix) bool) {
		var total uint64
		for _, r := range p.Ranges {
			total += r.count()
		}
		if total == 0 {
			return
		}
		n := func(k uint64) uint64 {
			if rnd == nil {
				return rand.Uint64N(k)
			}
			return rnd.Uint64N(k)
		}
		start, stride := n(total), uint64(1)
		if total > 2 {
			for {
				stride = 1 + n(total-1)
				if gcd(stride, total) == 1 {
					break
				}
			}
		}
		for k := range total {
			// k, stride < total ≤ 2^29 (IPv4 holds no more /29s): no overflow.
			s := p.at((start + k*stride) % total)
			if overlapsAny(s, taken) || reservations.has(s) {
				continue
			}
			if !yield(s) {
				return
			}
		}
	}
}

// at returns the i-th subnet of the plan, counting through its ranges.
func (p Plan) at(i uint64) netip.Prefix {
	for _, r := range p.Ranges {
		if c := r.count(); i >= c {
			i -= c
			continue
		}
		return r.subnet(i)
	}
	panic("subnet: index out of range")
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func overlapsAny(s netip.Prefix, taken []netip.Prefix) bool {
	for _, t := range taken {
		if t.Overlaps(s) {
			return true
		}
	}
	return false
}

// reservations are the subnets goroutines of this process are creating
// networks on right now.
var reservations = inFlight{m: map[netip.Prefix]int{}}

type inFlight struct {
	mu sync.Mutex
	m  map[netip.Prefix]int
}

func (r *inFlight) has(s netip.Prefix) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[s] > 0
}

// Reserve marks s as being tried by this process, so that Walk in other
// goroutines skips it, and returns false when it already was (the caller
// then takes another candidate). Release with the returned func.
func Reserve(s netip.Prefix) (release func(), ok bool) {
	reservations.mu.Lock()
	defer reservations.mu.Unlock()
	if reservations.m[s] > 0 {
		return func() {}, false
	}
	reservations.m[s]++
	var once sync.Once
	return func() {
		once.Do(func() {
			reservations.mu.Lock()
			defer reservations.mu.Unlock()
			if reservations.m[s]--; reservations.m[s] <= 0 {
				delete(reservations.m, s)
			}
		})
	}, true
}

// Counters count what network creation did in this process (for tests and
// the scale benchmark).
var Counters struct {
	// Own counts networks created on a subnet of heph's ranges.
	Own atomic.Int64
	// Overlaps counts candidates the daemon refused as overlapping
	// (another process took them first).
	Overlaps atomic.Int64
	// Pooled counts networks created from the daemon's default pools.
	Pooled atomic.Int64
	// PoolRetries counts creates retried because the pools were exhausted.
	PoolRetries atomic.Int64
	// Fallbacks counts creates that found heph's ranges unusable and fell
	// back to the daemon's pools.
	Fallbacks atomic.Int64
}

// IsOverlap reports whether the daemon refused a network's subnet because it
// overlaps another network's (Docker: "Pool overlaps with other one on this
// address space"; Podman: "subnet … is already used").
func IsOverlap(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "overlaps with other one") || strings.Contains(msg, "is already used")
}

// IsPoolExhausted reports whether the daemon refused a network because its
// default pools hold no free range.
func IsPoolExhausted(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "non-overlapping IPv4 address pool") || strings.Contains(msg, "could not find an available")
}
