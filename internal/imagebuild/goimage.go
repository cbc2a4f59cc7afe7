package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/heph-go/heph/internal/rules"
)

// The user a Go package's image runs as, as distroless images have it.
const (
	NonRootUID  = 65532
	NonRootName = "nonroot"
)

// CABundlePath is where the image holds the host's CA certificates (the
// first path Go's crypto/x509 looks at on Linux).
const CABundlePath = "/etc/ssl/certs/ca-certificates.crt"

// caBundles are where CA bundles live on common hosts, in the order Go's
// crypto/x509 tries them on Linux, then macOS's and the BSDs'.
var caBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Gentoo, Arch
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL 6
	"/etc/ssl/ca-bundle.pem",                            // openSUSE
	"/etc/pki/tls/cacert.pem",                           // OpenELEC
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
	"/etc/ssl/cert.pem",                                 // Alpine, macOS, the BSDs
}

// HostCABundle returns the host's CA certificates (PEM) and where they were
// found; nil and "" when there is no bundle at any usual place.
func HostCABundle() ([]byte, string) {
	for _, p := range caBundles {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			return b, p
		}
	}
	return nil, ""
}

// Platform is what a Go binary is compiled for.
type Platform struct {
	OS, Arch, Variant string
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Arch
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ParsePlatform reads "os/arch[/variant]" (rules.Platform).
func ParsePlatform(s string) (Platform, error) {
	if err := rules.Platform(s); err != nil {
		return Platform{}, err
	}
	parts := strings.Split(s, "/")
	p := Platform{OS: parts[0], Arch: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// goEnv is the environment that makes go build cross-compile for p.
func (p Platform) goEnv() []string {
	env := []string{"CGO_ENABLED=0", "GOOS=" + p.OS, "GOARCH=" + p.Arch}
	switch v := strings.TrimPrefix(p.Variant, "v"); {
	case p.Variant == "":
	case p.Arch == "arm":
		env = append(env, "GOARM="+v)
	case p.Arch == "amd64":
		env = append(env, "GOAMD64="+p.Variant)
	}
	return env
}

// GoBuild compiles the Go package pkg (an import path, or a relative
// directory such as ./cmd/api, resolved in dir as go build resolves it) for
// p into out: CGO_ENABLED=0 go build -trimpath -buildvcs=false. The go
// command is found on PATH (go test puts its own there). A failure returns
// the compiler's output.
func GoBuild(ctx context.Context, dir, pkg string, p Platform, out string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is not on PATH: %w", err)
	}
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-buildvcs=false", "-o", out, "--", pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), p.goEnv()...)
	if b, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("go build %s for %s: %w", pkg, p, ctx.Err())
		}
		return fmt.Errorf("go build %s for %s: %v\n%s", pkg, p, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// BinaryName is the name of a Go package's binary (and of its image):
// the last element of its path, or of dir's when the path is "." or "..".
func BinaryName(dir, pkg string) string {
	base := path.Base(filepath.ToSlash(pkg))
	if base == "." || base == ".." || base == "/" {
		if abs, err := filepath.Abs(filepath.Join(dir, pkg)); err == nil {
			base = filepath.Base(abs)
		}
	}
	return Name(base)
}

// GoImage describes the image of a Go binary.
type GoImage struct {
	// Binary is the executable's path on the host; it becomes /<Name>,
	// the entrypoint.
	Binary string
	Name   string
	// CABundle, when not empty, is written at CABundlePath.
	CABundle []byte
	Platform Platform
	Labels   map[string]string
}

// Key hashes what makes the image: the binary's content, the CA bundle,
// the name, the platform and the labels (its creation time is left out).
func (g GoImage) Key() (string, error) {
	bin, err := FileHash(g.Binary)
	if err != nil {
		return "", err
	}
	ca := sha256.Sum256(g.CABundle)
	return Hash("heph go image v1", bin, hex.EncodeToString(ca[:]), g.Name, g.Platform.String(), SortedPairs(g.Labels)), nil
}

// FileHash returns the hex SHA-256 of a file's content.
func FileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Write writes the image as a `docker save` tar, tagged tag, to w (for the
// daemon's image load): one layer with the binary, /etc/passwd and
// /etc/group naming root and nonroot (65532), the nonroot home, a /tmp with
// mode 1777 and the CA bundle; the config runs the binary as 65532:65532.
func (g GoImage) Write(w io.Writer, tag string, created time.Time) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	layerTar, err := g.layer()
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = g.Platform.OS, g.Platform.Arch, g.Platform.Variant
	cf.Created = v1.Time{Time: created.UTC().Truncate(time.Second)}
	cf.Config = v1.Config{
		Entrypoint: []string{"/" + g.Name},
		User:       fmt.Sprintf("%d:%d", NonRootUID, NonRootUID),
		WorkingDir: "/",
		Env:        []string{"PATH=/"},
		Labels:     g.Labels,
	}
	if len(g.CABundle) > 0 {
		cf.Config.Env = append(cf.Config.Env, "SSL_CERT_FILE="+CABundlePath)
	}
	cf.History = []v1.History{{Created: cf.Created, CreatedBy: "heph: Go binary " + g.Name, Comment: "built by heph from a Go package"}}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	return tarball.Write(ref, img, w)
}

// layer returns the image's one layer as a tar, its entries in a fixed
// order with fixed times, so the same inputs give the same layer.
func (g GoImage) layer() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0).UTC()
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/home/%s:/sbin/nologin\n", NonRootName, NonRootUID, NonRootUID, NonRootName, NonRootName)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", NonRootName, NonRootUID)
	bin, err := os.ReadFile(g.Binary)
	if err != nil {
		return nil, err
	}
	steps := []func() error{
		func() error { return dir("etc", 0o755, 0) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return dir("etc/ssl", 0o755, 0) },
		func() error { return dir("etc/ssl/certs", 0o755, 0) },
		func() error {
			if len(g.CABundle) == 0 {
				return nil
			}
			return file(strings.TrimPrefix(CABundlePath, "/"), 0o644, g.CABundle)
		},
		func() error { return dir("home", 0o755, 0) },
		func() error { return dir("home/"+NonRootName, 0o700, NonRootUID) },
		func() error { return dir("tmp", 0o1777, 0) },
		func() error { return file(g.Name, 0o755, bin) },
		tw.Close,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}
