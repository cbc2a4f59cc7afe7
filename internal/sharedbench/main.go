// Command sharedbench is heph's shared-container benchmark (`make
// bench-shared`): a suite of N small test packages, every one of which
// needs the same service, run with `go test ./...` — once with the service
// shared (ContainerRequest.Shared), once not — in the same run, and the
// wall time of each. The packages are generated in a temporary module that
// uses this heph; they are compiled before anything is timed.
//
// The service is heph's test app serving HTTP on 8080, ready after -delay
// (a stand-in for a database that takes a moment to start); each package's
// test starts it, waits for GET /healthz and reads /hostname. Each test
// process records when it ran, so the report also gives the longest time,
// in the shared run, during which no test process held the container: the
// gap the idle time (HEPH_SHARED_IDLE) must cover for the next package to
// take it over.
//
//	go run ./internal/sharedbench -packages 6 -rounds 2
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heph-go/heph/internal/daemon"
	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/shared"
	"github.com/heph-go/heph/internal/testenv"
)

const pkgTest = `package PKG

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/wait"
)

func TestMain(m *testing.M) {
	began := time.Now()
	code := m.Run()
	line := fmt.Sprintf("PKG %d %d\n", began.UnixNano(), time.Now().UnixNano())
	f, err := os.OpenFile(os.Getenv("BENCH_TIMES"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err == nil {
		_, _ = f.WriteString(line)
		_ = f.Close()
	}
	os.Exit(code)
}

func TestNeedsTheService(t *testing.T) {
	r := heph.NewContainer(os.Getenv("BENCH_IMAGE")).WithName(os.Getenv("BENCH_SERVICE")).
		WithCmd("-http", ":8080", "-http-delay", os.Getenv("BENCH_DELAY")).WithExposedPorts("8080").
		WithWaitStrategy(wait.ForHTTP("/healthz"))
	if os.Getenv("BENCH_SHARED") == "1" {
		r = r.Shared()
	}
	c := r.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Endpoint("8080")+"/hostname", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if got := strings.TrimSpace(string(b)); got != os.Getenv("BENCH_SERVICE") {
		t.Fatalf("hostname %q", got)
	}
}
`

type run struct {
	shared  bool
	wall    time.Duration
	created int
	maxGap  time.Duration // longest time without a live test process, between the first start and the last end
}

func main() {
	packages := flag.Int("packages", 6, "test packages in the suite")
	rounds := flag.Int("rounds", 1, "times to run each mode (alternating)")
	delay := flag.Duration("delay", time.Second, "how long the service takes to be ready")
	flag.Parse()
	if err := bench(*packages, *rounds, *delay); err != nil {
		fmt.Fprintln(os.Stderr, "sharedbench:", err)
		os.Exit(1)
	}
}

func bench(packages, rounds int, delay time.Duration) error {
	image, err := testenv.BuildImage()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "heph-sharedbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := generate(dir, packages); err != nil {
		return err
	}
	// Compile everything once: the timed runs find the test binaries cached.
	if out, err := goTest(dir, nil, "-run", "^$"); err != nil {
		return fmt.Errorf("compile the suite: %v\n%s", err, out)
	}
	ctx := context.Background()
	api, _, err := daemon.Connect(ctx, daemon.OSEnv())
	if err != nil {
		return err
	}
	defer api.Close()

	var runs []run
	for i := range rounds * 2 {
		r, err := once(ctx, api, dir, image, delay, i%2 == 0)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	fmt.Printf("%d packages (go test ./..., -p %d), each needing the same service (ready %s after start):\n", packages, runtime.GOMAXPROCS(0), delay)
	fmt.Printf("%-12s %10s %10s %s\n", "mode", "wall", "created", "longest gap between holders")
	var sumShared, sumNot time.Duration
	for _, r := range runs {
		mode := "not shared"
		if r.shared {
			mode = "shared"
			sumShared += r.wall
		} else {
			sumNot += r.wall
		}
		gap := "-"
		if r.shared {
			gap = r.maxGap.Round(time.Millisecond).String()
		}
		fmt.Printf("%-12s %10s %10d %s\n", mode, r.wall.Round(10*time.Millisecond), r.created, gap)
	}
	fmt.Printf("shared / not shared wall time: %.2f\n", float64(sumShared)/float64(sumNot))
	return nil
}

// once runs the suite in one mode with a service of its own and returns
// what it measured; a shared container it made is removed afterwards.
func once(ctx context.Context, api engine.API, dir, image string, delay time.Duration, sharedMode bool) (run, error) {
	r := run{shared: sharedMode}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	service := "bench" + hex.EncodeToString(b)
	times := filepath.Join(dir, service+".times")
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, _ := api.Events(ectx, engine.Filter{}.Add("type", "container").Add("event", "create").Add("label", labels.Service+"="+service))
	env := []string{"BENCH_IMAGE=" + image, "BENCH_SERVICE=" + service, "BENCH_DELAY=" + delay.String(), "BENCH_TIMES=" + times}
	if sharedMode {
		env = append(env, "BENCH_SHARED=1")
	}
	began := time.Now()
	out, err := goTest(dir, env)
	r.wall = time.Since(began)
	if err != nil {
		return r, fmt.Errorf("go test ./... (shared %v): %v\n%s", sharedMode, err, out)
	}
	// The daemon sends the events of the run within moments; count them
	// until the stream is quiet.
	for quiet := false; !quiet; {
		select {
		case <-msgs:
			r.created++
		case <-time.After(500 * time.Millisecond):
			quiet = true
		}
	}
	r.maxGap, err = longestGap(times)
	if err != nil {
		return r, err
	}
	if sharedMode {
		err = removeShared(ctx, api, service)
	}
	return r, err
}

// removeShared removes the shared container of service at once (the
// benchmark does not wait out the idle time).
func removeShared(ctx context.Context, api engine.API, service string) error {
	cs, err := api.ContainerList(ctx, engine.Filter{}.Add("label", labels.Service+"="+service, labels.Shared))
	if err != nil {
		return err
	}
	store, err := shared.Open()
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	var errs []error
	for _, c := range cs {
		_, err := shared.Expiry{API: api, Store: store, Host: host}.Expire(ctx, c.Labels[labels.Shared], shared.Unheld)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// longestGap reads the processes' run times and returns the longest time,
// between the first start and the last end, when none ran.
func longestGap(path string) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	type span struct{ from, to int64 }
	var spans []span
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 3 {
			continue
		}
		from, _ := strconv.ParseInt(fs[1], 10, 64)
		to, _ := strconv.ParseInt(fs[2], 10, 64)
		spans = append(spans, span{from, to})
	}
	slices.SortFunc(spans, func(a, b span) int { return int(a.from - b.from) })
	var gap, end int64
	for i, s := range spans {
		if i > 0 && s.from > end {
			gap = max(gap, s.from-end)
		}
		end = max(end, s.to)
	}
	return time.Duration(gap), sc.Err()
}

// generate writes a module with n test packages into dir.
func generate(dir string, n int) error {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		return err
	}
	mod := "module sharedbench.example\n\ngo 1.24\n\nrequire github.com/heph-go/heph v0.0.0\n\nreplace github.com/heph-go/heph => " + root + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		return err
	}
	for i := range n {
		pkg := fmt.Sprintf("pkg%d", i+1)
		if err := os.MkdirAll(filepath.Join(dir, pkg), 0o755); err != nil {
			return err
		}
		src := strings.ReplaceAll(pkgTest, "PKG", pkg)
		if err := os.WriteFile(filepath.Join(dir, pkg, pkg+"_test.go"), []byte(src), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// goTest runs go test -count=1 ./... in dir with env added.
func goTest(dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", append([]string{"test", "-count=1"}, append(args, "./...")...)...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GOFLAGS=-mod=mod"), env...)
	return cmd.CombinedOutput()
}
