// Package registryauth finds the credentials for a registry as the docker CLI
// finds them: in the DOCKER_AUTH_CONFIG environment variable, then in the
// CLI's config file ($DOCKER_CONFIG/config.json, else ~/.docker/config.json):
// its per-registry credHelpers, its credsStore, its auths (with "auth" as
// base64 user:password, "username"/"password", "identitytoken",
// "registrytoken"). Credential helpers are run with the protocol of
// github.com/docker/docker-credential-helpers (its client package).
//
// Registry names are normalised as the CLI does it: Docker Hub's names
// (docker.io, index.docker.io, and registry-1.docker.io, the host its API is
// served from) all look up the key "https://index.docker.io/v1/"; any other
// registry looks up host[:port], and a config key with a scheme or a path
// ("https://reg.example:5000/v2/") matches its host[:port].
//
// Nothing here ever puts a credential in an error or a Result's
// descriptions: they name the registry, the file, the helper and the JSON
// key, never a value.
package registryauth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"

	"github.com/distribution/reference"
)

// HubKey is the key Docker Hub's credentials are stored under in a config
// file, and the server address the CLI sends with them.
const HubKey = "https://index.docker.io/v1/"

// Hub is the registry host of Docker Hub images, as references name it.
const Hub = "docker.io"

// hubNames are the names that mean Docker Hub.
var hubNames = map[string]bool{"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true}

// IsHub reports whether host (a registry host or a config key) is Docker Hub.
func IsHub(host string) bool {
	return host == HubKey || hubNames[strings.ToLower(Hostname(host))]
}

// Registry returns the registry host of an image reference as the daemon
// reads it: "docker.io" for Docker Hub images ("postgres:16",
// "index.docker.io/library/postgres"), else the host[:port] before the first
// slash ("127.0.0.1:5000/app" gives "127.0.0.1:5000").
func Registry(image string) (string, error) {
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", err
	}
	return reference.Domain(ref), nil
}

// Key returns the config key a registry's credentials are looked up by:
// HubKey for Docker Hub, else the registry's host[:port] (a scheme and path
// are dropped).
func Key(registry string) string {
	if IsHub(registry) {
		return HubKey
	}
	return Hostname(registry)
}

// Hostname reduces a config key to host[:port]: "https://reg:5000/v2/" gives
// "reg:5000", "reg:5000/v1/" gives "reg:5000" — the CLI's ConvertToHostname.
func Hostname(key string) string {
	if strings.Contains(key, "://") {
		if u, err := url.Parse(key); err == nil && u.Hostname() != "" {
			if u.Port() == "" {
				return u.Hostname()
			}
			return net.JoinHostPort(u.Hostname(), u.Port())
		}
	}
	host, _, _ := strings.Cut(key, "/")
	return host
}

// Config is what heph reads of a docker CLI config file (or of
// DOCKER_AUTH_CONFIG, which holds the same JSON). Other keys are ignored.
type Config struct {
	// Auths maps a config key to its credentials.
	Auths map[string]Entry `json:"auths"`
	// CredsStore names the helper (docker-credential-<name>) that holds the
	// credentials of every registry without a CredHelpers entry.
	CredsStore string `json:"credsStore"`
	// CredHelpers maps a config key to the helper for that registry.
	CredHelpers map[string]string `json:"credHelpers"`
}

// Entry is one registry's entry under "auths". After Parse, Auth is decoded
// into Username and Password and cleared.
type Entry struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// empty reports whether e holds no credentials (what `docker login` leaves
// in auths when a credential store holds the secret).
func (e Entry) empty() bool {
	return e.Username == "" && e.Password == "" && e.IdentityToken == "" && e.RegistryToken == ""
}

// Parse reads a config file's JSON. The "auth" of each entry is decoded
// (base64 of user:password, as the CLI writes it) into Username and
// Password. A malformed document or entry is an error that says where (the
// byte offset, the auths key) and never quotes the value.
func Parse(data []byte) (Config, error) {
	var c Config
	if len(bytes.TrimSpace(data)) == 0 {
		return c, nil // the CLI treats an empty file as an empty config
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&c); err != nil {
		return Config{}, jsonError(err)
	}
	if dec.More() {
		return Config{}, errors.New("holds more than one JSON value")
	}
	for key, e := range c.Auths {
		if e.Auth != "" {
			user, pass, err := decodeAuth(e.Auth)
			if err != nil {
				return Config{}, fmt.Errorf("auths[%q].auth %v", key, err)
			}
			e.Username, e.Password, e.Auth = user, pass, ""
			c.Auths[key] = e
		}
	}
	for key, name := range c.CredHelpers {
		if err := helperName(name); err != nil {
			return Config{}, fmt.Errorf("credHelpers[%q] %v", key, err)
		}
	}
	if c.CredsStore != "" {
		if err := helperName(c.CredsStore); err != nil {
			return Config{}, fmt.Errorf("credsStore %v", err)
		}
	}
	return c, nil
}

// jsonError describes a JSON error without quoting the document: a syntax
// error's message can carry a character of a secret.
func jsonError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("is not valid JSON (at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		return fmt.Errorf("has a %s where %s belongs (at byte %d, field %q)", typ.Value, typ.Type, typ.Offset, typ.Field)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("is not valid JSON (it ends too early)")
	}
	return errors.New("is not valid JSON")
}

// decodeAuth decodes an "auth" value as the CLI does: standard base64 of
// "user:password", user not empty, trailing NULs of the password dropped.
func decodeAuth(s string) (user, pass string, err error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", "", errors.New("is not base64")
	}
	user, pass, ok := strings.Cut(string(b), ":")
	if !ok || user == "" {
		return "", "", errors.New("is not base64 of user:password")
	}
	return user, strings.Trim(pass, "\x00"), nil
}

// helperName checks the name of a credential helper: the suffix of an
// executable's name docker-credential-<name>, so no path separator.
func helperName(name string) error {
	if name == "" || strings.ContainsAny(name, `/\`+"\x00") || strings.TrimSpace(name) != name {
		return fmt.Errorf("%q is not a credential helper name (docker-credential-<name> on PATH)", name)
	}
	return nil
}

// entryFor returns the auths entry for key (see match) and the key it is
// stored under.
func (c Config) entryFor(key string) (Entry, string, bool) { return match(c.Auths, key) }

// helperFor returns the helper for key: the credHelpers entry for it (see
// match), else credsStore, else "".
func (c Config) helperFor(key string) (name string, perRegistry bool) {
	if h, _, ok := match(c.CredHelpers, key); ok {
		return h, true
	}
	return c.CredsStore, false
}

// match returns m's value for key: an exact match, else the first (in
// sorted order) whose key reduces to the same host — for Docker Hub, to any
// of its names.
func match[V any](m map[string]V, key string) (V, string, bool) {
	if v, ok := m[key]; ok {
		return v, key, true
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if sameRegistry(k, key) {
			return m[k], k, true
		}
	}
	var zero V
	return zero, "", false
}

// sameRegistry reports whether config key k names the registry key wants.
func sameRegistry(k, key string) bool {
	if key == HubKey {
		return IsHub(k)
	}
	return Hostname(k) == key
}
