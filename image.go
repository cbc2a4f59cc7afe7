package heph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/heph-go/heph/internal/archive"
	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/rules"
)

// pullCall is one image pull shared by every caller that needs the image
// while it runs.
type pullCall struct {
	done chan struct{}
	err  error
}

// ensureImage makes sure image is present locally, pulling it when it is
// not. Concurrent callers share one pull.
func (o *Orchestrator) ensureImage(ctx context.Context, image string, timeout time.Duration) error {
	_, err := o.api.ImageInspect(ctx, image)
	if err == nil {
		return nil
	}
	if !errors.Is(err, engine.ErrNotFound) {
		return wrap("inspect image", image, err, nil)
	}
	return o.PullImage(ctx, image, timeout)
}

// PullImage pulls an image from its registry, reading the daemon's progress
// to its end, bounded by timeout (DefaultPullTimeout when zero). Concurrent
// pulls of one image share a single daemon pull, which survives the
// cancellation of one caller's context so the others still get it. An image
// the registry does not have gives ErrImageNotFound; a pull that outlasts
// the timeout gives an error matching context.DeadlineExceeded.
func (o *Orchestrator) PullImage(ctx context.Context, image string, timeout time.Duration) error {
	if timeout < 0 {
		return invalid("PullTimeout", timeout, "is negative")
	}
	if timeout == 0 {
		timeout = DefaultPullTimeout
	}
	if err := rules.Image(image); err != nil {
		return invalid("Image", image, err.Error())
	}

	o.mu.Lock()
	call, running := o.pulls[image]
	if !running {
		call = &pullCall{done: make(chan struct{})}
		o.pulls[image] = call
		go func() {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
			defer cancel()
			call.err = o.pull(pctx, image, timeout)
			o.mu.Lock()
			delete(o.pulls, image)
			o.mu.Unlock()
			close(call.done)
		}()
	}
	o.mu.Unlock()

	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return wrap("pull image", image, ctx.Err(), nil)
	}
}

func (o *Orchestrator) pull(ctx context.Context, image string, timeout time.Duration) error {
	start := time.Now()
	err := o.api.ImagePull(ctx, image, engine.PullOptions{}, nil)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		cause := err
		if !errors.Is(err, ctx.Err()) {
			cause = errors.Join(ctx.Err(), err)
		}
		err = fmt.Errorf("timed out after %s (pull timeout %s): %w", time.Since(start).Round(time.Millisecond), timeout, cause)
	}
	var sentinel error
	switch {
	case errors.Is(err, engine.ErrNotFound) || looksLikeMissingImage(err.Error()):
		sentinel = ErrImageNotFound
	case errors.Is(err, engine.ErrUnavailable):
		sentinel = ErrDockerUnavailable
	}
	return errs.Op("pull image", image, sentinel, err)
}

// looksLikeMissingImage recognises a registry's "no such image" answers as
// the daemon relays them inside a pull stream.
func looksLikeMissingImage(msg string) bool {
	msg = strings.ToLower(msg)
	for _, s := range []string{"manifest unknown", "not found", "repository does not exist", "pull access denied", "name unknown"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// BuildImage builds the Dockerfile in contextDir through the Engine API and
// tags the result tag. The context is sent as a tar of the directory, with
// the patterns of its .dockerignore left out (the Dockerfile and
// .dockerignore themselves are always sent). A failing step's message is
// returned as an error, with the last lines of output. The image is not
// labelled heph.managed: built images are a cache that outlives sessions.
func (o *Orchestrator) BuildImage(ctx context.Context, contextDir, tag string) error {
	if err := rules.Image(tag); err != nil {
		return invalid("tag", tag, err.Error())
	}
	st, err := os.Stat(contextDir)
	if err != nil {
		return invalid("contextDir", contextDir, err.Error())
	}
	if !st.IsDir() {
		return invalid("contextDir", contextDir, "is not a directory")
	}

	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.BuildContext(pw, contextDir)) }()
	defer pr.Close()

	var tail []string
	err = o.api.ImageBuild(ctx, pr, engine.BuildOptions{Tags: []string{tag}}, func(line string) {
		tail = append(tail, line)
		if len(tail) > 20 {
			tail = tail[len(tail)-20:]
		}
	})
	if err != nil && len(tail) > 0 {
		err = fmt.Errorf("%w\nlast build output:\n  %s", err, strings.Join(tail, "\n  "))
	}
	return wrap("build image", tag, err, nil)
}
