package port

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in, want string // want "" means refused
		why      string
	}{
		{"8080", "8080/tcp", "no protocol means tcp"},
		{"8080/tcp", "8080/tcp", "canonical"},
		{"53/udp", "53/udp", "udp"},
		{"53/UDP", "53/udp", "protocol in any case"},
		{"9/sctp", "9/sctp", "sctp"},
		{"9/Sctp", "9/sctp", "mixed case"},
		{"1", "1/tcp", "lowest port"},
		{"65535", "65535/tcp", "highest port"},
		{"0", "", "zero is not a port"},
		{"65536", "", "above the range"},
		{"08080", "", "leading zero: ambiguous, refused"},
		{"-1", "", "sign"},
		{"+80", "", "sign"},
		{" 80", "", "leading space"},
		{"80 ", "", "trailing space"},
		{"80/", "", "empty protocol"},
		{"80/xyz", "", "unknown protocol"},
		{"/tcp", "", "no number"},
		{"", "", "empty"},
		{"80/tcp/udp", "", "two protocols"},
		{"8o", "", "not a number"},
		{"99999999999999999999", "", "overflow"},
	}
	for _, c := range cases {
		got, err := Normalize(c.in)
		if c.want == "" {
			if err == nil || !errors.Is(err, ErrSyntax) {
				t.Errorf("Normalize(%q) = %q, %v; want an ErrSyntax error (%s)", c.in, got, err, c.why)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q (%s)", c.in, got, err, c.want, c.why)
		}
	}
}

func TestPortMethods(t *testing.T) {
	p, err := Parse("5432")
	if err != nil || !p.IsTCP() || p.Num != 5432 || p.String() != "5432/tcp" {
		t.Fatalf("Parse(5432) = %+v, %v", p, err)
	}
	if u, _ := Parse("53/udp"); u.IsTCP() {
		t.Fatalf("53/udp is TCP?")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"8080", "53/UDP", "08080", "0", "65536", "80/xyz", " 80", "80/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		// A parsed port round-trips through its canonical form.
		q, err := Parse(p.String())
		if err != nil || q != p {
			t.Fatalf("Parse(%q) = %v, but Parse(%q) = %v, %v", s, p, p.String(), q, err)
		}
		if p.Num == 0 {
			t.Fatalf("Parse(%q) gave port 0", s)
		}
	})
}
