// Package testenv is the shared machinery of heph's integration tests: it
// builds the test image from internal/testapp once per test process, gives
// each test an Orchestrator torn down with the test, starts registries on
// 127.0.0.1, and checks at the end of a run that nothing heph-labelled made by
// the run is left on the daemon.
//
// Every helper fails the test loudly when Docker is not there: integration
// tests never skip.
package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/daemon"
	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/labels"
	"github.com/moby/moby/client"
)

// Orchestrator returns a fresh Orchestrator whose resources are torn down,
// and which is closed, when the test ends. It fails the test at once when no
// Docker daemon answers.
func Orchestrator(t testing.TB) *heph.Orchestrator {
	t.Helper()
	o, err := heph.NewOrchestrator()
	if err != nil {
		t.Fatalf("integration tests need a Docker daemon: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := o.Teardown(ctx); err != nil {
			t.Errorf("teardown: %v", err)
		}
		_ = o.Close()
	})
	return o
}

// Docker returns a raw SDK client for what the tests do behind heph's back
// (tag, push, remove images; look for leftovers).
func Docker(t testing.TB) *client.Client {
	t.Helper()
	c, err := rawClient()
	if err != nil {
		t.Fatalf("integration tests need a Docker daemon: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rawClient is the SDK's client for the daemon heph finds (ssh:// and
// contexts included, which client.FromEnv does not reach).
func rawClient() (*client.Client, error) {
	eps, err := daemon.Find(daemon.OSEnv())
	if err != nil {
		return nil, err
	}
	ep := eps[0]
	for _, e := range eps {
		if e.IsSocket() && pathExists(strings.TrimPrefix(e.Host, "unix://")) {
			ep = e
			break
		}
	}
	c, err := engine.SDKClient(ep)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("ping %s: %w", c.DaemonHost(), err)
	}
	return c, nil
}

var (
	images   = map[string]string{}
	imagesMu sync.Mutex
)

// Image returns the tag of the test image (a FROM scratch image holding the
// static internal/testapp binary as /testapp, its entrypoint), building it
// the first time a process asks. The tag carries a hash of the sources, so an
// image already on the daemon from an earlier run is reused as it is.
func Image(t testing.TB) string {
	t.Helper()
	return build(t, "Dockerfile", "testapp")
}

// HealthImage is Image with a HEALTHCHECK (/testapp health, every 200 ms):
// the container is healthy once /tmp/healthy exists.
func HealthImage(t testing.TB) string {
	t.Helper()
	return build(t, "health.Dockerfile", "testapp-health")
}

// BuildImage is Image for code without a test (TestMain): it returns the
// tag, or why the image could not be built.
func BuildImage() (string, error) { return cachedBuild("Dockerfile", "testapp") }

func build(t testing.TB, dockerfile, name string) string {
	t.Helper()
	tag, err := cachedBuild(dockerfile, name)
	if err != nil {
		t.Fatalf("build the test image: %v", err)
	}
	return tag
}

func cachedBuild(dockerfile, name string) (string, error) {
	imagesMu.Lock()
	defer imagesMu.Unlock()
	if tag, ok := images[dockerfile]; ok {
		return tag, nil
	}
	tag, err := buildImage(dockerfile, name)
	if err != nil {
		return "", err
	}
	images[dockerfile] = tag
	return tag, nil
}

// SourceDir is the directory of internal/testapp.
func SourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testapp")
}

func buildImage(dockerfile, name string) (string, error) {
	src := SourceDir()
	hash, err := hashSources(src, dockerfile)
	if err != nil {
		return "", err
	}
	tag := "heph-build/" + name + ":" + hash[:12]

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	raw, err := rawClient()
	if err != nil {
		return "", err
	}
	defer raw.Close()
	if _, err := raw.ImageInspect(ctx, tag); err == nil {
		return tag, nil
	}

	dir, err := os.MkdirTemp("", "heph-testapp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "testapp"), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build internal/testapp: %v\n%s", err, out)
	}
	df, err := os.ReadFile(filepath.Join(src, dockerfile))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), df, 0o644); err != nil {
		return "", err
	}
	o, err := heph.NewOrchestrator()
	if err != nil {
		return "", err
	}
	defer o.Close()
	built, err := o.BuildImage(ctx, dir, heph.Build{Name: name})
	if err != nil {
		return "", err
	}
	// Also under the tag of the sources' hash, found without a go build by
	// the next test process.
	if _, err := raw.ImageTag(ctx, client.ImageTagOptions{Source: built, Target: tag}); err != nil {
		return "", err
	}
	return tag, nil
}

// hashSources hashes the Go sources of the test app, the Dockerfile and the
// Go version: the image is rebuilt exactly when one of them changes.
func hashSources(dir, dockerfile string) (string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return "", err
	}
	names = append(names, filepath.Join(dir, dockerfile))
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version())
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := os.Open(n)
		if err != nil {
			return "", err
		}
		fmt.Fprintln(h, filepath.Base(n))
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Main runs the tests of a package and then checks that the daemon holds no
// container, network or volume labelled heph.managed that this run made:
// this process (heph.pid and heph.host are this process's) or a child
// process it started (heph.run is this run's: see runID). Use it as
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
func Main(m *testing.M) int {
	return Check(m.Run())
}

// runID is the test run this process started, "" when it joined its
// parent's. A process that imports testenv and finds no run id in
// labels.EnvRun starts a run: it sets a new id there, before any
// Orchestrator is made, which its child processes inherit; everything heph
// makes in any of them is labelled heph.run with it, and this process's
// Check sees it. A child that inherits the id joins the run: what it makes
// is its parent's to check, and its own Check looks at its pid only (the
// parent's resources are still in use).
var runID = func() string {
	if os.Getenv(labels.EnvRun) != "" {
		return ""
	}
	id := "run-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	os.Setenv(labels.EnvRun, id)
	return id
}()

// Check returns code, or 1 when the daemon holds heph resources this run
// made (see Leftovers) or shared containers past their idle time (see
// SharedLeftovers), after saying which. TestMain functions that do more
// than run the tests end with os.Exit(testenv.Check(code)).
func Check(code int) int {
	err := SharedLeftovers(context.Background())
	if err = errors.Join(err, Leftovers(context.Background(), os.Getpid())); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		return 1
	}
	if code == 0 {
		fmt.Fprintln(os.Stderr, "testenv: no heph.managed container, network or volume left by this run")
	}
	return code
}

// Leftovers reports every heph.managed container, network and volume made by
// the process pid on this host, or by any process of the run this process
// started (the heph.run label, child processes included: see runID); nil
// when there is none.
func Leftovers(ctx context.Context, pid int) error {
	c, err := rawClient()
	if err != nil {
		return fmt.Errorf("look for leftovers: %w", err)
	}
	defer c.Close()
	host, _ := os.Hostname()
	filters := []client.Filters{make(client.Filters).Add("label", heph.LabelManaged+"=true", heph.LabelPID+"="+strconv.Itoa(pid), heph.LabelHost+"="+host)}
	if runID != "" {
		filters = append(filters, make(client.Filters).Add("label", heph.LabelManaged+"=true", labels.Run+"="+runID))
	}
	var left []string
	seen := map[string]bool{}
	add := func(id, what string) {
		if !seen[id] {
			seen[id] = true
			left = append(left, what)
		}
	}
	for _, f := range filters {
		cs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
		if err != nil {
			return err
		}
		for _, x := range cs.Items {
			add(x.ID, "container "+strings.Join(x.Names, ",")+" ("+string(x.State)+", test "+strconv.Quote(x.Labels[heph.LabelTest])+", pid "+x.Labels[heph.LabelPID]+")")
		}
		ns, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: f})
		if err != nil {
			return err
		}
		for _, x := range ns.Items {
			add(x.ID, "network "+x.Name+" (test "+strconv.Quote(x.Labels[heph.LabelTest])+", pid "+x.Labels[heph.LabelPID]+")")
		}
		vs, err := c.VolumeList(ctx, client.VolumeListOptions{Filters: f})
		if err != nil {
			return err
		}
		for _, x := range vs.Items {
			// Podman ORs a volume list's label filters: keep only ours.
			mine := x.Labels[heph.LabelPID] == strconv.Itoa(pid) && x.Labels[heph.LabelHost] == host
			if x.Labels[heph.LabelManaged] != "true" || !(mine || (runID != "" && x.Labels[labels.Run] == runID)) {
				continue
			}
			add("volume "+x.Name, "volume "+x.Name)
		}
	}
	if len(left) > 0 {
		return errors.New("the daemon still holds heph resources made by this run:\n  " + strings.Join(left, "\n  "))
	}
	return nil
}

func pathExists(p string) bool { _, err := os.Stat(p); return err == nil }
