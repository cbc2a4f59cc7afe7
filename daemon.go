package heph

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// This file finds the Docker daemon the way the docker CLI does and connects
// to it. Discovery (findDaemon) is pure: it reads the environment and the
// docker CLI's config directory and lists the endpoints to try, in order.
// connectDaemon pings them one after another and keeps the first that answers.

// Environment variables read by discovery (the docker CLI's names).
const (
	envDockerHost       = "DOCKER_HOST"
	envDockerContext    = "DOCKER_CONTEXT"
	envDockerConfig     = "DOCKER_CONFIG"
	envDockerTLS        = "DOCKER_TLS"
	envDockerTLSVerify  = "DOCKER_TLS_VERIFY"
	envDockerCertPath   = "DOCKER_CERT_PATH"
	envDockerAPIVersion = "DOCKER_API_VERSION"
	envXDGRuntimeDir    = "XDG_RUNTIME_DIR"
)

// defaultContextName is the docker CLI's name for "no context": the
// environment and the default socket decide.
const defaultContextName = "default"

// daemonPingTimeout bounds the ping of one endpoint in connectDaemon (the
// caller's deadline still applies when it is sooner).
const daemonPingTimeout = 3 * time.Second

// Sources of endpoints that are not contexts, as shown in messages.
const (
	sourceDockerHost    = "DOCKER_HOST"
	sourceRootless      = "rootless socket ($XDG_RUNTIME_DIR/docker.sock)"
	sourceDefaultSocket = "default socket"
)

// dockerEndpoint is one place a Docker daemon may answer, and how heph found it.
type dockerEndpoint struct {
	// Host is a DOCKER_HOST-style URL: unix:///var/run/docker.sock,
	// tcp://host:2376 or npipe:////./pipe/docker_engine. ssh:// is refused
	// by findDaemon.
	Host string
	// Source says how the endpoint was found, for messages and `heph doctor`:
	// "DOCKER_HOST", `context "remote" (DOCKER_CONTEXT)`,
	// `context "remote" (~/.docker/config.json)`,
	// "rootless socket ($XDG_RUNTIME_DIR/docker.sock)" or "default socket".
	Source string
	// TLS says to speak TLS to the daemon; TLSVerify to verify its certificate.
	TLS       bool
	TLSVerify bool
	// CAFile, CertFile and KeyFile are PEM files; each may be empty.
	CAFile, CertFile, KeyFile string
	// APIVersion is the fixed API version from DOCKER_API_VERSION ("1.41");
	// "" means negotiate with the daemon.
	APIVersion string
}

// daemonEnv is what discovery reads, so tests can fake it.
type daemonEnv struct {
	Getenv func(string) string    // nil reads as an empty environment
	Home   string                 // user home dir; "" when unknown
	Exists func(path string) bool // for sockets; nil means os.Stat
}

// osDaemonEnv returns the real environment of this process.
func osDaemonEnv() daemonEnv {
	home, _ := os.UserHomeDir() // "" when unknown: discovery then skips ~/.docker
	return daemonEnv{Getenv: os.Getenv, Home: home, Exists: pathExists}
}

func (env daemonEnv) getenv(key string) string {
	if env.Getenv == nil {
		return ""
	}
	return strings.TrimSpace(env.Getenv(key))
}

func (env daemonEnv) exists(path string) bool {
	if env.Exists == nil {
		return pathExists(path)
	}
	return env.Exists(path)
}

// configDir is the docker CLI's configuration directory: $DOCKER_CONFIG, else
// ~/.docker; "" when neither is known.
func (env daemonEnv) configDir() string {
	if dir := env.getenv(envDockerConfig); dir != "" {
		return dir
	}
	if env.Home == "" {
		return ""
	}
	return filepath.Join(env.Home, ".docker")
}

// tilde shortens a path under the home directory to ~/… for messages.
func (env daemonEnv) tilde(path string) string {
	if env.Home == "" {
		return path
	}
	rel, err := filepath.Rel(env.Home, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return path
	}
	return "~/" + filepath.ToSlash(rel)
}

func pathExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// findDaemon returns the endpoints to try, in order, as the docker CLI would:
//
//  1. DOCKER_HOST, when set, and then only that;
//  2. else the context named by DOCKER_CONTEXT, or by currentContext in
//     config.json (in $DOCKER_CONFIG, default ~/.docker), and then only that
//     context's endpoint, unless the name is "default";
//  3. else the rootless socket $XDG_RUNTIME_DIR/docker.sock when it exists;
//  4. then the default socket, always last so that a failure can say it was
//     tried.
//
// DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and DOCKER_TLS set TLS for DOCKER_HOST;
// a context's TLS comes from its own files. DOCKER_API_VERSION fixes the API
// version of every endpoint.
//
// Errors match ErrInvalidConfig and name the variable or the file at fault: a
// malformed DOCKER_API_VERSION or DOCKER_HOST, an ssh:// host, a context that
// does not exist or cannot be read, an unreadable config.json.
func findDaemon(env daemonEnv) ([]dockerEndpoint, error) {
	version, err := apiVersionFromEnv(env)
	if err != nil {
		return nil, err
	}
	eps, err := findEndpoints(env)
	if err != nil {
		return nil, err
	}
	for i := range eps {
		eps[i].APIVersion = version
	}
	return eps, nil
}

func findEndpoints(env daemonEnv) ([]dockerEndpoint, error) {
	if host := env.getenv(envDockerHost); host != "" {
		ep, err := hostEndpoint(env, host)
		if err != nil {
			return nil, err
		}
		return []dockerEndpoint{ep}, nil
	}

	name, source, err := currentContext(env)
	if err != nil {
		return nil, err
	}
	if name != "" && name != defaultContextName {
		ep, err := contextEndpoint(env, name, source)
		if err != nil {
			return nil, err
		}
		return []dockerEndpoint{ep}, nil
	}

	var eps []dockerEndpoint
	if dir := env.getenv(envXDGRuntimeDir); dir != "" {
		if sock := filepath.Join(dir, "docker.sock"); env.exists(sock) {
			eps = append(eps, dockerEndpoint{Host: "unix://" + sock, Source: sourceRootless})
		}
	}
	return append(eps, dockerEndpoint{Host: client.DefaultDockerHost, Source: sourceDefaultSocket}), nil
}

// hostEndpoint builds the endpoint for DOCKER_HOST, with TLS as the docker CLI
// and the SDK read it from the environment: DOCKER_TLS_VERIFY (any non-empty
// value) means TLS with verification; DOCKER_CERT_PATH or DOCKER_TLS alone
// mean TLS without verification. The PEM files are ca.pem, cert.pem and
// key.pem in DOCKER_CERT_PATH (default: the config directory), those that
// exist.
func hostEndpoint(env daemonEnv, host string) (dockerEndpoint, error) {
	verify := env.getenv(envDockerTLSVerify) != ""
	certPath := env.getenv(envDockerCertPath)
	useTLS := verify || certPath != "" || env.getenv(envDockerTLS) != ""

	h, err := normalizeHost(host, useTLS)
	if err != nil {
		return dockerEndpoint{}, invalid(envDockerHost, host, err.Error())
	}
	ep := dockerEndpoint{Host: h, Source: sourceDockerHost, TLS: useTLS, TLSVerify: verify}
	if useTLS {
		if certPath == "" {
			certPath = env.configDir()
		}
		if certPath != "" {
			ep.CAFile, ep.CertFile, ep.KeyFile = pemFiles(certPath)
		}
	}
	return ep, nil
}

// pemFiles returns dir's ca.pem, cert.pem and key.pem, each "" when absent.
func pemFiles(dir string) (ca, cert, key string) {
	file := func(name string) string {
		if p := filepath.Join(dir, name); pathExists(p) {
			return p
		}
		return ""
	}
	return file("ca.pem"), file("cert.pem"), file("key.pem")
}

// currentContext returns the name of the docker context in force and where it
// came from (for messages): DOCKER_CONTEXT, else currentContext in
// config.json. It returns "" when neither names one.
func currentContext(env daemonEnv) (name, source string, err error) {
	if name := env.getenv(envDockerContext); name != "" {
		return name, envDockerContext, nil
	}
	dir := env.configDir()
	if dir == "" {
		return "", "", nil
	}
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("%w: docker config %s: %w", ErrInvalidConfig, path, err)
	}
	var cfg struct {
		CurrentContext string `json:"currentContext"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return "", "", fmt.Errorf("%w: docker config %s is not valid JSON (fix or remove it): %w", ErrInvalidConfig, path, err)
	}
	return strings.TrimSpace(cfg.CurrentContext), env.tilde(path), nil
}

// contextDirName is the directory name the docker CLI stores a context under:
// the hex SHA-256 of its name.
func contextDirName(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// contextEndpoint reads the docker endpoint of the named context from
// <config>/contexts/meta/<sha256(name)>/meta.json, and its TLS files from
// <config>/contexts/tls/<sha256(name)>/docker/. As in the docker CLI, the
// context uses TLS when it has any of those files or skips verification.
func contextEndpoint(env daemonEnv, name, source string) (dockerEndpoint, error) {
	what := fmt.Sprintf("docker context %q (%s)", name, source)
	dir := env.configDir()
	if dir == "" {
		return dockerEndpoint{}, fmt.Errorf("%w: %s: no home directory and %s is not set, so the context cannot be found",
			ErrInvalidConfig, what, envDockerConfig)
	}
	meta := filepath.Join(dir, "contexts", "meta", contextDirName(name), "meta.json")
	data, err := os.ReadFile(meta)
	if errors.Is(err, os.ErrNotExist) {
		return dockerEndpoint{}, fmt.Errorf("%w: %s does not exist: %s not found; `docker context ls` lists the contexts, `docker context use default` goes back to the default: %w",
			ErrInvalidConfig, what, meta, err)
	}
	if err != nil {
		return dockerEndpoint{}, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, what, err)
	}
	var m struct {
		Name      string
		Endpoints map[string]struct {
			Host          string
			SkipTLSVerify bool
		}
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return dockerEndpoint{}, fmt.Errorf("%w: %s: %s is not valid JSON: %w", ErrInvalidConfig, what, meta, err)
	}
	docker, ok := m.Endpoints["docker"]
	if !ok || strings.TrimSpace(docker.Host) == "" {
		return dockerEndpoint{}, fmt.Errorf("%w: %s: %s has no docker endpoint host", ErrInvalidConfig, what, meta)
	}

	src := fmt.Sprintf("context %q (%s)", name, source)
	ep := dockerEndpoint{Source: src}
	ep.CAFile, ep.CertFile, ep.KeyFile = pemFiles(filepath.Join(dir, "contexts", "tls", contextDirName(name), "docker"))
	ep.TLS = docker.SkipTLSVerify || ep.CAFile != "" || ep.CertFile != "" || ep.KeyFile != ""
	ep.TLSVerify = ep.TLS && !docker.SkipTLSVerify

	h, err := normalizeHost(docker.Host, ep.TLS)
	if err != nil {
		return dockerEndpoint{}, fmt.Errorf("%w: %s: host %q in %s: %s", ErrInvalidConfig, what, docker.Host, meta, err)
	}
	ep.Host = h
	return ep, nil
}

// normalizeHost checks a DOCKER_HOST-style address and completes it as the
// docker CLI does: an address without a scheme is tcp://, and a tcp://
// address without a port gets 2376 with TLS, 2375 without. The error is a
// reason, for the caller to put after the name of the setting.
func normalizeHost(host string, useTLS bool) (string, error) {
	host = strings.TrimSpace(host)
	scheme, rest, ok := strings.Cut(host, "://")
	if !ok {
		if strings.HasPrefix(host, "/") {
			return "", fmt.Errorf("a socket path needs the unix:// scheme: unix://%s", host)
		}
		scheme, rest = "tcp", host
	}
	switch strings.ToLower(scheme) {
	case "unix", "npipe":
		if rest == "" {
			return "", fmt.Errorf("%s:// needs a path", scheme)
		}
		return scheme + "://" + rest, nil
	case "tcp":
		u, err := url.Parse("tcp://" + rest)
		if err != nil {
			return "", fmt.Errorf("not a valid tcp:// address: %w", err)
		}
		hostname, port := u.Hostname(), u.Port()
		if hostname == "" {
			hostname = "localhost"
		}
		if port == "" {
			port = "2375"
			if useTLS {
				port = "2376"
			}
		}
		return "tcp://" + net.JoinHostPort(hostname, port) + u.Path, nil
	case "ssh":
		return "", errors.New("ssh:// is not supported by heph; forward the daemon's socket over ssh " +
			"(ssh -nNT -L /tmp/docker.sock:/var/run/docker.sock user@host) and set DOCKER_HOST=unix:///tmp/docker.sock")
	default:
		return "", fmt.Errorf("unsupported scheme %q: use unix://, tcp:// or npipe://", scheme)
	}
}

// apiVersionRE is the shape of an API version: "1.41" (a leading "v" is
// accepted, as the SDK does).
var apiVersionRE = regexp.MustCompile(`^v?([0-9]+)\.([0-9]+)$`)

// apiVersionFromEnv returns DOCKER_API_VERSION as "<major>.<minor>", or ""
// when it is not set.
func apiVersionFromEnv(env daemonEnv) (string, error) {
	v := env.getenv(envDockerAPIVersion)
	if v == "" {
		return "", nil
	}
	m := apiVersionRE.FindStringSubmatch(v)
	if m == nil {
		return "", invalid(envDockerAPIVersion, v, `want <major>.<minor>, such as "1.41" (unset it to negotiate the version with the daemon)`)
	}
	major, err1 := strconv.Atoi(m[1])
	minor, err2 := strconv.Atoi(m[2])
	if err1 != nil || err2 != nil {
		return "", invalid(envDockerAPIVersion, v, "version number out of range")
	}
	return fmt.Sprintf("%d.%d", major, minor), nil
}

// clientOptions turns the endpoint into options for client.New: the host;
// TLS through client.WithTLSClientConfig when the server is verified, or an
// http.Client of our own when it is not (the SDK option always verifies);
// and client.WithAPIVersion when the version is fixed. The error names the
// endpoint: an ssh:// host, or a client certificate that cannot be loaded.
func (e dockerEndpoint) clientOptions() ([]client.Opt, error) {
	if strings.HasPrefix(strings.ToLower(e.Host), "ssh://") {
		return nil, fmt.Errorf("%w: ssh:// is not supported by heph", ErrInvalidConfig)
	}
	var opts []client.Opt
	if e.TLS && !e.TLSVerify {
		cfg, err := insecureTLSConfig(e.CertFile, e.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("heph: TLS for %s (%s): %w", e.Host, e.Source, err)
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

// connectDaemon finds the daemon (findDaemon) and tries each endpoint in
// order: it builds a client, pings it with API-version negotiation under a
// short timeout (3 s each, or ctx's deadline when sooner), and returns the
// first client that answers, with its endpoint. The caller closes the client.
//
// When none answers the error matches ErrDockerUnavailable (and the causes,
// with errors.Is) and lists every endpoint tried, where it came from and what
// it said, then what to do. A discovery error (say a malformed
// DOCKER_API_VERSION) matches both ErrDockerUnavailable and ErrInvalidConfig.
// Clients that failed are closed; nothing panics.
func connectDaemon(ctx context.Context, env daemonEnv) (*client.Client, dockerEndpoint, error) {
	eps, err := findDaemon(env)
	if err != nil {
		return nil, dockerEndpoint{}, &daemonUnavailableError{cause: err}
	}
	return connectEndpoints(ctx, eps, daemonPingTimeout)
}

// connectEndpoints is connectDaemon after discovery, with the per-endpoint
// timeout as a parameter for tests.
func connectEndpoints(ctx context.Context, eps []dockerEndpoint, timeout time.Duration) (*client.Client, dockerEndpoint, error) {
	failure := &daemonUnavailableError{}
	for i, ep := range eps {
		if err := ctx.Err(); err != nil {
			failure.cause = err
			failure.notTried = eps[i:]
			break
		}
		cli, err := pingEndpoint(ctx, ep, timeout)
		if err == nil {
			return cli, ep, nil
		}
		failure.attempts = append(failure.attempts, daemonAttempt{endpoint: ep, err: err})
	}
	if failure.cause == nil && len(failure.attempts) > 0 && ctx.Err() != nil {
		failure.cause = ctx.Err()
	}
	return nil, dockerEndpoint{}, failure
}

// pingEndpoint returns a client for ep that has answered a ping, its API
// version negotiated (unless fixed). On failure the client is closed.
func pingEndpoint(ctx context.Context, ep dockerEndpoint, timeout time.Duration) (*client.Client, error) {
	opts, err := ep.clientOptions()
	if err != nil {
		return nil, err
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("configure client: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err = cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
	if err == nil {
		return cli, nil
	}
	_ = cli.Close()
	// On a timeout the SDK's message is only a URL and "context deadline
	// exceeded": say whose deadline it was.
	switch {
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return nil, fmt.Errorf("interrupted: the caller's context is done: %w", ctx.Err())
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("no answer within %v: %w", timeout, context.DeadlineExceeded)
	}
	return nil, err
}

// daemonAttempt is one endpoint connectDaemon tried and the error it gave.
type daemonAttempt struct {
	endpoint dockerEndpoint
	err      error
}

// daemonUnavailableError is connectDaemon's failure. It matches
// ErrDockerUnavailable, the cause and every attempt's error.
type daemonUnavailableError struct {
	attempts []daemonAttempt
	notTried []dockerEndpoint // left when ctx ended
	cause    error            // discovery error, or ctx's error
}

func (e *daemonUnavailableError) Error() string {
	var b strings.Builder
	b.WriteString(ErrDockerUnavailable.Error())
	if len(e.attempts) == 0 && len(e.notTried) == 0 && e.cause != nil {
		// Discovery failed: nothing was tried; the cause says what to fix.
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.cause.Error(), "heph: "))
		return b.String()
	}
	b.WriteString("; tried:")
	for _, a := range e.attempts {
		fmt.Fprintf(&b, "\n  - %s (%s): %v", a.endpoint.Host, a.endpoint.Source, a.err)
	}
	for _, ep := range e.notTried {
		fmt.Fprintf(&b, "\n  - %s (%s): not tried: %v", ep.Host, ep.Source, e.cause)
	}
	if e.cause != nil && len(e.notTried) == 0 {
		fmt.Fprintf(&b, "\n  (stopped: %v)", e.cause)
	}
	b.WriteString("\nwhat to do:" +
		"\n  - start the daemon: sudo systemctl start docker (or run dockerd)" +
		"\n  - \"permission denied\" on the socket: add your user to the docker group (sudo usermod -aG docker $USER) and log in again" +
		"\n  - use another daemon: set DOCKER_HOST (unix:///path/docker.sock, tcp://host:2376) or DOCKER_CONTEXT" +
		"\n  - check with: docker info")
	return b.String()
}

func (e *daemonUnavailableError) Unwrap() []error {
	errs := []error{ErrDockerUnavailable}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	for _, a := range e.attempts {
		errs = append(errs, a.err)
	}
	return errs
}
