package imagepull

import (
	"context"
	"sync"
	"time"

	"github.com/heph-go/heph/internal/engine"
)

// Group runs each pull or build once for every concurrent caller that needs
// its image (like singleflight, with progress reports). The zero value is
// ready; it is safe for concurrent use.
type Group struct {
	mu    sync.Mutex
	calls map[string]*call
}

type call struct {
	done    chan struct{}
	waiters int                // callers waiting for it (under Group.mu)
	cancel  context.CancelFunc // stops the work once no caller waits
	result  string
	err     error
	rep     *Reporter
}

// Job is a pull or build for Group.Do.
type Job struct {
	Key         string // what makes two jobs the same
	Op, Subject string // for the error of a caller who gives up
	// Doing and Finished are what the reports say ("pulling x", "pulled
	// x"), with Status's words.
	Doing, Finished string
	Status          func() string
	Timeout         time.Duration
	Progress        func(string) // this caller's listener; may be nil
	Work            func(ctx context.Context, rep *Reporter) (string, error)
}

// Do runs j.Work once for all concurrent callers with the same key,
// detached from the first caller's cancellation and bounded by j.Timeout,
// and returns its result. While a caller waits, its Progress hears the
// job's reports: every few seconds once it has taken a couple, and at its
// successful end when it was reported on. A caller whose ctx ends gets
// ctx's error at once (as engine.Op(j.Op, j.Subject, …)); the job goes on
// for the others, and stops once the last of them gave up.
func (g *Group) Do(ctx context.Context, j Job) (string, error) {
	g.mu.Lock()
	c, running := g.calls[j.Key]
	var wctx context.Context
	if !running {
		if g.calls == nil {
			g.calls = map[string]*call{}
		}
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), j.Timeout)
		c = &call{done: make(chan struct{}), rep: StartReporter(j.Doing, j.Status), cancel: cancel}
		g.calls[j.Key] = c
	}
	c.waiters++
	// Listening before the work starts: it may say a line at once.
	unlisten := c.rep.Listen(j.Progress)
	if !running {
		go func() {
			defer c.cancel()
			c.result, c.err = j.Work(wctx, c.rep)
			finished := j.Finished
			if c.err != nil {
				finished = "" // the error says what happened
			}
			c.rep.Stop(finished)
			g.mu.Lock()
			if g.calls[j.Key] == c {
				delete(g.calls, j.Key)
			}
			g.mu.Unlock()
			close(c.done)
		}()
	}
	g.mu.Unlock()
	defer unlisten()
	select {
	case <-c.done:
		return c.result, c.err
	case <-ctx.Done():
		g.mu.Lock()
		if c.waiters--; c.waiters == 0 {
			// Nobody wants the image any more: stop the work, and let a
			// later caller start afresh rather than join a stopping job.
			c.cancel()
			if g.calls[j.Key] == c {
				delete(g.calls, j.Key)
			}
		}
		g.mu.Unlock()
		return "", engine.Op(j.Op, j.Subject, ctx.Err(), nil)
	}
}

// Running returns how many jobs run now.
func (g *Group) Running() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

// Waiting returns how many callers wait for the jobs that run now.
func (g *Group) Waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.calls {
		n += c.waiters
	}
	return n
}
