//go:build unix

package archive

import (
	"archive/tar"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteTreeSkipsSocketsAndFifos(t *testing.T) {
	// A socket or a fifo cannot be sent into a container (and reading a
	// fifo would block): they are passed over, the rest is sent.
	src, err := os.MkdirTemp("", "heph-tree-") // short: a socket's path has ~100 bytes
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(src) })
	tree(t, src, map[string]string{"a.txt": "a"})
	ln, err := net.Listen("unix", filepath.Join(src, "app.sock"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	require.NoError(t, syscall.Mkfifo(filepath.Join(src, "pipe"), 0o644))

	got, err := writeTree(t, src, "x", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"x/", "x/a.txt"}, names(got))
}

func TestExtractKeepsModesWhateverTheUmask(t *testing.T) {
	// Not parallel: the umask is the process's.
	old := syscall.Umask(0o077)
	t.Cleanup(func() { syscall.Umask(old) })
	dst := filepath.Join(t.TempDir(), "d")
	require.NoError(t, os.MkdirAll(dst, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dst, "old.sh"), []byte("old"), 0o600))
	require.NoError(t, Extract(archive(t,
		hdr{name: "d/", typ: tar.TypeDir, mode: 0o755},
		hdr{name: "d/run.sh", typ: tar.TypeReg, mode: 0o755, body: "#!/bin/sh\n"},
		hdr{name: "d/old.sh", typ: tar.TypeReg, mode: 0o755, body: "new"},
	), dst))
	require.Equal(t, os.FileMode(0o755), mode(t, filepath.Join(dst, "run.sh")).Perm(), "the archive's bits, not the umask's")
	require.Equal(t, os.FileMode(0o755), mode(t, filepath.Join(dst, "old.sh")).Perm(), "a file that was there takes the archive's bits too")
}
