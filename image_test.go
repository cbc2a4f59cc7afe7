package heph

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
)

// doneProbe is a context that reports the first call of its Done method.
// PullImage calls Done only once the caller has joined a pull (started it,
// or found it running), so a test can tell that every caller has joined.
type doneProbe struct {
	context.Context
	once   sync.Once
	joined chan<- struct{}
}

func (p *doneProbe) Done() <-chan struct{} {
	p.once.Do(func() { p.joined <- struct{}{} })
	return p.Context.Done()
}

// blockPulls makes every ImagePull wait until release is closed (or its
// context ends), and reports each pull's start on started.
func blockPulls(f *enginetest.Fake) (started <-chan struct{}, release chan struct{}) {
	s := make(chan struct{}, 16)
	release = make(chan struct{})
	f.Hook = func(ctx context.Context, call string, _ any) error {
		if call != "ImagePull" {
			return nil
		}
		s <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s, release
}

func TestEnsureImage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o, f := newTestOrchestrator()
	f.AddImage("here:1", engine.Image{})
	f.AddToRegistry("there:1", engine.Image{})
	ensure := func(o *Orchestrator, ref string) error {
		return o.ensureImage(ctx, imageRequest{asked: ref, timeout: time.Minute}, ref)
	}

	require.NoError(t, ensure(o, "here:1"))
	require.Equal(t, []string{"ImageInspect"}, f.Calls(), "present: no pull")

	require.NoError(t, ensure(o, "there:1"))
	require.Equal(t, []string{"ImageInspect", "ImageInspect", "ImagePull"}, f.Calls(), "missing: pulled")
	require.NoError(t, ensure(o, "there:1"))
	require.Equal(t, 1, f.CallCount("ImagePull"), "pulled once: present afterwards")

	o, f = newTestOrchestrator()
	failOn(f, "ImageInspect", enginetest.Unavailable("daemon is busy"))
	err := ensure(o, "here:1")
	require.EqualError(t, err, `heph: inspect image "here:1": daemon is busy`)
	require.Zero(t, f.CallCount("ImagePull"), "no pull when the inspect failed for another reason")
}

func TestConcurrentPullsShareOneDaemonPull(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	f.AddToRegistry("app:1", engine.Image{})
	_, release := blockPulls(f)

	const callers = 5
	joined := make(chan struct{}, callers)
	errs := make(chan error, callers)
	for range callers {
		go func() {
			ctx := &doneProbe{Context: context.Background(), joined: joined}
			errs <- o.PullImage(ctx, "app:1", time.Minute)
		}()
	}
	for range callers {
		<-joined // every caller waits on a pull before it may end
	}
	close(release)
	for range callers {
		require.NoError(t, <-errs)
	}
	require.Equal(t, 1, f.CallCount("ImagePull"), "one daemon pull for all")

	require.Zero(t, o.jobs.Running(), "the finished pull is forgotten: the next one pulls again")
}

func TestACallerGivingUpDoesNotStopTheSharedPull(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	f.AddToRegistry("app:1", engine.Image{})
	started, release := blockPulls(f)

	impatient, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { gaveUp <- o.PullImage(impatient, "app:1", time.Minute) }()
	<-started

	joined := make(chan struct{}, 1)
	patient := make(chan error, 1)
	go func() {
		patient <- o.PullImage(&doneProbe{Context: context.Background(), joined: joined}, "app:1", time.Minute)
	}()
	<-joined
	cancel()
	err := <-gaveUp
	require.ErrorIs(t, err, context.Canceled)
	require.EqualError(t, err, `heph: pull image "app:1": context canceled`)

	close(release)
	require.NoError(t, <-patient, "the pull went on for the caller still waiting")
	require.Equal(t, 1, f.CallCount("ImagePull"))
	_, err = f.ImageInspect(context.Background(), "app:1")
	require.NoError(t, err, "and the image is there")
}

func TestPullTimeout(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	var deadline time.Time
	f.Hook = func(ctx context.Context, call string, _ any) error {
		deadline, _ = ctx.Deadline()
		return nil
	}
	f.AddToRegistry("app:1", engine.Image{})
	require.NoError(t, o.PullImage(context.Background(), "app:1", 0))
	require.WithinDuration(t, time.Now().Add(DefaultPullTimeout), deadline, 5*time.Second, "zero means DefaultPullTimeout")

	o, f = newTestOrchestrator()
	f.AddToRegistry("app:1", engine.Image{})
	blockPulls(f) // a registry that never answers
	start := time.Now()
	err := o.PullImage(context.Background(), "app:1", 50*time.Millisecond)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 30*time.Second)
	require.Regexp(t, `^heph: pull image "app:1": timed out after [0-9.]+m?s \(pull timeout 50ms\): context deadline exceeded \(registry docker\.io, no credentials \(no DOCKER_AUTH_CONFIG, no docker config file\)\)$`, err.Error(),
		"the cause is said once")
}

func TestPullErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		reason      string
		err         error // nil: the fake's registry does not have the image
		notFound    bool
		unavailable bool
		contains    string
	}{
		{"a registry without the image", nil, true, false, "manifest unknown"},
		{"manifest unknown in the stream", &engine.StreamError{Message: "manifest for 127.0.0.1:5000/x:1 not found: manifest unknown"}, true, false, "manifest unknown"},
		{"a repository that does not exist", &engine.StreamError{Message: "pull access denied for x, repository does not exist or may require 'docker login'"}, true, false, "pull access denied"},
		{"the daemon answers 404", enginetest.NotFound("No such image: app:1"), true, false, "No such image"},
		{"an error inside the stream", &engine.StreamError{Message: "unexpected EOF"}, false, false, "unexpected EOF"},
		{"a rate limit", &engine.StreamError{Message: "toomanyrequests: slow down"}, false, false, "toomanyrequests"},
		{"no daemon", enginetest.Unavailable("Cannot connect to the Docker daemon"), false, true, "Cannot connect"},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			t.Parallel()
			o, f := newTestOrchestrator()
			if tc.err != nil {
				failOn(f, "ImagePull", tc.err)
			}
			err := o.PullImage(context.Background(), "app:1", time.Minute)
			require.True(t, strings.HasPrefix(err.Error(), `heph: pull image "app:1": `), err.Error())
			require.Equal(t, 1, strings.Count(err.Error(), "heph:"))
			require.ErrorContains(t, err, tc.contains)
			require.Equal(t, tc.notFound, errors.Is(err, ErrImageNotFound), "ErrImageNotFound: %v", err)
			require.Equal(t, tc.unavailable, errors.Is(err, ErrDockerUnavailable), "ErrDockerUnavailable: %v", err)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err, "the cause is kept")
			}
		})
	}
}

func TestMissingImageFailsCreateWithErrImageNotFound(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	f.AddImage("other", engine.Image{})
	_, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "127.0.0.1:5000/nope:1"})
	require.ErrorIs(t, err, ErrImageNotFound)
	require.Zero(t, f.CallCount("ContainerCreate"))
}

func TestPullImageRefusesBadArgumentsBeforeAnyDockerCall(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	err := o.PullImage(context.Background(), "app:1", -time.Second)
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.EqualError(t, err, "heph: invalid configuration: PullTimeout -1s: is negative")
	err = o.PullImage(context.Background(), "Bad Image", time.Minute)
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, `Image "Bad Image": is not a valid image reference`)
	require.Empty(t, f.Calls())
}

// buildRecorder is the fake daemon, keeping the build context it is sent
// and answering the build with output and err.
type buildRecorder struct {
	*enginetest.Fake
	output  []string
	err     error
	context []byte
	opts    engine.BuildOptions
}

func (b *buildRecorder) ImageBuild(ctx context.Context, r io.Reader, opts engine.BuildOptions, output func(string)) error {
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return err
	}
	b.context, b.opts = buf.Bytes(), opts
	for _, l := range b.output {
		output(l)
	}
	if b.err != nil {
		return b.err
	}
	return b.Fake.ImageBuild(ctx, bytes.NewReader(nil), opts, nil)
}

func TestBuildImageSendsTheContextHonouringDockerignore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"Dockerfile":     "FROM scratch\nCOPY app /app\n",
		".dockerignore":  "*.log\nsecret/\n!keep.log\n",
		"app":            "binary",
		"debug.log":      "noise",
		"keep.log":       "kept",
		"secret/key":     "s3cr3t",
		"sub/data.txt":   "data",
		"sub/deep/x.log": "deep noise is kept: *.log matches only at the top",
	} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	b := &buildRecorder{Fake: enginetest.NewFake()}
	b.AddImage("other:1", engine.Image{}) // not every image is present
	o := newOrchestratorOver(b, "unix:///fake.sock")
	tag, err := o.BuildImage(context.Background(), dir, Build{Name: "app"})
	require.NoError(t, err)
	require.Regexp(t, `^heph-build/app:[0-9a-f]{12}$`, tag)

	files, _ := tarEntries(t, b.context)
	var names []string
	for n := range files {
		if !strings.HasSuffix(n, "/") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	require.Equal(t, []string{".dockerignore", "Dockerfile", "app", "keep.log", "sub/data.txt", "sub/deep/x.log"}, names)
	require.Equal(t, []string{tag}, b.opts.Tags)
	_, err = b.ImageInspect(context.Background(), tag)
	require.NoError(t, err, "built and tagged")
}

func TestBuildImageReportsTheFailingStep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY missing /\n"), 0o644))
	b := &buildRecorder{
		Fake:   enginetest.NewFake(),
		output: []string{"Step 1/2 : FROM scratch", "Step 2/2 : COPY missing /"},
		err:    &engine.StreamError{Message: "COPY failed: file not found in build context"},
	}
	b.AddImage("other:1", engine.Image{}) // not every image is present
	o := newOrchestratorOver(b, "unix:///fake.sock")
	_, err := o.BuildImage(context.Background(), dir, Build{Name: "app"})
	require.Regexp(t, `^heph: build image "heph-build/app:[0-9a-f]{12}": COPY failed: file not found in build context`+"\n"+
		"last build output:\n  Step 1/2 : FROM scratch\n  Step 2/2 : COPY missing /$", err.Error())
	var se *engine.StreamError
	require.ErrorAs(t, err, &se)

	b.Fake = enginetest.NewFake()
	for _, bad := range []struct {
		dir  string
		name string
		want string
	}{
		{filepath.Join(dir, "nope"), "x", `contextDir "` + filepath.Join(dir, "nope") + `"`},
		{filepath.Join(dir, "Dockerfile"), "x", "is not a directory"},
		{dir, "Bad Tag", `Build.Name "Bad Tag": use lower-case letters`},
	} {
		_, err := o.BuildImage(context.Background(), bad.dir, Build{Name: bad.name})
		require.ErrorIs(t, err, ErrInvalidConfig)
		require.ErrorContains(t, err, bad.want)
	}
	require.Empty(t, b.Calls(), "refused before any Docker call")
}
