package imagebuild

import (
	"context"
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
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/registryauth"
)

// Status holds a job's words for its progress reports ("Step 3/7 : RUN
// …"); it is safe for concurrent use.
type Status struct{ p atomic.Pointer[string] }

// Set replaces the words.
func (s *Status) Set(v string) { s.p.Store(&v) }

func (s *Status) String() string {
	if p := s.p.Load(); p != nil {
		return *p
	}
	return ""
}

// DockerTag returns the tag heph-build/<name>:<hash> of a Dockerfile build
// and the hash (of the context, see ContextHash, and the options); name ""
// is the context directory's name.
func DockerTag(dir, name, dockerfile string, args map[string]string, target string, labels map[string]string, platform string) (tag, hash string, err error) {
	ctxHash, err := ContextHash(dir, dockerfile)
	if err != nil {
		return "", "", err
	}
	hash = Hash("heph build v1", ctxHash, dockerfile, SortedPairs(args), target, SortedPairs(labels), platform)
	if name == "" {
		name = DirName(dir)
	}
	return "heph-build/" + name + ":" + hash[:12], hash, nil
}

// DirName is the image name of a directory: its base name (of its absolute
// path), made a Name.
func DirName(dir string) string {
	abs, _ := filepath.Abs(dir)
	return Name(filepath.Base(abs))
}

// DockerSpec is one build of a Dockerfile.
type DockerSpec struct {
	Dir, Dockerfile string // Dockerfile is relative to Dir
	Tag, Hash       string // as DockerTag gives them
	Args            map[string]string
	Target          string
	Labels          map[string]string
	NoCache, Pull   bool
	Platform        string
}

// Docker builds s through api: the context as BuildContext makes it, the
// credentials of the base images' registries from creds (see Auth), the
// labels heph.build and heph.build.source added. status is told each step;
// onLine, when not nil, every line the build prints. Its errors are
// errs.Op("build image", s.Tag, …), with errs.InvalidConfig when the
// credentials could not be read, and the last 20 lines of output when the
// build failed.
func Docker(ctx context.Context, api engine.API, creds registryauth.Env, s DockerSpec, status *Status, onLine func(string)) error {
	dockerfile, err := os.ReadFile(filepath.Join(s.Dir, s.Dockerfile))
	if err != nil {
		return errs.Op("build image", s.Tag, nil, err)
	}
	auth, err := Auth(ctx, creds, dockerfile, s.Args)
	if err != nil {
		return errs.Op("build image", s.Tag, errs.InvalidConfig, err)
	}
	abs, _ := filepath.Abs(s.Dir)
	l := map[string]string{labels.Build: s.Hash, labels.BuildSource: abs}
	maps.Copy(l, s.Labels)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.BuildContext(pw, s.Dir, s.Dockerfile)) }()
	defer pr.Close()
	var tail []string
	err = api.ImageBuild(ctx, pr, engine.BuildOptions{
		Tags: []string{s.Tag}, Dockerfile: filepath.ToSlash(s.Dockerfile), BuildArgs: s.Args, Target: s.Target,
		Labels: l, NoCache: s.NoCache, PullParent: s.Pull, Platform: s.Platform, Auth: auth,
	}, func(line string) {
		if tail = append(tail, line); len(tail) > 20 {
			tail = tail[1:]
		}
		if strings.HasPrefix(line, "Step ") {
			status.Set(line)
		}
		if onLine != nil {
			onLine(line)
		}
	})
	if err != nil && len(tail) > 0 {
		err = fmt.Errorf("%w\nlast build output:\n  %s", err, strings.Join(tail, "\n  "))
	}
	return engine.Op("build image", s.Tag, err, nil)
}

// LoadGo compiles the Go package pkg (resolved in dir) for platform
// ("os/arch[/variant]"; "" is the daemon's), assembles its image (GoImage,
// with the host's CA bundle) and loads it into the daemon as
// heph-build/<name>:<key>, labelled heph.build — unless that tag is there
// already — and returns the tag. status is told the phase.
func LoadGo(ctx context.Context, api engine.API, dir, pkg, platform string, status *Status) (string, error) {
	if platform == "" {
		v, err := api.Version(ctx)
		if err != nil {
			return "", fmt.Errorf("ask the daemon its platform: %w", err)
		}
		platform = v.OS + "/" + v.Arch
	}
	p, err := ParsePlatform(platform)
	if err != nil {
		return "", err
	}
	status.Set("compiling for " + p.String())
	tmp, err := os.MkdirTemp("", "heph-go-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	name := BinaryName(dir, pkg)
	bin := filepath.Join(tmp, name)
	if err := GoBuild(ctx, dir, pkg, p, bin); err != nil {
		return "", err
	}
	ca, _ := HostCABundle()
	g := GoImage{Binary: bin, Name: name, CABundle: ca, Platform: p, Labels: map[string]string{labels.BuildSource: pkg}}
	key, err := g.Key()
	if err != nil {
		return "", err
	}
	tag := "heph-build/" + name + ":" + key[:12]
	if _, err := api.ImageInspect(ctx, tag); err == nil {
		return tag, nil
	}
	status.Set("loading " + tag)
	g.Labels[labels.Build] = key
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(g.Write(pw, tag, time.Now())) }()
	defer pr.Close()
	if err := api.ImageLoad(ctx, pr); err != nil {
		return "", engine.Op("load image", tag, err, nil)
	}
	return tag, nil
}
