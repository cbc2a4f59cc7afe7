//go:build unix

package engine

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// startedConns starts `cat` processes (an echo over stdin and stdout, as
// dial-stdio is a bridge) in place of ssh, and remembers each.
type startedConns struct {
	mu    sync.Mutex
	conns []*commandConn
	gate  chan struct{} // when not nil, each start waits for a value
}

func (s *startedConns) start() (*commandConn, error) {
	if s.gate != nil {
		<-s.gate
	}
	c, err := startCommandConn(context.Background(), "cat", nil)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	return c, nil
}

func (s *startedConns) all() []*commandConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*commandConn(nil), s.conns...)
}

func running(c *commandConn) bool {
	select {
	case <-c.waited:
		return false
	default:
		return true
	}
}

func waitSpares(t *testing.T, s *sshSpares, ready, starting int) {
	t.Helper()
	require.Eventually(t, func() bool {
		r, st := s.count()
		return r == ready && st == starting
	}, 20*time.Second, 5*time.Millisecond, "spares never reached %d ready, %d starting", ready, starting)
}

func echoes(t *testing.T, c io.ReadWriter) {
	t.Helper()
	_, err := c.Write([]byte("ping\n"))
	require.NoError(t, err)
	buf := make([]byte, 5)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "ping\n", string(buf))
}

// TestSSHSparesAreTakenAndRefilled: the first dial starts its own
// connection and two spares; the next dials take spares (no process
// started for them) and each start one in their place, never more than
// two waiting.
func TestSSHSparesAreTakenAndRefilled(t *testing.T) {
	st := &startedConns{}
	s := &sshSpares{start: st.start, max: 2, idle: time.Minute}
	first, err := s.dial(t.Context(), "tcp", "x")
	require.NoError(t, err)
	defer first.Close()
	waitSpares(t, s, 2, 0)
	require.Len(t, st.all(), 3)

	second, err := s.dial(t.Context(), "tcp", "x")
	require.NoError(t, err)
	defer second.Close()
	require.Same(t, st.all()[1], second, "a dial with spares ready takes the oldest")
	echoes(t, second)
	waitSpares(t, s, 2, 0)
	require.Len(t, st.all(), 4, "one spare started in place of the one taken")

	var wg sync.WaitGroup
	got := make(chan net.Conn, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := s.dial(t.Context(), "tcp", "x")
			if err == nil {
				got <- c
			}
		}()
	}
	wg.Wait()
	close(got)
	n := 0
	for c := range got {
		n++
		echoes(t, c)
		t.Cleanup(func() { _ = c.Close() })
	}
	require.Equal(t, 10, n)
	waitSpares(t, s, 2, 0)
	require.Len(t, st.all(), 4+10, "ten dials: ten taken or started, two waiting, none more")
	require.NoError(t, s.Close())
}

// TestSSHSparesCloseLeavesNoProcess: Close ends every spare, those still
// starting included, and starts no more; the connections handed out stay
// theirs to close.
func TestSSHSparesCloseLeavesNoProcess(t *testing.T) {
	st := &startedConns{gate: make(chan struct{})}
	s := &sshSpares{start: st.start, max: 2, idle: time.Minute}
	go func() { st.gate <- struct{}{} }() // the dial's own start
	out, err := s.dial(t.Context(), "tcp", "x")
	require.NoError(t, err)
	defer out.Close()
	waitSpares(t, s, 0, 2)
	st.gate <- struct{}{} // one spare ready, one still starting
	waitSpares(t, s, 1, 1)

	closed := make(chan struct{})
	go func() {
		_ = s.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a spare was still being started")
	case <-time.After(50 * time.Millisecond):
	}
	st.gate <- struct{}{} // the last start ends after Close began
	<-closed
	conns := st.all()
	require.Len(t, conns, 3)
	require.True(t, running(out.(*commandConn)), "a connection handed out is not the spares' to close")
	for _, c := range conns[1:] {
		require.False(t, running(c), "a spare's process still runs after Close")
	}
	// After Close a dial still works, and starts no spare.
	go func() { st.gate <- struct{}{} }()
	late, err := s.dial(t.Context(), "tcp", "x")
	require.NoError(t, err)
	echoes(t, late)
	require.NoError(t, late.Close())
	r, starting := s.count()
	require.Zero(t, r+starting)
	require.Len(t, st.all(), 4)
}

// TestSSHSparesExpireWhenIdle: a spare nobody takes is closed after the
// idle time, and none replaces it until the next dial.
func TestSSHSparesExpireWhenIdle(t *testing.T) {
	st := &startedConns{}
	s := &sshSpares{start: st.start, max: 2, idle: 50 * time.Millisecond}
	defer s.Close()
	c, err := s.dial(t.Context(), "tcp", "x")
	require.NoError(t, err)
	defer c.Close()
	require.Eventually(t, func() bool {
		conns := st.all()
		r, starting := s.count()
		return len(conns) == 3 && r == 0 && starting == 0 && !running(conns[1]) && !running(conns[2])
	}, 20*time.Second, 5*time.Millisecond)
	require.True(t, running(c.(*commandConn)))
	require.Len(t, st.all(), 3, "expired spares are not replaced")
}

// TestSSHSparesSkipEndedProcesses: a spare whose process ended (the ssh
// connection dropped) is not handed out.
func TestSSHSparesSkipEndedProcesses(t *testing.T) {
	st := &startedConns{}
	s := &sshSpares{start: st.start, max: 2, idle: time.Minute}
	defer s.Close()
	c, err := s.dial(t.Context(), "tcp", "x")
	require.NoError(t, err)
	defer c.Close()
	waitSpares(t, s, 2, 0)
	conns := st.all()
	for _, sp := range conns[1:] {
		_ = sp.cmd.Process.Kill()
		<-sp.waited
	}
	next, err := s.dial(t.Context(), "tcp", "x")
	require.NoError(t, err)
	defer next.Close()
	require.NotSame(t, conns[1], next)
	require.NotSame(t, conns[2], next)
	echoes(t, next)
}
