package engine

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// Endpoint is one place a Docker daemon may answer, and everything needed to
// reach it. It is plain data: the watchdog receives it as JSON and dials the
// very same daemon.
type Endpoint struct {
	// Host is a DOCKER_HOST-style URL: unix:///var/run/docker.sock,
	// tcp://host:2376, ssh://user@host or npipe:////./pipe/docker_engine.
	Host string `json:"host"`
	// Source says how the endpoint was found, for messages: "DOCKER_HOST",
	// `context "remote" (DOCKER_CONTEXT)`, "default socket", "WithDaemon".
	Source string `json:"source,omitempty"`
	// TLS says to speak TLS to the daemon; TLSVerify to verify its
	// certificate against CAFile (or the system's roots).
	TLS       bool `json:"tls,omitempty"`
	TLSVerify bool `json:"tls_verify,omitempty"`
	// CAFile, CertFile and KeyFile are PEM files; each may be empty.
	CAFile   string `json:"ca,omitempty"`
	CertFile string `json:"cert,omitempty"`
	KeyFile  string `json:"key,omitempty"`
	// APIVersion fixes the API version ("1.41"); "" negotiates it.
	APIVersion string `json:"api_version,omitempty"`
}

// Hostname returns the host part of a tcp:// (or ssh://) address, "" for a
// socket.
func (e Endpoint) Hostname() string {
	u, err := url.Parse(e.Host)
	if err != nil {
		return ""
	}
	switch strings.ToLower(u.Scheme) {
	case "tcp", "http", "https", "ssh":
		return u.Hostname()
	}
	return ""
}

// IsSocket reports whether the endpoint is a unix socket or a named pipe
// (or has no host: the SDK's default socket).
func (e Endpoint) IsSocket() bool {
	h := strings.ToLower(e.Host)
	return h == "" || strings.HasPrefix(h, "unix://") || strings.HasPrefix(h, "npipe://")
}

// clientOptions turns the endpoint into options for client.New: the host;
// TLS through client.WithTLSClientConfig when the server is verified, or an
// http.Client of our own when it is not (the SDK option always verifies);
// and client.WithAPIVersion when the version is fixed.
func (e Endpoint) clientOptions() ([]client.Opt, error) {
	var opts []client.Opt
	if e.TLS && !e.TLSVerify {
		cfg, err := insecureTLSConfig(e.CertFile, e.KeyFile)
		if err != nil {
			return nil, err
		}
		// Set before WithHost, which configures the dialer of this transport.
		opts = append(opts, client.WithHTTPClient(&http.Client{
			Transport: &http.Transport{
				TLSClientConfig: cfg,
				MaxIdleConns:    6,
				IdleConnTimeout: 30 * time.Second,
			},
			CheckRedirect: client.CheckRedirect,
		}))
	}
	opts = append(opts, client.WithHost(e.Host))
	if e.TLS && e.TLSVerify {
		opts = append(opts, client.WithTLSClientConfig(e.CAFile, e.CertFile, e.KeyFile))
	}
	if e.APIVersion != "" {
		opts = append(opts, client.WithAPIVersion(e.APIVersion))
	}
	return opts, nil
}

// insecureTLSConfig is TLS without server verification, with the client
// certificate when there is one.
func insecureTLSConfig(certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, //nolint:gosec // asked for: DOCKER_TLS_VERIFY unset, or the context skips verification
	}
	switch {
	case certFile == "" && keyFile == "":
		return cfg, nil
	case certFile == "" || keyFile == "":
		return nil, fmt.Errorf("client certificate needs both cert.pem and key.pem (have cert %q, key %q)", certFile, keyFile)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load client certificate: %w", err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	return cfg, nil
}

// Dial returns a client for the endpoint. It makes no call to the daemon:
// Ping does.
// Over ssh:// it keeps sshSpareConns connections started ahead of need
// (see sshSpares), which its Close ends.
func Dial(e Endpoint) (*Client, error) {
	var spares *sshSpares
	if e.IsSSH() {
		args, err := SSHArgs(e.Host)
		if err != nil {
			return nil, err
		}
		spares = newSSHSpares(args, sshSpareConns, sshSpareIdle)
	}
	cli, err := sdkClient(e, spares)
	if err != nil {
		return nil, err
	}
	return &Client{cli: cli, fixed: e.APIVersion != "", spares: spares}, nil
}

// SDKClient returns the moby SDK's client for the endpoint, ssh:// included,
// for what talks to the daemon behind heph's back (the integration tests'
// own checks). It makes no call to the daemon. Over ssh:// it keeps no
// spare connections: the SDK client's Close could not end them.
func SDKClient(e Endpoint) (*client.Client, error) { return sdkClient(e, nil) }

func sdkClient(e Endpoint, spares *sshSpares) (*client.Client, error) {
	var opts []client.Opt
	var err error
	if e.IsSSH() {
		opts, err = sshOptions(e, spares)
	} else {
		opts, err = e.clientOptions()
	}
	if err != nil {
		return nil, err
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("configure client: %w", err)
	}
	return cli, nil
}

// IsSSH reports whether the endpoint is an ssh:// host.
func (e Endpoint) IsSSH() bool { return strings.HasPrefix(strings.ToLower(e.Host), "ssh://") }

// sshOptions are the options of a client whose connections are each an ssh process
// running `docker system dial-stdio` on the remote host, as the docker CLI
// does. Idle connections are kept (an ssh handshake costs tens of
// milliseconds to seconds), up to sshIdleConns. With spares, a new
// connection is taken from them.
func sshOptions(e Endpoint, spares *sshSpares) ([]client.Opt, error) {
	args, err := SSHArgs(e.Host)
	if err != nil {
		return nil, err
	}
	dial := sshDialer(args)
	if spares != nil {
		dial = spares.dial
	}
	tr := &http.Transport{
		DialContext:         dial,
		MaxIdleConns:        sshIdleConns,
		MaxIdleConnsPerHost: sshIdleConns,
		IdleConnTimeout:     90 * time.Second,
	}
	opts := []client.Opt{
		client.WithHTTPClient(&http.Client{Transport: tr, CheckRedirect: client.CheckRedirect}),
		// The address is only a name for HTTP: the dialer ignores it.
		client.WithHost("http://docker.example.com"),
		client.WithDialContext(dial),
	}
	if e.APIVersion != "" {
		opts = append(opts, client.WithAPIVersion(e.APIVersion))
	}
	return opts, nil
}

// sshIdleConns is how many idle ssh connections a client keeps.
const sshIdleConns = 8
