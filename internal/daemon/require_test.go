package daemon

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestInCI(t *testing.T) {
	for v, want := range map[string]bool{"": false, "true": true, "1": true, "woodpecker": true, "false": false, "0": false, "off": false} {
		require.Equal(t, want, InCI(func(string) string { return v }), "CI=%q", v)
	}
	require.False(t, InCI(nil))
}

func TestRequire(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none.sock")
	env := func(ci string, host string) Env {
		return Env{Getenv: func(k string) string {
			return map[string]string{"CI": ci, "DOCKER_HOST": host}[k]
		}}
	}
	report, fail := Require(context.Background(), env("", "unix://"+none))
	require.False(t, fail, "a developer's machine skips")
	require.Contains(t, report, "skipped: this test needs a Docker daemon")
	require.Contains(t, report, "unix://"+none+" (DOCKER_HOST)", "the discovery report says what was tried")
	require.Contains(t, report, "what to do:")

	report, fail = Require(context.Background(), env("true", "unix://"+none))
	require.True(t, fail, "CI fails")
	require.Contains(t, report, "CI is set, so it fails rather than skips")

	report, fail = Require(context.Background(), env("true", "ssh://me@box/path"))
	require.True(t, fail, "a bad setting is reported, never a panic")
	require.Contains(t, report, "DOCKER_HOST")

	// A daemon that answers the ping: nothing to say.
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		_, _ = w.Write([]byte("OK"))
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	report, fail = Require(context.Background(), env("true", "unix://"+sock))
	require.Empty(t, report)
	require.False(t, fail)
}
