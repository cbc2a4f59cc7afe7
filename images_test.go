package heph

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/daemon"
	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/imagepull"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/registryauth"
)

// Unit tests of images over the fake daemon: pull policies, substitution,
// credentials and their failures, progress, Dockerfile builds and their
// cache, and FromGoPackage's cache.

// pullRecorder is the fake daemon, keeping what each pull was given and
// failing pulls with fail's error when it returns one.
type pullRecorder struct {
	*enginetest.Fake
	mu   sync.Mutex
	refs []string
	opts []engine.PullOptions
	fail func(ref string) error
}

func (p *pullRecorder) ImagePull(ctx context.Context, ref string, opts engine.PullOptions, progress func(engine.Progress)) error {
	p.mu.Lock()
	p.refs, p.opts = append(p.refs, ref), append(p.opts, opts)
	fail := p.fail
	p.mu.Unlock()
	if fail != nil {
		if err := fail(ref); err != nil {
			return err
		}
	}
	return p.Fake.ImagePull(ctx, ref, opts, progress)
}

func (p *pullRecorder) pulls() ([]string, []engine.PullOptions) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.refs...), append([]engine.PullOptions(nil), p.opts...)
}

// imagesOrchestrator is an Orchestrator over api for a local daemon, its
// pull records in a temporary directory and its credentials read from env
// (DOCKER_AUTH_CONFIG, DOCKER_CONFIG) only.
func imagesOrchestrator(t *testing.T, api engine.API, env map[string]string) *Orchestrator {
	o := newOrchestrator(api, engine.Endpoint{Host: "unix:///fake.sock"}, nil)
	o.hostEnv = daemon.HostEnv{Exists: func(string) bool { return false }}
	o.records = imagepull.Records{Dir: t.TempDir()}
	o.creds = registryauth.Env{Getenv: func(k string) string { return env[k] }, Home: func() (string, error) { return t.TempDir(), nil }}
	return o
}

func newPullRecorder() *pullRecorder {
	f := enginetest.NewFake()
	f.AddImage("unrelated:1", engine.Image{}) // not every image is present
	return &pullRecorder{Fake: f}
}

func create(t *testing.T, o *Orchestrator, cfg ContainerConfig) error {
	t.Helper()
	c, err := o.CreateContainer(context.Background(), cfg)
	if c != nil {
		require.NoError(t, c.Terminate(context.Background()))
	}
	return err
}

func TestPullPolicies(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name     string
		local    *engine.Image // present before the first create
		policy   PullPolicy
		platform string
		pulls    []int // ImagePull calls after each create
	}{
		{name: "missing: absent is pulled once", pulls: []int{1, 1}},
		{name: "missing: present is not pulled", local: &engine.Image{}, pulls: []int{0, 0}},
		{name: "always: every create pulls", local: &engine.Image{}, policy: PullPolicy{Always: true}, pulls: []int{1, 2}},
		{name: "older-than: old copy pulled once, then recorded", local: &engine.Image{Created: now.Add(-2 * time.Hour)}, policy: PullPolicy{OlderThan: time.Hour}, pulls: []int{1, 1}},
		{name: "older-than: a recent image is not due", local: &engine.Image{Created: now.Add(-time.Minute)}, policy: PullPolicy{OlderThan: time.Hour}, pulls: []int{0, 0}},
		{name: "older-than: a tiny age is always due", local: &engine.Image{Created: now.Add(-time.Minute)}, policy: PullPolicy{OlderThan: time.Nanosecond}, pulls: []int{1, 2}},
		{name: "platform: another platform's copy is pulled", local: &engine.Image{OS: "linux", Arch: "amd64"}, platform: "linux/arm64", pulls: []int{1, 1}},
		{name: "platform: the same platform's copy is kept", local: &engine.Image{OS: "linux", Arch: "arm64"}, platform: "linux/arm64", pulls: []int{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPullRecorder()
			registryImage := engine.Image{Created: now.Add(-3 * time.Hour), OS: "linux", Arch: "arm64"}
			p.AddToRegistry("app:1", registryImage)
			if tc.local != nil {
				p.AddImage("app:1", *tc.local)
			}
			o := imagesOrchestrator(t, p, nil)
			for i, want := range tc.pulls {
				require.NoError(t, create(t, o, ContainerConfig{Image: "app:1", PullPolicy: tc.policy, Platform: tc.platform}))
				refs, opts := p.pulls()
				require.Len(t, refs, want, "after create %d", i+1)
				for _, po := range opts {
					require.Equal(t, tc.platform, po.Platform)
				}
			}
		})
	}
}

func TestPullPolicyFromTheEnvironment(t *testing.T) {
	p := newPullRecorder()
	p.AddToRegistry("app:1", engine.Image{})
	p.AddImage("app:1", engine.Image{})
	o := imagesOrchestrator(t, p, nil)

	t.Setenv(EnvPullPolicy, "always")
	require.NoError(t, create(t, o, ContainerConfig{Image: "app:1"}))
	refs, _ := p.pulls()
	require.Len(t, refs, 1, "HEPH_PULL_POLICY=always is the default")
	require.NoError(t, create(t, o, ContainerConfig{Image: "app:1", PullPolicy: PullPolicy{OlderThan: time.Hour}}))
	refs, _ = p.pulls()
	require.Len(t, refs, 1, "the config's own policy wins (the copy was just pulled)")

	t.Setenv(EnvPullPolicy, "sometimes")
	err := create(t, o, ContainerConfig{Image: "app:1"})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.EqualError(t, err, `heph: invalid configuration: HEPH_PULL_POLICY "sometimes": want `+imagepull.PolicyWords)

	err = create(t, o, ContainerConfig{Image: "app:1", PullPolicy: PullPolicy{Always: true, OlderThan: time.Hour}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, "PullPolicy PullPolicy{Always: true, OlderThan: 1h0m0s}: sets both Always and OlderThan")
	r := NewContainer("app:1").WithPullPolicy(PullPolicy{OlderThan: -time.Second}).WithPlatform("Linux")
	require.ErrorContains(t, r.check(), "WithPullPolicy(PullPolicy{Always: false, OlderThan: -1s}): OlderThan is negative")
	require.ErrorContains(t, r.check(), `WithPlatform("Linux"): is not "os/arch"`)
}

func TestSubstitutionAndMirror(t *testing.T) {
	p := newPullRecorder()
	p.AddToRegistry("mirror.corp:5000/library/postgres:16", engine.Image{})
	p.AddToRegistry("mirror.corp:5000/team/postgres:16-pinned", engine.Image{})
	o := imagesOrchestrator(t, p, nil)

	t.Setenv(EnvRegistryMirror, "mirror.corp:5000")
	c, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "postgres:16"})
	require.NoError(t, err)
	info, err := c.Inspect(context.Background())
	require.NoError(t, err)
	require.Equal(t, "mirror.corp:5000/library/postgres:16", info.Image, "the container runs the mirrored image")
	require.Equal(t, "postgres", c.Service(), "its service name comes from the name as given")
	require.NoError(t, c.Terminate(context.Background()))

	hook := func(image string) string { return "docker.io/team/" + strings.Replace(image, ":16", ":16-pinned", 1) }
	require.NoError(t, create(t, o, ContainerConfig{Image: "postgres:16", ImageSubstitution: hook}))
	refs, _ := p.pulls()
	require.Equal(t, []string{"mirror.corp:5000/library/postgres:16", "mirror.corp:5000/team/postgres:16-pinned"}, refs, "the hook, then the mirror")

	err = create(t, o, ContainerConfig{Image: "postgres:17"})
	require.ErrorIs(t, err, ErrImageNotFound)
	require.ErrorContains(t, err, `heph: pull image "postgres:17 (as mirror.corp:5000/library/postgres:17)": `)

	err = create(t, o, ContainerConfig{Image: "postgres:16", ImageSubstitution: func(string) string { return "Not A Ref" }})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, `WithImageSubstitution "Not A Ref": (returned for "postgres:16")`)

	t.Setenv(EnvRegistryMirror, "https://mirror.corp")
	err = create(t, o, ContainerConfig{Image: "postgres:16"})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, `HEPH_REGISTRY_MIRROR "https://mirror.corp": give host[:port][/path] without a scheme`)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestPullCredentialsAndTheirFailures(t *testing.T) {
	const secret = "pa55-w0rd-never-shown"
	authConfig := `{"auths":{"reg.example:5000":{"auth":"` + b64("alice:"+secret) + `"}}}`
	for _, tc := range []struct {
		name      string
		env       map[string]string
		ref       string
		daemonErr error
		sentinel  error
		contains  []string
		sentCreds bool
	}{
		{name: "credentials sent", env: map[string]string{registryauth.EnvAuthConfig: authConfig}, ref: "reg.example:5000/app:1", sentCreds: true},
		{name: "none for another registry", env: map[string]string{registryauth.EnvAuthConfig: authConfig}, ref: "other.example:5000/app:1"},
		{
			name: "rejected", env: map[string]string{registryauth.EnvAuthConfig: authConfig}, ref: "reg.example:5000/app:1",
			daemonErr: errors.New("Error response from daemon: unauthorized"), sentinel: ErrRegistryAuth, sentCreds: true,
			contains: []string{`heph: pull image "reg.example:5000/app:1": registry reg.example:5000 rejected the credentials from DOCKER_AUTH_CONFIG (auths["reg.example:5000"]): `, "docker login reg.example:5000"},
		},
		{
			name: "wanted and none found", ref: "reg.example:5000/app:1",
			daemonErr: errors.New(`Head "http://reg.example:5000/v2/app/manifests/1": no basic auth credentials`), sentinel: ErrRegistryAuth,
			contains: []string{"registry reg.example:5000 rejected a pull with no credentials (no DOCKER_AUTH_CONFIG, no docker config file)", "set DOCKER_AUTH_CONFIG"},
		},
		{
			name: "missing image says what credentials were used", env: map[string]string{registryauth.EnvAuthConfig: authConfig}, ref: "reg.example:5000/app:1",
			daemonErr: &engine.StreamError{Message: "manifest unknown"}, sentinel: ErrImageNotFound, sentCreds: true,
			contains: []string{`manifest unknown (registry reg.example:5000, credentials from DOCKER_AUTH_CONFIG (auths["reg.example:5000"]))`},
		},
		{
			name: "malformed DOCKER_AUTH_CONFIG", env: map[string]string{registryauth.EnvAuthConfig: `{"auths":{"reg.example:5000":{"auth":"` + secret + `"}}}`}, ref: "reg.example:5000/app:1",
			sentinel: ErrInvalidConfig, contains: []string{`the credentials for registry reg.example:5000: DOCKER_AUTH_CONFIG auths["reg.example:5000"].auth is not base64`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPullRecorder()
			p.AddToRegistry(tc.ref, engine.Image{})
			p.fail = func(string) error { return tc.daemonErr }
			o := imagesOrchestrator(t, p, tc.env)
			err := create(t, o, ContainerConfig{Image: tc.ref})
			if tc.sentinel == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.sentinel)
				if tc.sentinel == ErrRegistryAuth {
					require.NotErrorIs(t, err, ErrImageNotFound, "a refusal is not a missing image")
				}
				require.NotContains(t, err.Error(), secret)
				require.Equal(t, 1, strings.Count(err.Error(), "heph:"), err.Error())
				for _, s := range tc.contains {
					require.Contains(t, err.Error(), s)
				}
			}
			_, opts := p.pulls()
			if tc.sentinel == ErrInvalidConfig {
				require.Empty(t, opts, "no pull without the credentials asked for")
				return
			}
			require.Len(t, opts, 1)
			if tc.sentCreds {
				require.Equal(t, &engine.AuthConfig{Username: "alice", Password: secret, ServerAddress: "reg.example:5000"}, opts[0].Auth)
			} else {
				require.Nil(t, opts[0].Auth)
			}
		})
	}
}

func TestProgressOfALongPull(t *testing.T) {
	imagepull.First, imagepull.Every = 20*time.Millisecond, 20*time.Millisecond
	t.Cleanup(func() { imagepull.First, imagepull.Every = 2*time.Second, 5*time.Second })

	p := newPullRecorder()
	p.AddToRegistry("reg.example:5000/big:1", engine.Image{})
	reported := make(chan struct{})
	var once sync.Once
	p.Hook = func(ctx context.Context, call string, _ any) error {
		if call == "ImagePull" {
			<-reported // the pull lasts until a report was made
		}
		return nil
	}
	o := imagesOrchestrator(t, p, nil)
	var mu sync.Mutex
	var lines []string
	err := create(t, o, ContainerConfig{Image: "reg.example:5000/big:1", Progress: func(msg string) {
		mu.Lock()
		lines = append(lines, msg)
		mu.Unlock()
		once.Do(func() { close(reported) })
	}})
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.GreaterOrEqual(t, len(lines), 2)
	require.Regexp(t, `^heph: pulling reg.example:5000/big:1 \(\d`, lines[0])
	require.Regexp(t, `^heph: pulled reg.example:5000/big:1: \d/1 layers, 0.0/0.0 MB \(\d`, lines[len(lines)-1], "the end is said when the start was")
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
}

func TestFromDockerfileBuildsOnlyWhatChanged(t *testing.T) {
	f := enginetest.NewFake()
	f.AddImage("unrelated:1", engine.Image{})
	var mu sync.Mutex
	var builds []engine.BuildOptions
	f.Hook = func(_ context.Context, call string, arg any) error {
		if call == "ImageBuild" {
			mu.Lock()
			builds = append(builds, arg.(engine.BuildOptions))
			mu.Unlock()
		}
		return nil
	}
	o := imagesOrchestrator(t, f, map[string]string{registryauth.EnvAuthConfig: `{"auths":{"reg.example:5000":{"auth":"` + b64("bob:pw") + `"}}}`})
	dir := filepath.Join(t.TempDir(), "My App")
	writeFiles(t, dir, map[string]string{
		"build/Dockerfile": "ARG BASE=reg.example:5000/base:1\nFROM ${BASE} AS base\nFROM base AS test\nARG GREETING\n",
		"main.go":          "package main",
		".dockerignore":    "*.log\n",
	})
	b := Build{Dockerfile: "build/Dockerfile", Args: map[string]string{"GREETING": "hi"}, Target: "test", Labels: map[string]string{"team": "core"}}
	run := func(b Build) string {
		t.Helper()
		c, err := FromDockerfile(dir, b).Run(context.Background(), o)
		require.NoError(t, err)
		info, err := c.Inspect(context.Background())
		require.NoError(t, err)
		require.NoError(t, c.Terminate(context.Background()))
		require.Equal(t, "my-app", c.Service())
		return info.Image
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(builds)
	}

	first := run(b)
	require.Regexp(t, `^heph-build/my-app:[0-9a-f]{12}$`, first)
	require.Equal(t, 1, count())
	mu.Lock()
	got := builds[0]
	mu.Unlock()
	require.Equal(t, "build/Dockerfile", got.Dockerfile)
	require.Equal(t, map[string]string{"GREETING": "hi"}, got.BuildArgs)
	require.Equal(t, "test", got.Target)
	require.Equal(t, "core", got.Labels["team"])
	require.Equal(t, first[len("heph-build/my-app:"):], got.Labels[labels.Build][:12], "the label holds the hash the tag starts with")
	require.Equal(t, map[string]engine.AuthConfig{"reg.example:5000": {Username: "bob", Password: "pw", ServerAddress: "reg.example:5000"}}, got.Auth,
		"the base image's registry gets its credentials")

	require.Equal(t, first, run(b))
	require.Equal(t, 1, count(), "an unchanged context is not rebuilt")

	writeFiles(t, dir, map[string]string{"debug.log": "ignored"})
	future := time.Now().Add(time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(dir, "main.go"), future, future))
	require.Equal(t, first, run(b))
	require.Equal(t, 1, count(), "neither an ignored file nor a touch is a change")

	writeFiles(t, dir, map[string]string{"main.go": "package main // changed"})
	second := run(b)
	require.NotEqual(t, first, second)
	require.Equal(t, 2, count(), "a changed file is")

	b.Args = map[string]string{"GREETING": "hello"}
	require.NotEqual(t, second, run(b))
	require.Equal(t, 3, count(), "and so is a changed option")

	b.NoCache = true
	run(b)
	require.Equal(t, 3, count(), "this Orchestrator built that tag already")
	o = imagesOrchestrator(t, f, nil)
	run(b)
	require.Equal(t, 4, count(), "NoCache builds once per Orchestrator even when the tag exists")
	run(b)
	require.Equal(t, 4, count(), "once")
}

func TestFromDockerfileRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\n"})
	for _, tc := range []struct {
		dir  string
		b    Build
		want string
	}{
		{filepath.Join(dir, "nope"), Build{}, `contextDir "` + filepath.Join(dir, "nope") + `"`},
		{dir, Build{Dockerfile: "../Dockerfile"}, `Build.Dockerfile "../Dockerfile": must be a path inside the context directory`},
		{dir, Build{Dockerfile: "Missing"}, `Build.Dockerfile "Missing": stat`},
		{dir, Build{Name: "Bad Name"}, `Build.Name "Bad Name"`},
		{dir, Build{Args: map[string]string{"A B": "x"}}, `Build.Args key "A B"`},
		{dir, Build{Labels: map[string]string{"heph.build": "x"}}, `Build.Labels key "heph.build"`},
	} {
		err := FromDockerfile(tc.dir, tc.b).check()
		require.ErrorIs(t, err, ErrInvalidConfig, tc.want)
		require.ErrorContains(t, err, tc.want)
		_, err = imagesOrchestrator(t, enginetest.NewFake(), nil).BuildImage(context.Background(), tc.dir, tc.b)
		require.ErrorContains(t, err, tc.want)
	}
}

func TestFromGoPackageLoadsOnceAndReusesTheImage(t *testing.T) {
	f := enginetest.NewFake()
	f.AddImage("unrelated:1", engine.Image{})
	f.VersionInfo.Arch = "arm64"
	o := imagesOrchestrator(t, f, nil)
	var tags []string
	for range 2 {
		c, err := FromGoPackage("./testdata/tinyapp").WithCmd("hello").Run(context.Background(), o)
		require.NoError(t, err)
		info, err := c.Inspect(context.Background())
		require.NoError(t, err)
		tags = append(tags, info.Image)
		require.Equal(t, "tinyapp", c.Service())
		require.NoError(t, c.Terminate(context.Background()))
	}
	require.Regexp(t, `^heph-build/tinyapp:[0-9a-f]{12}$`, tags[0])
	require.Equal(t, tags[0], tags[1])
	require.Equal(t, 1, f.CallCount("ImageLoad"), "the second start finds the tag and loads nothing")
	require.Equal(t, 0, f.CallCount("ImageBuild"), "no builder")

	_, err := FromGoPackage("./testdata/does-not-exist").Run(context.Background(), o)
	require.Error(t, err)
	require.ErrorContains(t, err, `build the image of Go package "./testdata/does-not-exist": go build ./testdata/does-not-exist for linux/arm64: exit status 1`)
	require.ErrorContains(t, FromGoPackage("-race").check(), `FromGoPackage("-race"): is not a Go package path`)
}

func TestBuildOutputToTheLogWhenAsked(t *testing.T) {
	f := enginetest.NewFake()
	f.AddImage("unrelated:1", engine.Image{})
	o := imagesOrchestrator(t, f, nil)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM scratch\n"})
	var mu sync.Mutex
	var lines []string
	collect := func(s string) {
		mu.Lock()
		lines = append(lines, s)
		mu.Unlock()
	}
	for _, echo := range []bool{false, true} {
		lines = nil
		b := Build{Labels: map[string]string{"echo": fmt.Sprint(echo)}} // another image each time
		_, err := o.provide(context.Background(), imageRequest{build: &buildSource{dir: dir, b: b}, progress: collect, echo: echo})
		require.NoError(t, err)
		mu.Lock()
		if echo {
			require.Equal(t, []string{"[build] Step 1/1 : FROM scratch"}, lines, "HEPH_LOGS or WithLogsToTest: every line")
		} else {
			require.Empty(t, lines, "a quick build says nothing")
		}
		mu.Unlock()
	}
}

func TestConcurrentStartsWithPolicyAlwaysShareOnePull(t *testing.T) {
	p := newPullRecorder()
	p.AddToRegistry("app:1", engine.Image{})
	p.AddImage("app:1", engine.Image{})
	_, release := blockPulls(p.Fake)
	o := imagesOrchestrator(t, p, nil)

	const callers = 3
	errs := make(chan error, callers)
	for range callers {
		go func() {
			c, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "app:1", PullPolicy: PullPolicy{Always: true}})
			if c != nil {
				err = errors.Join(err, c.Terminate(context.Background()))
			}
			errs <- err
		}()
	}
	// Every caller waits on the pull (the image's inspect comes first, so a
	// context that reports its first Done call would tell too early).
	require.Eventually(t, func() bool { return o.jobs.Waiting() == callers }, 10*time.Second, time.Millisecond)
	close(release)
	for range callers {
		require.NoError(t, <-errs)
	}
	refs, _ := p.pulls()
	require.Len(t, refs, 1, "one daemon pull for every start that asked for it at once")
}

func TestABadBuildNameIsReportedOnce(t *testing.T) {
	err := FromDockerfile(t.TempDir(), Build{Name: "Bad Name"}).check()
	require.ErrorContains(t, err, `Build.Name "Bad Name"`)
	require.NotContains(t, err.Error(), "NewContainer", "the name of the placeholder image is not the user's mistake")
}
