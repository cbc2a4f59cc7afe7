//go:build unix

package archive

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Archives that try to write outside the destination (issue #9): each is
// refused, or made harmless, and a snapshot of everything around the
// destination is the same after the extraction as before.

// scene is a temporary directory laid out for escape attempts:
//
//	base/victim/file          a file outside (content "victim")
//	base/victim/dir/          a directory outside (mode 0755)
//	base/work/                dst's parent (mode 0750)
//	base/work/sibling         a file next to dst
//	base/work/dst             the destination (made by the test when asked)
type scene struct {
	base, victim, work, dst string
}

func newScene(t testing.TB) scene {
	t.Helper()
	base := t.TempDir()
	s := scene{base: base, victim: filepath.Join(base, "victim"), work: filepath.Join(base, "work"), dst: filepath.Join(base, "work", "dst")}
	require.NoError(t, os.MkdirAll(filepath.Join(s.victim, "dir"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(s.victim, "file"), []byte("victim"), 0o644))
	require.NoError(t, os.Mkdir(s.work, 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(s.work, "sibling"), []byte("sibling"), 0o600))
	return s
}

// snapshot describes every file, directory and link under base but those
// under dst (dst itself included): type, mode, content hash, link target.
func snapshot(t testing.TB, base, dst string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dst {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := st.Mode().String()
		switch {
		case st.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(h[:8])
		case st.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + l
		}
		out[p] = desc
		return nil
	})
	require.NoError(t, err)
	return out
}

// diff lists what differs between two snapshots.
func diff(before, after map[string]string) []string {
	var out []string
	for p, d := range before {
		if a, ok := after[p]; !ok {
			out = append(out, "removed "+p)
		} else if a != d {
			out = append(out, fmt.Sprintf("changed %s: %s -> %s", p, d, a))
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			out = append(out, "made "+p+": "+after[p])
		}
	}
	sort.Strings(out)
	return out
}

// untouched runs Extract on the archive into s.dst and requires that nothing
// outside s.dst changed; it returns Extract's error.
func (s scene) extract(t *testing.T, entries ...hdr) error {
	t.Helper()
	before := snapshot(t, s.base, s.dst)
	err := Extract(archive(t, entries...), s.dst)
	require.Empty(t, diff(before, snapshot(t, s.base, s.dst)), "nothing outside the destination changes (Extract said: %v)", err)
	return err
}

func TestExtractNeverGoesThroughALinkItMade(t *testing.T) {
	for _, tc := range []struct {
		reason string
		link   func(s scene) string
	}{
		{"an absolute link", func(s scene) string { return s.victim }},
		{"a relative link out of the destination", func(scene) string { return "../../victim" }},
		{"a link inside the destination", func(scene) string { return "sub" }},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			s := newScene(t)
			err := s.extract(t,
				hdr{name: "top/", typ: tar.TypeDir, mode: 0o755},
				hdr{name: "top/sub/", typ: tar.TypeDir, mode: 0o755},
				hdr{name: "top/link", typ: tar.TypeSymlink, link: tc.link(s)},
				hdr{name: "top/link/pwned", typ: tar.TypeReg, mode: 0o644, body: "pwned"},
			)
			require.EqualError(t, err, `archive entry "top/link/pwned" goes through "link", a symbolic link: nothing is extracted through a link`)
			_, err = os.Lstat(filepath.Join(s.dst, "sub", "pwned"))
			require.ErrorIs(t, err, fs.ErrNotExist, "not even inside the destination")
		})
	}
}

func TestExtractNeverGoesThroughALinkDeeperDown(t *testing.T) {
	s := newScene(t)
	err := s.extract(t,
		hdr{name: "top/a/b/", typ: tar.TypeDir, mode: 0o755},
		hdr{name: "top/a/b/c", typ: tar.TypeSymlink, link: "../../../../victim"},
		hdr{name: "top/a/b/c/dir/x", typ: tar.TypeReg, mode: 0o644, body: "x"},
	)
	require.ErrorContains(t, err, `goes through "a/b/c", a symbolic link`)
}

func TestExtractNeverGoesThroughTheTopLevelLink(t *testing.T) {
	s := newScene(t)
	err := s.extract(t,
		hdr{name: "top", typ: tar.TypeSymlink, link: s.victim},
		hdr{name: "top/pwned", typ: tar.TypeReg, mode: 0o644, body: "pwned"},
	)
	require.ErrorContains(t, err, "is a symbolic link: nothing is extracted through it")
	target, err := os.Readlink(s.dst)
	require.NoError(t, err)
	require.Equal(t, s.victim, target, "the top-level link is made, as a link")
}

func TestExtractReplacesALinkItMadeInsteadOfWritingThroughIt(t *testing.T) {
	s := newScene(t)
	require.NoError(t, s.extract(t,
		hdr{name: "top/", typ: tar.TypeDir, mode: 0o755},
		hdr{name: "top/a", typ: tar.TypeSymlink, link: filepath.Join(s.victim, "file")},
		hdr{name: "top/a", typ: tar.TypeReg, mode: 0o600, body: "overwritten?"},
		hdr{name: "top/d", typ: tar.TypeSymlink, link: filepath.Join(s.victim, "dir")},
		hdr{name: "top/d/", typ: tar.TypeDir, mode: 0o777},
		hdr{name: "top/l", typ: tar.TypeSymlink, link: filepath.Join(s.victim, "file")},
		hdr{name: "top/l", typ: tar.TypeSymlink, link: "elsewhere"},
	))
	require.Equal(t, "overwritten?", read(t, filepath.Join(s.dst, "a")))
	require.True(t, mode(t, filepath.Join(s.dst, "a")).IsRegular(), "the file replaced the link")
	require.True(t, mode(t, filepath.Join(s.dst, "d")).IsDir(), "the directory replaced the link")
	target, err := os.Readlink(filepath.Join(s.dst, "l"))
	require.NoError(t, err)
	require.Equal(t, "elsewhere", target, "a link replaces a link")
}

func TestExtractNeverGoesThroughALinkAlreadyThere(t *testing.T) {
	s := newScene(t)
	require.NoError(t, os.Mkdir(s.dst, 0o755))
	require.NoError(t, os.Symlink(s.victim, filepath.Join(s.dst, "data")))
	require.NoError(t, os.Symlink(filepath.Join(s.victim, "file"), filepath.Join(s.dst, "conf")))
	require.NoError(t, os.Link(filepath.Join(s.victim, "file"), filepath.Join(s.dst, "hard")))

	err := s.extract(t,
		hdr{name: "top/", typ: tar.TypeDir, mode: 0o755},
		hdr{name: "top/conf", typ: tar.TypeReg, mode: 0o644, body: "through a link?"},
		hdr{name: "top/hard", typ: tar.TypeReg, mode: 0o644, body: "through a hard link?"},
	)
	require.NoError(t, err)
	require.Equal(t, "through a link?", read(t, filepath.Join(s.dst, "conf")), "the link in the destination was replaced")
	require.Equal(t, "through a hard link?", read(t, filepath.Join(s.dst, "hard")), "a new file, not the victim's")

	err = s.extract(t, hdr{name: "top/data/pwned", typ: tar.TypeReg, mode: 0o644, body: "pwned"})
	require.ErrorContains(t, err, `goes through "data", a symbolic link`)
}

func TestExtractRefusesNamesOutsideTheCopiedPath(t *testing.T) {
	for _, tc := range []struct {
		reason  string
		entries []hdr
		want    string
	}{
		{"a first entry above the destination", []hdr{
			{name: "../x", typ: tar.TypeReg, mode: 0o644, body: "x"},
			{name: "../..", typ: tar.TypeDir, mode: 0o777},
		}, `archive entry "../x" is outside the copied path`},
		{"the destination's parent, after a good first entry", []hdr{
			{name: "top/", typ: tar.TypeDir, mode: 0o755},
			{name: "top/../..", typ: tar.TypeDir, mode: 0o777},
		}, `archive entry "top/../.." is outside the copied path "top"`},
		{"a parent name inside an entry", []hdr{
			{name: "top/", typ: tar.TypeDir, mode: 0o755},
			{name: "top/a/../../sibling", typ: tar.TypeReg, mode: 0o644, body: "x"},
		}, `is outside the copied path "top"`},
		{"a second top-level name", []hdr{
			{name: "top/", typ: tar.TypeDir, mode: 0o755},
			{name: "other/x", typ: tar.TypeReg, mode: 0o644, body: "x"},
		}, `archive entry "other/x" is outside the copied path "top"`},
		{"an absolute first name", []hdr{
			{name: "/tmp/x", typ: tar.TypeReg, mode: 0o644, body: "x"},
		}, `archive entry "/tmp/x" has an absolute name`},
		{"an absolute name after a good entry", []hdr{
			{name: "top/", typ: tar.TypeDir, mode: 0o755},
			{name: "/top/x", typ: tar.TypeReg, mode: 0o644, body: "x"},
		}, `archive entry "/top/x" has an absolute name`},
		{"a hard link to a file outside", []hdr{
			{name: "top/", typ: tar.TypeDir, mode: 0o755},
			{name: "top/h", typ: tar.TypeLink, link: "../victim/file"},
		}, `hard link "top/h": archive entry "../victim/file" is outside the copied path "top"`},
		{"a hard link to an absolute name", []hdr{
			{name: "top/", typ: tar.TypeDir, mode: 0o755},
			{name: "top/h", typ: tar.TypeLink, link: "/etc/passwd"},
		}, `hard link "top/h": archive entry "/etc/passwd" has an absolute name`},
		{"a hard link to a file that was there", []hdr{
			{name: "top/", typ: tar.TypeDir, mode: 0o755},
			{name: "top/h", typ: tar.TypeLink, link: "top/old"},
		}, `hard link "top/h" to "top/old": not a file this copy extracted`},
		{"a hard link to a link", []hdr{
			{name: "top/", typ: tar.TypeDir, mode: 0o755},
			{name: "top/l", typ: tar.TypeSymlink, link: "/etc/passwd"},
			{name: "top/h", typ: tar.TypeLink, link: "top/l"},
		}, `hard link "top/h" to "top/l": not a file this copy extracted`},
		{"a hard link to a file a link replaced", []hdr{
			{name: "top/", typ: tar.TypeDir, mode: 0o755},
			{name: "top/f", typ: tar.TypeReg, mode: 0o644, body: "f"},
			{name: "top/f", typ: tar.TypeSymlink, link: "/etc/passwd"},
			{name: "top/h", typ: tar.TypeLink, link: "top/f"},
		}, `hard link "top/h" to "top/f": not a file this copy extracted`},
		{"a file over a directory", []hdr{
			{name: "top/", typ: tar.TypeDir, mode: 0o755},
			{name: "top/d/", typ: tar.TypeDir, mode: 0o755},
			{name: "top/d/x", typ: tar.TypeReg, mode: 0o644, body: "x"},
			{name: "top/d", typ: tar.TypeReg, mode: 0o644, body: "x"},
		}, `archive entry "top/d": a directory is in the way`},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			s := newScene(t)
			require.NoError(t, os.Mkdir(s.dst, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(s.dst, "old"), []byte("old"), 0o644))
			err := s.extract(t, tc.entries...)
			require.Error(t, err, tc.reason)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "empty", "an archive that was refused is not called empty")
		})
	}
}

func TestExtractMakesHardLinks(t *testing.T) {
	// dockerd sends a file's first name as a file and every other name of
	// the same file as a hard link to the first.
	s := newScene(t)
	require.NoError(t, s.extract(t,
		hdr{name: "top/", typ: tar.TypeDir, mode: 0o755},
		hdr{name: "top/bin/", typ: tar.TypeDir, mode: 0o755},
		hdr{name: "top/bin/busybox", typ: tar.TypeReg, mode: 0o755, body: "#!/bin/sh\n"},
		hdr{name: "top/bin/sh", typ: tar.TypeLink, link: "top/bin/busybox"},
		hdr{name: "top/ls", typ: tar.TypeLink, link: "top/bin/busybox"},
		hdr{name: "top/deep/er/ls", typ: tar.TypeLink, link: "top/ls"},
	))
	first, err := os.Stat(filepath.Join(s.dst, "bin", "busybox"))
	require.NoError(t, err)
	for _, name := range []string{"bin/sh", "ls", "deep/er/ls"} {
		st, err := os.Lstat(filepath.Join(s.dst, name))
		require.NoError(t, err, name)
		require.True(t, os.SameFile(first, st), "%s is the same file as bin/busybox", name)
		require.Equal(t, "#!/bin/sh\n", read(t, filepath.Join(s.dst, name)))
	}
}

func TestExtractFollowsTheDestinationTheCallerNamed(t *testing.T) {
	// dst itself is the caller's choice, not the archive's: a link there is
	// followed (resolved before anything is written); links below it are
	// not.
	s := newScene(t)
	real := filepath.Join(s.base, "real")
	require.NoError(t, os.Mkdir(real, 0o755))
	require.NoError(t, os.Symlink(real, s.dst))
	require.NoError(t, Extract(archive(t,
		hdr{name: "top/", typ: tar.TypeDir, mode: 0o750},
		hdr{name: "top/f", typ: tar.TypeReg, mode: 0o644, body: "f"},
	), s.dst))
	require.Equal(t, "f", read(t, filepath.Join(real, "f")))
}

func TestExtractOfAnAbsoluteArchiveIsNotEmpty(t *testing.T) {
	// The old extraction wrote such files (into the destination's parent)
	// and then said "the archive is empty".
	s := newScene(t)
	err := s.extract(t,
		hdr{name: "/", typ: tar.TypeDir, mode: 0o755},
		hdr{name: "/sibling", typ: tar.TypeReg, mode: 0o644, body: "x"},
	)
	require.EqualError(t, err, `archive entry "/" has an absolute name`)
	entries, err := os.ReadDir(s.work)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.Equal(t, []string{"sibling"}, names, "nothing made")
	require.False(t, strings.Contains(read(t, filepath.Join(s.work, "sibling")), "x"))
}
