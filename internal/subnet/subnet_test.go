package subnet

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	def := []Range{{Base: netip.MustParsePrefix("10.213.0.0/16"), Bits: 26}}
	for _, c := range []struct {
		in       string
		want     []Range // nil with no error: the daemon's pools
		explicit bool
		err      string // in the error; "" for none
		why      string
	}{
		{in: "", want: def, why: "unset is the default range"},
		{in: "  on ", want: def, why: "an on word keeps the default"},
		{in: "1", want: def, why: "an on word keeps the default"},
		{in: "off", why: "off leaves ranges to the daemon"},
		{in: "POOLS", why: "pools, in any case, leaves ranges to the daemon"},
		{in: "0", why: "an off word leaves ranges to the daemon"},
		{in: "10.213.0.0/16", want: def, explicit: true, why: "the default, set explicitly"},
		{in: "10.20.0.0/16:24", want: []Range{{netip.MustParsePrefix("10.20.0.0/16"), 24}}, explicit: true, why: "a subnet size"},
		{in: "10.20.0.0/16:/24", want: []Range{{netip.MustParsePrefix("10.20.0.0/16"), 24}}, explicit: true, why: "a size written with its slash"},
		{in: "10.20.5.0/28", want: []Range{{netip.MustParsePrefix("10.20.5.0/28"), 28}}, explicit: true, why: "a range smaller than the default size is one subnet"},
		{in: " 10.1.0.0/24 , 10.2.0.0/24:27 ", want: []Range{{netip.MustParsePrefix("10.1.0.0/24"), 26}, {netip.MustParsePrefix("10.2.0.0/24"), 27}}, explicit: true, why: "several ranges, spaces around"},
		{in: "198.18.0.0/15", want: []Range{{netip.MustParsePrefix("198.18.0.0/15"), 26}}, explicit: true, why: "any range that is not reserved"},
		{in: "10.213.1.0/16", err: "has host bits set (did you mean 10.213.0.0/16?)", why: "host bits"},
		{in: "10.213.0.0", err: "not a range", why: "an address, not a range"},
		{in: "banana", err: "not a range", why: "garbage"},
		{in: "fd00::/64", err: "IPv6 ranges are not supported", why: "IPv6"},
		{in: "fd00::/48:64", err: "IPv6 ranges are not supported", why: "IPv6 with a size"},
		{in: "127.0.0.0/16", err: "overlaps 127.0.0.0/8", why: "loopback"},
		{in: "169.254.0.0/16", err: "overlaps 169.254.0.0/16", why: "link-local"},
		{in: "224.0.0.0/8", err: "overlaps 224.0.0.0/4", why: "multicast"},
		{in: "0.0.0.0/0", err: "overlaps 0.0.0.0/8", why: "everything"},
		{in: "10.0.0.0/16:30", err: "too small for containers", why: "a /30 holds one container"},
		{in: "10.0.0.0/16:8", err: "do not fit in a /16", why: "subnets larger than the range"},
		{in: "10.0.0.0/16:x", err: "is not a number of bits", why: "a bad size"},
		{in: "192.0.0.0/3:29", err: "more than 2^24 subnets", why: "too many subnets"},
		{in: "10.0.0.0/16,10.0.1.0/24", err: "overlaps 10.0.0.0/16", why: "overlapping ranges"},
		{in: "10.0.0.0/16,", err: "an empty entry", why: "a trailing comma"},
	} {
		t.Run(c.in, func(t *testing.T) {
			p, err := Parse(c.in)
			if c.err != "" {
				require.ErrorContains(t, err, c.err, c.why)
				return
			}
			require.NoError(t, err, c.why)
			require.Equal(t, c.want, p.Ranges, c.why)
			require.Equal(t, c.explicit, p.Explicit, c.why)
			require.Equal(t, c.want == nil, p.Pools(), c.why)
		})
	}
}

func TestPlanString(t *testing.T) {
	p, err := Parse("10.1.0.0/24, 10.2.0.0/24:27")
	require.NoError(t, err)
	require.Equal(t, "10.1.0.0/24:26,10.2.0.0/24:27", p.String())
	again, err := Parse(p.String())
	require.NoError(t, err)
	require.Equal(t, p, again, "String reads back as the same plan")
	require.Equal(t, "pools", Plan{}.String())
}

func collect(p Plan, taken []netip.Prefix, rnd *rand.Rand) []netip.Prefix {
	var out []netip.Prefix
	for s := range p.Walk(taken, rnd) {
		out = append(out, s)
	}
	return out
}

func TestWalkVisitsEverySubnetOnce(t *testing.T) {
	p, err := Parse("10.1.0.0/24,10.2.0.0/25:27")
	require.NoError(t, err)
	got := collect(p, nil, rand.New(rand.NewPCG(1, 2)))
	require.Len(t, got, 4+4, "4 /26s in the /24, 4 /27s in the /25")
	sorted := slices.Clone(got)
	slices.SortFunc(sorted, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	require.Equal(t, []string{
		"10.1.0.0/26", "10.1.0.64/26", "10.1.0.128/26", "10.1.0.192/26",
		"10.2.0.0/27", "10.2.0.32/27", "10.2.0.64/27", "10.2.0.96/27",
	}, strs(sorted))
}

func strs(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func TestWalkSkipsWhatIsTaken(t *testing.T) {
	p, err := Parse("10.1.0.0/24")
	require.NoError(t, err)
	taken := []netip.Prefix{
		netip.MustParsePrefix("10.1.0.64/28"),  // inside one subnet
		netip.MustParsePrefix("192.0.2.0/24"),  // elsewhere
		netip.MustParsePrefix("10.1.0.192/32"), // one address
	}
	got := collect(p, taken, nil)
	slices.SortFunc(got, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	require.Equal(t, []string{"10.1.0.0/26", "10.1.0.128/26"}, strs(got))

	require.Empty(t, collect(p, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, nil), "a route covering the range leaves nothing")
	require.Empty(t, collect(Plan{}, nil, nil), "the pools plan has no subnets")
}

func TestWalkOrdersDiffer(t *testing.T) {
	p, err := Parse("10.213.0.0/16")
	require.NoError(t, err)
	// Two processes that start on the same subnet must not walk in step
	// afterwards: count how often their next five candidates coincide.
	same := 0
	for seed := range uint64(200) {
		a := firstN(p, rand.New(rand.NewPCG(seed, 1)), 6)
		b := firstN(p, rand.New(rand.NewPCG(seed, 2)), 6)
		for i := 1; i < 6; i++ {
			if a[i] == b[i] {
				same++
			}
		}
	}
	require.Less(t, same, 5, "of 1000 next candidates of two walks, %d coincide", same)
	require.NotEqual(t, firstN(p, nil, 3), firstN(p, nil, 3), "the global source gives different walks")
}

func firstN(p Plan, rnd *rand.Rand, n int) []netip.Prefix {
	var out []netip.Prefix
	for s := range p.Walk(nil, rnd) {
		out = append(out, s)
		if len(out) == n {
			break
		}
	}
	return out
}

func TestReserve(t *testing.T) {
	p, err := Parse("10.9.0.0/25")
	require.NoError(t, err)
	s := netip.MustParsePrefix("10.9.0.0/26")
	release, ok := Reserve(s)
	require.True(t, ok)
	_, again := Reserve(s)
	require.False(t, again, "a subnet is reserved once")
	require.Equal(t, []string{"10.9.0.64/26"}, strs(collect(p, nil, nil)), "Walk skips a reserved subnet")
	release()
	release() // idempotent
	require.Len(t, collect(p, nil, nil), 2, "released")
	r2, ok := Reserve(s)
	require.True(t, ok)
	r2()
}

func TestErrorClasses(t *testing.T) {
	require.True(t, IsOverlap(errString("Error response from daemon: Pool overlaps with other one on this address space")))
	require.True(t, IsOverlap(errString("subnet 10.213.0.0/26 is already used on the host or by another config")))
	require.False(t, IsOverlap(errString("network with name x already exists")))
	require.True(t, IsPoolExhausted(errString("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")))
	require.False(t, IsPoolExhausted(errString("Pool overlaps with other one on this address space")))
}

type errString string

func (e errString) Error() string { return string(e) }

// FuzzParse: Parse never panics; what it accepts is a plan whose ranges are
// canonical IPv4, outside reserved space, with sizes in bounds, pairwise
// disjoint, and that reads back the same from its String; what it refuses
// it says why in a readable message.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "off", "pools", "10.213.0.0/16", "10.0.0.0/8:24", "10.1.0.0/24, 10.2.0.0/24:27", "fd00::/64", "10.213.1.0/16", "1.2.3.4/33", "10.0.0.0/16:", ":", ","} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := Parse(in)
		if err != nil {
			if msg := err.Error(); msg == "" || !utf8.ValidString(msg) && utf8.ValidString(in) {
				t.Fatalf("Parse(%q): unreadable error %q", in, msg)
			}
			return
		}
		for i, r := range p.Ranges {
			if !r.Base.Addr().Is4() || r.Base.Masked() != r.Base {
				t.Fatalf("Parse(%q): range %v is not canonical IPv4", in, r.Base)
			}
			if r.Bits < r.Base.Bits() || r.Bits > MaxBits {
				t.Fatalf("Parse(%q): size /%d out of bounds for %v", in, r.Bits, r.Base)
			}
			for _, x := range reserved {
				if x.Overlaps(r.Base) {
					t.Fatalf("Parse(%q): %v overlaps reserved %v", in, r.Base, x)
				}
			}
			for _, o := range p.Ranges[:i] {
				if o.Base.Overlaps(r.Base) {
					t.Fatalf("Parse(%q): %v overlaps %v", in, r.Base, o.Base)
				}
			}
		}
		if p.Pools() {
			return
		}
		again, err := Parse(p.String())
		if err != nil || again.String() != p.String() || strings.Contains(p.String(), " ") {
			t.Fatalf("Parse(%q) = %q does not read back: %v", in, p.String(), err)
		}
	})
}
