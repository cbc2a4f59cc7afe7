package daemon

import (
	"github.com/heph-go/heph/internal/engine"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// FuzzNormalizeHost reads any DOCKER_HOST as the daemon's address: it
// never panics, and what it accepts is an address heph can dial as it is —
// unix://, npipe:// or tcp:// with a host and a port in 1-65535, no control
// character — that normalizes to itself. Seeds: testdata/fuzz/FuzzNormalizeHost.
func FuzzNormalizeHost(f *testing.F) {
	f.Fuzz(func(t *testing.T, host string, useTLS bool) {
		got, err := NormalizeHost(host, useTLS)
		if err != nil {
			if got != "" {
				t.Fatalf("NormalizeHost(%q) = %q and an error", host, got)
			}
			if strings.Contains(err.Error(), "heph:") {
				t.Fatalf("NormalizeHost(%q): the reason is prefixed: %v", host, err)
			}
			return
		}
		checkHost(t, host, got)
		again, err := NormalizeHost(got, useTLS)
		if err != nil || again != got {
			t.Fatalf("NormalizeHost(%q) = %q, which normalizes to %q, %v", host, got, again, err)
		}
		// Through the environment, as DOCKER_HOST (a non-empty one: empty
		// is unset).
		eps, err := Find(Env{Getenv: func(k string) string {
			if k == envDockerHost {
				return host
			}
			return ""
		}, Exists: func(string) bool { return false }})
		if err != nil || len(eps) != 1 || eps[0].Host != NormalizedOrEmpty(host) {
			t.Fatalf("DOCKER_HOST=%q: endpoints %+v, %v; want %q", host, eps, err, got)
		}
	})
}

// NormalizedOrEmpty is NormalizeHost without TLS, "" on error.
func NormalizedOrEmpty(host string) string {
	h, _ := NormalizeHost(host, false)
	return h
}

// checkHost fails when h is not a dialable address.
func checkHost(t *testing.T, in, h string) {
	t.Helper()
	if strings.ContainsFunc(h, unicode.IsControl) {
		t.Fatalf("NormalizeHost(%q) = %q holds a control character", in, h)
	}
	scheme, rest, ok := strings.Cut(h, "://")
	switch {
	case !ok:
		t.Fatalf("NormalizeHost(%q) = %q has no scheme", in, h)
	case scheme == "unix" || scheme == "npipe":
		if rest == "" {
			t.Fatalf("NormalizeHost(%q) = %q has no path", in, h)
		}
	case scheme == "tcp":
		u, err := url.Parse(h)
		if err != nil || u.Hostname() == "" {
			t.Fatalf("NormalizeHost(%q) = %q does not parse as a host: %v", in, h, err)
		}
		if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
			t.Fatalf("NormalizeHost(%q) = %q has no port in 1-65535", in, h)
		}
	case scheme == "ssh":
		if _, err := engine.SSHArgs(h); err != nil {
			t.Fatalf("NormalizeHost(%q) = %q, which ssh cannot reach: %v", in, h, err)
		}
	default:
		t.Fatalf("NormalizeHost(%q) = %q: scheme %q", in, h, scheme)
	}
}

// FuzzContext reads any docker config.json and any context meta.json:
// discovery never panics, refuses what it cannot use with an error that
// says which file, and an endpoint it finds has a dialable, normalized
// host. Seeds: testdata/fuzz/FuzzContext.
func FuzzContext(f *testing.F) {
	f.Fuzz(func(t *testing.T, config, meta []byte, name string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.json"), config, 0o600); err != nil {
			t.Fatal(err)
		}
		metaDir := filepath.Join(dir, "contexts", "meta", contextDirName(name))
		if err := os.MkdirAll(metaDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(metaDir, "meta.json"), meta, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, env := range []Env{
			{Getenv: func(k string) string { return map[string]string{envDockerConfig: dir}[k] }},                         // config.json's currentContext
			{Getenv: func(k string) string { return map[string]string{envDockerConfig: dir, envDockerContext: name}[k] }}, // DOCKER_CONTEXT
		} {
			env.Exists = func(string) bool { return false }
			eps, err := Find(env)
			if err != nil {
				if !strings.Contains(err.Error(), dir) && !strings.Contains(err.Error(), "context") {
					t.Fatalf("an error that names neither the file nor the context: %v", err)
				}
				continue
			}
			for _, ep := range eps {
				checkHost(t, "context", ep.Host)
				if h, err := NormalizeHost(ep.Host, ep.TLS); err != nil || h != ep.Host {
					t.Fatalf("endpoint %+v is not normalized: %q, %v", ep, h, err)
				}
			}
		}
	})
}
