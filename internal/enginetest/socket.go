package enginetest

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// SocketDir returns a new short directory for unix sockets, removed when
// the test ends: a socket's path is limited to about 100 bytes, and
// t.TempDir's names grow with the test's name.
func SocketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "heph-sock-")
	if err != nil {
		t.Fatalf("socket directory: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// SilentSocket listens on a new unix socket that accepts every connection
// and never answers — a hung daemon — and returns its path. The listener
// and the connections it accepted are closed when the test ends.
func SilentSocket(t testing.TB) string {
	t.Helper()
	sock := filepath.Join(SocketDir(t), "silent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("silent socket: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	return sock
}
