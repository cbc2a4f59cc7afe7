package engine_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
)

// testPKI is a CA made for one test, a server certificate for 127.0.0.1
// and a client certificate, both signed by it; the CA and the client's pair
// are written as PEM files, as Docker's TLS settings name them.
type testPKI struct {
	caFile, certFile, keyFile string
	server                    tls.Certificate
	pool                      *x509.CertPool
}

func newPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		return k
	}
	serial := int64(0)
	sign := func(tmpl *x509.Certificate, key *ecdsa.PrivateKey, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) *x509.Certificate {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		require.NoError(t, err)
		cert, err := x509.ParseCertificate(der)
		require.NoError(t, err)
		return cert
	}
	writePEM := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return path
	}

	caKey := newKey()
	ca := sign(&x509.Certificate{
		Subject: pkix.Name{CommonName: "heph test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, caKey, nil, nil)
	serverKey := newKey()
	server := sign(&x509.Certificate{
		Subject: pkix.Name{CommonName: "daemon"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, serverKey, ca, caKey)
	clientKey := newKey()
	clientCert := sign(&x509.Certificate{
		Subject:  pkix.Name{CommonName: "heph client"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, clientKey, ca, caKey)
	clientKeyDER, err := x509.MarshalECPrivateKey(clientKey)
	require.NoError(t, err)

	p := testPKI{
		caFile:   writePEM("ca.pem", "CERTIFICATE", ca.Raw),
		certFile: writePEM("cert.pem", "CERTIFICATE", clientCert.Raw),
		keyFile:  writePEM("key.pem", "EC PRIVATE KEY", clientKeyDER),
		server:   tls.Certificate{Certificate: [][]byte{server.Raw}, PrivateKey: serverKey},
		pool:     x509.NewCertPool(),
	}
	p.pool.AddCert(ca)
	return p
}

// tlsDaemon is a fake daemon speaking TLS with p's server certificate; with
// clientAuth it demands a client certificate signed by p's CA. It reports
// the common name of the last client certificate it saw.
func tlsDaemon(t *testing.T, p testPKI, clientAuth bool) (*enginetest.Server, func() string) {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if clientAuth {
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, p.pool
	}
	srv := enginetest.NewTLSServer(t, cfg)
	var mu sync.Mutex
	peer := ""
	srv.HandleFunc("HEAD /_ping", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			peer = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		mu.Unlock()
		enginetest.Recorded("ping-head").ServeHTTP(w, r)
	})
	return srv, func() string { mu.Lock(); defer mu.Unlock(); return peer }
}

func ping(t *testing.T, ep engine.Endpoint) error {
	t.Helper()
	c, err := engine.Dial(ep)
	require.NoError(t, err)
	defer c.Close()
	return c.Ping(t.Context())
}

func TestDialOverTLS(t *testing.T) {
	p := newPKI(t)
	srv, _ := tlsDaemon(t, p, false)
	ep := srv.Endpoint()

	t.Run("without verification", func(t *testing.T) {
		require.NoError(t, ping(t, engine.Endpoint{Host: ep.Host, TLS: true}))
	})
	t.Run("verified with the daemon's CA", func(t *testing.T) {
		require.NoError(t, ping(t, engine.Endpoint{Host: ep.Host, TLS: true, TLSVerify: true, CAFile: p.caFile}))
	})
	t.Run("verified without the CA fails", func(t *testing.T) {
		err := ping(t, engine.Endpoint{Host: ep.Host, TLS: true, TLSVerify: true})
		require.ErrorContains(t, err, "certificate signed by unknown authority")
	})
	t.Run("plain HTTP to a TLS daemon fails", func(t *testing.T) {
		require.ErrorContains(t, ping(t, engine.Endpoint{Host: ep.Host}), "Client sent an HTTP request to an HTTPS server")
	})
}

func TestDialOverTLSWithAClientCertificate(t *testing.T) {
	p := newPKI(t)
	srv, peer := tlsDaemon(t, p, true)
	host := srv.Endpoint().Host

	t.Run("verified, with the certificate", func(t *testing.T) {
		require.NoError(t, ping(t, engine.Endpoint{Host: host, TLS: true, TLSVerify: true, CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile}))
		require.Equal(t, "heph client", peer())
	})
	t.Run("not verified, with the certificate", func(t *testing.T) {
		require.NoError(t, ping(t, engine.Endpoint{Host: host, TLS: true, CertFile: p.certFile, KeyFile: p.keyFile}))
		require.Equal(t, "heph client", peer())
	})
	t.Run("without the certificate, refused", func(t *testing.T) {
		require.ErrorContains(t, ping(t, engine.Endpoint{Host: host, TLS: true, TLSVerify: true, CAFile: p.caFile}), "tls: certificate required")
		require.ErrorContains(t, ping(t, engine.Endpoint{Host: host, TLS: true}), "tls: certificate required")
	})
}

func TestDialRefusesBadSettings(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		ep   engine.Endpoint
		want string
		is   error
	}{
		{"ssh without a host", engine.Endpoint{Host: "ssh://me@"}, "needs a host", nil},
		{"client certificate without its key", engine.Endpoint{Host: "tcp://lab:2376", TLS: true, CertFile: "/x/cert.pem"}, `client certificate needs both cert.pem and key.pem (have cert "/x/cert.pem", key "")`, nil},
		{"client key without its certificate", engine.Endpoint{Host: "tcp://lab:2376", TLS: true, KeyFile: "/x/key.pem"}, "needs both cert.pem and key.pem", nil},
		{"unreadable client certificate", engine.Endpoint{Host: "tcp://lab:2376", TLS: true, CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}, "load client certificate", os.ErrNotExist},
		{"verified TLS with a missing CA", engine.Endpoint{Host: "tcp://lab:2376", TLS: true, TLSVerify: true, CAFile: "/nonexistent/ca.pem"}, "/nonexistent/ca.pem", nil},
		{"a host that is no URL", engine.Endpoint{Host: "tcp://lab:port"}, "configure client", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := engine.Dial(tt.ep)
			require.Nil(t, c)
			require.ErrorContains(t, err, tt.want)
			if tt.is != nil {
				require.ErrorIs(t, err, tt.is)
			}
		})
	}
}

func TestDialWithAFixedVersionMakesNoCall(t *testing.T) {
	srv := enginetest.NewServer(t)
	ep := srv.Endpoint()
	ep.APIVersion = "1.40"
	c, err := engine.Dial(ep)
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, "1.40", c.APIVersion(), "fixed at once")
	require.Empty(t, srv.Requests(), "Dial makes no call")
	_, err = c.ContainerList(t.Context(), nil)
	require.NoError(t, err)
	require.Equal(t, []string{"GET /containers/json"}, paths(srv.Requests()), "no ping to negotiate")
	require.Equal(t, "1.40", srv.Requests()[0].Version)
}

func TestEndpointHostnameAndIsSocket(t *testing.T) {
	tests := []struct {
		host, hostname string
		socket         bool
	}{
		{"unix:///var/run/docker.sock", "", true},
		{"", "", true},
		{"npipe:////./pipe/docker_engine", "", true},
		{"tcp://lab.example:2376", "lab.example", false},
		{"TCP://10.0.0.5:2375", "10.0.0.5", false},
		{"https://[::1]:2376", "::1", false},
		{"ssh://me@box:22", "box", false},
		{"fd://", "", false},
		{"tcp://%zz", "", false},
	}
	for _, tt := range tests {
		ep := engine.Endpoint{Host: tt.host}
		require.Equal(t, tt.hostname, ep.Hostname(), "Hostname of %q", tt.host)
		require.Equal(t, tt.socket, ep.IsSocket(), "IsSocket of %q", tt.host)
	}
}

func TestSSHArgsAreTheDockerCLIs(t *testing.T) {
	args, err := engine.SSHArgs("ssh://me@box:2222")
	require.NoError(t, err)
	require.Equal(t, []string{"-o", "ConnectTimeout=30", "-T", "-l", "me", "-p", "2222", "--", "box", "docker", "system", "dial-stdio"}, args)
	args, err = engine.SSHArgs("ssh://box")
	require.NoError(t, err)
	require.Equal(t, []string{"-o", "ConnectTimeout=30", "-T", "--", "box", "docker", "system", "dial-stdio"}, args, "ssh config decides user and port")
	_, err = engine.SSHArgs("ssh://-l@box")
	require.ErrorContains(t, err, "user of an ssh:// address cannot start with '-'")
}

// TestSSHDialsThroughACommand: each connection is a process speaking HTTP
// on its stdin and stdout; a fake ssh on PATH answers a ping, and one that
// fails shows its stderr in the error.
func TestSSHDialsThroughACommand(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "ssh")
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\necho \"$*\" >> "+filepath.Join(dir, "calls")+"\n"+
		"echo 'Permission denied (publickey).' >&2\nexit 255\n"), 0o755))
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	c, err := engine.Dial(engine.Endpoint{Host: "ssh://me@box:2222"})
	require.NoError(t, err)
	defer c.Close()
	err = c.Ping(t.Context())
	require.ErrorContains(t, err, "Permission denied (publickey)")
	calls, rerr := os.ReadFile(filepath.Join(dir, "calls"))
	require.NoError(t, rerr)
	require.Contains(t, string(calls), "-l me -p 2222 -- box docker system dial-stdio")
}

// TestSSHClientCloseLeavesNoSSHProcess: over ssh:// a client keeps spare
// connections (ssh processes started ahead of need); after Close none of
// the ssh processes it started still runs. The fake ssh records its pid and
// then waits without answering, as a slow remote would.
func TestSSHClientCloseLeavesNoSSHProcess(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ssh"), []byte("#!/bin/sh\necho $$ >> "+pids+"\nexec sleep 300\n"), 0o755))
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	c, err := engine.Dial(engine.Endpoint{Host: "ssh://me@box"})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	require.Error(t, c.Ping(ctx), "the fake never answers")
	// The ping's own connection and two spares.
	require.Eventually(t, func() bool {
		return len(readPids(t, pids)) >= 3
	}, 20*time.Second, 10*time.Millisecond, "the client did not start its spares")
	require.NoError(t, c.Close())
	n := len(readPids(t, pids))
	require.Eventually(t, func() bool {
		for _, pid := range readPids(t, pids) {
			if syscall.Kill(pid, 0) == nil {
				return false
			}
		}
		return true
	}, 20*time.Second, 10*time.Millisecond, "an ssh process still runs after Close")
	require.Len(t, readPids(t, pids), n, "no process started after Close")
}

func readPids(t *testing.T, file string) []int {
	t.Helper()
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		require.NoError(t, err)
		pids = append(pids, pid)
	}
	return pids
}
