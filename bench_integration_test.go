//go:build integration

package heph_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/testenv"
)

// Benchmarks of heph against the raw SDK calls that do the same work, in
// the same run. Each iteration runs both contenders, in an order that
// alternates (heph first on even iterations, raw first on odd ones), so
// that neither always pays for a cold daemon or profits from the other's
// leftovers; each reports p50 and p90 of both sides and their ratio,
// heph/raw. What the raw side creates is labelled (rawLabels) and has no
// fixed name: a run cut short leaves nothing that breaks the next one,
// which removes what such a run left (sweepRaw).

// iterTB is a testing.TB for one benchmark iteration: heph registers its
// teardown with Cleanup, and finish runs it, as the end of a test would.
// Fatal and friends stop only the iteration's goroutine (as in a test):
// failed reports them.
type iterTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	errs     []string
	ctx      context.Context
	cancel   context.CancelFunc
}

func newIterTB(b testing.TB) *iterTB {
	ctx, cancel := context.WithCancel(context.Background())
	return &iterTB{TB: b, ctx: ctx, cancel: cancel}
}

func (t *iterTB) Cleanup(f func())         { t.mu.Lock(); t.cleanups = append(t.cleanups, f); t.mu.Unlock() }
func (t *iterTB) Context() context.Context { return t.ctx }
func (t *iterTB) Errorf(format string, args ...any) {
	t.mu.Lock()
	t.errs = append(t.errs, fmt.Sprintf(format, args...))
	t.mu.Unlock()
}
func (t *iterTB) Error(args ...any)                 { t.Errorf("%s", fmt.Sprint(args...)) }
func (t *iterTB) Fatalf(format string, args ...any) { t.Errorf(format, args...); t.FailNow() }
func (t *iterTB) Fatal(args ...any)                 { t.Error(args...); t.FailNow() }
func (t *iterTB) FailNow()                          { t.Fail(); panic(iterFailed{}) }
func (t *iterTB) Fail()                             { t.mu.Lock(); t.errs = append(t.errs, "failed"); t.mu.Unlock() }
func (t *iterTB) Failed() bool                      { t.mu.Lock(); defer t.mu.Unlock(); return len(t.errs) > 0 }

// iterFailed ends an iteration that called FailNow.
type iterFailed struct{}

// run calls f as the body of a test and then its cleanups; it returns the
// errors reported.
func (t *iterTB) run(f func(t *iterTB)) error {
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(iterFailed); !ok {
					panic(r)
				}
			}
		}()
		f(t)
	}()
	t.finish()
	if t.Failed() {
		return errors.New(fmt.Sprint(t.errs))
	}
	return nil
}

// finish runs the cleanups, as the end of a test would.
func (t *iterTB) finish() {
	t.cancel()
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

// raw is the same work done with the SDK alone.
type raw struct {
	c     *client.Client
	image string
}

func newRaw(b *testing.B) raw {
	r := raw{c: testenv.Docker(b), image: testenv.Image(b)}
	sweepRaw(b, r.c, false)
	b.Cleanup(func() { sweepRaw(b, r.c, true) })
	return r
}

func (r raw) network(ctx context.Context) (string, error) {
	res, err := r.c.NetworkCreate(ctx, "bench-raw-"+uuid.NewString()[:8], client.NetworkCreateOptions{Driver: "bridge", Labels: rawLabels()})
	return res.ID, err
}

// start does what heph's Start does for a request without a wait
// strategy: image inspect, create (on the network, with the alias), start,
// inspect.
func (r raw) start(ctx context.Context, netID string, cmd ...string) (string, error) {
	if _, err := r.c.ImageInspect(ctx, r.image); err != nil {
		return "", err
	}
	res, err := r.c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:   "bench-raw-" + uuid.NewString()[:8],
		Config: &container.Config{Image: r.image, Cmd: cmd, Hostname: "svc", Labels: rawLabels()},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			netID: {Aliases: []string{"svc"}},
		}},
	})
	if err != nil {
		return "", err
	}
	if _, err := r.c.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return res.ID, err
	}
	_, err = r.c.ContainerInspect(ctx, res.ID, client.ContainerInspectOptions{})
	return res.ID, err
}

func (r raw) remove(ctx context.Context, id string) error {
	_, err := r.c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	return err
}

// compare runs hephOnce and rawOnce b.N times each, alternating which goes
// first, and reports p50 and p90 of each and the ratios heph/raw. An
// error of either stops the benchmark (from this goroutine).
func compare(b *testing.B, hephOnce, rawOnce func() (time.Duration, error)) {
	b.Helper()
	var hephT, rawT []float64
	for i := 0; i < b.N; i++ {
		sides := []struct {
			name string
			once func() (time.Duration, error)
			into *[]float64
		}{{"heph", hephOnce, &hephT}, {"raw", rawOnce, &rawT}}
		if i%2 == 1 {
			slices.Reverse(sides)
		}
		for _, s := range sides {
			d, err := s.once()
			if err != nil {
				b.Fatalf("iteration %d, %s: %v", i, s.name, err)
			}
			*s.into = append(*s.into, float64(d)/1e6)
		}
	}
	hp50, hp90 := percentile(hephT, 50), percentile(hephT, 90)
	rp50, rp90 := percentile(rawT, 50), percentile(rawT, 90)
	b.ReportMetric(hp50, "heph-p50-ms")
	b.ReportMetric(hp90, "heph-p90-ms")
	b.ReportMetric(rp50, "raw-p50-ms")
	b.ReportMetric(rp90, "raw-p90-ms")
	b.ReportMetric(hp50/rp50, "p50-heph/raw")
	b.ReportMetric(hp90/rp90, "p90-heph/raw")
	b.ReportMetric(0, "ns/op") // the per-side figures above are the measure
}

// percentile returns the p-th percentile (nearest rank) of xs.
func percentile(xs []float64, p int) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}

// BenchmarkStartAndTeardown: Start(t) of one container to running, plus its
// teardown (container, then the test network), against the SDK calls that
// do the same: network create, image inspect, container create, start,
// inspect, force remove, network remove.
func BenchmarkStartAndTeardown(b *testing.B) {
	r := newRaw(b)
	ctx := context.Background()
	req := heph.NewContainer(r.image).WithCmd("-http", ":8080")
	hephOnce := func() (time.Duration, error) {
		start := time.Now()
		err := newIterTB(b).run(func(t *iterTB) { req.Start(t) })
		return time.Since(start), err
	}
	rawOnce := func() (time.Duration, error) {
		start := time.Now()
		net, err := r.network(ctx)
		if err != nil {
			return 0, err
		}
		id, err := r.start(ctx, net, "-http", ":8080")
		err = errors.Join(err, r.remove(ctx, id))
		_, nerr := r.c.NetworkRemove(ctx, net, client.NetworkRemoveOptions{})
		return time.Since(start), errors.Join(err, nerr)
	}
	// The default orchestrator and its watchdog are one-time costs of heph;
	// both sides warm the daemon's caches.
	for _, once := range []func() (time.Duration, error){hephOnce, rawOnce} {
		if _, err := once(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	compare(b, hephOnce, rawOnce)
}

// BenchmarkTerminate: heph's Terminate of a running container that ignores
// SIGTERM (a force remove, no grace period) against the raw force remove:
// the same daemon work, so the ratio is heph's own overhead (≈1 expected).
// The container's creation and start are outside the measure.
func BenchmarkTerminate(b *testing.B) {
	r := newRaw(b)
	ctx := context.Background()
	o := testenv.Orchestrator(b)
	req := heph.NewContainer(r.image).WithCmd("-ignore-sigterm")
	hephOnce := func() (time.Duration, error) {
		c, err := req.Run(ctx, o)
		if err != nil {
			return 0, err
		}
		start := time.Now()
		err = c.Terminate(ctx)
		return time.Since(start), err
	}
	rawOnce := func() (time.Duration, error) {
		res, err := r.c.ContainerCreate(ctx, client.ContainerCreateOptions{
			Name:   "bench-raw-" + uuid.NewString()[:8],
			Config: &container.Config{Image: r.image, Cmd: []string{"-ignore-sigterm"}, Labels: rawLabels()},
		})
		if err != nil {
			return 0, err
		}
		if _, err := r.c.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
			return 0, errors.Join(err, r.remove(ctx, res.ID))
		}
		start := time.Now()
		err = r.remove(ctx, res.ID)
		return time.Since(start), err
	}
	b.ResetTimer()
	compare(b, hephOnce, rawOnce)
}

// BenchmarkTenConcurrent: 10 containers started at once in one test, then
// torn down, against 10 goroutines doing the raw calls on one network.
func BenchmarkTenConcurrent(b *testing.B) {
	r := newRaw(b)
	ctx := context.Background()
	req := heph.NewContainer(r.image).WithCmd("-http", ":8080")
	const n = 10
	hephOnce := func() (time.Duration, error) {
		start := time.Now()
		err := newIterTB(b).run(func(t *iterTB) {
			reqs := make([]heph.ContainerRequest, n)
			for i := range reqs {
				reqs[i] = req
			}
			heph.StartAll(t, reqs...)
		})
		return time.Since(start), err
	}
	rawOnce := func() (time.Duration, error) {
		start := time.Now()
		net, err := r.network(ctx)
		if err != nil {
			return 0, err
		}
		ids := make([]string, n)
		errs := make([]error, 2*n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); ids[i], errs[i] = r.start(ctx, net, "-http", ":8080") }()
		}
		wg.Wait()
		for i := range n {
			if ids[i] == "" {
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); errs[n+i] = r.remove(ctx, ids[i]) }()
		}
		wg.Wait()
		_, nerr := r.c.NetworkRemove(ctx, net, client.NetworkRemoveOptions{})
		return time.Since(start), errors.Join(append(errs, nerr)...)
	}
	for _, once := range []func() (time.Duration, error){hephOnce, rawOnce} {
		if _, err := once(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	compare(b, hephOnce, rawOnce)
}

// benchLabel marks what the raw side of a benchmark creates.
const benchLabel = "heph.bench"

// rawLabels lets the leak check see what the raw side creates (heph.pid,
// heph.host, heph.run of this run) and sweepRaw find it (heph.bench).
func rawLabels() map[string]string {
	host, _ := os.Hostname()
	l := map[string]string{heph.LabelManaged: "true", heph.LabelPID: strconv.Itoa(os.Getpid()), heph.LabelHost: host, benchLabel: "raw"}
	if run := os.Getenv(labels.EnvRun); run != "" {
		l[labels.Run] = run
	}
	return l
}

// sweepRaw removes the containers and networks the raw side of a benchmark
// made on this host: this process's when mine, else those of processes
// that are gone (a run cut short).
func sweepRaw(b *testing.B, c *client.Client, mine bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	host, _ := os.Hostname()
	f := make(client.Filters).Add("label", benchLabel+"=raw", heph.LabelHost+"="+host)
	ours := func(l map[string]string) bool {
		pid, err := strconv.Atoi(l[heph.LabelPID])
		if err != nil {
			return false
		}
		if mine {
			return pid == os.Getpid()
		}
		return pid != os.Getpid() && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	}
	cs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		b.Error(err)
		return
	}
	for _, x := range cs.Items {
		if ours(x.Labels) {
			if _, err := c.ContainerRemove(ctx, x.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
				b.Error(err)
			}
		}
	}
	ns, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		b.Error(err)
		return
	}
	for _, x := range ns.Items {
		if ours(x.Labels) {
			if _, err := c.NetworkRemove(ctx, x.ID, client.NetworkRemoveOptions{}); err != nil {
				b.Error(err)
			}
		}
	}
}
