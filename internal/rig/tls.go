package rig

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// CA is a certificate authority made for a run.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte
}

// NewCA makes a CA valid from an hour ago for a day.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// Leaf is a certificate and its key, in PEM.
type Leaf struct{ CertPEM, KeyPEM []byte }

// Issue makes a server certificate (for 127.0.0.1 and localhost) or a
// client one, valid from notBefore to notAfter.
func (ca *CA) Issue(name string, server bool, notBefore, notAfter time.Time) (Leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Leaf{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return Leaf{}, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Leaf{}, err
	}
	return Leaf{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	}, nil
}

// WriteCertPath writes what DOCKER_CERT_PATH holds: ca.pem, and cert.pem
// and key.pem when client is not nil.
func WriteCertPath(dir string, caPEM []byte, client *Leaf) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := map[string][]byte{"ca.pem": caPEM}
	if client != nil {
		files["cert.pem"], files["key.pem"] = client.CertPEM, client.KeyPEM
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// TLSProxy terminates TLS on 127.0.0.1, requires a client certificate
// signed by its CA, and forwards each connection to a backend (the
// daemon's socket).
type TLSProxy struct {
	// Addr is host:port.
	Addr string
	l    net.Listener
	wg   sync.WaitGroup
}

// NewTLSProxy listens on 127.0.0.1 with the server certificate and
// forwards to dial.
func NewTLSProxy(ca *CA, server Leaf, dial func() (net.Conn, error)) (*TLSProxy, error) {
	pair, err := tls.X509KeyPair(server.CertPEM, server.KeyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	})
	if err != nil {
		return nil, err
	}
	p := &TLSProxy{Addr: l.Addr().String(), l: l}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c.(*tls.Conn), dial)
			}()
		}
	}()
	return p, nil
}

func (p *TLSProxy) serve(c *tls.Conn, dial func() (net.Conn, error)) {
	defer c.Close()
	hctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := c.HandshakeContext(hctx)
	cancel()
	if err != nil {
		return
	}
	b, err := dial()
	if err != nil {
		return
	}
	defer b.Close()
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(b, c)
		if cw, ok := b.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(c, b)
		_ = c.CloseWrite()
		done <- struct{}{}
	}()
	<-done
	<-done
}

// Close stops listening and waits for the connections to end.
func (p *TLSProxy) Close() error {
	err := p.l.Close()
	p.wg.Wait()
	return err
}

// startTLS puts a TLS proxy that verifies client certificates in front of
// the local daemon's socket and points DOCKER_HOST, DOCKER_TLS_VERIFY and
// DOCKER_CERT_PATH at it, with certificates made for the run.
func startTLS(_ context.Context, e *Endpoint, dir string) error {
	local, err := localDaemon()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(local.Host, "unix://") {
		return fmt.Errorf("the TLS rig forwards to a unix socket; heph finds %s", local.Host)
	}
	sock := strings.TrimPrefix(local.Host, "unix://")
	ca, err := NewCA("heph-rig CA")
	if err != nil {
		return err
	}
	now := time.Now()
	server, err := ca.Issue("heph-rig daemon", true, now.Add(-time.Hour), now.Add(24*time.Hour))
	if err != nil {
		return err
	}
	client, err := ca.Issue("heph-rig client", false, now.Add(-time.Hour), now.Add(24*time.Hour))
	if err != nil {
		return err
	}
	certs := filepath.Join(dir, "certs")
	if err := WriteCertPath(certs, ca.PEM, &client); err != nil {
		return err
	}
	p, err := NewTLSProxy(ca, server, func() (net.Conn, error) { return net.Dial("unix", sock) })
	if err != nil {
		return err
	}
	e.onClose(func() error {
		err := p.Close()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		return err
	})
	e.Env["DOCKER_HOST"] = "tcp://" + p.Addr
	e.Env["DOCKER_TLS_VERIFY"] = "1"
	e.Env["DOCKER_CERT_PATH"] = certs
	e.Unset = append(e.Unset, "DOCKER_CONTEXT", "DOCKER_TLS")
	return nil
}
