//go:build integration

package heph_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/testenv"
)

// TestCopyFromContainerMakesHardLinks puts three names of one file into a
// container (behind heph's back, as a tar with hard links), and copies the
// directory out: dockerd sends the first name as a file and the others as
// hard links to it, and all three arrive as one file (the old extraction
// skipped the links: those names never arrived).
func TestCopyFromContainerMakesHardLinks(t *testing.T) {
	t.Parallel()
	c := heph.NewContainer(testenv.Image(t)).WithCmd("-http", ":8080").Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "data/bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "data/bin/tool", Typeflag: tar.TypeReg, Mode: 0o755, Size: 5},
		{Name: "data/bin/alias", Typeflag: tar.TypeLink, Linkname: "data/bin/tool"},
		{Name: "data/other", Typeflag: tar.TypeLink, Linkname: "data/bin/tool"},
	} {
		require.NoError(t, tw.WriteHeader(h))
		if h.Typeflag == tar.TypeReg {
			_, err := tw.Write([]byte("tool\n"))
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	_, err := testenv.Docker(t).CopyToContainer(ctx, c.ID(), client.CopyToContainerOptions{DestinationPath: "/", Content: &buf})
	require.NoError(t, err)

	out := filepath.Join(t.TempDir(), "out")
	require.NoError(t, c.CopyFromContainer(ctx, "/data", out))
	first, err := os.Stat(filepath.Join(out, "bin", "tool"))
	require.NoError(t, err)
	for _, name := range []string{"bin/alias", "other"} {
		st, err := os.Lstat(filepath.Join(out, name))
		require.NoError(t, err, "%s arrived", name)
		require.True(t, os.SameFile(first, st), "%s is the same file as bin/tool", name)
	}
	b, err := os.ReadFile(filepath.Join(out, "other"))
	require.NoError(t, err)
	require.Equal(t, "tool\n", string(b))

	// A path ending in "/." is the directory's content, as with docker cp.
	dot := filepath.Join(t.TempDir(), "dot")
	require.NoError(t, c.CopyFromContainer(ctx, "/data/.", dot))
	b, err = os.ReadFile(filepath.Join(dot, "bin", "alias"))
	require.NoError(t, err)
	require.Equal(t, "tool\n", string(b))
}
