package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Extract on the archives a container gives: one top-level file or
// directory. (Archives that try to write outside the destination are issue
// #9's.)

// hdr is one entry of a test archive.
type hdr struct {
	name string
	typ  byte
	mode int64
	body string
	link string
}

func archive(t *testing.T, entries ...hdr) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		require.NoError(t, tw.WriteHeader(h))
		if e.typ == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	return bytes.NewReader(buf.Bytes())
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	require.NoError(t, err)
	return st.Mode()
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func TestExtractAFile(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "out", "app.conf") // its directory is made
	require.NoError(t, Extract(archive(t, hdr{name: "nginx.conf", typ: tar.TypeReg, mode: 0o640, body: "worker_processes 1;\n"}), dst))
	require.Equal(t, "worker_processes 1;\n", read(t, dst), "the top-level entry becomes dst, whatever its name")
	require.Equal(t, os.FileMode(0o640), mode(t, dst).Perm())
}

func TestExtractOverwritesAFile(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "app.conf")
	require.NoError(t, os.WriteFile(dst, []byte("an older and longer content"), 0o644))
	require.NoError(t, Extract(archive(t, hdr{name: "app.conf", typ: tar.TypeReg, mode: 0o644, body: "new"}), dst))
	require.Equal(t, "new", read(t, dst), "replaced, not appended to")
}

func TestExtractADirectoryTree(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "data")
	err := Extract(archive(t,
		hdr{name: "srv/", typ: tar.TypeDir, mode: 0o755},
		hdr{name: "srv/a.txt", typ: tar.TypeReg, mode: 0o644, body: "alpha"},
		hdr{name: "srv/run.sh", typ: tar.TypeReg, mode: 0o755, body: "#!/bin/sh\n"},
		hdr{name: "srv/secret", typ: tar.TypeReg, mode: 0o600, body: "s"},
		hdr{name: "srv/private/", typ: tar.TypeDir, mode: 0o750},
		hdr{name: "srv/private/key", typ: tar.TypeReg, mode: 0o400, body: "k"},
		hdr{name: "srv/ro/", typ: tar.TypeDir, mode: 0o555},
		hdr{name: "srv/ro/file", typ: tar.TypeReg, mode: 0o444, body: "r"},
		hdr{name: "srv/implicit/deep/b.txt", typ: tar.TypeReg, mode: 0o644, body: "beta"},
		hdr{name: "srv/empty/", typ: tar.TypeDir, mode: 0o755},
		hdr{name: "srv/link", typ: tar.TypeSymlink, link: "a.txt"},
		hdr{name: "srv/abs", typ: tar.TypeSymlink, link: "/etc/hostname"},
		hdr{name: "srv/./dot.txt", typ: tar.TypeReg, mode: 0o644, body: "dot"},
	), dst)
	require.NoError(t, err)

	require.True(t, mode(t, dst).IsDir(), "the top-level directory becomes dst")
	require.Equal(t, "alpha", read(t, filepath.Join(dst, "a.txt")))
	require.Equal(t, os.FileMode(0o755), mode(t, filepath.Join(dst, "run.sh")).Perm(), "an executable stays executable")
	require.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(dst, "secret")).Perm())
	require.Equal(t, os.FileMode(0o750), mode(t, filepath.Join(dst, "private")).Perm())
	require.Equal(t, os.FileMode(0o400), mode(t, filepath.Join(dst, "private", "key")).Perm())
	require.Equal(t, os.FileMode(0o755), mode(t, filepath.Join(dst, "ro")).Perm(),
		"a read-only directory is made writable for its owner, so its files can be written")
	require.Equal(t, "r", read(t, filepath.Join(dst, "ro", "file")))
	require.Equal(t, "beta", read(t, filepath.Join(dst, "implicit", "deep", "b.txt")), "directories without an entry of their own are made")
	require.True(t, mode(t, filepath.Join(dst, "empty")).IsDir(), "an empty directory is made")
	require.Equal(t, "dot", read(t, filepath.Join(dst, "dot.txt")), "names are cleaned")

	require.Equal(t, os.ModeSymlink, mode(t, filepath.Join(dst, "link"))&os.ModeSymlink, "a link is made as a link")
	target, err := os.Readlink(filepath.Join(dst, "link"))
	require.NoError(t, err)
	require.Equal(t, "a.txt", target)
	target, err = os.Readlink(filepath.Join(dst, "abs"))
	require.NoError(t, err)
	require.Equal(t, "/etc/hostname", target, "a link's target is kept as written, not followed")
}

func TestExtractIntoAnExistingDirectory(t *testing.T) {
	dst := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dst, "old.txt"), []byte("old"), 0o644))
	require.NoError(t, Extract(archive(t,
		hdr{name: "d/", typ: tar.TypeDir, mode: 0o700},
		hdr{name: "d/new.txt", typ: tar.TypeReg, mode: 0o644, body: "new"},
	), dst))
	require.Equal(t, "new", read(t, filepath.Join(dst, "new.txt")))
	require.Equal(t, "old", read(t, filepath.Join(dst, "old.txt")), "what was there stays")
	require.Equal(t, os.FileMode(0o700), mode(t, dst).Perm(), "the directory takes the archive's mode")
}

func TestExtractSkipsWhatIsNotAFileDirectoryOrLink(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "dev")
	require.NoError(t, Extract(archive(t,
		hdr{name: "dev/", typ: tar.TypeDir, mode: 0o755},
		hdr{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
		hdr{name: "dev/sda", typ: tar.TypeBlock, mode: 0o660},
		hdr{name: "dev/fifo", typ: tar.TypeFifo, mode: 0o644},
		hdr{name: "dev/hard", typ: tar.TypeLink, link: "dev/file"},
		hdr{name: "dev/file", typ: tar.TypeReg, mode: 0o644, body: "f"},
	), dst))
	entries, err := os.ReadDir(dst)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, "file", entries[0].Name(), "devices, fifos and hard links are not made")
}

func TestExtractErrors(t *testing.T) {
	err := Extract(archive(t), filepath.Join(t.TempDir(), "x"))
	require.EqualError(t, err, "the archive is empty")

	full := archive(t, hdr{name: "f", typ: tar.TypeReg, mode: 0o644, body: "0123456789"})
	cut := make([]byte, 512+5) // the header and half the content
	_, err = full.Read(cut)
	require.NoError(t, err)
	require.Error(t, Extract(bytes.NewReader(cut), filepath.Join(t.TempDir(), "f")), "a cut stream is an error")

	parent := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(parent, nil, 0o644))
	err = Extract(archive(t, hdr{name: "d/", typ: tar.TypeDir, mode: 0o755}), filepath.Join(parent, "d"))
	require.Error(t, err, "a destination under a file cannot be made")
}
