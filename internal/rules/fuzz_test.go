package rules

import (
	"strings"
	"testing"

	"github.com/distribution/reference"
)

// FuzzImage checks image references and the service names derived from
// them, on any string: neither panics; ServiceFromImage always gives a valid
// service name (Service), of at most 40 characters; a reference Image
// accepts has no NUL and gives the same service name as its normalized
// form (postgres and docker.io/library/postgres:latest are one service).
// Seeds: testdata/fuzz/FuzzImage.
func FuzzImage(f *testing.F) {
	f.Fuzz(func(t *testing.T, ref string) {
		svc := ServiceFromImage(ref)
		if err := Service(svc); err != nil {
			t.Fatalf("ServiceFromImage(%q) = %q: %v", ref, svc, err)
		}
		if len(svc) > 40 {
			t.Fatalf("ServiceFromImage(%q) = %q: longer than 40", ref, svc)
		}
		if err := Image(ref); err != nil {
			if err.Error() == "" {
				t.Fatalf("Image(%q): an empty reason", ref)
			}
			return
		}
		if strings.ContainsRune(ref, 0) || strings.TrimSpace(ref) == "" {
			t.Fatalf("Image(%q) accepted it", ref)
		}
		named, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			t.Fatalf("Image(%q) accepted what does not parse: %v", ref, err)
		}
		full := reference.TagNameOnly(named).String()
		if got := ServiceFromImage(full); got != svc {
			t.Fatalf("ServiceFromImage(%q) = %q but ServiceFromImage(%q) = %q", ref, svc, full, got)
		}
	})
}
