package shared

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/heph-go/heph/internal/retry"
)

// BaseDir returns the per-user directory heph keeps its cross-process state
// in: $XDG_RUNTIME_DIR/heph when XDG_RUNTIME_DIR is set, else
// os.TempDir()/heph-<uid>.
func BaseDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "heph")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("heph-%d", os.Getuid()))
}

// Store is the directory that holds the locks, leases and idle marks of
// shared containers, one subdirectory per key:
//
//	<key>/lock      flocked: shared while a holder looks at the container,
//	                exclusive while one is created, replaced, expired or pruned
//	<key>/lease-*   one per holding process, flocked (exclusive) by it for as
//	                long as it holds: the kernel drops the lock when the
//	                process ends however it ends, so a lease whose lock can be
//	                taken is a dead holder's
//	<key>/idle      when the last holder ended and until when the container
//	                is kept (JSON)
//
// A key's directory goes when nothing is left of the key: no lease, no
// container (see forget).
type Store struct {
	dir string
}

// Open returns the Store in BaseDir()/shared.
func Open() (*Store, error) { return OpenDir(filepath.Join(BaseDir(), "shared")) }

// OpenExisting is Open for readers (heph ps): it returns nil, and no
// error, when the directory does not exist (no shared container was ever
// taken on this machine by this user).
func OpenExisting() (*Store, error) {
	dir := filepath.Join(BaseDir(), "shared")
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return OpenDir(dir)
}

// OpenDir returns the Store kept in dir, creating it (mode 0700) when
// missing. A directory another user owns or may write to is refused: they
// could hold a lease forever, or forge one.
func OpenDir(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("heph: shared containers' directory %s: %w", dir, err)
	}
	if err := private(dir); err != nil {
		return nil, fmt.Errorf("heph: shared containers' directory %s: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) keyDir(key string) (string, error) {
	if !ValidKey(key) {
		return "", fmt.Errorf("heph: %q is not a shared container's key", key)
	}
	d := filepath.Join(s.dir, key)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", fmt.Errorf("heph: shared container %s: %w", key[:12], err)
	}
	return d, nil
}

// has reports whether key was ever used through s (s may be nil).
func (s *Store) has(key string) bool {
	if s == nil || !ValidKey(key) {
		return false
	}
	_, err := os.Stat(filepath.Join(s.dir, key))
	return err == nil
}

// Lock is a held lock of a key.
type Lock struct{ f *os.File }

// Unlock releases the lock.
func (l *Lock) Unlock() { _ = l.f.Close() }

// lockPoll paces a wait for a key's lock: a holder that looks keeps it for
// a millisecond or two, one that creates a container for its whole start.
var lockPoll = retry.Policy{Initial: time.Millisecond, Max: 10 * time.Millisecond, Jitter: 0.3}

// Lock takes key's lock, exclusive or shared, waiting until ctx ends.
func (s *Store) Lock(ctx context.Context, key string, exclusive bool) (*Lock, error) {
	var l *Lock
	err := retry.Poll(ctx, lockPoll, func(context.Context) error {
		var ok bool
		var err error
		if l, ok, err = s.TryLock(key, exclusive); err != nil {
			return retry.Permanent(err)
		} else if !ok {
			return errBusy
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("heph: lock shared container %s: %w", key[:min(12, len(key))], err)
	}
	return l, nil
}

var errBusy = errors.New("another process holds the lock")

// TryLock takes key's lock if no one holds it in a conflicting way; ok is
// false when someone does.
func (s *Store) TryLock(key string, exclusive bool) (l *Lock, ok bool, err error) {
	for range 8 {
		d, err := s.keyDir(key)
		if err != nil {
			return nil, false, err
		}
		path := filepath.Join(d, "lock")
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if errors.Is(err, os.ErrNotExist) {
			continue // forget removed the directory meanwhile
		}
		if err != nil {
			return nil, false, fmt.Errorf("heph: shared container %s: %w", key[:12], err)
		}
		if afterOpen != nil {
			afterOpen()
		}
		switch err := flock(f, exclusive); {
		case errors.Is(err, errWouldBlock):
			f.Close()
			return nil, false, nil
		case err != nil:
			f.Close()
			return nil, false, fmt.Errorf("heph: lock shared container %s: %w", key[:12], err)
		}
		// A lock on a file forget unlinked after we opened it locks nothing:
		// the file at the path is the lock.
		byFD, err1 := f.Stat()
		byPath, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(byFD, byPath) {
			return &Lock{f: f}, true, nil
		}
		f.Close()
	}
	return nil, false, fmt.Errorf("heph: lock shared container %s: its lock file keeps being removed", key[:12])
}

// afterOpen, when set (by tests), runs between the opening of a lock file
// and its lock: the moment another process may remove it.
var afterOpen func()

// forget removes key's lock file and directory once nothing is left of the
// key (no lease, no container): l is its exclusive lock, held. Whoever
// opened the lock file before it went sees that it is not the file at the
// path any more and opens it again (TryLock).
func (s *Store) forget(key string) {
	d := filepath.Join(s.dir, key)
	if leases, _ := filepath.Glob(filepath.Join(d, "lease-*")); len(leases) > 0 {
		return
	}
	s.clearIdle(key)
	_ = os.Remove(filepath.Join(d, "lock"))
	_ = os.Remove(d) // fails when a holder is writing its lease: then it stays
}

// Lease is a holding process's lease of a key.
type Lease struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
	// Idle is the holder's idle time: how long the container is kept once
	// the last holder ended.
	Idle Idle `json:"idle"`

	// Alive says whether the holder still runs (its lease is locked).
	Alive bool   `json:"-"`
	path  string // the lease file
}

// hold writes a lease for key and locks it: it is live from the moment it
// appears under its name (it is locked before it is renamed into place, so
// no one ever sees it unlocked while its holder runs). The caller keeps the
// returned file (now at path) open for as long as it holds; closing it ends
// the lease.
func (s *Store) hold(key string, l Lease) (f *os.File, path string, err error) {
	var d string
	for range 8 {
		if d, err = s.keyDir(key); err != nil {
			return nil, "", err
		}
		if f, err = os.CreateTemp(d, ".new-lease-*"); !errors.Is(err, os.ErrNotExist) {
			break // else forget removed the directory meanwhile
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("heph: lease shared container %s: %w", key[:12], err)
	}
	fail := func(err error) (*os.File, string, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, "", fmt.Errorf("heph: lease shared container %s: %w", key[:12], err)
	}
	if err := flock(f, true); err != nil {
		return fail(err)
	}
	b, _ := json.Marshal(l)
	if _, err := f.Write(b); err != nil {
		return fail(err)
	}
	name := filepath.Join(d, "lease-"+strconv.Itoa(l.PID)+"-"+strings.TrimPrefix(filepath.Base(f.Name()), ".new-lease-"))
	if err := os.Rename(f.Name(), name); err != nil {
		return fail(err)
	}
	return f, name, nil
}

// Leases returns key's leases, each judged alive or dead by its lock.
func (s *Store) Leases(key string) ([]Lease, error) {
	if !ValidKey(key) {
		return nil, fmt.Errorf("heph: %q is not a shared container's key", key)
	}
	names, err := filepath.Glob(filepath.Join(s.dir, key, "lease-*"))
	if err != nil {
		return nil, err
	}
	var out []Lease
	for _, n := range names {
		b, err := os.ReadFile(n)
		if errors.Is(err, os.ErrNotExist) {
			continue // ended meanwhile
		}
		var l Lease
		if err != nil || json.Unmarshal(b, &l) != nil {
			l = Lease{} // unreadable: judged by its lock alone
		}
		l.path = n
		if l.Alive, err = locked(n); errors.Is(err, os.ErrNotExist) {
			continue
		}
		out = append(out, l)
	}
	return out, nil
}

// idleMark says when a key's last holder ended and until when its container
// is kept.
type idleMark struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until,omitzero"` // zero with Keep
	Keep  bool      `json:"keep,omitempty"`
}

func (s *Store) idlePath(key string) string { return filepath.Join(s.dir, key, "idle") }

// readIdle returns key's idle mark; ok is false when there is none.
func (s *Store) readIdle(key string) (m idleMark, ok bool) {
	b, err := os.ReadFile(s.idlePath(key))
	if err != nil || json.Unmarshal(b, &m) != nil {
		return idleMark{}, false
	}
	return m, true
}

// writeIdle replaces key's idle mark (atomically: a reader sees the old one
// or the new one).
func (s *Store) writeIdle(key string, m idleMark) error {
	d, err := s.keyDir(key)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(d, ".new-idle-*")
	if err != nil {
		return err
	}
	b, _ := json.Marshal(m)
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.idlePath(key))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// clearIdle removes key's idle mark: the container is held again.
func (s *Store) clearIdle(key string) {
	_ = os.Remove(s.idlePath(key))
}
