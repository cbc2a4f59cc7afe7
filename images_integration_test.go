//go:build integration

package heph_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/imagepull"
	"github.com/heph-go/heph/internal/testenv"
)

// Images against registries on 127.0.0.1: credentials from every source,
// refusals, pull policies, the mirror rule, Dockerfile builds and images
// from Go packages. Tests that set environment variables do not run in
// parallel.

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// authsJSON is a config file's JSON with basic credentials for each
// registry: addr → [user, password].
func authsJSON(creds map[string][2]string) string {
	auths := map[string]map[string]string{}
	for addr, c := range creds {
		auths[addr] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(c[0] + ":" + c[1]))}
	}
	b, _ := json.Marshal(map[string]any{"auths": auths})
	return string(b)
}

// dockerConfig points DOCKER_CONFIG at a new directory holding config.json
// with content, and clears DOCKER_AUTH_CONFIG; it returns the file's path.
func dockerConfig(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("DOCKER_AUTH_CONFIG", "")
	return path
}

// pushPrivate pushes the test image to reg as heph/<repo>:1 and removes the
// local tag, so a start has to pull it with reg's credentials.
func pushPrivate(t *testing.T, raw *client.Client, reg *testenv.AuthRegistry, repo string) string {
	t.Helper()
	ref := reg.Addr + "/heph/" + repo + ":1"
	testenv.PushAuth(t, raw, testenv.Image(t), ref, testenv.Auth(reg.Addr, reg.User, reg.Password))
	testenv.RemoveImage(t, raw, ref)
	t.Cleanup(func() { testenv.RemoveImage(t, raw, ref) })
	return ref
}

// serving is a request for ref serving "ok" over HTTP on 8080.
func serving(ref string) heph.ContainerRequest {
	return heph.NewContainer(ref).WithCmd("-http", ":8080").WithExposedPorts("8080")
}

func requireServes(t *testing.T, c *heph.Container) {
	t.Helper()
	require.Equal(t, "ok", strings.TrimSpace(get(t, "http://"+endpoint(t, c, "8080/tcp")+"/")))
}

func TestCredentialsFromTheConfigFile(t *testing.T) {
	raw := testenv.Docker(t)
	reg := testenv.BasicAuthRegistry(t, "alice", "pw-"+randomHex(8))
	ref := pushPrivate(t, raw, reg, "config-file")
	dockerConfig(t, authsJSON(map[string][2]string{reg.Addr: {reg.User, reg.Password}}))

	before := reg.Manifests()
	requireServes(t, serving(ref).Start(t))
	require.Greater(t, reg.Manifests(), before, "pulled from the registry with the config file's credentials")
}

func TestTokenRegistryWithAnIdentityToken(t *testing.T) {
	raw := testenv.Docker(t)
	reg := testenv.TokenAuthRegistry(t, "bob", "pw-"+randomHex(8))
	ref := pushPrivate(t, raw, reg, "token")
	// What docker login leaves for a registry that hands out refresh tokens.
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{reg.Addr: map[string]string{"identitytoken": reg.IdentityToken}}})
	dockerConfig(t, string(cfg))

	tokens := reg.Tokens()
	requireServes(t, serving(ref).Start(t))
	require.Greater(t, reg.Tokens(), tokens, "the daemon traded the identity token for registry tokens (OAuth2 over the plain-HTTP realm)")
}

func TestCredentialHelperOnPath(t *testing.T) {
	raw := testenv.Docker(t)
	perRegistry := testenv.BasicAuthRegistry(t, "carol", "pw-"+randomHex(8))
	viaStore := testenv.BasicAuthRegistry(t, "dave", "pw-"+randomHex(8))
	ref1 := pushPrivate(t, raw, perRegistry, "helper")
	ref2 := pushPrivate(t, raw, viaStore, "store")
	helper := testenv.CredentialHelper(t, "hephtest", map[string][2]string{
		perRegistry.Addr: {perRegistry.User, perRegistry.Password},
		viaStore.Addr:    {viaStore.User, viaStore.Password},
	})
	t.Setenv("PATH", helper.Dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	cfg, _ := json.Marshal(map[string]any{
		"credHelpers": map[string]string{perRegistry.Addr: "hephtest"},
		"credsStore":  "hephtest",
		// Ignored: the helpers come first, as with the docker CLI.
		"auths": map[string]any{perRegistry.Addr: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("carol:wrong"))}},
	})
	dockerConfig(t, string(cfg))

	cs := heph.StartAll(t, serving(ref1), serving(ref2))
	requireServes(t, cs[0])
	requireServes(t, cs[1])
	require.ElementsMatch(t, []string{perRegistry.Addr, viaStore.Addr}, helper.Asked(), "docker-credential-hephtest get was asked for each registry")
}

func TestDockerAuthConfigComesBeforeTheConfigFile(t *testing.T) {
	raw := testenv.Docker(t)
	reg := testenv.BasicAuthRegistry(t, "erin", "pw-"+randomHex(8))
	ref := pushPrivate(t, raw, reg, "ci")
	dockerConfig(t, authsJSON(map[string][2]string{reg.Addr: {reg.User, "stale-password"}}))
	t.Setenv("DOCKER_AUTH_CONFIG", authsJSON(map[string][2]string{reg.Addr: {reg.User, reg.Password}}))

	requireServes(t, serving(ref).Start(t))
}

func TestTwoRegistriesWithDifferentCredentials(t *testing.T) {
	raw := testenv.Docker(t)
	a := testenv.BasicAuthRegistry(t, "frank", "pw-a-"+randomHex(8))
	b := testenv.TokenAuthRegistry(t, "grace", "pw-b-"+randomHex(8))
	refA, refB := pushPrivate(t, raw, a, "two-a"), pushPrivate(t, raw, b, "two-b")
	dockerConfig(t, authsJSON(map[string][2]string{a.Addr: {a.User, a.Password}, b.Addr: {b.User, b.Password}}))

	cs := heph.StartAll(t, serving(refA).WithName("a"), serving(refB).WithName("b"))
	requireServes(t, cs[0])
	requireServes(t, cs[1])
}

// recorder is a testing.TB that keeps every line logged and the fatal
// message; Fatalf ends the goroutine as the real one does.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	lines  []string
	failed bool
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.lines = append(r.lines, s)
	r.mu.Unlock()
}
func (r *recorder) Log(args ...any)                 { r.add(fmt.Sprint(args...)) }
func (r *recorder) Logf(format string, args ...any) { r.add(fmt.Sprintf(format, args...)) }
func (r *recorder) Errorf(format string, args ...any) {
	r.add(fmt.Sprintf(format, args...))
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}
func (r *recorder) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// startRecorded runs req.Start with a recorder standing in for t, in a
// goroutine of its own, and returns what it logged.
func startRecorded(t *testing.T, req heph.ContainerRequest) *recorder {
	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		req.Start(rec)
	}()
	<-done
	return rec
}

func TestWrongCredentialsAreRejectedWithoutLeakingThem(t *testing.T) {
	imagepull.First, imagepull.Every = time.Millisecond, 5*time.Millisecond // report whatever can be reported
	t.Cleanup(func() { imagepull.First, imagepull.Every = 2*time.Second, 5*time.Second })
	raw := testenv.Docker(t)
	basic := testenv.BasicAuthRegistry(t, "heidi", "pw-"+randomHex(8))
	token := testenv.TokenAuthRegistry(t, "ivan", "pw-"+randomHex(8))
	refBasic, refToken := pushPrivate(t, raw, basic, "wrong-basic"), pushPrivate(t, raw, token, "wrong-token")
	wrong := "wrong-" + randomHex(8)
	path := dockerConfig(t, authsJSON(map[string][2]string{basic.Addr: {basic.User, wrong}, token.Addr: {token.User, wrong}}))

	for _, tc := range []struct {
		reg *testenv.AuthRegistry
		ref string
	}{{basic, refBasic}, {token, refToken}} {
		secrets := []string{wrong, tc.reg.Password, base64.StdEncoding.EncodeToString([]byte(tc.reg.User + ":" + wrong))}
		refused := tc.reg.Refused()

		rec := startRecorded(t, serving(tc.ref))
		log := rec.text()
		require.True(t, rec.Failed(), "the start failed")
		t.Logf("the test log of the failed start:\n%s", log)
		require.Contains(t, log, "registry "+tc.reg.Addr+" rejected the credentials from "+path+` (auths["`+tc.reg.Addr+`"])`)
		require.Contains(t, log, "docker login "+tc.reg.Addr)

		o := testenv.Orchestrator(t)
		_, err := o.CreateContainer(context.Background(), heph.ContainerConfig{Image: tc.ref})
		require.ErrorIs(t, err, heph.ErrRegistryAuth)
		require.False(t, errors.Is(err, heph.ErrImageNotFound), "a refusal is not a missing image: %v", err)
		require.Contains(t, err.Error(), `heph: pull image "`+tc.ref+`": registry `+tc.reg.Addr+" rejected the credentials")
		for _, s := range secrets {
			require.NotContains(t, log, s, "no secret in the test log")
			require.NotContains(t, err.Error(), s, "no secret in the error")
		}
		require.Greater(t, tc.reg.Refused(), refused, "the registry did refuse")
	}

	// Without any credentials the message says where heph looked.
	dockerConfig(t, "{}")
	_, err := testenv.Orchestrator(t).CreateContainer(context.Background(), heph.ContainerConfig{Image: refBasic})
	require.ErrorIs(t, err, heph.ErrRegistryAuth)
	require.Contains(t, err.Error(), "registry "+basic.Addr+" rejected a pull with no credentials (looked in ")
}

// imageID returns the ID of a local image.
func imageID(t *testing.T, raw *client.Client, ref string) string {
	t.Helper()
	res, err := raw.ImageInspect(context.Background(), ref)
	require.NoError(t, err)
	return res.ID
}

// runningImage returns the ID of the image c runs.
func runningImage(t *testing.T, raw *client.Client, c *heph.Container) string {
	t.Helper()
	res, err := raw.ContainerInspect(context.Background(), c.ID(), client.ContainerInspectOptions{})
	require.NoError(t, err)
	return res.Container.Image
}

func TestPullPolicyAlwaysPicksUpARepushedTag(t *testing.T) {
	t.Parallel()
	raw := testenv.Docker(t)
	ref := testenv.Registry(t) + "/heph/moving:dev"
	first, second := testenv.Image(t), testenv.HealthImage(t)
	testenv.Push(t, raw, first, ref)
	t.Cleanup(func() { testenv.RemoveImage(t, raw, ref) })

	testenv.Push(t, raw, second, ref) // the tag moves on in the registry…
	_, err := raw.ImageTag(context.Background(), client.ImageTagOptions{Source: first, Target: ref})
	require.NoError(t, err) // …while the local copy is the old one

	stale := serving(ref).Start(t)
	require.Equal(t, imageID(t, raw, first), runningImage(t, raw, stale), "the default policy uses the local copy")
	fresh := serving(ref).WithPullPolicy(heph.PullPolicy{Always: true}).Start(t)
	require.Equal(t, imageID(t, raw, second), runningImage(t, raw, fresh), "always pulls the tag as it is now")
	requireServes(t, fresh)
}

func TestPullPolicyOlderThanPullsOnlyWhenDue(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the pull records of this test only
	raw := testenv.Docker(t)
	ref := testenv.Registry(t) + "/heph/aging:1"
	testenv.Push(t, raw, testenv.Image(t), ref)
	testenv.RemoveImage(t, raw, ref)
	t.Cleanup(func() { testenv.RemoveImage(t, raw, ref) })
	o := testenv.Orchestrator(t)
	calls := heph.CountImageCalls(o)

	for i, step := range []struct {
		age   time.Duration
		pulls int
		why   string
	}{
		{time.Hour, 1, "missing: pulled"},
		{time.Hour, 1, "pulled a moment ago: not due"},
		{time.Hour, 1, "still not due"},
		{time.Nanosecond, 2, "due at once"},
		{time.Hour, 2, "and recorded again"},
	} {
		c, err := o.CreateContainer(context.Background(), heph.ContainerConfig{Image: ref, PullPolicy: heph.PullPolicy{OlderThan: step.age}})
		require.NoError(t, err)
		require.NoError(t, c.Terminate(context.Background()))
		require.Equal(t, step.pulls, calls.Pulls(ref), "step %d: %s", i+1, step.why)
	}
}

func TestRegistryMirrorServesDockerHubImages(t *testing.T) {
	raw := testenv.Docker(t)
	mirror := testenv.Registry(t)
	name := "heph-mirrored-" + randomHex(4)
	mirrored := mirror + "/library/" + name + ":1"
	testenv.Push(t, raw, testenv.Image(t), mirrored)
	testenv.RemoveImage(t, raw, mirrored)
	t.Cleanup(func() { testenv.RemoveImage(t, raw, mirrored) })
	t.Setenv(heph.EnvRegistryMirror, mirror)

	c := serving("docker.io/library/" + name + ":1").Start(t)
	requireServes(t, c)
	info, err := c.Inspect(context.Background())
	require.NoError(t, err)
	require.Equal(t, mirrored, info.Image)
	require.Equal(t, name, c.Service())

	_, err = testenv.Orchestrator(t).CreateContainer(context.Background(), heph.ContainerConfig{Image: name + ":2"})
	require.ErrorIs(t, err, heph.ErrImageNotFound)
	require.Contains(t, err.Error(), `heph: pull image "`+name+`:2 (as `+mirror+"/library/"+name+`:2)": `)
}

// buildContext writes a context directory with files and a file unique to
// this run (so the first build of a run really builds), and removes the
// image built from it when the test ends.
func buildContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ctx")
	files["run-id"] = randomHex(8)
	for name, content := range files {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	return dir
}

func TestFromDockerfileArgsTargetAndCache(t *testing.T) {
	t.Parallel()
	raw := testenv.Docker(t)
	dir := buildContext(t, map[string]string{
		"docker/test.Dockerfile": "FROM " + testenv.Image(t) + " AS base\nARG GREETING=default\nENV GREETING=${GREETING}\n" +
			"FROM base AS wanted\nENV STAGE=wanted\nCOPY run-id /run-id\n" +
			"FROM base AS last\nENV STAGE=last\n",
		"ignored/big.bin": "left out by .dockerignore",
		".dockerignore":   "ignored\n",
	})
	b := heph.Build{Dockerfile: "docker/test.Dockerfile", Args: map[string]string{"GREETING": "hello"}, Target: "wanted", Labels: map[string]string{"team": "core"}}
	o := testenv.Orchestrator(t)
	calls := heph.CountImageCalls(o)

	var tag string
	for i := range 3 {
		c, err := heph.FromDockerfile(dir, b).WithCmd("-http", ":8080").WithExposedPorts("8080").Run(context.Background(), o)
		require.NoError(t, err)
		info, err := c.Inspect(context.Background())
		require.NoError(t, err)
		if i == 0 {
			tag = info.Image
			t.Cleanup(func() { testenv.RemoveImage(t, raw, tag) })
		}
		require.Equal(t, tag, info.Image)
		env := get(t, "http://"+endpoint(t, c, "8080/tcp")+"/env")
		require.Contains(t, env, "GREETING=hello\n", "the build argument reached the image")
		require.Contains(t, env, "STAGE=wanted\n", "the target stage was built")
		require.NoError(t, c.Terminate(context.Background()))
		require.Equal(t, 1, calls.Builds(tag), "start %d: built once, then found by its content hash", i+1)
		if i == 1 {
			// A touch and an ignored file change nothing.
			future := time.Now().Add(time.Hour)
			require.NoError(t, os.Chtimes(filepath.Join(dir, "run-id"), future, future))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "ignored", "big.bin"), []byte("changed"), 0o644))
		}
	}
	require.Regexp(t, `^heph-build/ctx:[0-9a-f]{12}$`, tag)
	img, err := raw.ImageInspect(context.Background(), tag)
	require.NoError(t, err)
	require.Equal(t, "core", img.Config.Labels["team"])
	require.Equal(t, tag[len("heph-build/ctx:"):], img.Config.Labels[heph.LabelBuild][:12])
}

func TestFromDockerfileFailingStepShowsItsOutput(t *testing.T) {
	t.Parallel()
	marker := "step-output-" + randomHex(4)
	dir := buildContext(t, map[string]string{
		"Dockerfile": "FROM " + testenv.Image(t) + "\nCOPY run-id /run-id\nRUN [\"/testapp\", \"-log\", \"" + marker + "\", \"-exit\", \"3\"]\n",
	})
	rec := startRecorded(t, heph.FromDockerfile(dir, heph.Build{}))
	require.True(t, rec.Failed())
	log := rec.text()
	t.Logf("the failed start:\n%s", log)
	require.Contains(t, log, marker, "the failing step's output")
	require.Contains(t, log, "returned a non-zero code: 3")
	require.Regexp(t, `Step \d/\d : RUN \["/testapp"`, log)
}

func TestFromDockerfileBaseImageFromAPrivateRegistry(t *testing.T) {
	raw := testenv.Docker(t)
	reg := testenv.BasicAuthRegistry(t, "judy", "pw-"+randomHex(8))
	base := pushPrivate(t, raw, reg, "base")
	dockerConfig(t, authsJSON(map[string][2]string{reg.Addr: {reg.User, reg.Password}}))
	dir := buildContext(t, map[string]string{"Dockerfile": "ARG BASE\nFROM ${BASE}\nCOPY run-id /run-id\n"})

	o := testenv.Orchestrator(t)
	tag, err := o.BuildImage(context.Background(), dir, heph.Build{Args: map[string]string{"BASE": base}})
	require.NoError(t, err, "the base image was pulled with the registry's credentials")
	t.Cleanup(func() { testenv.RemoveImage(t, raw, tag) })

	dockerConfig(t, "{}")
	testenv.RemoveImage(t, raw, base) // so the next build has to pull it
	dir2 := buildContext(t, map[string]string{"Dockerfile": "FROM " + base + "\nCOPY run-id /run-id\n"})
	_, err = o.BuildImage(context.Background(), dir2, heph.Build{})
	require.Error(t, err, "without credentials the daemon cannot pull the base image")
	require.Contains(t, err.Error(), "no basic auth credentials")
}

func TestFromGoPackage(t *testing.T) {
	t.Parallel()
	raw := testenv.Docker(t)
	o := testenv.Orchestrator(t)
	calls := heph.CountImageCalls(o)
	req := heph.FromGoPackage("github.com/heph-go/heph/internal/testapp").
		WithCmd("-http", ":8080", "-write", "/tmp/heph/written=yes", "-cat", "/etc/passwd").WithExposedPorts("8080")
	start := func() (*heph.Container, time.Duration) {
		t.Helper()
		began := time.Now()
		c, err := req.Run(context.Background(), o)
		require.NoError(t, err)
		return c, time.Since(began)
	}

	// Whatever an earlier run left, start from no image.
	c, _ := start()
	info, err := c.Inspect(context.Background())
	require.NoError(t, err)
	tag := info.Image
	// Podman reports the name it qualified: localhost/heph-build/….
	require.Regexp(t, `^(localhost/)?heph-build/testapp:[0-9a-f]{12}$`, tag)
	require.NoError(t, c.Terminate(context.Background()))
	testenv.RemoveImage(t, raw, tag)
	loads := calls.Loads()

	c, first := start()
	requireServes(t, c)
	require.Equal(t, loads+1, calls.Loads(), "compiled and loaded")
	logs, err := c.Logs(context.Background())
	require.NoError(t, err)
	require.Contains(t, logs, "nonroot:x:65532:65532:", "the image has a non-root user")
	env := get(t, "http://"+endpoint(t, c, "8080/tcp")+"/env")
	require.Contains(t, env, "HOME=/home/nonroot\n")
	res, err := raw.ContainerInspect(context.Background(), c.ID(), client.ContainerInspectOptions{})
	require.NoError(t, err)
	require.Equal(t, "65532:65532", res.Container.Config.User)
	require.Equal(t, "running", string(res.Container.State.Status), "it wrote to /tmp as nonroot")
	require.NoError(t, c.Terminate(context.Background()))

	c, second := start()
	requireServes(t, c)
	require.Equal(t, loads+1, calls.Loads(), "the second start reuses the image: no load")
	require.Zero(t, calls.Builds(tag), "no builder")
	t.Logf("FromGoPackage(internal/testapp): first start (go build, assemble, load, run) %s; second start (go build from its cache, tag found, run) %s", first, second)

	img, err := raw.ImageInspect(context.Background(), tag)
	require.NoError(t, err)
	require.NotEmpty(t, img.Config.Labels[heph.LabelBuild])
}
