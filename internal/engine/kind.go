package engine

import (
	"fmt"
	"strings"
)

// Engine kinds, as Kind names them.
const (
	KindDocker = "Docker"
	KindPodman = "Podman"
)

// Kind names the engine behind the Docker API from its GET /version:
// Podman lists a component "Podman Engine"; anything else is taken for
// Docker.
func Kind(v Version) string {
	for _, c := range v.Components {
		if strings.Contains(strings.ToLower(c), "podman") {
			return KindPodman
		}
	}
	if strings.Contains(strings.ToLower(v.Product), "podman") {
		return KindPodman
	}
	return KindDocker
}

// Connection says in words how the endpoint reaches the daemon, and
// whether that is worth a warning (TLS without verification, plain TCP to
// another machine): "unix socket /var/run/docker.sock", "ssh to me@box
// (ssh … docker system dial-stdio)", "tcp+TLS to box:2376, server verified
// against ca.pem, client certificate cert.pem".
func (e Endpoint) Connection() (how string, warn string) {
	h := e.Host
	switch {
	case e.IsSSH():
		return fmt.Sprintf("ssh to %s (ssh … docker system dial-stdio; ssh's config, keys and known_hosts)", strings.TrimPrefix(h, "ssh://")), ""
	case strings.HasPrefix(h, "unix://"):
		return "unix socket " + strings.TrimPrefix(h, "unix://"), ""
	case strings.HasPrefix(h, "npipe://"):
		return "named pipe " + strings.TrimPrefix(h, "npipe://"), ""
	}
	addr := strings.TrimPrefix(h, "tcp://")
	if !e.TLS {
		how = "tcp to " + addr + " without TLS"
		if name := e.Hostname(); name != "localhost" && !strings.HasPrefix(name, "127.") && name != "::1" {
			warn = "the daemon's API is unencrypted and unauthenticated on the network: use TLS (DOCKER_TLS_VERIFY=1, DOCKER_CERT_PATH) or ssh://"
		}
		return how, warn
	}
	how = "tcp+TLS to " + addr
	if e.TLSVerify {
		ca := e.CAFile
		if ca == "" {
			ca = "the system's roots"
		}
		how += ", server verified against " + ca
	} else {
		how += ", server NOT verified"
		warn = "TLS without verification of the daemon's certificate (DOCKER_TLS_VERIFY unset, or the context skips it): anyone in between can pose as the daemon; set DOCKER_TLS_VERIFY=1 with ca.pem in DOCKER_CERT_PATH"
	}
	if e.CertFile != "" {
		how += ", client certificate " + e.CertFile
	} else {
		how += ", no client certificate"
	}
	return how, warn
}
