package wait

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/heph-go/heph/internal/redact"
)

const (
	// defaultRequestTimeout bounds one HTTP request of ForHTTP.
	defaultRequestTimeout = 2 * time.Second
	// maxResponseBody is how much of a response body ForHTTP reads and
	// hands to the response matcher.
	maxResponseBody = 16 << 20
	// snippetSize is how much of a body or output an error quotes.
	snippetSize = 200
)

// HTTPStrategy waits until an HTTP endpoint of the container answers as
// expected; ForHTTP builds it. It is an immutable value: every With…
// method returns a modified copy, and one value may serve any number of
// parallel waits.
type HTTPStrategy struct {
	path       string
	port       string // normalised; "" means the lowest published TCP port
	rawPort    string
	method     string
	header     [][2]string // in the order given
	body       []byte
	status     func(int) bool
	matcher    func([]byte) bool
	tls        bool
	insecure   bool
	reqTimeout time.Duration
	errs       problems
	built      bool // by ForHTTP: the zero value is invalid
}

// ForHTTP returns a strategy that is ready once an HTTP request for path
// ("/healthz", "/status?verbose=1") to the container's published port
// answers with a 2xx status. It connects to Host:MappedPort, so it checks
// the way the test will reach the app. Options: WithPort, WithMethod
// (default GET), WithHeader, WithBody, WithStatus, WithResponseMatcher,
// WithTLS and WithRequestTimeout (default 2 s). Redirects are not
// followed: the status check sees the 3xx.
//
// Until the app answers as expected it keeps trying, with backoff: a
// refused connection, a connection Docker's port proxy closes (nothing
// listens yet), a timeout, an unexpected status or a body the matcher
// rejects all mean "not ready yet". The error at the end of the context
// quotes the last of them, e.g. "GET http://127.0.0.1:32771/healthz: status
// 503 (body: "starting")". It gives up at once on a TLS certificate error
// when WithTLS(false) did not allow it, on a URL that does not parse, and
// when no TCP port is published and WithPort was not given. Bad arguments
// (empty path, path without a leading "/", invalid method or header, bad
// port, nil function, timeout ≤ 0) are reported by Validate and Wait.
func ForHTTP(path string) HTTPStrategy {
	s := HTTPStrategy{path: path, method: http.MethodGet, reqTimeout: defaultRequestTimeout, built: true}
	switch {
	case path == "":
		s.errs = s.errs.add(errors.New(`empty path: want one starting with "/", e.g. "/healthz"`))
	case !strings.HasPrefix(path, "/"):
		s.errs = s.errs.add(fmt.Errorf("path %q does not start with \"/\"", path))
	default:
		if _, err := url.ParseRequestURI(path); err != nil {
			s.errs = s.errs.add(fmt.Errorf("bad path %q: %w", path, err))
		}
	}
	return s
}

// WithPort returns a copy of s that sends its requests to the host port
// publishing port ("8080", "8080/tcp"). Without it, s uses the lowest
// published TCP port. A malformed or non-TCP port is an invalid argument.
func (s HTTPStrategy) WithPort(port string) HTTPStrategy {
	s.rawPort, s.port = port, ""
	p, err := parsePort(port)
	switch {
	case err != nil:
		s.errs = s.errs.add(err)
	case !strings.HasSuffix(p, "/tcp"):
		s.errs = s.errs.add(fmt.Errorf("port %s is not a TCP port", p))
	default:
		s.port = p
	}
	return s
}

// WithMethod returns a copy of s that sends method (default GET). An empty
// or malformed method is an invalid argument.
func (s HTTPStrategy) WithMethod(method string) HTTPStrategy {
	if !isToken(method) {
		s.errs = s.errs.add(fmt.Errorf("invalid method %q", method))
	}
	s.method = method
	return s
}

// WithHeader returns a copy of s that adds the header key: value to each
// request ("Host" sets the request's host). An invalid name or a value
// containing a newline is an invalid argument.
func (s HTTPStrategy) WithHeader(key, value string) HTTPStrategy {
	if !isToken(key) {
		s.errs = s.errs.add(fmt.Errorf("invalid header name %q", key))
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		s.errs = s.errs.add(fmt.Errorf("invalid value for header %q: %q contains a newline or NUL", key, value))
	}
	s.header = append(s.header[:len(s.header):len(s.header)], [2]string{key, value})
	return s
}

// WithBody returns a copy of s that sends body with each request. body is
// copied: changing it afterwards does not change s.
func (s HTTPStrategy) WithBody(body []byte) HTTPStrategy {
	s.body = bytes.Clone(body)
	return s
}

// WithStatus returns a copy of s that accepts the status codes for which
// ok returns true (default: 200 to 299). Any other status means "not ready
// yet". A nil ok is an invalid argument.
func (s HTTPStrategy) WithStatus(ok func(status int) bool) HTTPStrategy {
	if ok == nil {
		s.errs = s.errs.add(errors.New("nil status function"))
	}
	s.status = ok
	return s
}

// WithResponseMatcher returns a copy of s that is ready only when match
// returns true for the response body (its first 16 MiB). match may be
// called concurrently by parallel waits. A nil match is an invalid
// argument.
func (s HTTPStrategy) WithResponseMatcher(match func(body []byte) bool) HTTPStrategy {
	if match == nil {
		s.errs = s.errs.add(errors.New("nil response matcher"))
	}
	s.matcher = match
	return s
}

// WithTLS returns a copy of s that speaks HTTPS. With insecure, the
// server's certificate is not verified (a test image's self-signed one);
// without it, a certificate the system does not trust makes the wait fail
// at once.
func (s HTTPStrategy) WithTLS(insecure bool) HTTPStrategy {
	s.tls, s.insecure = true, insecure
	return s
}

// WithRequestTimeout returns a copy of s whose requests each time out
// after d (default 2 s); a request that times out is tried again. d ≤ 0 is
// an invalid argument.
func (s HTTPStrategy) WithRequestTimeout(d time.Duration) HTTPStrategy {
	if d <= 0 {
		s.errs = s.errs.add(fmt.Errorf("request timeout must be positive, got %s", d))
	}
	s.reqTimeout = d
	return s
}

// String describes s for errors: ForHTTP(GET /healthz on 8080/tcp), with
// ", TLS" or ", TLS insecure" when it speaks HTTPS. Without WithPort the
// port part is left out.
func (s HTTPStrategy) String() string {
	if !s.built {
		return "HTTPStrategy{}"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ForHTTP(%s %s", s.method, s.path)
	switch {
	case s.port != "":
		b.WriteString(" on " + s.port)
	case s.rawPort != "":
		fmt.Fprintf(&b, " on %q", s.rawPort)
	}
	if s.tls {
		b.WriteString(", TLS")
		if s.insecure {
			b.WriteString(" insecure")
		}
	}
	b.WriteString(")")
	return b.String()
}

// Validate returns an error wrapping ErrInvalid that lists every bad
// argument s was built with, or nil.
func (s HTTPStrategy) Validate() error { return Validate(s) }

func (s HTTPStrategy) check() error {
	if !s.built {
		return zeroValue("HTTPStrategy", "ForHTTP")
	}
	return s.errs.err()
}

// Wait polls the endpoint until it answers as expected (nil), a permanent
// error occurs (returned at once) or ctx ends (an error wrapping ctx.Err()
// and the last failure). Each call uses its own HTTP client, closed when
// it returns.
func (s HTTPStrategy) Wait(ctx context.Context, t Target) error {
	if err := s.Validate(); err != nil {
		return err
	}
	transport := &http.Transport{
		Proxy:               nil, // never an HTTP_PROXY from the environment
		DialContext:         (&net.Dialer{Timeout: s.reqTimeout}).DialContext,
		TLSHandshakeTimeout: s.reqTimeout,
		DisableKeepAlives:   true, // each attempt is a fresh connection
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: s.insecure},
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	var target string // the URL, once resolved
	return poll(ctx, pollFastMaxInterval, func(ctx context.Context) error {
		if target == "" {
			u, err := s.url(ctx, t)
			if err != nil {
				return err
			}
			target = u
		}
		return s.probe(ctx, client, target)
	})
}

// url resolves the port and host of t into the request URL.
func (s HTTPStrategy) url(ctx context.Context, t Target) (string, error) {
	port := s.port
	if port == "" {
		st, err := t.State(ctx)
		if err != nil {
			return "", fmt.Errorf("state: %w", err)
		}
		if port = lowestTCPPort(st.Ports); port == "" {
			return "", Permanent(errors.New("no TCP port is published: publish one or use WithPort"))
		}
	}
	mapped, err := t.MappedPort(ctx, port)
	if err != nil {
		return "", fmt.Errorf("port %s is not published: %w", port, err)
	}
	host, err := t.Host(ctx)
	if err != nil {
		return "", fmt.Errorf("host: %w", err)
	}
	scheme := "http"
	if s.tls {
		scheme = "https"
	}
	raw := scheme + "://" + net.JoinHostPort(host, strconv.Itoa(mapped)) + s.path
	if _, err := url.Parse(raw); err != nil {
		return "", Permanent(fmt.Errorf("bad URL: %w", err))
	}
	return raw, nil
}

// probe sends one request; nil means ready.
func (s HTTPStrategy) probe(ctx context.Context, client *http.Client, target string) error {
	rctx, cancel := context.WithTimeout(ctx, s.reqTimeout)
	defer cancel()
	var body io.Reader
	if s.body != nil {
		body = bytes.NewReader(s.body)
	}
	req, err := http.NewRequestWithContext(rctx, s.method, target, body)
	if err != nil {
		return Permanent(fmt.Errorf("%s %s: %w", s.method, target, err))
	}
	for _, kv := range s.header {
		if http.CanonicalHeaderKey(kv[0]) == "Host" {
			req.Host = kv[1]
			continue
		}
		req.Header.Add(kv[0], kv[1])
	}
	resp, err := client.Do(req)
	if err != nil {
		if !s.insecure && isCertError(err) {
			return Permanent(fmt.Errorf("%w (WithTLS(true) skips verification)", err))
		}
		if closedWithoutResponse(err) {
			return fmt.Errorf("%w (closed without a response: nothing listens behind Docker's port proxy yet)", err)
		}
		return err
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("%s %s: status %d: read body: %w", s.method, target, resp.StatusCode, err)
	}
	ok := s.status
	if ok == nil {
		ok = is2xx
	}
	if !ok(resp.StatusCode) {
		return fmt.Errorf("%s %s: status %d (body: %s)", s.method, target, resp.StatusCode, snippet(data))
	}
	if s.matcher != nil && !s.matcher(data) {
		return fmt.Errorf("%s %s: status %d, body rejected by the response matcher (body: %s)", s.method, target, resp.StatusCode, snippet(data))
	}
	return nil
}

func is2xx(code int) bool { return code >= 200 && code <= 299 }

// isCertError reports whether err is the failure to verify a server's
// certificate.
func isCertError(err error) bool {
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		ierr x509.CertificateInvalidError
	)
	return errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &ierr)
}

// closedWithoutResponse reports whether err is a connection closed before
// any response: what Docker's port proxy does while nothing listens behind
// it.
func closedWithoutResponse(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		strings.Contains(err.Error(), "server closed idle connection")
}

// lowestTCPPort returns the published TCP port with the lowest number, or
// "".
func lowestTCPPort(ports map[string]int) string {
	var nums []int
	for p := range ports {
		if num, ok := strings.CutSuffix(p, "/tcp"); ok {
			if n, err := strconv.Atoi(num); err == nil {
				nums = append(nums, n)
			}
		}
	}
	if len(nums) == 0 {
		return ""
	}
	return strconv.Itoa(slices.Min(nums)) + "/tcp"
}

// snippet quotes the start of b for an error message.
func snippet(b []byte) string { return maskedSnippet(redact.Secrets{}, b) }

// maskedSnippet is snippet with the known secrets masked too.
func maskedSnippet(known redact.Secrets, b []byte) string {
	if len(b) <= snippetSize {
		return strconv.Quote(known.String(string(b)))
	}
	return strconv.Quote(known.String(string(b[:snippetSize]))) + "…"
}

// isToken reports whether s is a non-empty HTTP token (a method or a
// header name).
func isToken(s string) bool {
	return s != "" && !slices.ContainsFunc([]byte(s), func(c byte) bool {
		return c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0
	})
}
