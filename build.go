package heph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/heph-go/heph/internal/archive"
	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/imagebuild"
	"github.com/heph-go/heph/internal/imagepull"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/rules"
)

// Build qualifies an image build from a Dockerfile (FromDockerfile,
// Orchestrator.BuildImage). The zero value builds ./Dockerfile of the
// context directory with no arguments.
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
	var problems []error
	bad := func(field string, value any, reason string) {
		problems = append(problems, invalid(field, value, reason))
	}
	if st, err := os.Stat(contextDir); err != nil {
		bad("contextDir", contextDir, err.Error())
	} else if !st.IsDir() {
		bad("contextDir", contextDir, "is not a directory")
	} else if _, err := imagebuild.CheckDockerfile(contextDir, b.dockerfile()); err != nil {
		bad("Build.Dockerfile", b.dockerfile(), err.Error())
	}
	if b.Name != "" && imagebuild.Name(b.Name) != b.Name {
		bad("Build.Name", b.Name, "use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit")
	}
	for _, k := range sortedKeys(b.Args) {
		if k == "" || strings.ContainsAny(k, "=\x00 ") {
			bad("Build.Args key", k, "is empty or holds '=', a space or NUL")
		}
	}
	if strings.TrimSpace(b.Target) != b.Target {
		bad("Build.Target", b.Target, "has surrounding spaces")
	}
	for _, k := range sortedKeys(b.Labels) {
		if err := errors.Join(rules.LabelKey(k), rules.LabelValue(b.Labels[k])); err != nil {
			bad("Build.Labels key", k, err.Error())
		}
	}
	return errors.Join(problems...)
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
	name := b.Name
	if name == "" {
		abs, _ := filepath.Abs(contextDir)
		name = imagebuild.Name(filepath.Base(abs))
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
// cache makes it quick).
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
	dockerfile, err := imagebuild.CheckDockerfile(dir, b.dockerfile())
	if err != nil {
		return "", invalid("Build.Dockerfile", b.dockerfile(), err.Error())
	}
	ctxHash, err := imagebuild.ContextHash(dir, b.dockerfile())
	if err != nil {
		return "", wrap("build image", dir, fmt.Errorf("read the build context: %w", err), nil)
	}
	hash := imagebuild.Hash("heph build v1", ctxHash, b.dockerfile(), imagebuild.SortedPairs(b.Args), b.Target, imagebuild.SortedPairs(b.Labels), q.platform)
	name := b.Name
	if name == "" {
		abs, _ := filepath.Abs(dir)
		name = imagebuild.Name(filepath.Base(abs))
	}
	tag := "heph-build/" + name + ":" + hash[:12]
	fresh := (b.NoCache || b.Pull) && !o.builtOnce(tag)
	if !fresh {
		if _, err := o.api.ImageInspect(ctx, tag); err == nil {
			return tag, nil
		}
	}
	var step atomic.Pointer[string]
	empty := ""
	step.Store(&empty)
	return o.shared(ctx, sharedJob{
		key: "build " + tag, op: "build image", subject: tag,
		doing: "building " + tag, finished: "built " + tag, status: func() string { return *step.Load() },
		timeout: q.timeout, progress: q.progress,
		work: func(ctx context.Context, rep *imagepull.Reporter) (string, error) {
			auth, err := o.buildAuth(ctx, dockerfile, b.Args)
			if err != nil {
				return "", errs.Op("build image", tag, ErrInvalidConfig, err)
			}
			abs, _ := filepath.Abs(dir)
			l := maps.Clone(b.Labels)
			if l == nil {
				l = map[string]string{}
			}
			l[labels.Build], l[labels.BuildSource] = hash, abs
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(archive.BuildContext(pw, dir, b.dockerfile())) }()
			defer pr.Close()
			tail := &lastLines{n: 20}
			err = o.api.ImageBuild(ctx, pr, engine.BuildOptions{
				Tags: []string{tag}, Dockerfile: filepath.ToSlash(b.dockerfile()), BuildArgs: b.Args, Target: b.Target,
				Labels: l, NoCache: b.NoCache, PullParent: b.Pull, Platform: q.platform, Auth: auth,
			}, func(line string) {
				tail.add(line)
				if strings.HasPrefix(line, "Step ") {
					step.Store(&line)
				}
				if q.echo {
					rep.Say("[build] " + line)
				}
			})
			if err != nil {
				if len(tail.lines) > 0 {
					err = fmt.Errorf("%w\nlast build output:\n  %s", err, tail)
				}
				return "", wrap("build image", tag, err, nil)
			}
			o.markBuilt(tag)
			return tag, nil
		},
	})
}

// goImage compiles a Go package and loads its image, unless the image of
// the same binary exists already.
func (o *Orchestrator) goImage(ctx context.Context, src goSource, q imageRequest) (string, error) {
	const op = "build the image of Go package"
	platform := q.platform
	if platform == "" {
		v, err := o.api.Version(ctx)
		if err != nil {
			return "", wrap(op, src.pkg, fmt.Errorf("ask the daemon its platform: %w", err), nil)
		}
		platform = v.OS + "/" + v.Arch
	}
	p, err := imagebuild.ParsePlatform(platform)
	if err != nil {
		return "", invalid("platform", platform, err.Error())
	}
	var phase atomic.Pointer[string]
	compiling := "compiling for " + platform
	phase.Store(&compiling)
	return o.shared(ctx, sharedJob{
		key: "go " + src.dir + " " + src.pkg + " " + platform, op: op, subject: src.pkg,
		doing: "building the image of Go package " + src.pkg, finished: "built the image of Go package " + src.pkg, status: func() string { return *phase.Load() },
		timeout: q.timeout, progress: q.progress,
		work: func(ctx context.Context, _ *imagepull.Reporter) (string, error) {
			tmp, err := os.MkdirTemp("", "heph-go-")
			if err != nil {
				return "", err
			}
			defer os.RemoveAll(tmp)
			name := imagebuild.BinaryName(src.dir, src.pkg)
			bin := filepath.Join(tmp, name)
			if err := imagebuild.GoBuild(ctx, src.dir, src.pkg, p, bin); err != nil {
				return "", errs.Op(op, src.pkg, nil, err)
			}
			ca, _ := imagebuild.HostCABundle()
			g := imagebuild.GoImage{Binary: bin, Name: name, CABundle: ca, Platform: p, Labels: map[string]string{labels.BuildSource: src.pkg}}
			key, err := g.Key()
			if err != nil {
				return "", errs.Op(op, src.pkg, nil, err)
			}
			tag := "heph-build/" + name + ":" + key[:12]
			if _, err := o.api.ImageInspect(ctx, tag); err == nil {
				return tag, nil
			}
			loading := "loading " + tag
			phase.Store(&loading)
			g.Labels[labels.Build] = key
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(g.Write(pw, tag, time.Now())) }()
			defer pr.Close()
			if err := o.api.ImageLoad(ctx, pr); err != nil {
				return "", wrap("load image", tag, err, nil)
			}
			return tag, nil
		},
	})
}

// builtOnce reports whether o built tag already.
func (o *Orchestrator) builtOnce(tag string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.built[tag]
}

func (o *Orchestrator) markBuilt(tag string) {
	o.mu.Lock()
	o.built[tag] = true
	o.mu.Unlock()
}
