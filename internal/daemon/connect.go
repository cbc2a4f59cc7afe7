package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
)

// Dial makes a client for an endpoint; tests replace it.
type Dial func(engine.Endpoint) (engine.API, error)

// DialSDK is Dial over the moby SDK.
func DialSDK(ep engine.Endpoint) (engine.API, error) { return engine.Dial(ep) }

// Connect finds the daemon (Find) and tries each endpoint in order: it
// builds a client, pings it (negotiating the API version unless fixed) under
// a short timeout (3 s each, or ctx's deadline when sooner), and returns the
// first client that answers, with its endpoint. The caller closes the client.
//
// When none answers the error matches errs.DockerUnavailable (and the
// causes, with errors.Is) and lists every endpoint tried, where it came from
// and what it said, then what to do. A discovery error (say a malformed
// DOCKER_API_VERSION) matches both errs.DockerUnavailable and
// errs.InvalidConfig. Clients that failed are closed; nothing panics.
func Connect(ctx context.Context, env Env) (engine.API, engine.Endpoint, error) {
	eps, err := Find(env)
	if err != nil {
		return nil, engine.Endpoint{}, &UnavailableError{cause: err}
	}
	return ConnectEndpoints(ctx, eps, daemonPingTimeout, DialSDK)
}

// ConnectEndpoints is Connect after discovery, with the per-endpoint timeout
// and the dialer as parameters.
func ConnectEndpoints(ctx context.Context, eps []engine.Endpoint, timeout time.Duration, dial Dial) (engine.API, engine.Endpoint, error) {
	failure := &UnavailableError{}
	for i, ep := range eps {
		if err := ctx.Err(); err != nil {
			failure.cause = err
			failure.notTried = eps[i:]
			break
		}
		cli, err := ping(ctx, ep, timeout, dial)
		if err == nil {
			return cli, ep, nil
		}
		failure.attempts = append(failure.attempts, attempt{endpoint: ep, err: err})
	}
	if failure.cause == nil && len(failure.attempts) > 0 && ctx.Err() != nil {
		failure.cause = ctx.Err()
	}
	return nil, engine.Endpoint{}, failure
}

// sshPingTimeout bounds the ping of an ssh:// endpoint: ssh's handshake
// and the remote `docker system dial-stdio` take seconds on a loaded
// machine, well beyond a socket's 3 s.
const sshPingTimeout = 30 * time.Second

// ping returns a client for ep that has answered a ping. On failure the
// client is closed.
func ping(ctx context.Context, ep engine.Endpoint, timeout time.Duration, dial Dial) (engine.API, error) {
	cli, err := dial(ep)
	if err != nil {
		return nil, err
	}
	if ep.IsSSH() && timeout < sshPingTimeout {
		timeout = sshPingTimeout
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = cli.Ping(pctx)
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
	if ep.TLS {
		if hint := tlsHint(ep, err); hint != "" {
			return nil, fmt.Errorf("%w\n    %s", err, hint)
		}
	}
	return nil, err
}

// tlsHint says what a TLS failure means and which file to fix, "" when it
// is no TLS failure heph knows.
func tlsHint(ep engine.Endpoint, err error) string {
	ca, cert := ep.CAFile, ep.CertFile
	if ca == "" {
		ca = "the system's roots (no ca.pem in DOCKER_CERT_PATH)"
	}
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	msg := err.Error()
	switch {
	case errors.As(err, &unknown):
		return "the daemon's certificate is not signed by the CA in " + ca + ": use the ca.pem of the CA that signed the daemon's certificate"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the daemon's certificate has expired or is not yet valid (check the clocks of both machines): the daemon needs a new certificate"
	case errors.As(err, &host):
		return "the daemon's certificate is not for the host in DOCKER_HOST: use the name the certificate was made for"
	case strings.Contains(msg, "remote error: tls: certificate required"):
		if cert == "" {
			return "the daemon requires a client certificate and heph has none: put cert.pem and key.pem in DOCKER_CERT_PATH"
		}
		return "the daemon requires a client certificate and did not get " + cert
	case strings.Contains(msg, "remote error: tls: expired certificate"):
		return "the daemon refused the client certificate " + orNone(cert) + " as expired (or not yet valid): renew cert.pem and key.pem"
	case strings.Contains(msg, "remote error: tls: bad certificate"), strings.Contains(msg, "remote error: tls: unknown certificate authority"):
		return "the daemon refused the client certificate " + orNone(cert) + ": it is not signed by a CA the daemon trusts (dockerd --tlscacert)"
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return "the daemon does not speak TLS on this port: unset DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and DOCKER_TLS, or use its TLS port (2376)"
	}
	return ""
}

func orNone(path string) string {
	if path == "" {
		return "(none)"
	}
	return path
}

// attempt is one endpoint Connect tried and the error it gave.
type attempt struct {
	endpoint engine.Endpoint
	err      error
}

// UnavailableError is Connect's failure. It matches errs.DockerUnavailable,
// the cause and every attempt's error.
type UnavailableError struct {
	attempts []attempt
	notTried []engine.Endpoint // left when ctx ended
	cause    error             // discovery error, or ctx's error
}

// Tried reports what was tried without the "what to do" part, one line per
// endpoint ("unix:///x.sock (DOCKER_HOST): dial …").
func (e *UnavailableError) Tried() string {
	var lines []string
	if len(e.attempts) == 0 && len(e.notTried) == 0 && e.cause != nil {
		return errs.Strip(e.cause.Error())
	}
	for _, a := range e.attempts {
		lines = append(lines, fmt.Sprintf("%s (%s): %v", a.endpoint.Host, a.endpoint.Source, a.err))
	}
	for _, ep := range e.notTried {
		lines = append(lines, fmt.Sprintf("%s (%s): not tried: %v", ep.Host, ep.Source, e.cause))
	}
	if e.cause != nil && len(e.notTried) == 0 {
		lines = append(lines, fmt.Sprintf("(stopped: %v)", e.cause))
	}
	return strings.Join(lines, "\n")
}

func (e *UnavailableError) Error() string {
	var b strings.Builder
	b.WriteString(errs.DockerUnavailable.Error())
	if len(e.attempts) == 0 && len(e.notTried) == 0 && e.cause != nil {
		// Discovery failed: nothing was tried; the cause says what to fix.
		b.WriteString(": ")
		b.WriteString(errs.Strip(e.cause.Error()))
		return b.String()
	}
	b.WriteString("; tried:")
	for _, l := range strings.Split(e.Tried(), "\n") {
		if strings.HasPrefix(l, "(stopped") {
			b.WriteString("\n  " + l)
		} else {
			b.WriteString("\n  - " + l)
		}
	}
	b.WriteString("\nwhat to do:" +
		"\n  - start the daemon: sudo systemctl start docker (or run dockerd)" +
		"\n  - \"permission denied\" on the socket: add your user to the docker group (sudo usermod -aG docker $USER) and log in again" +
		"\n  - use another daemon: set DOCKER_HOST (unix:///path/docker.sock, tcp://host:2376) or DOCKER_CONTEXT" +
		"\n  - check with: docker info")
	return b.String()
}

// Unwrap returns errs.DockerUnavailable, the cause and every attempt's error.
func (e *UnavailableError) Unwrap() []error {
	out := []error{errs.DockerUnavailable}
	if e.cause != nil {
		out = append(out, e.cause)
	}
	for _, a := range e.attempts {
		out = append(out, a.err)
	}
	return out
}
