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

func TestGetAndKeep(t *testing.T) {
	t.Setenv("HEPH_X", "")
	on, err := Get("HEPH_X", true)
	if err != nil || !on {
		t.Fatalf("unset: got %v, %v; want the default, true", on, err)
	}
	t.Setenv("HEPH_X", " OFF ")
	if on, err = Get("HEPH_X", true); err != nil || on {
		t.Fatalf("OFF: got %v, %v", on, err)
	}
	t.Setenv("HEPH_X", "maybe")
	if _, err = Get("HEPH_X", false); err == nil || err.Error() != `heph: invalid configuration: HEPH_X "maybe": want `+Words {
		t.Fatalf("maybe: got %v", err)
	}
	for v, want := range map[string]string{"": "", "never": "", "no": "", "Failed": "failed", " always": "always"} {
		t.Setenv("HEPH_KEEPX", v)
		if got, err := Keep("HEPH_KEEPX"); err != nil || got != want {
			t.Fatalf("Keep(%q) = %q, %v; want %q", v, got, err, want)
		}
	}
	t.Setenv("HEPH_KEEPX", "sometimes")
	if _, err := Keep("HEPH_KEEPX"); err == nil || err.Error() != `heph: invalid configuration: HEPH_KEEPX "sometimes": want failed, always or never` {
		t.Fatalf("sometimes: got %v", err)
	}
}
