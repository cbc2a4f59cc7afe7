package heph

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/imagebuild"
	"github.com/heph-go/heph/internal/imagepull"
)

// Build qualifies an image build from a Dockerfile (FromDockerfile,
// Orchestrator.BuildImage). The zero value builds ./Dockerfile of the
// context directory with no arguments. Bad fields are refused before any
// Docker call with ErrInvalidConfig naming the field. The images built stay
// on the daemon as a cache (`heph prune --images` removes them).
type Build struct {
	// Name names the image heph-build/<Name>:<hash>; empty means the
	// context directory's name. Lower-case letters, digits, '.', '_', '-'.
	Name string
	// Dockerfile is the Dockerfile's path inside the context directory,
	// relative to it; empty means "Dockerfile".
	Dockerfile string
	// Args are build arguments (ARG); Target is the stage to build (empty:
	// the last).
	Args   map[string]string
	Target string
	// Labels are put on the image. Keys may not start with "heph.".
	Labels map[string]string
	// NoCache builds without the daemon's layer cache; Pull pulls newer
	// base images first. Either makes heph build the image once per
	// Orchestrator (so once per test process) even when its tag exists.
	NoCache, Pull bool
}

// buildSource is a FromDockerfile request's image.
type buildSource struct {
	dir string
	b   Build
}

// goSource is a FromGoPackage request's image.
type goSource struct {
	dir, pkg string // pkg is resolved by go build in dir
}

// check returns every problem of b with contextDir, each naming the field.
func (b Build) check(contextDir string) error {
	return imagebuild.Check(contextDir, b.Name, b.dockerfile(), b.Args, b.Target, b.Labels)
}

func (b Build) dockerfile() string {
	if b.Dockerfile == "" {
		return "Dockerfile"
	}
	return filepath.Clean(b.Dockerfile)
}

// FromDockerfile starts a request for a container running the image built
// from the Dockerfile in contextDir with b's options. At Start (or Run) heph
// hashes the context as the daemon would receive it (after .dockerignore;
// names, modes and contents, not times) with b's options, and builds only
// when no image heph-build/<name>:<hash> exists yet: an unchanged context is
// never rebuilt. Base images are pulled with the credentials of their
// registries (see PullImage). The image is labelled heph.build and stays as
// a cache: `heph prune --images` removes it.
//
// Its service name is the image's name (the directory's name unless
// b.Name). A build that fails fails the start with the failing step's output;
// a build that takes more than a couple of seconds reports its step to the
// test log, and HEPH_LOGS (or WithLogsToTest) streams its whole output
// there. WithPullTimeout bounds the build, WithPlatform sets its platform;
// WithPullPolicy and WithImageSubstitution do not apply. A bad contextDir or
// option is reported at Start with ErrInvalidConfig.
func FromDockerfile(contextDir string, b Build) ContainerRequest {
	b.Args, b.Labels = maps.Clone(b.Args), maps.Clone(b.Labels)
	name := imagebuild.Name(b.Name) // a bad Name is reported by check
	if b.Name == "" {
		name = imagebuild.DirName(contextDir)
	}
	r := NewContainer("heph-build/" + name)
	r.build = &buildSource{dir: contextDir, b: b}
	if err := b.check(contextDir); err != nil {
		r.errs = append(r.errs, err)
	}
	return r
}

// FromGoPackage starts a request for a container running the Go package pkg
// — an import path, or a directory relative to the working directory
// ("./cmd/api"), as go build takes it — without a Dockerfile, a builder or a
// base image. At Start (or Run) heph compiles it for the daemon's OS and
// architecture (or WithPlatform's) with CGO_ENABLED=0 go build -trimpath
// -buildvcs=false (the go command on PATH; go test puts its own there), and
// assembles a one-layer image: the binary as /<name>, the entrypoint (give it
// arguments with WithCmd); the host's CA certificates at
// /etc/ssl/certs/ca-certificates.crt (from the usual places; when the host has
// none, the image has none, and TLS to public hosts fails in the container);
// a writable /tmp (mode 1777); and a non-root user, nonroot (65532:65532),
// in /etc/passwd. It is loaded into the daemon as heph-build/<name>:<hash of
// the binary and the image>, labelled heph.build: when that tag exists, as on
// a second start, the load is skipped (go build itself still runs; its own
// cache makes it quick). The image stays as a cache: `heph prune --images`
// removes it.
//
// Its service name is the package's last path element. A failed compile
// fails the start with the compiler's output. WithPullTimeout bounds the
// compile and load; WithPullPolicy and WithImageSubstitution do not apply.
func FromGoPackage(pkg string) ContainerRequest {
	dir, err := os.Getwd()
	if err != nil {
		dir = "."
	}
	r := NewContainer("heph-build/" + imagebuild.BinaryName(dir, pkg))
	r.goPackage = &goSource{dir: dir, pkg: pkg}
	if strings.TrimSpace(pkg) == "" || strings.HasPrefix(pkg, "-") || strings.ContainsRune(pkg, 0) {
		return r.fail("FromGoPackage", pkg, errors.New("is not a Go package path or a directory"))
	}
	return r
}

// BuildImage builds the Dockerfile in contextDir with b's options through
// the Engine API — unless an image of the same context and options exists
// already — and returns its tag, heph-build/<name>:<hash> (see
// FromDockerfile). The context is sent as a tar of the directory, with the
// patterns of its .dockerignore left out (the Dockerfile and .dockerignore
// themselves are always sent). A failing step's message is returned as an
// error, with the last lines of output. Bad arguments give ErrInvalidConfig
// before any Docker call. The image is not labelled heph.managed: built
// images are a cache that outlives sessions (`heph prune --images` removes
// them).
func (o *Orchestrator) BuildImage(ctx context.Context, contextDir string, b Build) (string, error) {
	if err := b.check(contextDir); err != nil {
		return "", err
	}
	return o.buildImage(ctx, contextDir, b, imageRequest{timeout: DefaultPullTimeout})
}

// buildImage builds (or finds) the image of a checked Build.
func (o *Orchestrator) buildImage(ctx context.Context, dir string, b Build, q imageRequest) (string, error) {
	tag, hash, err := imagebuild.DockerTag(dir, b.Name, b.dockerfile(), b.Args, b.Target, b.Labels, q.platform)
	if err != nil {
		return "", wrap("build image", dir, fmt.Errorf("read the build context: %w", err), nil)
	}
	_, built := o.built.Load(tag)
	if !(b.NoCache || b.Pull) || built {
		if _, err := o.api.ImageInspect(ctx, tag); err == nil {
			return tag, nil
		}
	}
	status := &imagebuild.Status{}
	return o.jobs.Do(ctx, imagepull.Job{
		Key: "build " + tag, Op: "build image", Subject: tag,
		Doing: "building " + tag, Finished: "built " + tag, Status: status.String,
		Timeout: q.timeout, Progress: q.progress,
		Work: func(ctx context.Context, rep *imagepull.Reporter) (string, error) {
			var echo func(string)
			if q.echo {
				echo = func(line string) { rep.Say("[build] " + line) }
			}
			err := imagebuild.Docker(ctx, o.api, o.creds, imagebuild.DockerSpec{
				Dir: dir, Dockerfile: b.dockerfile(), Tag: tag, Hash: hash, Args: b.Args, Target: b.Target, Labels: b.Labels,
				NoCache: b.NoCache, Pull: b.Pull, Platform: q.platform,
			}, status, echo)
			if err != nil {
				return "", err
			}
			o.built.Store(tag, true)
			return tag, nil
		},
	})
}

// goImage compiles a Go package and loads its image, unless the image of
// the same binary exists already.
func (o *Orchestrator) goImage(ctx context.Context, src goSource, q imageRequest) (string, error) {
	const op = "build the image of Go package"
	status := &imagebuild.Status{}
	return o.jobs.Do(ctx, imagepull.Job{
		Key: "go " + src.dir + " " + src.pkg + " " + q.platform, Op: op, Subject: src.pkg,
		Doing: "building the image of Go package " + src.pkg, Finished: "built the image of Go package " + src.pkg, Status: status.String,
		Timeout: q.timeout, Progress: q.progress,
		Work: func(ctx context.Context, _ *imagepull.Reporter) (string, error) {
			tag, err := imagebuild.LoadGo(ctx, o.api, src.dir, src.pkg, q.platform, status)
			return tag, errs.Op(op, src.pkg, nil, err)
		},
	})
}
