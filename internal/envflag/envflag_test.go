package envflag

import "testing"

func TestBool(t *testing.T) {
	for _, c := range []struct {
		in      string
		def     bool
		want    bool
		wantErr bool
	}{
		{"", true, true, false},
		{"", false, false, false},
		{"1", false, true, false},
		{" TRUE ", false, true, false},
		{"yes", false, true, false},
		{"On", false, true, false},
		{"0", true, false, false},
		{"false", true, false, false},
		{"NO", true, false, false},
		{"off", true, false, false},
		{"maybe", true, true, true},
		{"2", false, false, true},
	} {
		got, err := Bool("HEPH_X", c.in, c.def)
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("Bool(%q, def %v) = %v, %v; want %v, error %v", c.in, c.def, got, err, c.want, c.wantErr)
		}
	}
	if _, err := Bool("HEPH_X", "maybe", false); err == nil || err.Error() != `HEPH_X="maybe": want `+Words {
		t.Fatalf("message: %v", err)
	}
	if !IsOff("off") || IsOff("") || IsOff("on") || IsOff("bogus") {
		t.Fatal("IsOff")
	}
}
