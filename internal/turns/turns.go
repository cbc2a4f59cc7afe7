// Package turns lets the processes of one user take turns at something
// scarce — a network from the daemon's default address pools — in the order
// they asked, across processes: `go test ./...` runs packages as separate
// processes, and without a line the process that just freed a network takes
// it again at once while the others sleep in their backoff.
//
// A Line is a directory of entry files, one per waiter, named by the time it
// joined. Each waiter holds an flock on its entry for as long as it waits
// and takes its turn; the kernel drops the lock when the process dies
// however it dies, so an entry whose lock can be taken is a dead waiter's,
// and whoever sees it removes it. A waiter's turn comes when no live entry
// is older than its own.
package turns

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/heph-go/heph/internal/retry"
)

// Line is a line of waiters in a directory. The zero value is not usable:
// use Open or OpenDir.
type Line struct {
	dir string
}

// poll paces a waiter looking at the line: the head leaves within
// milliseconds of taking a network, so the next one looks often.
var poll = retry.Policy{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond, Jitter: 0.3}

// Dir returns the per-user directory heph keeps its lines in:
// $XDG_RUNTIME_DIR/heph when XDG_RUNTIME_DIR is set, else
// os.TempDir()/heph-<uid>.
func Dir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "heph")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("heph-%d", os.Getuid()))
}

// Open returns the line called name in Dir.
func Open(name string) (*Line, error) {
	return OpenDir(filepath.Join(Dir(), name))
}

// OpenDir returns the line kept in dir, creating it (mode 0700) when
// missing. A directory another user owns, or that others may write to, is
// refused: they could hold heph's line up.
func OpenDir(dir string) (*Line, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("line %s: %w", dir, err)
	}
	if err := private(dir); err != nil {
		return nil, fmt.Errorf("line %s: %w", dir, err)
	}
	return &Line{dir: dir}, nil
}

// Turn is a place in a line, held until Done.
type Turn struct {
	line *Line
	name string
	file *os.File
}

// Join takes a place at the end of the line and waits until it is among
// the first window waiters (fewer than window older waiters are still in
// line: the others took their turn and left, or died), or until ctx ends:
// then it leaves the line and returns ctx's error. The caller calls Done
// when its turn is over. A window of 1 serves waiters strictly one at a
// time; a few at once keep a scarce resource busy while staying in order.
func (l *Line) Join(ctx context.Context, window int) (*Turn, error) {
	window = max(window, 1)
	t, err := l.enter()
	if err != nil {
		return nil, err
	}
	err = retry.Poll(ctx, poll, func(context.Context) error {
		ahead, err := l.count(t.name, window)
		if err != nil {
			return retry.Permanent(err)
		}
		if ahead >= window {
			return errors.New("others are ahead in line")
		}
		return nil
	})
	if err != nil {
		t.Done()
		return nil, err
	}
	return t, nil
}

// Busy reports whether someone alive waits in line (or has the turn).
func (l *Line) Busy() bool {
	n, err := l.count("", 1)
	return err == nil && n > 0
}

// Len returns how many live waiters the line holds.
func (l *Line) Len() int {
	n, _ := l.count("", 0)
	return n
}

// Done leaves the line; the next waiter's turn comes. It may be called more
// than once.
func (t *Turn) Done() {
	if t.file == nil {
		return
	}
	_ = os.Remove(filepath.Join(t.line.dir, t.name))
	_ = t.file.Close() // drops the lock
	t.file = nil
}

// enter makes this waiter's entry: created and locked under a temporary
// name that readers pass over, then renamed into the line, so no one ever
// sees it unlocked.
func (l *Line) enter() (*Turn, error) {
	name := fmt.Sprintf("%019d-%07d-%08x", time.Now().UnixNano(), os.Getpid(), rand.Uint32())
	tmp := filepath.Join(l.dir, ".new-"+name)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("join line %s: %w", l.dir, err)
	}
	if err := lock(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("join line %s: %w", l.dir, err)
	}
	if err := os.Rename(tmp, filepath.Join(l.dir, name)); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("join line %s: %w", l.dir, err)
	}
	return &Turn{line: l, name: name, file: f}, nil
}

// count counts the live entries older than name (every live entry when
// name is ""), stopping at limit (0: no limit), removing those of dead
// waiters on the way (and temporary entries a waiter died making).
func (l *Line) count(name string, limit int) (int, error) {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return 0, fmt.Errorf("read line %s: %w", l.dir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		switch n := e.Name(); {
		case strings.HasPrefix(n, ".new-"):
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Minute {
				l.removeIfDead(n)
			}
		case n != name && !strings.HasPrefix(n, "."):
			names = append(names, n)
		}
	}
	slices.Sort(names)
	n := 0
	for _, other := range names {
		if name != "" && other > name {
			break
		}
		alive, err := l.removeIfDead(other)
		if err != nil {
			return 0, err
		}
		if alive {
			n++
			if n == limit {
				break
			}
		}
	}
	return n, nil
}

// removeIfDead removes the entry unless a live waiter holds it, and says
// whether one does. An entry that is gone already is not alive.
func (l *Line) removeIfDead(name string) (alive bool, err error) {
	path := filepath.Join(l.dir, name)
	switch alive, err := held(path); {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case !alive:
		_ = os.Remove(path) // its owner died
		return false, nil
	}
	return true, nil
}
