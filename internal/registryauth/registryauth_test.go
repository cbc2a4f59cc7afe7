package registryauth

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/stretchr/testify/require"
)

// TestKeyOfImage: the config key an image's credentials are looked up by,
// case by case from the docker CLI's behaviour (cli/command/registry.go
// getAuthConfigKey over reference.ParseNormalizedNamed, and
// credentials.ConvertToHostname for keys).
func TestKeyOfImage(t *testing.T) {
	for _, tc := range []struct {
		image, registry, key, why string
	}{
		{"postgres", Hub, HubKey, "a familiar name is docker.io/library/postgres: Hub's key"},
		{"postgres:16", Hub, HubKey, "a tag changes nothing"},
		{"bitnami/redis:7", Hub, HubKey, "a first element without '.' or ':' is a Hub namespace, not a host"},
		{"docker.io/library/postgres:16", Hub, HubKey, "docker.io written out"},
		{"index.docker.io/library/postgres", Hub, HubKey, "the legacy index host is canonicalised to docker.io"},
		{"registry-1.docker.io/library/postgres", "registry-1.docker.io", HubKey, "Hub's API host: the CLI would look it up as itself; heph maps it to Hub's key (see package doc)"},
		{"localhost/app:1", "localhost", "localhost", "localhost is a host although it has no '.' or ':'"},
		{"localhost:5000/app:1", "localhost:5000", "localhost:5000", "host:port keeps its port"},
		{"127.0.0.1:5000/heph/app:1", "127.0.0.1:5000", "127.0.0.1:5000", "an IP with a port"},
		{"[::1]:5000/app", "[::1]:5000", "[::1]:5000", "an IPv6 literal keeps its brackets"},
		{"ghcr.io/org/app:1.2", "ghcr.io", "ghcr.io", "a host with a dot"},
		{"mirror.corp:5000/library/postgres:16", "mirror.corp:5000", "mirror.corp:5000", "a mirror is a registry of its own"},
		{"quay.io/org/app@sha256:" + strings.Repeat("a", 64), "quay.io", "quay.io", "a digest changes nothing"},
		{"123456789012.dkr.ecr.eu-west-1.amazonaws.com/app", "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "ECR: the whole host is the key (what docker-credential-ecr-login is configured for)"},
		{"myhost/app", Hub, HubKey, "no '.' or ':' and not localhost: a Hub namespace"},
	} {
		t.Run(tc.image, func(t *testing.T) {
			reg, err := Registry(tc.image)
			require.NoError(t, err)
			require.Equal(t, tc.registry, reg, tc.why)
			require.Equal(t, tc.key, Key(reg), tc.why)
		})
	}
}

// TestConfigKeysMatch: which config keys (auths, credHelpers) answer for a
// registry. The CLI's file store takes the exact key, else a key that
// ConvertToHostname reduces to the registry.
func TestConfigKeysMatch(t *testing.T) {
	for _, tc := range []struct {
		configKey, registry string
		match               bool
		why                 string
	}{
		{HubKey, "docker.io", true, "the key docker login writes for Hub"},
		{"docker.io", "docker.io", true, "heph also takes a bare Hub name as Hub (the CLI would ignore it)"},
		{"index.docker.io", "docker.io", true, "idem, the legacy index name"},
		{"https://index.docker.io/v1/", "index.docker.io", true, "any Hub name finds Hub's key"},
		{"https://registry-1.docker.io/v2/", "docker.io", true, "Hub's API host as a URL"},
		{"reg.example:5000", "reg.example:5000", true, "exact"},
		{"https://reg.example:5000", "reg.example:5000", true, "a scheme is dropped (ConvertToHostname)"},
		{"http://reg.example:5000/v2/", "reg.example:5000", true, "scheme and path are dropped"},
		{"reg.example:5000/v1/", "reg.example:5000", true, "a path without scheme is dropped"},
		{"reg.example", "reg.example:5000", false, "a port is part of the registry: another port is another registry"},
		{"reg.example:5000", "reg.example", false, "and the other way round"},
		{"ghcr.io", "docker.io", false, "another registry"},
		{HubKey, "ghcr.io", false, "Hub's key is Hub's only"},
		{"https://localhost:5000", "localhost:5000", true, "localhost with a scheme"},
	} {
		t.Run(tc.configKey+"→"+tc.registry, func(t *testing.T) {
			c := Config{Auths: map[string]Entry{tc.configKey: {Username: "u", Password: "p"}}, CredHelpers: map[string]string{tc.configKey: "h"}}
			_, _, ok := c.entryFor(Key(tc.registry))
			require.Equal(t, tc.match, ok, "auths: %s", tc.why)
			h, per := c.helperFor(Key(tc.registry))
			require.Equal(t, tc.match, per && h == "h", "credHelpers: %s", tc.why)
		})
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestParse: config files as the CLI writes and reads them.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		want       Config
		err        string // part of the error; "" for none
		why        string
	}{
		{"empty file", "", Config{}, "", "the CLI treats an empty file as no config"},
		{"auth field", `{"auths":{"r:5000":{"auth":"` + b64("alice:pw") + `"}}}`,
			Config{Auths: map[string]Entry{"r:5000": {Username: "alice", Password: "pw"}}}, "", "docker login's plain-text form"},
		{"password with colons", `{"auths":{"r":{"auth":"` + b64("alice:a:b:c") + `"}}}`,
			Config{Auths: map[string]Entry{"r": {Username: "alice", Password: "a:b:c"}}}, "", "only the first ':' separates"},
		{"trailing NULs", `{"auths":{"r":{"auth":"` + b64("alice:pw\x00\x00") + `"}}}`,
			Config{Auths: map[string]Entry{"r": {Username: "alice", Password: "pw"}}}, "", "the CLI trims NULs off the password"},
		{"username and password fields", `{"auths":{"r":{"username":"alice","password":"pw"}}}`,
			Config{Auths: map[string]Entry{"r": {Username: "alice", Password: "pw"}}}, "", "the fields the CLI keeps when auth is empty"},
		{"identity token", `{"auths":{"r":{"identitytoken":"tok"}}}`,
			Config{Auths: map[string]Entry{"r": {IdentityToken: "tok"}}}, "", "an OAuth refresh token (docker login to a token registry)"},
		{"empty entry with a store", `{"auths":{"https://index.docker.io/v1/":{}},"credsStore":"desktop"}`,
			Config{Auths: map[string]Entry{HubKey: {}}, CredsStore: "desktop"}, "", "what docker login leaves when a store holds the secret"},
		{"cred helpers", `{"credHelpers":{"gcr.io":"gcloud","1.dkr.ecr.us-east-1.amazonaws.com":"ecr-login"}}`,
			Config{CredHelpers: map[string]string{"gcr.io": "gcloud", "1.dkr.ecr.us-east-1.amazonaws.com": "ecr-login"}}, "", "per-registry helpers"},
		{"other keys ignored", `{"auths":{},"psFormat":"table","proxies":{"default":{"httpProxy":"x"}},"currentContext":"c"}`,
			Config{Auths: map[string]Entry{}}, "", "the CLI's other settings are none of heph's business"},
		{"not base64", `{"auths":{"r":{"auth":"not base64!"}}}`, Config{}, `auths["r"].auth is not base64`, "the CLI fails too"},
		{"no colon", `{"auths":{"r":{"auth":"` + b64("alice") + `"}}}`, Config{}, "is not base64 of user:password", "the CLI: invalid auth configuration file"},
		{"empty user", `{"auths":{"r":{"auth":"` + b64(":pw") + `"}}}`, Config{}, "is not base64 of user:password", "the CLI requires a user"},
		{"syntax error", `{"auths":{"r":{"auth":"x"}`, Config{}, "ends too early", "truncated JSON"},
		{"garbage", `{"auths": nope}`, Config{}, "is not valid JSON (at byte", "a syntax error says where, not what"},
		{"wrong type", `{"auths":[]}`, Config{}, "has a array where", "a type error says which field"},
		{"two documents", `{} {}`, Config{}, "more than one JSON value", "as the CLI refuses for DOCKER_AUTH_CONFIG"},
		{"helper with a path", `{"credsStore":"../../bin/sh"}`, Config{}, "is not a credential helper name", "a helper is docker-credential-<name> on PATH, never a path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.json))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err, tc.why)
				return
			}
			require.NoError(t, err, tc.why)
			require.Equal(t, tc.want, got, tc.why)
		})
	}
}

// TestParseErrorsShowNoSecret: a malformed config never quotes a value.
func TestParseErrorsShowNoSecret(t *testing.T) {
	for _, doc := range []string{
		`{"auths":{"r":{"auth":"s3cretvalue!"}}}`,
		`{"auths":{"r":{"auth":"` + b64("s3cretvalue") + `"}}}`,
		`{"auths":{"r":{"password":s3cretvalue}}}`,
		`{"auths":{"r":{"password":["s3cretvalue"]}}}`,
	} {
		_, err := Parse([]byte(doc))
		require.Error(t, err, doc)
		require.NotContains(t, err.Error(), "s3cret", doc)
	}
}

// fakeHelpers are credential helpers in memory: name → key → secret
// ("user:secret"); a name absent is a helper that is not installed.
type fakeHelpers map[string]map[string]string

func (f fakeHelpers) program(_ context.Context, name string) (client.ProgramFunc, error) {
	store, ok := f[name]
	if !ok {
		return nil, &exec.Error{Name: "docker-credential-" + name, Err: exec.ErrNotFound}
	}
	return func(args ...string) client.Program { return &fakeProgram{store: store, args: args} }, nil
}

type fakeProgram struct {
	store map[string]string
	args  []string
	in    io.Reader
}

func (p *fakeProgram) Input(in io.Reader) { p.in = in }

func (p *fakeProgram) Output() ([]byte, error) {
	key, _ := io.ReadAll(p.in)
	v, ok := p.store[strings.TrimSpace(string(key))]
	switch {
	case len(p.args) != 1 || p.args[0] != "get":
		return []byte("unexpected action"), errors.New("exit status 1")
	case v == "fail":
		return []byte("the keychain is locked"), errors.New("exit status 1")
	case !ok:
		return []byte("credentials not found in native keychain\n"), errors.New("exit status 1")
	}
	user, secret, _ := strings.Cut(v, ":")
	return []byte(`{"ServerURL":"` + string(key) + `","Username":"` + user + `","Secret":"` + secret + `"}`), nil
}

func envFor(t *testing.T, authConfig, file string, helpers fakeHelpers) Env {
	t.Helper()
	dir := t.TempDir()
	if file != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(file), 0o600))
	}
	vars := map[string]string{"DOCKER_CONFIG": dir, EnvAuthConfig: authConfig}
	return Env{Getenv: func(k string) string { return vars[k] }, Helper: helpers.program}
}

// TestLookupOrder: DOCKER_AUTH_CONFIG, then the config file; in each, the
// helper (per registry, else the store), then auths.
func TestLookupOrder(t *testing.T) {
	fileAuths := `{"auths":{"r:5000":{"auth":"` + b64("file-user:file-pw") + `"},"https://index.docker.io/v1/":{"identitytoken":"hub-token"}}}`
	envAuths := `{"auths":{"r:5000":{"auth":"` + b64("env-user:env-pw") + `"}}}`
	helpers := fakeHelpers{"store": {"r:5000": "store-user:store-pw", HubKey: "<token>:store-token", "locked:1": "fail"}, "per": {"r:5000": "per-user:per-pw"}}
	for _, tc := range []struct {
		name, env, file, registry string
		user, pass, token         string
		from                      string
		err                       string
	}{
		{name: "file auths", file: fileAuths, registry: "r:5000", user: "file-user", pass: "file-pw", from: `config.json (auths["r:5000"])`},
		{name: "env before file", env: envAuths, file: fileAuths, registry: "r:5000", user: "env-user", pass: "env-pw", from: `DOCKER_AUTH_CONFIG (auths["r:5000"])`},
		{name: "env without the registry falls back to the file", env: envAuths, file: fileAuths, registry: "docker.io", token: "hub-token", from: `(auths["https://index.docker.io/v1/"])`},
		{name: "store before auths", file: `{"credsStore":"store","auths":{"r:5000":{"auth":"` + b64("file-user:file-pw") + `"}}}`, registry: "r:5000", user: "store-user", pass: "store-pw", from: "credential helper docker-credential-store (credsStore in"},
		{name: "per-registry helper before store", file: `{"credsStore":"store","credHelpers":{"r:5000":"per"}}`, registry: "r:5000", user: "per-user", pass: "per-pw", from: "credential helper docker-credential-per (credHelpers in"},
		{name: "token user means identity token", file: `{"credsStore":"store"}`, registry: "docker.io", token: "store-token", from: "docker-credential-store"},
		{name: "helper without the registry falls back to auths", file: `{"credsStore":"store","auths":{"other:1":{"auth":"` + b64("other-user:other-pw") + `"}}}`, registry: "other:1", user: "other-user", pass: "other-pw", from: `(auths["other:1"])`},
		{name: "helper not installed: auths, and a note", file: `{"credsStore":"gone","auths":{"r:5000":{"auth":"` + b64("file-user:file-pw") + `"}}}`, registry: "r:5000", user: "file-user", pass: "file-pw", from: `(auths["r:5000"])`},
		{name: "helper in DOCKER_AUTH_CONFIG", env: `{"credHelpers":{"r:5000":"per"}}`, file: fileAuths, registry: "r:5000", user: "per-user", pass: "per-pw", from: "(credHelpers in DOCKER_AUTH_CONFIG)"},
		{name: "nothing anywhere", file: fileAuths, registry: "ghcr.io"},
		{name: "no config at all", registry: "ghcr.io"},
		{name: "failing helper", file: `{"credsStore":"store"}`, registry: "locked:1", err: "credential helper docker-credential-store (credsStore in"},
		{name: "bad DOCKER_AUTH_CONFIG", env: `{"auths":`, file: fileAuths, registry: "r:5000", err: "DOCKER_AUTH_CONFIG is not valid JSON"},
		{name: "bad file", file: `{"auths":{"r":{"auth":"!!"}}}`, registry: "r:5000", err: `config.json auths["r"].auth is not base64`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := envFor(t, tc.env, tc.file, helpers).Lookup(context.Background(), tc.registry)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			if tc.user == "" && tc.token == "" {
				require.Nil(t, res.Creds)
				require.Contains(t, res.Describe(), "no credentials")
				return
			}
			require.NotNil(t, res.Creds)
			require.Equal(t, tc.user, res.Creds.Username)
			require.Equal(t, tc.pass, res.Creds.Password)
			require.Equal(t, tc.token, res.Creds.IdentityToken)
			require.Contains(t, res.From, tc.from)
			require.Contains(t, res.Describe(), "credentials from ")
			for _, secret := range []string{res.Creds.Password, res.Creds.IdentityToken} {
				if secret != "" {
					require.NotContains(t, res.Describe(), secret, "no secret")
				}
			}
		})
	}
}

func TestLookupNotesAMissingHelper(t *testing.T) {
	res, err := envFor(t, "", `{"credsStore":"osxkeychain"}`, fakeHelpers{}).Lookup(context.Background(), "docker.io")
	require.NoError(t, err)
	require.Nil(t, res.Creds)
	require.Contains(t, res.Describe(), "docker-credential-osxkeychain (credsStore in")
	require.Contains(t, res.Describe(), "is not on PATH")
}

func TestConfigFileLocation(t *testing.T) {
	e := Env{Getenv: func(string) string { return "" }, Home: func() (string, error) { return "/home/me", nil }}
	require.Equal(t, "/home/me/.docker/config.json", e.ConfigFile())
	e.Getenv = func(k string) string { return map[string]string{"DOCKER_CONFIG": "/etc/ci/docker"}[k] }
	require.Equal(t, "/etc/ci/docker/config.json", e.ConfigFile())
	e = Env{Getenv: func(string) string { return "" }, Home: func() (string, error) { return "", errors.New("no home") }}
	require.Equal(t, "", e.ConfigFile())
}
