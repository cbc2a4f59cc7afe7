package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// entry is what a test checks of a tar entry.
type entry struct {
	Type byte
	Mode fs.FileMode // permission bits
	Link string
	Body string
}

// readTar reads a whole tar stream into its entries by name, checking that
// every entry belongs to root.
func readTar(t *testing.T, b []byte) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		body, err := io.ReadAll(tr)
		require.NoError(t, err)
		require.Zero(t, hdr.Uid, hdr.Name)
		require.Zero(t, hdr.Gid, hdr.Name)
		require.Empty(t, hdr.Uname, hdr.Name)
		require.Empty(t, hdr.Gname, hdr.Name)
		_, dup := out[hdr.Name]
		require.False(t, dup, "%s twice", hdr.Name)
		out[hdr.Name] = entry{Type: hdr.Typeflag, Mode: fs.FileMode(hdr.Mode).Perm(), Link: hdr.Linkname, Body: string(body)}
	}
}

func names(entries map[string]entry) []string {
	var out []string
	for n := range entries {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// tree writes files under dir: name → content; a name ending in "/" is a
// directory; "->target" as content makes a symbolic link.
func tree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		switch {
		case strings.HasSuffix(name, "/"):
			require.NoError(t, os.MkdirAll(p, 0o755))
		case strings.HasPrefix(content, "->"):
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.Symlink(strings.TrimPrefix(content, "->"), p))
		default:
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		}
	}
}

func writeTree(t *testing.T, src, dst string, exclude func(string, bool) (bool, error)) (map[string]entry, error) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := WriteTree(tw, src, dst, exclude)
	require.NoError(t, tw.Close())
	return readTar(t, buf.Bytes()), err
}

func TestWriteTreeOfADirectory(t *testing.T) {
	src := t.TempDir()
	tree(t, src, map[string]string{
		"a.txt":           "alpha",
		"run.sh":          "#!/bin/sh\n",
		"sub/b.txt":       "beta",
		"sub/deep/":       "",
		"sub/link":        "->../a.txt",
		"abs":             "->/etc/passwd",
		"dangling":        "->nowhere",
		"linkdir":         "->sub",
		"with space.txt":  "s",
		"sub/deep/c.conf": "gamma",
	})
	require.NoError(t, os.Chmod(filepath.Join(src, "run.sh"), 0o755))
	require.NoError(t, os.Chmod(filepath.Join(src, "sub", "b.txt"), 0o600))

	got, err := writeTree(t, src, "etc/app", nil)
	require.NoError(t, err)
	require.Equal(t, []string{
		"etc/app/", "etc/app/a.txt", "etc/app/abs", "etc/app/dangling", "etc/app/linkdir", "etc/app/run.sh",
		"etc/app/sub/", "etc/app/sub/b.txt", "etc/app/sub/deep/", "etc/app/sub/deep/c.conf", "etc/app/sub/link", "etc/app/with space.txt",
	}, names(got), "src itself is named dst; every entry below it is dst/<relative path>; directories end in /")
	require.Equal(t, entry{Type: tar.TypeReg, Mode: 0o644, Body: "alpha"}, got["etc/app/a.txt"])
	require.Equal(t, entry{Type: tar.TypeReg, Mode: 0o755, Body: "#!/bin/sh\n"}, got["etc/app/run.sh"], "modes are kept")
	require.Equal(t, entry{Type: tar.TypeReg, Mode: 0o600, Body: "beta"}, got["etc/app/sub/b.txt"])
	require.Equal(t, entry{Type: tar.TypeDir, Mode: 0o755}, got["etc/app/sub/"])
	require.Equal(t, entry{Type: tar.TypeSymlink, Mode: 0o777, Link: "../a.txt"}, got["etc/app/sub/link"], "a link is sent as a link, its target as written")
	require.Equal(t, byte(tar.TypeSymlink), got["etc/app/abs"].Type, "an absolute link is not followed: /etc/passwd is not sent")
	require.Equal(t, "/etc/passwd", got["etc/app/abs"].Link)
	require.Equal(t, "nowhere", got["etc/app/dangling"].Link, "a dangling link is sent as it is")
	require.Equal(t, entry{Type: tar.TypeSymlink, Mode: 0o777, Link: "sub"}, got["etc/app/linkdir"], "a link to a directory is not walked")
}

func TestWriteTreeWithoutDst(t *testing.T) {
	// dst "": the entries are the relative paths, and src itself is not
	// written (the build context's root).
	src := t.TempDir()
	tree(t, src, map[string]string{"a.txt": "a", "sub/b.txt": "b"})
	got, err := writeTree(t, src, "", nil)
	require.NoError(t, err)
	require.Equal(t, []string{"a.txt", "sub/", "sub/b.txt"}, names(got))

	got, err = writeTree(t, filepath.Join(src, "a.txt"), "", nil)
	require.NoError(t, err)
	require.Empty(t, got, "a file named \"\" is not written")
}

func TestWriteTreeOfAFile(t *testing.T) {
	dir := t.TempDir()
	tree(t, dir, map[string]string{"config.yaml": "port: 80\n"})
	got, err := writeTree(t, filepath.Join(dir, "config.yaml"), "etc/app.yaml", nil)
	require.NoError(t, err)
	require.Equal(t, map[string]entry{"etc/app.yaml": {Type: tar.TypeReg, Mode: 0o644, Body: "port: 80\n"}}, got,
		"a file is one entry named dst, whatever its own name")

	got, err = writeTree(t, filepath.Join(dir, "config.yaml"), "etc/app.yaml", func(string, bool) (bool, error) {
		return true, nil
	})
	require.NoError(t, err)
	require.Len(t, got, 1, "exclude is asked about entries below src, never src itself")
}

func TestWriteTreeExclude(t *testing.T) {
	src := t.TempDir()
	tree(t, src, map[string]string{"keep.txt": "k", "drop.log": "d", "cache/x": "x", "cache/y/z": "z", "sub/drop.log": "d", "sub/keep.txt": "k"})
	var asked []string
	got, err := writeTree(t, src, "", func(rel string, isDir bool) (bool, error) {
		if isDir {
			asked = append(asked, rel+"/")
		} else {
			asked = append(asked, rel)
		}
		return rel == "cache" || strings.HasSuffix(rel, ".log"), nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"keep.txt", "sub/", "sub/keep.txt"}, names(got))
	sort.Strings(asked)
	require.Equal(t, []string{"cache/", "drop.log", "keep.txt", "sub/", "sub/drop.log", "sub/keep.txt"}, asked,
		"slash-separated relative paths, told whether each is a directory; an excluded directory is not walked")

	boom := errors.New("bad pattern")
	_, err = writeTree(t, src, "", func(string, bool) (bool, error) { return false, boom })
	require.ErrorIs(t, err, boom, "an error of exclude ends the walk")
}

func TestWriteTreeOfNothing(t *testing.T) {
	_, err := writeTree(t, filepath.Join(t.TempDir(), "nope"), "x", nil)
	require.ErrorIs(t, err, os.ErrNotExist)
}

// buildContext runs BuildContext and returns the entries it wrote.
func buildContext(t *testing.T, dir string, extra ...string) (map[string]entry, error) {
	t.Helper()
	var buf bytes.Buffer
	err := BuildContext(&buf, dir, extra...)
	if err != nil {
		return nil, err
	}
	return readTar(t, buf.Bytes()), nil
}

// files lists the regular files among entries.
func files(entries map[string]entry) []string {
	var out []string
	for n, e := range entries {
		if e.Type == tar.TypeReg {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func TestBuildContextHonoursDockerignore(t *testing.T) {
	cases := []struct {
		reason string
		files  map[string]string
		extra  []string
		want   []string // regular files sent
	}{
		{
			reason: "patterns match from the context's root; an exception brings a file back",
			files: map[string]string{
				"Dockerfile": "FROM scratch\nCOPY app /app\n", ".dockerignore": "*.log\nsecret/\n!keep.log\n",
				"app": "binary", "debug.log": "noise", "keep.log": "kept", "secret/key": "s3cr3t",
				"sub/data.txt": "data", "sub/deep/x.log": "deep noise is kept: *.log matches only at the top",
			},
			want: []string{".dockerignore", "Dockerfile", "app", "keep.log", "sub/data.txt", "sub/deep/x.log"},
		},
		{
			reason: "Dockerfile and .dockerignore are always sent: the daemon needs them",
			files:  map[string]string{"Dockerfile": "FROM scratch\n", ".dockerignore": "*\n", "app": "binary", "sub/Dockerfile": "not the one"},
			want:   []string{".dockerignore", "Dockerfile"},
		},
		{
			reason: "an exception inside an ignored directory: the directory is walked, only the exception sent",
			files:  map[string]string{"Dockerfile": "", ".dockerignore": "secret/\n!secret/public.pem\n", "secret/key": "k", "secret/public.pem": "p", "secret/deep/x": "x"},
			want:   []string{".dockerignore", "Dockerfile", "secret/public.pem"},
		},
		{
			reason: "** matches at any depth; comments and blank lines are not patterns",
			files:  map[string]string{"Dockerfile": "", ".dockerignore": "# build output\n\n**/*.tmp\n", "a.tmp": "", "x/y/b.tmp": "", "x/y/c.go": ""},
			want:   []string{".dockerignore", "Dockerfile", "x/y/c.go"},
		},
		{
			reason: "a leading / and ./ mean the root, as in the docker CLI",
			files:  map[string]string{"Dockerfile": "", ".dockerignore": "/out\n./tmp\n", "out": "", "tmp/x": "", "sub/out": ""},
			want:   []string{".dockerignore", "Dockerfile", "sub/out"},
		},
		{
			reason: "without .dockerignore everything is sent",
			files:  map[string]string{"Dockerfile": "", "a.log": "", "sub/b": ""},
			want:   []string{"Dockerfile", "a.log", "sub/b"},
		},
		{
			reason: "a file named in extra is sent though ignored",
			files:  map[string]string{"Dockerfile": "", ".dockerignore": "*.Dockerfile\n", "app.Dockerfile": "", "other.Dockerfile": ""},
			extra:  []string{"app.Dockerfile"},
			want:   []string{".dockerignore", "Dockerfile", "app.Dockerfile"},
		},
		{
			reason: "a file named in extra is sent though its directory is ignored (and nothing else of it)",
			files:  map[string]string{"Dockerfile": "", ".dockerignore": "build/\n", "build/app.Dockerfile": "", "build/secret": "", "build/deep/x": ""},
			extra:  []string{"./build/app.Dockerfile"},
			want:   []string{".dockerignore", "Dockerfile", "build/app.Dockerfile"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			dir := t.TempDir()
			tree(t, dir, tc.files)
			got, err := buildContext(t, dir, tc.extra...)
			require.NoError(t, err)
			require.Equal(t, tc.want, files(got), tc.reason)
			for n, e := range got {
				if e.Type == tar.TypeDir {
					require.True(t, strings.HasSuffix(n, "/"), n)
				}
				require.False(t, strings.HasPrefix(n, "/") || strings.HasPrefix(n, "./"), "names are relative to the context: %s", n)
			}
		})
	}
}

func TestBuildContextContent(t *testing.T) {
	dir := t.TempDir()
	tree(t, dir, map[string]string{"Dockerfile": "FROM scratch\nCOPY app /app\n", "app": "binary", "lib/": "", "link": "->app"})
	got, err := buildContext(t, dir)
	require.NoError(t, err)
	require.Equal(t, []string{"Dockerfile", "app", "lib/", "link"}, names(got), "the context's root is not an entry")
	require.Equal(t, "FROM scratch\nCOPY app /app\n", got["Dockerfile"].Body)
	require.Equal(t, entry{Type: tar.TypeSymlink, Mode: 0o777, Link: "app"}, got["link"], "a link inside the context stays a link")
}

func TestBuildContextFollowsASymlinkedContextDirectory(t *testing.T) {
	real := t.TempDir()
	tree(t, real, map[string]string{"Dockerfile": "FROM scratch\n", "app": "binary", ".dockerignore": "*.log\n", "x.log": ""})
	link := filepath.Join(t.TempDir(), "ctx")
	require.NoError(t, os.Symlink(real, link))
	got, err := buildContext(t, link)
	require.NoError(t, err)
	require.Equal(t, []string{".dockerignore", "Dockerfile", "app"}, files(got), "the directory behind the link is sent, not an empty context, and its .dockerignore applies")
}

func TestBuildContextErrors(t *testing.T) {
	dir := t.TempDir()
	tree(t, dir, map[string]string{"Dockerfile": "", ".dockerignore": "[\n"})
	_, err := buildContext(t, dir)
	require.ErrorContains(t, err, "parse .dockerignore", "a malformed pattern is an error, not a silently larger context")

	dir = t.TempDir()
	tree(t, dir, map[string]string{"Dockerfile": "", ".dockerignore/": ""})
	_, err = buildContext(t, dir)
	require.ErrorContains(t, err, "read .dockerignore")

	_, err = buildContext(t, filepath.Join(t.TempDir(), "nope"))
	require.ErrorIs(t, err, os.ErrNotExist)

	var failing failWriter
	dir = t.TempDir()
	tree(t, dir, map[string]string{"Dockerfile": strings.Repeat("x", 1<<16)})
	require.ErrorIs(t, BuildContext(&failing, dir), errClosed, "a reader that went away ends the build context")
}

var errClosed = errors.New("io: read/write on closed pipe")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errClosed }
