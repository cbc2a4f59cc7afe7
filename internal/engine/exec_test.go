package engine_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
)

func TestExecRecorded(t *testing.T) {
	srv, c := newClient(t)
	res, err := c.Exec(t.Context(), appID, []string{"/testapp", "cat", "/nonexistent", "/data/hello.txt"})
	require.NoError(t, err)
	require.Equal(t, engine.ExecResult{
		ExitCode: 1,
		Stdout:   []byte("hello from heph"),
		Stderr:   []byte("testapp: cat: open /nonexistent: no such file or directory\n"),
	}, res)

	require.Equal(t, []string{
		"HEAD /_ping", "POST /containers/" + appID + "/exec", "POST /exec/" + execID + "/start", "GET /exec/" + execID + "/json",
	}, paths(srv.Requests()), "create, attach, then the exit code")
	create := only(t, srv, "POST /containers/{id}/exec")
	require.JSONEq(t, `["/testapp","cat","/nonexistent","/data/hello.txt"]`, field(t, create.Body, "Cmd"))
	require.Equal(t, "true", field(t, create.Body, "AttachStdout"))
	require.Equal(t, "true", field(t, create.Body, "AttachStderr"))
	require.Contains(t, []string{"null", "false"}, field(t, create.Body, "AttachStdin"))
	require.Contains(t, []string{"null", "false"}, field(t, create.Body, "Tty"), "no TTY: the output is multiplexed")
	start := only(t, srv, "POST /exec/{id}/start")
	require.Equal(t, "false", field(t, start.Body, "Detach"))
	require.Equal(t, "Upgrade", start.Header.Get("Connection"))
}

// execServer answers an exec whose output is written by output, and whose
// inspect reports the exit code 7 once the output ended, 99 before.
func execServer(t *testing.T, output func(ctx context.Context, conn net.Conn)) (*enginetest.Server, *engine.Client, *atomic.Bool) {
	t.Helper()
	srv, c := newClient(t)
	var ended atomic.Bool
	srv.Handle("POST /exec/{id}/start", enginetest.Upgrade(func(ctx context.Context, conn net.Conn) {
		output(ctx, conn)
		ended.Store(true) // before the connection closes: the client sees EOF after
	}))
	srv.HandleFunc("GET /exec/{id}/json", func(w http.ResponseWriter, r *http.Request) {
		code := 99
		if ended.Load() {
			code = 7
		}
		enginetest.JSON(200, map[string]any{"ID": r.PathValue("id"), "Running": false, "ExitCode": code}).ServeHTTP(w, r)
	})
	return srv, c, &ended
}

func TestExecReadsTheExitCodeAfterTheOutputEnds(t *testing.T) {
	written, release := make(chan struct{}), make(chan struct{})
	srv, c, _ := execServer(t, func(_ context.Context, conn net.Conn) {
		_, _ = conn.Write(enginetest.Frame(1, "out\n"))
		_, _ = conn.Write(enginetest.Frame(2, "err\n"))
		close(written)
		<-release
		_, _ = conn.Write(enginetest.Frame(1, "more\n"))
	})
	type result struct {
		res engine.ExecResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := c.Exec(t.Context(), appID, []string{"x"})
		done <- result{res, err}
	}()
	<-written
	select {
	case r := <-done:
		t.Fatalf("Exec returned %+v, %v while the output was still open", r.res, r.err)
	default:
	}
	require.Empty(t, srv.Find("GET /exec/{id}/json"), "no exit code asked while the output is open")
	close(release)
	r := <-done
	require.NoError(t, r.err)
	require.Equal(t, engine.ExecResult{ExitCode: 7, Stdout: []byte("out\nmore\n"), Stderr: []byte("err\n")}, r.res)
}

func TestExecWaitsForTheDaemonToRecordTheExit(t *testing.T) {
	srv, c := newClient(t)
	var polls atomic.Int32
	srv.HandleFunc("GET /exec/{id}/json", func(w http.ResponseWriter, r *http.Request) {
		if polls.Add(1) < 4 { // the process ended, the daemon has not noticed yet
			enginetest.Recorded("exec-inspect-running").ServeHTTP(w, r)
			return
		}
		enginetest.Recorded("exec-inspect-exited").ServeHTTP(w, r)
	})
	res, err := c.Exec(t.Context(), appID, []string{"x"})
	require.NoError(t, err)
	require.Equal(t, 1, res.ExitCode)
	require.Equal(t, int32(4), polls.Load())
}

// Not parallel: it shortens the package's execGrace.
func TestExecGivesUpOnAProcessThatClosedItsOutputButRuns(t *testing.T) {
	engine.SetExecGrace(t, 100*time.Millisecond)
	srv, c := newClient(t)
	srv.Handle("GET /exec/{id}/json", enginetest.Recorded("exec-inspect-running"))
	start := time.Now()
	_, err := c.Exec(t.Context(), appID, []string{"x"})
	require.EqualError(t, err, "the command closed its output but was still running 100ms later")
	require.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
	require.Greater(t, len(srv.Find("GET /exec/{id}/json")), 1, "it polled")
}

func TestExecEndsWithItsContextDuringTheOutput(t *testing.T) {
	written, clientClosed := make(chan struct{}), make(chan struct{})
	srv, c, _ := execServer(t, func(ctx context.Context, conn net.Conn) {
		// More than the socket buffers hold: once written, the client is
		// past the attach and reading the output.
		big := enginetest.Frame(1, strings.Repeat("x", 4<<20))
		if _, err := conn.Write(big); err != nil {
			t.Errorf("write the output: %v", err)
		}
		close(written)
		_, _ = io.Copy(io.Discard, conn) // until the client closes its side
		close(clientClosed)
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, appID, []string{"x"})
		done <- err
	}()
	<-written
	cancel()
	require.Equal(t, context.Canceled, <-done)
	<-clientClosed // the attach connection was closed, not leaked
	require.Empty(t, srv.Find("GET /exec/{id}/json"))
}

func TestExecErrors(t *testing.T) {
	t.Run("no such container", func(t *testing.T) {
		srv, c := newClient(t)
		srv.Handle("POST /containers/{id}/exec", enginetest.Error(404, "No such container: x"))
		_, err := c.Exec(t.Context(), "x", []string{"x"})
		require.ErrorIs(t, err, engine.ErrNotFound)
		require.Empty(t, srv.Find("POST /exec/{id}/start"))
	})
	t.Run("container not running", func(t *testing.T) {
		srv, c := newClient(t)
		srv.Handle("POST /containers/{id}/exec", enginetest.Error(409, "Container x is not running"))
		_, err := c.Exec(t.Context(), "x", []string{"x"})
		require.ErrorIs(t, err, engine.ErrConflict)
	})
	t.Run("attach refused", func(t *testing.T) {
		srv, c := newClient(t)
		srv.Handle("POST /exec/{id}/start", enginetest.Error(409, "Container x is paused"))
		_, err := c.Exec(t.Context(), "x", []string{"x"})
		require.ErrorContains(t, err, "unable to upgrade to tcp, received 409")
	})
	t.Run("exec gone before its inspect", func(t *testing.T) {
		srv, c := newClient(t)
		srv.Handle("GET /exec/{id}/json", enginetest.Recorded("error-exec-not-found"))
		_, err := c.Exec(t.Context(), "x", []string{"x"})
		require.ErrorIs(t, err, engine.ErrNotFound)
		require.Len(t, srv.Find("GET /exec/{id}/json"), 1, "not found is final: no retry")
	})
	t.Run("the daemon's error frame", func(t *testing.T) {
		srv, c := newClient(t)
		srv.Handle("POST /exec/{id}/start", enginetest.RawStream(append(enginetest.Frame(1, "out"), enginetest.Frame(3, "exec failed")...)))
		_, err := c.Exec(t.Context(), "x", []string{"x"})
		require.ErrorContains(t, err, "read output: ")
		require.ErrorContains(t, err, "exec failed")
		require.Empty(t, srv.Find("GET /exec/{id}/json"))
	})
	t.Run("output cut inside a frame", func(t *testing.T) {
		srv, c := newClient(t)
		srv.Handle("POST /exec/{id}/start", enginetest.RawStream(enginetest.Frame(1, "output")[:10]))
		_, err := c.Exec(t.Context(), "x", []string{"x"})
		require.ErrorContains(t, err, "read output: ")
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	})
}
