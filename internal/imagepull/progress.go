package imagepull

import (
	"fmt"
	"sync"
	"time"

	"github.com/heph-go/heph/internal/engine"
)

// Meter sums up a pull's progress stream: how many layers are done of how
// many, and how many MB of them are downloaded. It is safe for concurrent
// use.
type Meter struct {
	mu     sync.Mutex
	layers map[string]*layer
	order  []string
}

type layer struct {
	done           bool
	current, total int64
}

// Add takes one message of the stream.
func (m *Meter) Add(p engine.Progress) {
	if p.ID == "" || !isLayerStatus(p.Status) {
		return // a message about the image as a whole ("Pulling from …", "Digest: …")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.layers == nil {
		m.layers = map[string]*layer{}
	}
	l, ok := m.layers[p.ID]
	if !ok {
		l = &layer{}
		m.layers[p.ID] = l
		m.order = append(m.order, p.ID)
	}
	switch p.Status {
	case "Pull complete", "Already exists":
		l.done = true
		if l.total > 0 {
			l.current = l.total
		}
	case "Downloading":
		l.current, l.total = p.Current, p.Total
	case "Download complete", "Verifying Checksum", "Extracting":
		if l.total > 0 {
			l.current = l.total
		}
	}
}

// isLayerStatus reports whether a status is about one layer.
func isLayerStatus(s string) bool {
	switch s {
	case "Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum", "Download complete", "Extracting", "Pull complete", "Already exists", "Retrying":
		return true
	}
	return false
}

// String says "3/7 layers, 12.4/56.0 MB" (sizes once the daemon has told
// any), or "" before the first layer is known.
func (m *Meter) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.layers) == 0 {
		return ""
	}
	done := 0
	var cur, total int64
	for _, id := range m.order {
		l := m.layers[id]
		if l.done {
			done++
		}
		cur += l.current
		total += l.total
	}
	s := fmt.Sprintf("%d/%d layers", done, len(m.layers))
	if total > 0 {
		s += fmt.Sprintf(", %.1f/%.1f MB", float64(cur)/1e6, float64(total)/1e6)
	}
	return s
}

// Reporter tells its listeners, first after First and then every Every,
// what a long job (a pull, a build) is doing, until Stop. A job that ends
// before First is never reported. It is safe for concurrent use; a
// listener that has unlistened is never called again, so a test's Logf can
// listen only while its test waits for the job.
type Reporter struct {
	what   string
	status func() string
	start  time.Time

	first, every time.Duration

	mu        sync.Mutex
	listeners map[int]func(string)
	next      int
	reported  bool

	stop chan struct{}
	done chan struct{}
}

// Report timing: silent for the first couple of seconds, then every few
// (variables for the tests).
var (
	First = 2 * time.Second
	Every = 5 * time.Second
)

// StartReporter starts reporting what ("pulling postgres:16") with the
// words status returns ("3/7 layers, 12.4/56.0 MB"; may be "").
func StartReporter(what string, status func() string) *Reporter {
	r := &Reporter{what: what, status: status, start: time.Now(), first: First, every: Every, listeners: map[int]func(string){}, stop: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

func (r *Reporter) run() {
	defer close(r.done)
	timer := time.NewTimer(r.first)
	defer timer.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-timer.C:
			r.emit(r.what)
			timer.Reset(r.every)
		}
	}
}

// emit tells every listener "heph: <doing>: <status> (<elapsed>)".
func (r *Reporter) emit(doing string) {
	msg := "heph: " + doing
	if s := r.status(); s != "" {
		msg += ": " + s
	}
	msg += fmt.Sprintf(" (%s)", time.Since(r.start).Round(100*time.Millisecond))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reported = true
	for _, f := range r.listeners {
		f(msg)
	}
}

// Say tells every listener line at once (a build's output, for HEPH_LOGS).
func (r *Reporter) Say(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.listeners {
		f(line)
	}
}

// Listen adds f (nil is ignored) until the returned function is called.
func (r *Reporter) Listen(f func(string)) (unlisten func()) {
	if f == nil {
		return func() {}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	id := r.next
	r.next++
	r.listeners[id] = f
	return func() {
		r.mu.Lock()
		delete(r.listeners, id)
		r.mu.Unlock()
	}
}

// Stop ends the reports; when the job was reported on, the listeners are
// told finished ("pulled postgres:16") with the final status and time
// (nothing when finished is "").
func (r *Reporter) Stop(finished string) {
	close(r.stop)
	<-r.done
	r.mu.Lock()
	reported := r.reported
	r.mu.Unlock()
	if reported && finished != "" {
		r.emit(finished)
	}
}
