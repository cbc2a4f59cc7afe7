// Package daemon finds the Docker daemon the way the docker CLI does
// (DOCKER_HOST, contexts, the rootless and default sockets), connects to it,
// and decides where a container's published ports are bound and reached
// from this process (Access). Discovery is pure: Find reads an Env and lists
// the endpoints to try, in order; Connect pings them one after another and
// keeps the first that answers.
package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
)

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

// DefaultHost is the daemon's default socket.
const DefaultHost = "unix:///var/run/docker.sock"

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

// Env is what discovery reads, so tests can fake it.
type Env struct {
	Getenv func(string) string    // nil reads as an empty environment
	Home   string                 // user home dir; "" when unknown
	Exists func(path string) bool // for sockets; nil means os.Stat
}

// OSEnv returns the real environment of this process.
func OSEnv() Env {
	home, _ := os.UserHomeDir() // "" when unknown: discovery then skips ~/.docker
	return Env{Getenv: os.Getenv, Home: home, Exists: pathExists}
}

func (env Env) getenv(key string) string {
	if env.Getenv == nil {
		return ""
	}
	return strings.TrimSpace(env.Getenv(key))
}

func (env Env) exists(path string) bool {
	if env.Exists == nil {
		return pathExists(path)
	}
	return env.Exists(path)
}

// configDir is the docker CLI's configuration directory: $DOCKER_CONFIG, else
// ~/.docker; "" when neither is known.
func (env Env) configDir() string {
	if dir := env.getenv(envDockerConfig); dir != "" {
		return dir
	}
	if env.Home == "" {
		return ""
	}
	return filepath.Join(env.Home, ".docker")
}

// tilde shortens a path under the home directory to ~/… for messages.
func (env Env) tilde(path string) string {
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

// Find returns the endpoints to try, in order, as the docker CLI would:
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
// Errors match errs.InvalidConfig and name the variable or the file at fault: a
// malformed DOCKER_API_VERSION or DOCKER_HOST, a context that
// does not exist or cannot be read, an unreadable config.json.
func Find(env Env) ([]engine.Endpoint, error) {
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

func findEndpoints(env Env) ([]engine.Endpoint, error) {
	if host := env.getenv(envDockerHost); host != "" {
		ep, err := hostEndpoint(env, host)
		if err != nil {
			return nil, err
		}
		return []engine.Endpoint{ep}, nil
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
		return []engine.Endpoint{ep}, nil
	}

	var eps []engine.Endpoint
	if dir := env.getenv(envXDGRuntimeDir); dir != "" {
		if sock := filepath.Join(dir, "docker.sock"); env.exists(sock) {
			eps = append(eps, engine.Endpoint{Host: "unix://" + sock, Source: sourceRootless})
		}
	}
	return append(eps, engine.Endpoint{Host: DefaultHost, Source: sourceDefaultSocket}), nil
}

// hostEndpoint builds the endpoint for DOCKER_HOST, with TLS as the docker CLI
// and the SDK read it from the environment: DOCKER_TLS_VERIFY (any non-empty
// value) means TLS with verification; DOCKER_CERT_PATH or DOCKER_TLS alone
// mean TLS without verification. The PEM files are ca.pem, cert.pem and
// key.pem in DOCKER_CERT_PATH (default: the config directory), those that
// exist.
func hostEndpoint(env Env, host string) (engine.Endpoint, error) {
	verify := env.getenv(envDockerTLSVerify) != ""
	certPath := env.getenv(envDockerCertPath)
	useTLS := verify || certPath != "" || env.getenv(envDockerTLS) != ""

	h, err := NormalizeHost(host, useTLS)
	if err != nil {
		return engine.Endpoint{}, errs.Invalid(envDockerHost, host, err.Error())
	}
	ep := engine.Endpoint{Host: h, Source: sourceDockerHost, TLS: useTLS, TLSVerify: verify}
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
func currentContext(env Env) (name, source string, err error) {
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
		return "", "", fmt.Errorf("%w: docker config %s: %w", errs.InvalidConfig, path, err)
	}
	var cfg struct {
		CurrentContext string `json:"currentContext"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return "", "", fmt.Errorf("%w: docker config %s is not valid JSON (fix or remove it): %w", errs.InvalidConfig, path, err)
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
func contextEndpoint(env Env, name, source string) (engine.Endpoint, error) {
	what := fmt.Sprintf("docker context %q (%s)", name, source)
	dir := env.configDir()
	if dir == "" {
		return engine.Endpoint{}, fmt.Errorf("%w: %s: no home directory and %s is not set, so the context cannot be found",
			errs.InvalidConfig, what, envDockerConfig)
	}
	meta := filepath.Join(dir, "contexts", "meta", contextDirName(name), "meta.json")
	data, err := os.ReadFile(meta)
	if errors.Is(err, os.ErrNotExist) {
		return engine.Endpoint{}, fmt.Errorf("%w: %s does not exist: %s not found; `docker context ls` lists the contexts, `docker context use default` goes back to the default: %w",
			errs.InvalidConfig, what, meta, err)
	}
	if err != nil {
		return engine.Endpoint{}, fmt.Errorf("%w: %s: %w", errs.InvalidConfig, what, err)
	}
	var m struct {
		Name      string
		Endpoints map[string]struct {
			Host          string
			SkipTLSVerify bool
		}
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return engine.Endpoint{}, fmt.Errorf("%w: %s: %s is not valid JSON: %w", errs.InvalidConfig, what, meta, err)
	}
	docker, ok := m.Endpoints["docker"]
	if !ok || strings.TrimSpace(docker.Host) == "" {
		return engine.Endpoint{}, fmt.Errorf("%w: %s: %s has no docker endpoint host", errs.InvalidConfig, what, meta)
	}

	src := fmt.Sprintf("context %q (%s)", name, source)
	ep := engine.Endpoint{Source: src}
	ep.CAFile, ep.CertFile, ep.KeyFile = pemFiles(filepath.Join(dir, "contexts", "tls", contextDirName(name), "docker"))
	ep.TLS = docker.SkipTLSVerify || ep.CAFile != "" || ep.CertFile != "" || ep.KeyFile != ""
	ep.TLSVerify = ep.TLS && !docker.SkipTLSVerify

	h, err := NormalizeHost(docker.Host, ep.TLS)
	if err != nil {
		return engine.Endpoint{}, fmt.Errorf("%w: %s: host %q in %s: %s", errs.InvalidConfig, what, docker.Host, meta, err)
	}
	ep.Host = h
	return ep, nil
}

// NormalizeHost checks a DOCKER_HOST-style address and completes it as the
// docker CLI does: an address without a scheme is tcp://, and a tcp://
// address without a port gets 2376 with TLS, 2375 without. The error is a
// reason, for the caller to put after the name of the setting.
func NormalizeHost(host string, useTLS bool) (string, error) {
	host = strings.TrimSpace(host)
	if host == "" {
		return "", errors.New("is empty")
	}
	if strings.ContainsFunc(host, unicode.IsControl) {
		return "", errors.New("contains a control character")
	}
	scheme, rest, ok := strings.Cut(host, "://")
	if !ok {
		if strings.HasPrefix(host, "/") {
			return "", fmt.Errorf("a socket path needs the unix:// scheme: unix://%s", host)
		}
		scheme, rest = "tcp", host
	}
	// The SDK dials the scheme as written ("UNIX" is no network it
	// knows): hand it the lower-case one.
	switch lower := strings.ToLower(scheme); lower {
	case "unix", "npipe":
		if rest == "" {
			return "", fmt.Errorf("%s:// needs a path", lower)
		}
		return lower + "://" + rest, nil
	case "tcp":
		u, err := url.Parse("tcp://" + rest)
		if err != nil {
			return "", fmt.Errorf("not a valid tcp:// address: %w", err)
		}
		switch {
		case u.User != nil:
			return "", errors.New("a tcp:// address cannot hold credentials (use TLS client certificates)")
		case u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(rest, "?") || strings.HasSuffix(rest, "#"):
			return "", errors.New("a tcp:// address cannot hold a query or a fragment")
		case strings.ContainsFunc(u.Path, unicode.IsSpace):
			return "", errors.New("the path of a tcp:// address cannot hold blanks")
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
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("port %s is not in 1-65535", port)
		}
		if strings.ContainsFunc(hostname, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) {
			return "", errors.New("the host name holds a control character or a blank (percent-encoded)")
		}
		out := "tcp://" + net.JoinHostPort(hostname, port) + u.EscapedPath() // %23 stays %23, not a fragment
		if v, err := url.Parse(out); err != nil || v.Hostname() != hostname {
			return "", errors.New("not a valid tcp:// address (an IPv6 address goes in brackets: tcp://[::1]:2375)")
		}
		return out, nil
	case "ssh":
		out := "ssh://" + rest
		if _, err := engine.SSHArgs(out); err != nil {
			return "", err
		}
		if useTLS {
			return "", errors.New("ssh:// does not take TLS settings (unset DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and DOCKER_TLS)")
		}
		return out, nil
	default:
		return "", fmt.Errorf("unsupported scheme %q: use unix://, tcp://, ssh:// or npipe://", scheme)
	}
}

// apiVersionRE is the shape of an API version: "1.41" (a leading "v" is
// accepted, as the SDK does).
var apiVersionRE = regexp.MustCompile(`^v?([0-9]+)\.([0-9]+)$`)

// apiVersionFromEnv returns DOCKER_API_VERSION as "<major>.<minor>", or ""
// when it is not set.
func apiVersionFromEnv(env Env) (string, error) {
	v := env.getenv(envDockerAPIVersion)
	if v == "" {
		return "", nil
	}
	norm, err := ParseAPIVersion(v)
	if err != nil {
		return "", errs.Invalid(envDockerAPIVersion, v, err.Error()+" (unset it to negotiate the version with the daemon)")
	}
	return norm, nil
}

// ParseAPIVersion checks an API version and returns it as
// "<major>.<minor>"; the error is the reason, in words.
func ParseAPIVersion(v string) (string, error) {
	m := apiVersionRE.FindStringSubmatch(v)
	if m == nil {
		return "", errors.New(`want <major>.<minor>, such as "1.41"`)
	}
	major, err1 := strconv.Atoi(m[1])
	minor, err2 := strconv.Atoi(m[2])
	if err1 != nil || err2 != nil {
		return "", errors.New("version number out of range")
	}
	return fmt.Sprintf("%d.%d", major, minor), nil
}
