package heph

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// pullCall is one image pull shared by every caller that needs the image
// while it runs.
type pullCall struct {
	done    chan struct{}
	err     error
	waiters int // callers sharing it, guarded by Orchestrator.mu
}

// ensureImage makes sure image is present locally, pulling it when it is
// not. Concurrent callers share one pull. The pull runs under its own
// timeout (DefaultPullTimeout when timeout is zero) and survives the
// cancellation of one caller's context, so the others still get it.
func (o *Orchestrator) ensureImage(ctx context.Context, image string, timeout time.Duration) error {
	_, err := o.api.ImageInspect(ctx, image)
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return wrap("inspect image", image, err, nil)
	}
	return o.PullImage(ctx, image, timeout)
}

// PullImage pulls an image from its registry, reading the daemon's progress
// stream to its end, bounded by timeout (DefaultPullTimeout when zero).
// Concurrent pulls of one image share a single daemon pull. An image the
// registry does not have gives ErrImageNotFound; a pull that outlasts the
// timeout gives an error matching context.DeadlineExceeded.
func (o *Orchestrator) PullImage(ctx context.Context, image string, timeout time.Duration) error {
	if timeout < 0 {
		return invalid("PullTimeout", timeout, "is negative")
	}
	if timeout == 0 {
		timeout = DefaultPullTimeout
	}
	if _, err := reference.ParseNormalizedNamed(image); err != nil {
		return invalid("Image", image, "is not a valid image reference: "+err.Error())
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
	call.waiters++
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
	fail := func(err error) error {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %s (pull timeout %s): %w", time.Since(start).Round(time.Millisecond), timeout, errors.Join(ctx.Err(), err))
		}
		sentinel := error(nil)
		if cerrdefs.IsNotFound(err) || looksLikeMissingImage(err.Error()) {
			sentinel = ErrImageNotFound
		} else if isConnectionFailure(err) {
			sentinel = ErrDockerUnavailable
		}
		return &opError{op: "pull image", subject: image, sentinel: sentinel, err: err}
	}
	resp, err := o.api.ImagePull(ctx, image, client.ImagePullOptions{})
	if err != nil {
		return fail(err)
	}
	defer resp.Close()
	if err := readJSONStream(resp, nil); err != nil {
		return fail(err)
	}
	return nil
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

// streamMessage is one line of the daemon's JSON progress stream (pull,
// push, build). Old daemons set "error"; newer ones "errorDetail".
type streamMessage struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// StreamError is an error the daemon reported inside a progress stream.
type StreamError struct {
	// Message is the daemon's message.
	Message string
}

// Error returns the daemon's message.
func (e *StreamError) Error() string { return e.Message }

// readJSONStream reads a progress stream to its end, calling onMsg for each
// message when it is not nil, and returns the first error message the daemon
// put in the stream, or a read error.
func readJSONStream(r io.Reader, onMsg func(streamMessage)) error {
	dec := json.NewDecoder(bufio.NewReader(r))
	var streamErr error
	for {
		var m streamMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return streamErr
			}
			return errors.Join(streamErr, fmt.Errorf("read progress stream: %w", err))
		}
		if onMsg != nil {
			onMsg(m)
		}
		if streamErr == nil {
			switch {
			case m.ErrorDetail != nil && m.ErrorDetail.Message != "":
				streamErr = &StreamError{Message: m.ErrorDetail.Message}
			case m.Error != "":
				streamErr = &StreamError{Message: m.Error}
			}
		}
	}
}

// BuildImage builds the Dockerfile in contextDir through the Engine API and
// tags the result tag. The context is sent as a tar of the directory, with
// the patterns of its .dockerignore left out (the Dockerfile and
// .dockerignore themselves are always sent). The build's output is read to
// its end; a failing step's message is returned as an error, with the last
// lines of output. The image is not labelled heph.managed: built images are
// a cache that outlives sessions.
func (o *Orchestrator) BuildImage(ctx context.Context, contextDir, tag string) error {
	if _, err := reference.ParseNormalizedNamed(tag); err != nil {
		return invalid("tag", tag, "is not a valid image reference: "+err.Error())
	}
	st, err := os.Stat(contextDir)
	if err != nil {
		return invalid("contextDir", contextDir, err.Error())
	}
	if !st.IsDir() {
		return invalid("contextDir", contextDir, "is not a directory")
	}

	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarContext(contextDir, pw)) }()
	defer pr.Close()

	res, err := o.api.ImageBuild(ctx, pr, client.ImageBuildOptions{
		Tags:        []string{tag},
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return wrap("build image", tag, err, nil)
	}
	defer res.Body.Close()
	var tail []string
	err = readJSONStream(res.Body, func(m streamMessage) {
		for _, line := range strings.Split(strings.TrimRight(m.Stream, "\n"), "\n") {
			if line != "" {
				tail = append(tail, line)
			}
		}
		if len(tail) > 20 {
			tail = tail[len(tail)-20:]
		}
	})
	if err != nil {
		if len(tail) > 0 {
			err = fmt.Errorf("%w\nlast build output:\n  %s", err, strings.Join(tail, "\n  "))
		}
		return wrap("build image", tag, err, nil)
	}
	return nil
}

// tarContext writes contextDir as a tar stream, honouring .dockerignore.
func tarContext(contextDir string, w io.Writer) error {
	var patterns []string
	if f, err := os.Open(filepath.Join(contextDir, ".dockerignore")); err == nil {
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read .dockerignore: %w", err)
		}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return fmt.Errorf("parse .dockerignore: %w", err)
	}

	tw := tar.NewWriter(w)
	err = tarTree(tw, contextDir, "", func(rel string, isDir bool) (bool, error) {
		if rel == "Dockerfile" || rel == ".dockerignore" {
			return false, nil // the daemon needs them, whatever the patterns say
		}
		skip, err := pm.MatchesOrParentMatches(rel)
		// An ignored directory may still hold files an exception
		// (!pattern) brings back: then it is sent, and its files are
		// judged one by one.
		return skip && !(isDir && pm.Exclusions()), err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
