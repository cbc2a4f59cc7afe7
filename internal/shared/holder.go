package shared

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Holder is a process's side of sharing: the leases it holds, one per key
// and Store, each kept open and locked until the process ends (or
// Release). A process holds a key from its first take to its end, whatever
// its tests do in between, so the container stays for every later test of
// the process.
type Holder struct {
	mu     sync.Mutex
	leases map[string]Holding // by the key's directory
	swept  bool
}

// Holding is one lease a process holds.
type Holding struct {
	Store *Store
	Key   string
	file  *os.File
	path  string
}

// Process is this process's Holder.
var Process = &Holder{}

// Hold makes sure the process holds a lease of key in s, with idle as its
// idle time; first is true when this call wrote it. The lease is live
// before Hold returns, so no one expires the container from then on.
func (h *Holder) Hold(s *Store, key string, idle Idle) (first bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := filepath.Join(s.dir, key)
	if _, ok := h.leases[id]; ok {
		return false, nil
	}
	host, _ := os.Hostname()
	f, path, err := s.hold(key, Lease{PID: os.Getpid(), Host: host, Since: time.Now().UTC(), Idle: idle})
	if err != nil {
		return false, err
	}
	if h.leases == nil {
		h.leases = map[string]Holding{}
	}
	h.leases[id] = Holding{Store: s, Key: key, file: f, path: path}
	return true, nil
}

// FirstSweep reports true once per process: the first shared take sweeps
// the machine's expired shared containers.
func (h *Holder) FirstSweep() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	first := !h.swept
	h.swept = true
	return first
}

// SweepOnce runs e.Sweep (skipping key) the first time the process calls
// it, best effort, for at most 10 s.
func (h *Holder) SweepOnce(ctx context.Context, e Expiry, key string) {
	if !h.FirstSweep() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, _ = e.Sweep(ctx, key)
}

// Leases returns the leases the process holds, by store and key.
func (h *Holder) Leases() []Holding {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Holding, 0, len(h.leases))
	for _, l := range h.leases {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// Release ends the process's lease of key in s (its file removed, its lock
// dropped); it reports whether there was one.
func (h *Holder) Release(s *Store, key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := filepath.Join(s.dir, key)
	l, ok := h.leases[id]
	if !ok {
		return false
	}
	delete(h.leases, id)
	// Removed before the lock drops: no one sees a dead lease of ours.
	_ = os.Remove(l.path)
	_ = l.file.Close()
	return true
}
