//go:build unix

package archive

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzExtract extracts any byte stream into a destination that already
// holds links out of it (an absolute and a relative symbolic link to a
// directory outside, and a hard link to a file outside), next to a victim
// directory and a sibling file, and checks on the real file system that
// nothing outside the destination changed: no file made, removed or
// written, no mode changed. Extract may refuse the stream; it may not panic
// or escape. The seed corpus (testdata/fuzz/FuzzExtract) holds the archives
// that escaped the old extraction.
func FuzzExtract(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newScene(t)
		if err := os.Mkdir(s.dst, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, target := range map[string]string{"abs": s.victim, "rel": "../../victim"} {
			if err := os.Symlink(target, filepath.Join(s.dst, name)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Link(filepath.Join(s.victim, "file"), filepath.Join(s.dst, "hard")); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, s.base, s.dst)
		err := Extract(bytes.NewReader(data), s.dst)
		if d := diff(before, snapshot(t, s.base, s.dst)); len(d) > 0 {
			t.Fatalf("Extract (error: %v) changed what is outside the destination:\n%v", err, d)
		}
	})
}
