package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/require"
)

func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for n, content := range files {
		p := filepath.Join(dir, n)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
}

func TestContextHash(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"Dockerfile": "FROM scratch\nCOPY a /\n", "a": "1", "ignored/x": "x", ".dockerignore": "ignored\n"})
	h1, err := ContextHash(dir, "Dockerfile")
	require.NoError(t, err)

	future := time.Now().Add(time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(dir, "a"), future, future))
	h2, err := ContextHash(dir, "Dockerfile")
	require.NoError(t, err)
	require.Equal(t, h1, h2, "a touch changes nothing")

	write(t, dir, map[string]string{"ignored/x": "changed"})
	h3, err := ContextHash(dir, "Dockerfile")
	require.NoError(t, err)
	require.Equal(t, h1, h3, "what .dockerignore leaves out does not count")

	write(t, dir, map[string]string{"a": "2"})
	h4, err := ContextHash(dir, "Dockerfile")
	require.NoError(t, err)
	require.NotEqual(t, h1, h4, "a content change counts")

	require.NoError(t, os.Chmod(filepath.Join(dir, "a"), 0o755))
	h5, err := ContextHash(dir, "Dockerfile")
	require.NoError(t, err)
	require.NotEqual(t, h4, h5, "a mode change counts")
}

func TestBaseImages(t *testing.T) {
	for _, tc := range []struct {
		name, dockerfile string
		args             map[string]string
		want             []string
	}{
		{"plain", "FROM golang:1.24\nRUN x\n", nil, []string{"golang:1.24"}},
		{"scratch only", "FROM scratch\n", nil, nil},
		{"stages", "FROM golang:1.24 AS build\nFROM build AS test\nfrom alpine:3\nCOPY --from=build /x /x\n", nil, []string{"golang:1.24", "alpine:3"}},
		{"platform flag", "FROM --platform=$BUILDPLATFORM reg.example:5000/base:1 as b\n", nil, []string{"reg.example:5000/base:1"}},
		{"arg default", "ARG BASE=reg:5000/a:1\nFROM ${BASE}\n", nil, []string{"reg:5000/a:1"}},
		{"arg given", "ARG BASE=reg:5000/a:1\nFROM $BASE\n", map[string]string{"BASE": "other:1/b"}, []string{"other:1/b"}},
		{"arg fallback", "ARG TAG\nFROM app:${TAG:-dev}\n", nil, []string{"app:dev"}},
		{"continuation and comment", "# syntax=docker/dockerfile:1\nFROM \\\n  postgres:16\n", nil, []string{"postgres:16"}},
		{"repeats once", "FROM a:1 AS x\nFROM a:1 AS y\n", nil, []string{"a:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, BaseImages([]byte(tc.dockerfile), tc.args))
		})
	}
}

func TestNames(t *testing.T) {
	require.Equal(t, "my-service", Name("My Service"))
	require.Equal(t, "app", Name("..."))
	require.Equal(t, "api", BinaryName(".", "./cmd/api"))
	require.Equal(t, "testapp", BinaryName(".", "github.com/heph-go/heph/internal/testapp"))
	require.Equal(t, "imagebuild", BinaryName(".", "."))
	require.NotEqual(t, Hash("a", "bc"), Hash("ab", "c"))
}

func TestParsePlatform(t *testing.T) {
	p, err := ParsePlatform("linux/arm/v7")
	require.NoError(t, err)
	require.Equal(t, Platform{"linux", "arm", "v7"}, p)
	require.Contains(t, p.goEnv(), "GOARM=7")
	for _, bad := range []string{"linux", "Linux/amd64", "linux/amd64/v2/x", "linux//v7", "linux/amd 64"} {
		_, err := ParsePlatform(bad)
		require.Error(t, err, bad)
	}
}

func TestCheckDockerfile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"build/Dockerfile.test": "FROM scratch\n"})
	b, err := CheckDockerfile(dir, "build/Dockerfile.test")
	require.NoError(t, err)
	require.Equal(t, "FROM scratch\n", string(b))
	for _, bad := range []string{"../Dockerfile", "/etc/passwd", "missing", "build"} {
		_, err := CheckDockerfile(dir, bad)
		require.Error(t, err, bad)
	}
}

// TestGoImage builds a real binary (this package's test helper: a tiny Go
// program), assembles its image and reads the tar back as the daemon would.
func TestGoImage(t *testing.T) {
	src := t.TempDir()
	write(t, src, map[string]string{"go.mod": "module tiny\n\ngo 1.21\n", "main.go": "package main\n\nfunc main() { println(\"hi\") }\n"})
	bin := filepath.Join(t.TempDir(), "tiny")
	p := Platform{OS: "linux", Arch: "arm64"}
	require.NoError(t, GoBuild(context.Background(), src, ".", p, bin))

	g := GoImage{Binary: bin, Name: "tiny", CABundle: []byte("-----BEGIN CERTIFICATE-----\n"), Platform: p, Labels: map[string]string{"heph.build": "x"}}
	k1, err := g.Key()
	require.NoError(t, err)
	g2 := g
	g2.CABundle = nil
	k2, err := g2.Key()
	require.NoError(t, err)
	require.NotEqual(t, k1, k2, "the CA bundle is part of the key")

	var buf bytes.Buffer
	require.NoError(t, g.Write(&buf, "heph-build/tiny:"+k1[:12], time.Now()))
	tag, err := name.NewTag("heph-build/tiny:" + k1[:12])
	require.NoError(t, err)
	img, err := tarball.Image(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil }, &tag)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	require.Equal(t, "arm64", cf.Architecture)
	require.Equal(t, []string{"/tiny"}, cf.Config.Entrypoint)
	require.Equal(t, "65532:65532", cf.Config.User)
	require.Equal(t, "x", cf.Config.Labels["heph.build"])

	layers, err := img.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 1)
	rc, err := layers[0].Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	modes := map[string]int64{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		modes[hdr.Name] = hdr.Mode
		if hdr.Name == "home/nonroot/" {
			require.Equal(t, 65532, hdr.Uid)
		}
	}
	require.Equal(t, int64(0o1777), modes["tmp/"], "a writable /tmp with the sticky bit")
	require.Equal(t, int64(0o755), modes["tiny"])
	require.Contains(t, modes, "etc/passwd")
	require.Contains(t, modes, "etc/ssl/certs/ca-certificates.crt")
}
