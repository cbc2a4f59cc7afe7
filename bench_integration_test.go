//go:build integration

package heph_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// iterTB is a testing.TB for one benchmark iteration: heph registers its
// teardown with Cleanup, and finish runs it, as the end of a test would.
type iterTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	ctx      context.Context
	cancel   context.CancelFunc
}

func newIterTB(b testing.TB) *iterTB {
	ctx, cancel := context.WithCancel(context.Background())
	return &iterTB{TB: b, ctx: ctx, cancel: cancel}
}

func (t *iterTB) Cleanup(f func())         { t.mu.Lock(); t.cleanups = append(t.cleanups, f); t.mu.Unlock() }
func (t *iterTB) Context() context.Context { return t.ctx }
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

func (r raw) network(ctx context.Context, b *testing.B) string {
	res, err := r.c.NetworkCreate(ctx, "bench-raw-net", client.NetworkCreateOptions{Driver: "bridge", Labels: rawLabels()})
	if err != nil {
		b.Fatal(err)
	}
	return res.ID
}

func (r raw) start(ctx context.Context, b *testing.B, netID, name string, cmd ...string) string {
	res, err := r.c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:   name,
		Config: &container.Config{Image: r.image, Cmd: cmd, Hostname: "svc", Labels: rawLabels()},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			netID: {Aliases: []string{"svc"}},
		}},
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := r.c.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, err := r.c.ContainerInspect(ctx, res.ID, client.ContainerInspectOptions{}); err != nil {
		b.Fatal(err)
	}
	return res.ID
}

func (r raw) remove(ctx context.Context, b *testing.B, id string) {
	if _, err := r.c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
		b.Fatal(err)
	}
}

// ratio runs heph's and the raw SDK's version of the same work alternately,
// b.N times each, and reports both and their ratio.
func ratio(b *testing.B, hephOnce, rawOnce func() time.Duration) {
	b.Helper()
	var hephTotal, rawTotal time.Duration
	for i := 0; i < b.N; i++ {
		rawTotal += rawOnce()
		hephTotal += hephOnce()
	}
	b.ReportMetric(float64(hephTotal.Milliseconds())/float64(b.N), "heph-ms/op")
	b.ReportMetric(float64(rawTotal.Milliseconds())/float64(b.N), "raw-ms/op")
	b.ReportMetric(float64(hephTotal)/float64(rawTotal), "heph/raw")
}

// BenchmarkStartAndTeardown: Start(t) of one container to running, plus its
// teardown (container, then the test network), against the SDK calls that
// do the same: network create, container create, start, inspect, force
// remove, network remove.
func BenchmarkStartAndTeardown(b *testing.B) {
	r := raw{c: testenv.Docker(b), image: testenv.Image(b)}
	ctx := context.Background()
	req := heph.NewContainer(r.image).WithCmd("-http", ":8080")
	warm := newIterTB(b)
	req.Start(warm) // the default orchestrator, the watchdog and the image check are one-time costs
	warm.finish()
	b.ResetTimer()
	ratio(b, func() time.Duration {
		t := newIterTB(b)
		start := time.Now()
		req.Start(t)
		t.finish()
		return time.Since(start)
	}, func() time.Duration {
		start := time.Now()
		net := r.network(ctx, b)
		id := r.start(ctx, b, net, "bench-raw-1", "-http", ":8080")
		r.remove(ctx, b, id)
		if _, err := r.c.NetworkRemove(ctx, net, client.NetworkRemoveOptions{}); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	})
}

// BenchmarkTeardownIgnoringSIGTERM: teardown of a container that ignores
// SIGTERM (heph force-removes at once) against a raw force remove.
func BenchmarkTeardownIgnoringSIGTERM(b *testing.B) {
	r := raw{c: testenv.Docker(b), image: testenv.Image(b)}
	ctx := context.Background()
	o := testenv.Orchestrator(b)
	req := heph.NewContainer(r.image).WithCmd("-ignore-sigterm")
	b.ResetTimer()
	ratio(b, func() time.Duration {
		c, err := req.Run(ctx, o)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := c.Terminate(ctx); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}, func() time.Duration {
		res, err := r.c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: r.image, Cmd: []string{"-ignore-sigterm"}, Labels: rawLabels()}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.c.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		r.remove(ctx, b, res.ID)
		return time.Since(start)
	})
}

// BenchmarkTenConcurrent: 10 containers started at once in one test, then
// torn down, against 10 goroutines doing the raw calls on one network.
func BenchmarkTenConcurrent(b *testing.B) {
	r := raw{c: testenv.Docker(b), image: testenv.Image(b)}
	ctx := context.Background()
	req := heph.NewContainer(r.image).WithCmd("-http", ":8080")
	const n = 10
	b.ResetTimer()
	ratio(b, func() time.Duration {
		t := newIterTB(b)
		start := time.Now()
		reqs := make([]heph.ContainerRequest, n)
		for i := range reqs {
			reqs[i] = req
		}
		heph.StartAll(t, reqs...)
		t.finish()
		return time.Since(start)
	}, func() time.Duration {
		start := time.Now()
		net := r.network(ctx, b)
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); ids[i] = r.start(ctx, b, net, "", "-http", ":8080") }()
		}
		wg.Wait()
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); r.remove(ctx, b, ids[i]) }()
		}
		wg.Wait()
		if _, err := r.c.NetworkRemove(ctx, net, client.NetworkRemoveOptions{}); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	})
}

// rawLabels lets the leak check see what the raw side creates.
func rawLabels() map[string]string {
	host, _ := os.Hostname()
	return map[string]string{heph.LabelManaged: "true", heph.LabelPID: strconv.Itoa(os.Getpid()), heph.LabelHost: host}
}
