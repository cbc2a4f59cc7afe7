package turns

import "context"

// Gate admits at most a window of holders at once, across the processes
// of one user, in the order they came: a process first takes one of its
// own window places (so that a process of many goroutines keeps at most
// window entries in the line, and the line stays short), then waits in the
// cross-process Line. Without a usable line it admits the process's window
// alone.
type Gate struct {
	line   *Line
	local  chan struct{}
	window int
}

// NewGate returns the gate of the line called name (see Open) with room
// for window holders at once (at least 1).
func NewGate(name string, window int) *Gate {
	line, _ := Open(name) // nil: this process's window only
	return newGate(line, window)
}

// NewGateDir is NewGate with the line kept in dir (see OpenDir).
func NewGateDir(dir string, window int) *Gate {
	line, _ := OpenDir(dir)
	return newGate(line, window)
}

func newGate(line *Line, window int) *Gate {
	window = max(window, 1)
	return &Gate{line: line, local: make(chan struct{}, window), window: window}
}

// Enter waits until the caller is among the gate's window holders, or ctx
// ends (then it returns ctx's error). The caller calls leave once done.
func (g *Gate) Enter(ctx context.Context) (leave func(), err error) {
	select {
	case g.local <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	out := func() { <-g.local }
	if g.line == nil {
		return out, nil
	}
	t, err := g.line.Join(ctx, g.window)
	switch {
	case err == nil:
		return func() { t.Done(); out() }, nil
	case ctx.Err() != nil:
		out()
		return nil, ctx.Err()
	default:
		return out, nil // the line is unreadable: this process's window only
	}
}

// Waiting returns how many live waiters (and holders) the gate's
// cross-process line holds; 0 without a line.
func (g *Gate) Waiting() int {
	if g.line == nil {
		return 0
	}
	return g.line.Len()
}
