package testenv

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// AuthRegistry is a registry on 127.0.0.1 that refuses every request
// without the right credentials, as private registries do.
type AuthRegistry struct {
	// Addr is its host:port.
	Addr string
	// User and Password are the credentials it accepts.
	User, Password string
	// IdentityToken, for a token registry, is the OAuth2 refresh token it
	// also accepts at its token endpoint (what `docker login` stores as
	// "identitytoken").
	IdentityToken string

	pulls, tokens, refused atomic.Int64
}

// Manifests returns how many manifest GETs and HEADs it served with valid
// credentials: the pulls (and push checks) that reached it.
func (r *AuthRegistry) Manifests() int64 { return r.pulls.Load() }

// Tokens returns how many tokens its token endpoint issued (0 for a basic
// auth registry).
func (r *AuthRegistry) Tokens() int64 { return r.tokens.Load() }

// Refused returns how many requests it answered 401 to.
func (r *AuthRegistry) Refused() int64 { return r.refused.Load() }

func (r *AuthRegistry) countManifest(req *http.Request) {
	if strings.Contains(req.URL.Path, "/manifests/") && (req.Method == http.MethodGet || req.Method == http.MethodHead) {
		r.pulls.Add(1)
	}
}

// BasicAuthRegistry starts a registry on 127.0.0.1 that demands HTTP basic
// auth with user and password (a 401 with WWW-Authenticate: Basic
// otherwise), as a self-hosted registry with htpasswd does.
func BasicAuthRegistry(t testing.TB, user, password string) *AuthRegistry {
	t.Helper()
	r := &AuthRegistry{User: user, Password: password}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.Addr = serve(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		u, p, ok := req.BasicAuth()
		if !ok || !equal(u, user) || !equal(p, password) {
			r.refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="heph-test"`)
			writeRegistryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
			return
		}
		r.countManifest(req)
		inner.ServeHTTP(w, req)
	}))
	return r
}

// TokenAuthRegistry starts a registry on 127.0.0.1 that speaks Docker's
// token flow: a request without a valid bearer token gets a 401 with
// WWW-Authenticate: Bearer realm="http://<addr>/token"; the token endpoint
// hands out tokens for the basic credentials user:password (GET), or for
// the refresh token IdentityToken or user and password in an OAuth2 form
// (POST), and the registry accepts those tokens.
func TokenAuthRegistry(t testing.TB, user, password string) *AuthRegistry {
	t.Helper()
	r := &AuthRegistry{User: user, Password: password, IdentityToken: "refresh-" + randomHex()}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var (
		mu     sync.Mutex
		issued = map[string]bool{}
	)
	issue := func(w http.ResponseWriter) {
		tok := "tok-" + randomHex()
		mu.Lock()
		issued[tok] = true
		mu.Unlock()
		r.tokens.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "refresh_token": r.IdentityToken, "expires_in": 300})
	}
	var addr string
	r.Addr = serve(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/token" {
			ok := false
			switch req.Method {
			case http.MethodGet:
				u, p, basic := req.BasicAuth()
				ok = basic && equal(u, user) && equal(p, password)
			case http.MethodPost:
				if err := req.ParseForm(); err == nil {
					switch req.PostForm.Get("grant_type") {
					case "refresh_token":
						ok = equal(req.PostForm.Get("refresh_token"), r.IdentityToken)
					case "password":
						ok = equal(req.PostForm.Get("username"), user) && equal(req.PostForm.Get("password"), password)
					}
				}
			}
			if !ok {
				r.refused.Add(1)
				writeRegistryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "invalid credentials")
				return
			}
			issue(w)
			return
		}
		tok, found := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		valid := found && issued[tok]
		mu.Unlock()
		if !valid {
			r.refused.Add(1)
			scope := ""
			if name, _, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/manifests/"); ok {
				scope = fmt.Sprintf(`,scope="repository:%s:pull,push"`, name)
			} else if name, _, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/blobs/"); ok {
				scope = fmt.Sprintf(`,scope="repository:%s:pull,push"`, name)
			}
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="heph-test"%s`, addr, scope))
			writeRegistryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
			return
		}
		r.countManifest(req)
		inner.ServeHTTP(w, req)
	}))
	addr = r.Addr
	return r
}

func writeRegistryError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func randomHex() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Auth is the X-Registry-Auth value (base64url JSON) for user and password
// at registry addr, for pushes through the raw client.
func Auth(addr, user, password string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": password, "serveraddress": addr})
	return base64.URLEncoding.EncodeToString(b)
}
