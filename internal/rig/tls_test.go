package rig

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heph-go/heph/internal/daemon"
	"github.com/stretchr/testify/require"
)

// fakeDaemon answers the API's ping on a unix socket.
func fakeDaemon(t *testing.T) func() (net.Conn, error) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		_, _ = w.Write([]byte("OK"))
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return func() (net.Conn, error) { return net.Dial("unix", sock) }
}

// TestTLSErrorsAreClear: a TLS endpoint that verifies client certificates,
// reached with the right files, with another CA, with no client
// certificate, with an expired client certificate and an expired server
// one: each failure says what is wrong.
func TestTLSErrorsAreClear(t *testing.T) {
	ca, err := NewCA("right CA")
	require.NoError(t, err)
	other, err := NewCA("other CA")
	require.NoError(t, err)
	now := time.Now()
	good := func(server bool) Leaf {
		l, err := ca.Issue("x", server, now.Add(-time.Hour), now.Add(time.Hour))
		require.NoError(t, err)
		return l
	}
	expired := func(server bool) Leaf {
		l, err := ca.Issue("x", server, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
		require.NoError(t, err)
		return l
	}
	backend := fakeDaemon(t)
	proxy := func(server Leaf) string {
		p, err := NewTLSProxy(ca, server, backend)
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close() })
		return p.Addr
	}
	goodAddr := proxy(good(true))
	clientOK := good(false)
	clientExpired := expired(false)
	for _, tc := range []struct {
		name   string
		addr   string
		caPEM  []byte
		client *Leaf
		want   []string // "" wants success
	}{
		{name: "right files", addr: goodAddr, caPEM: ca.PEM, client: &clientOK},
		{name: "wrong CA", addr: goodAddr, caPEM: other.PEM, client: &clientOK,
			want: []string{"certificate signed by unknown authority", "the daemon's certificate is not signed by the CA in " + "{dir}/ca.pem"}},
		{name: "no client certificate", addr: goodAddr, caPEM: ca.PEM,
			want: []string{"certificate required", "the daemon requires a client certificate and heph has none: put cert.pem and key.pem in DOCKER_CERT_PATH"}},
		{name: "expired client certificate", addr: goodAddr, caPEM: ca.PEM, client: &clientExpired,
			want: []string{"the daemon refused the client certificate {dir}/cert.pem as expired"}},
		{name: "expired server certificate", addr: proxy(expired(true)), caPEM: ca.PEM, client: &clientOK,
			want: []string{"certificate has expired", "the daemon's certificate has expired or is not yet valid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, WriteCertPath(dir, tc.caPEM, tc.client))
			env := map[string]string{"DOCKER_HOST": "tcp://" + tc.addr, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": dir}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			api, _, err := daemon.Connect(ctx, daemon.Env{Getenv: func(k string) string { return env[k] }})
			if len(tc.want) == 0 {
				require.NoError(t, err)
				require.NoError(t, api.Close())
				return
			}
			require.Error(t, err)
			t.Logf("%s: %v", tc.name, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), strings.ReplaceAll(w, "{dir}", dir))
			}
		})
	}
}
