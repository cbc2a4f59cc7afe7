package heph

import (
	"context"
	"io"
	"sync"

	"github.com/heph-go/heph/internal/engine"
)

// NetworkPoolRetries returns how many network creations were retried because
// Docker's address pools were exhausted (for the integration tests).
func NetworkPoolRetries() int64 { return poolRetries.Load() }

// ImageCalls counts the image calls an Orchestrator makes to its daemon.
type ImageCalls struct {
	mu     sync.Mutex
	pulls  map[string]int
	builds map[string]int
	loads  int
}

// Pulls returns how many ImagePull calls were made for ref.
func (c *ImageCalls) Pulls(ref string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pulls[ref]
}

// Builds returns how many ImageBuild calls tagged tag.
func (c *ImageCalls) Builds(tag string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.builds[tag]
}

// Loads returns how many ImageLoad calls were made.
func (c *ImageCalls) Loads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loads
}

// CountImageCalls makes o count its ImagePull, ImageBuild and ImageLoad
// calls. Call it before o is used.
func CountImageCalls(o *Orchestrator) *ImageCalls {
	c := &ImageCalls{pulls: map[string]int{}, builds: map[string]int{}}
	o.api = countingAPI{API: o.api, c: c}
	return c
}

type countingAPI struct {
	engine.API
	c *ImageCalls
}

func (a countingAPI) ImagePull(ctx context.Context, ref string, opts engine.PullOptions, progress func(engine.Progress)) error {
	a.c.mu.Lock()
	a.c.pulls[ref]++
	a.c.mu.Unlock()
	return a.API.ImagePull(ctx, ref, opts, progress)
}

func (a countingAPI) ImageBuild(ctx context.Context, r io.Reader, opts engine.BuildOptions, output func(string)) error {
	a.c.mu.Lock()
	for _, t := range opts.Tags {
		a.c.builds[t]++
	}
	a.c.mu.Unlock()
	return a.API.ImageBuild(ctx, r, opts, output)
}

func (a countingAPI) ImageLoad(ctx context.Context, r io.Reader) error {
	a.c.mu.Lock()
	a.c.loads++
	a.c.mu.Unlock()
	return a.API.ImageLoad(ctx, r)
}
