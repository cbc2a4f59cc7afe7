package main

import (
	"context"
	"debug/elf"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/engine"
)

// probeSource is the probe's code, compiled by `go build` when this binary
// cannot serve as the probe itself.
//
//go:embed internal/probe/probe.go
var probeSource []byte

const probeMain = `package main

import "hephprobe/probe"

func main() { probe.Main() }
`

// probeImage is the image doctor built.
type probeImage struct {
	tag string
	how string // "this heph binary (static)" or "go build (linux/amd64)"
}

// imageError is a failure to make the probe binary, with its fix.
type imageError struct {
	msg, fix string
}

func (e *imageError) Error() string { return e.msg }

// buildProbeImage builds heph-build/doctor-probe:<content hash>, a
// FROM scratch image whose entrypoint is the probe, for the daemon's
// platform: this binary when it is a static executable for that platform,
// else the embedded source compiled with go build.
func buildProbeImage(ctx context.Context, o *heph.Orchestrator, d engine.Version) (probeImage, error) {
	dir, err := os.MkdirTemp("", "heph-doctor-")
	if err != nil {
		return probeImage{}, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "probe")
	how, err := probeBinary(ctx, bin, d.OS, d.Arch)
	if err != nil {
		return probeImage{}, err
	}
	dockerfile := "FROM scratch\nCOPY probe /probe\nENTRYPOINT [\"/probe\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return probeImage{}, err
	}
	tag, err := o.BuildImage(ctx, dir, heph.Build{Name: "doctor-probe"})
	if err != nil {
		return probeImage{}, err
	}
	return probeImage{tag: tag, how: how}, nil
}

// probeBinary writes a probe executable for goos/goarch to out and says how
// it made it: with go build when Go is on PATH, else (or when that build
// fails) by copying this binary when it is static for goos/goarch.
func probeBinary(ctx context.Context, out, goos, goarch string) (string, error) {
	if goos == "" {
		goos = "linux"
	}
	platform := goos + "/" + goarch
	goTool, lookErr := exec.LookPath("go")
	var buildErr error
	if lookErr == nil {
		if buildErr = goBuildProbe(ctx, goTool, out, goos, goarch); buildErr == nil {
			return "go build (" + platform + ")", nil
		}
	}
	self, selfErr := staticSelf(goos, goarch)
	if selfErr == nil {
		if err := copyFile(self, out); err != nil {
			return "", err
		}
		return "this heph binary (static " + platform + ")", nil
	}
	installStatic := "or install a static heph on a " + platform + " machine:\n" +
		"CGO_ENABLED=0 go install github.com/heph-go/heph/cmd/heph@latest"
	if buildErr != nil {
		return "", &imageError{
			msg: fmt.Sprintf("cannot make the probe program for %s: %v; and this heph binary cannot serve instead: %v", platform, buildErr, selfErr),
			fix: "check that `CGO_ENABLED=0 GOOS=" + goos + " GOARCH=" + goarch + " go build` works with " + goTool + ",\n" + installStatic,
		}
	}
	return "", &imageError{
		msg: fmt.Sprintf("cannot make the probe program for %s: Go is not on PATH, and this heph binary cannot serve instead: %v", platform, selfErr),
		fix: "put Go on PATH (doctor compiles the probe with go build),\n" + installStatic,
	}
}

// goBuildProbe compiles the embedded probe with goTool for goos/goarch.
func goBuildProbe(ctx context.Context, goTool, out, goos, goarch string) error {
	src := filepath.Join(filepath.Dir(out), "src")
	files := map[string][]byte{
		"go.mod":         []byte("module hephprobe\n\ngo 1.21\n"),
		"main.go":        []byte(probeMain),
		"probe/probe.go": probeSource,
	}
	for name, data := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch, "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v: %s", err, strings.TrimSpace(string(b)))
	}
	return nil
}

// staticSelf returns this executable's path when it is a statically linked
// ELF for goos/goarch, so it can run in a FROM scratch image as it is.
func staticSelf(goos, goarch string) (string, error) {
	if runtime.GOOS != goos || runtime.GOARCH != goarch {
		return "", fmt.Errorf("it is built for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	f, err := elf.Open(exe)
	if err != nil {
		return "", fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", errors.New("it is dynamically linked (built with cgo)")
		}
	}
	return exe, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
