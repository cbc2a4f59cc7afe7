package redact

import (
	"strings"
	"testing"
)

// plantings are the ways a secret is given on a command line or in an
// environment: each must be masked, whatever surrounds it.
var plantings = []string{
	"PGPASSWORD=%s",
	"--password=%s",
	"--password %s",
	"-password %s",
	"--api-key %s",
	"mysql -p%s",
	"/usr/bin/mariadb-admin -uroot -p%s ping",
	"postgres://app:%s@db:5432/app",
	"DATABASE_URL=mysql://root:%s@tcp(db)/x",
	"--env=DB_TOKEN=%s",
	"Password: %s",
}

// FuzzRedact checks the rule on any text and any secret: String and Args
// never panic, String is idempotent and keeps the text's whitespace, Args
// keeps the number of arguments, and a secret planted in the text in any of
// the ways above (between arbitrary text) never comes out — nor does a
// known value (EnvSecrets) wherever it is. Seeds: testdata/fuzz/FuzzRedact.
func FuzzRedact(f *testing.F) {
	f.Fuzz(func(t *testing.T, text, secret string) {
		once := String(text)
		if twice := String(once); twice != once {
			t.Fatalf("String is not idempotent:\n in:    %q\n once:  %q\n twice: %q", text, once, twice)
		}
		if strings.Count(once, "\n") != strings.Count(text, "\n") {
			t.Fatalf("String changed the lines of %q: %q", text, once)
		}
		fields := strings.Fields(text)
		if got := Args(fields); len(got) != len(fields) {
			t.Fatalf("Args(%q) has %d arguments", fields, len(got))
		}
		if !plantable(secret) || strings.Contains(text, secret) {
			return
		}
		for _, p := range plantings {
			planted := strings.Replace(p, "%s", secret, 1)
			if strings.Contains(strings.Replace(p, "%s", "", 1), secret) {
				continue // the secret is a part of the planting's own text
			}
			for _, in := range []string{planted, text + " " + planted, planted + " " + text, text + "\n" + planted + "\t" + text} {
				if out := String(in); strings.Contains(out, secret) {
					t.Fatalf("String(%q) = %q shows the secret %q", in, out, secret)
				}
			}
			argv := append(append(append([]string{}, fields...), strings.Fields(planted)...), fields...)
			if out := strings.Join(Args(argv), "\x00"); strings.Contains(out, secret) {
				t.Fatalf("Args(%q) = %q shows the secret %q", argv, Args(argv), secret)
			}
		}
		if len(secret) >= MinKnown {
			s := EnvSecrets(map[string]string{"APP_SECRET": secret})
			for _, in := range []string{secret, text + secret + text, "value " + secret + "."} {
				if out := s.String(in); strings.Contains(out, secret) {
					t.Fatalf("Secrets.String(%q) = %q shows the known secret %q", in, out, secret)
				}
			}
		}
	})
}

// plantable reports whether secret can be planted as one word: not empty,
// no whitespace, no quote, and none of the characters that end a URL's
// password or that the mask is made of (a secret "acted]" would be found in
// the mask itself).
func plantable(secret string) bool {
	if secret == "" || strings.Contains(Mask, secret) {
		return false
	}
	return !strings.ContainsFunc(secret, func(r rune) bool {
		return r <= ' ' || r == 0x7f || r >= 0x80 || strings.ContainsRune("\"'@/[]", r)
	})
}
