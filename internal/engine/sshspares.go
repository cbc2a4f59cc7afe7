package engine

import (
	"context"
	"net"
	"sync"
	"time"
)

// sshSpares keeps a few ssh connections started ahead of need, so that a
// new stream (a log follow, an event stream, an attach) costs no ssh
// handshake and no remote `docker system dial-stdio` start-up, which take
// one to several seconds on a loaded machine. A spare is started when one
// is taken (and on the first dial), never more than max at once, counting
// those being started; a spare nobody took within idle is closed and not
// replaced until the next dial, so a client nobody uses holds no process
// for long. Close closes the spares and stops the refills.
type sshSpares struct {
	start func() (*commandConn, error) // starts one ssh process
	max   int
	idle  time.Duration

	mu       sync.Mutex
	closed   bool
	spares   []*spare
	starting int            // refills under way
	wg       sync.WaitGroup // refills and expiry timers
}

type spare struct {
	conn  *commandConn
	timer *time.Timer
}

// sshSpareConns is how many ssh connections a client keeps started ahead.
const sshSpareConns = 2

// sshSpareIdle is how long a spare connection waits to be taken before it
// is closed.
const sshSpareIdle = 30 * time.Second

func newSSHSpares(args []string, max int, idle time.Duration) *sshSpares {
	return &sshSpares{
		start: func() (*commandConn, error) { return startCommandConn(context.Background(), "ssh", args) },
		max:   max,
		idle:  idle,
	}
}

// dial returns a spare connection whose process still runs, or starts a
// new one; then it starts spares up to max in the background.
func (s *sshSpares) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := s.take()
	if c == nil {
		var err error
		if c, err = s.start(); err != nil {
			return nil, err
		}
	}
	s.refill()
	return c, nil
}

// take removes and returns the oldest live spare, nil when there is none.
// Spares whose process ended are closed and dropped.
func (s *sshSpares) take() *commandConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.spares) > 0 {
		sp := s.spares[0]
		s.spares = s.spares[1:]
		if sp.timer.Stop() {
			s.wg.Done() // the expiry will not run
		}
		select {
		case <-sp.conn.waited:
			go sp.conn.Close() // ended: release its pipes
		default:
			return sp.conn
		}
	}
	return nil
}

// refill starts spares in the background until there are max of them,
// counting those being started.
func (s *sshSpares) refill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.closed && len(s.spares)+s.starting < s.max {
		s.starting++
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c, err := s.start()
			s.mu.Lock()
			defer s.mu.Unlock()
			s.starting--
			if err != nil {
				return // the next dial starts its own and reports the error
			}
			if s.closed {
				s.mu.Unlock()
				_ = c.Close() // before Close returns: it waits for this
				s.mu.Lock()
				return
			}
			sp := &spare{conn: c}
			s.wg.Add(1)
			sp.timer = time.AfterFunc(s.idle, func() {
				defer s.wg.Done()
				s.expire(sp)
			})
			s.spares = append(s.spares, sp)
		}()
	}
}

// expire closes a spare nobody took, unless it was taken meanwhile.
func (s *sshSpares) expire(sp *spare) {
	s.mu.Lock()
	for i, o := range s.spares {
		if o == sp {
			s.spares = append(s.spares[:i:i], s.spares[i+1:]...)
			s.mu.Unlock()
			_ = sp.conn.Close()
			return
		}
	}
	s.mu.Unlock()
}

// Close closes every spare and waits for the refills under way, whose
// connections it closes too. Connections already handed out are not its
// to close.
func (s *sshSpares) Close() error {
	s.mu.Lock()
	s.closed = true
	spares := s.spares
	s.spares = nil
	for _, sp := range spares {
		if sp.timer.Stop() {
			s.wg.Done()
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, sp := range spares {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = sp.conn.Close()
		}()
	}
	wg.Wait()
	s.wg.Wait()
	return nil
}

// count is how many spares are ready and being started (for tests).
func (s *sshSpares) count() (ready, starting int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.spares), s.starting
}
