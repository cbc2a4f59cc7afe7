package daemon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
)

// fakeEnv is an Env over a map, with fake sockets.
func fakeEnv(home string, vars map[string]string, sockets ...string) Env {
	return Env{
		Getenv: func(k string) string { return vars[k] },
		Home:   home,
		Exists: func(p string) bool {
			for _, s := range sockets {
				if s == p {
					return true
				}
			}
			return false
		},
	}
}

// writeFile writes data to path, creating its directories.
func writeFile(t *testing.T, path, data string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(data), 0o600))
}

// writeContext stores a docker CLI context under cfgDir as `docker context
// create` does, with the named TLS files (ca.pem, cert.pem, key.pem).
func writeContext(t *testing.T, cfgDir, name, host string, skipVerify bool, tlsFiles ...string) {
	t.Helper()
	meta := map[string]any{
		"Name":     name,
		"Metadata": map[string]any{"Description": "test"},
		"Endpoints": map[string]any{
			"docker": map[string]any{"Host": host, "SkipTLSVerify": skipVerify},
		},
	}
	data, err := json.Marshal(meta)
	require.NoError(t, err)
	id := contextDirName(name)
	writeFile(t, filepath.Join(cfgDir, "contexts", "meta", id, "meta.json"), string(data))
	for _, f := range tlsFiles {
		writeFile(t, filepath.Join(cfgDir, "contexts", "tls", id, "docker", f), "pem")
	}
}

func writeCurrentContext(t *testing.T, cfgDir, name string) {
	t.Helper()
	writeFile(t, filepath.Join(cfgDir, "config.json"), `{"auths":{},"currentContext":"`+name+`"}`)
}

func TestContextDirNameIsSHA256(t *testing.T) {
	// The docker CLI's store: sha256("default") is a well-known value.
	require.Equal(t, "37a8eec1ce19687d132fe29051dca629d164e2c4958ba141d5f4133a33f0688f", contextDirName("default"))
}

func TestFind(t *testing.T) {
	const defaultSock = "unix:///var/run/docker.sock"
	defaultEP := engine.Endpoint{Host: defaultSock, Source: "default socket"}

	type dirs struct{ home, other string } // other: a directory outside home
	tests := []struct {
		name    string
		reason  string
		env     map[string]string // "{home}" and "{other}" are replaced
		sockets []string          // existing sockets, with the same placeholders
		setup   func(t *testing.T, d dirs)
		want    func(d dirs) []engine.Endpoint
		wantErr []string // substrings of the error; "{home}"/"{other}" replaced
		wantIs  error
	}{
		{
			name:   "nothing set",
			reason: "with no variable, no config and no rootless socket only the default socket is left",
			want:   func(dirs) []engine.Endpoint { return []engine.Endpoint{defaultEP} },
		},
		{
			name:   "DOCKER_HOST wins over everything",
			reason: "the docker CLI ignores contexts and sockets when DOCKER_HOST is set, and so lists nothing else",
			env: map[string]string{
				"DOCKER_HOST": "tcp://10.1.2.3:2375", "DOCKER_CONTEXT": "remote",
				"XDG_RUNTIME_DIR": "/run/user/1000",
			},
			sockets: []string{"/run/user/1000/docker.sock"},
			setup: func(t *testing.T, d dirs) {
				cfg := filepath.Join(d.home, ".docker")
				writeContext(t, cfg, "remote", "tcp://remote:2376", false)
				writeCurrentContext(t, cfg, "remote")
			},
			want: func(dirs) []engine.Endpoint {
				return []engine.Endpoint{{Host: "tcp://10.1.2.3:2375", Source: "DOCKER_HOST"}}
			},
		},
		{
			name:   "DOCKER_HOST unix socket",
			reason: "a unix:// DOCKER_HOST is used as given",
			env:    map[string]string{"DOCKER_HOST": "unix:///tmp/my.sock"},
			want: func(dirs) []engine.Endpoint {
				return []engine.Endpoint{{Host: "unix:///tmp/my.sock", Source: "DOCKER_HOST"}}
			},
		},
		{
			name:   "DOCKER_HOST without scheme or port",
			reason: "like the docker CLI, a bare host:port is tcp:// and a tcp:// host without port gets 2375",
			env:    map[string]string{"DOCKER_HOST": "build-box"},
			want: func(dirs) []engine.Endpoint {
				return []engine.Endpoint{{Host: "tcp://build-box:2375", Source: "DOCKER_HOST"}}
			},
		},
		{
			name:    "DOCKER_HOST socket path without scheme",
			reason:  "a bare path is almost surely a socket; say how to write it rather than dial tcp",
			env:     map[string]string{"DOCKER_HOST": "/var/run/docker.sock"},
			wantErr: []string{"DOCKER_HOST", `"/var/run/docker.sock"`, "unix:///var/run/docker.sock"},
			wantIs:  errs.InvalidConfig,
		},
		{
			name:   "DOCKER_HOST ssh",
			reason: "ssh:// is reached as the docker CLI reaches it: ssh … docker system dial-stdio",
			env:    map[string]string{"DOCKER_HOST": "ssh://me@build-box:2222"},
			want: func(dirs) []engine.Endpoint {
				return []engine.Endpoint{{Host: "ssh://me@build-box:2222", Source: "DOCKER_HOST"}}
			},
		},
		{
			name:    "DOCKER_HOST ssh with a path refused",
			reason:  "the remote daemon's own socket is used; a path would be silently ignored",
			env:     map[string]string{"DOCKER_HOST": "ssh://me@build-box/var/run/docker.sock"},
			wantErr: []string{"DOCKER_HOST", "cannot hold a path"},
			wantIs:  errs.InvalidConfig,
		},
		{
			name:    "DOCKER_HOST unsupported scheme",
			reason:  "the docker CLI accepts only unix, tcp, npipe (and ssh)",
			env:     map[string]string{"DOCKER_HOST": "http://build-box:2375"},
			wantErr: []string{"DOCKER_HOST", `unsupported scheme "http"`},
			wantIs:  errs.InvalidConfig,
		},
		{
			name:   "DOCKER_CONTEXT wins over config.json",
			reason: "the docker CLI reads DOCKER_CONTEXT before currentContext",
			env:    map[string]string{"DOCKER_CONTEXT": "remote"},
			setup: func(t *testing.T, d dirs) {
				cfg := filepath.Join(d.home, ".docker")
				writeContext(t, cfg, "remote", "tcp://remote.example:2375", false)
				writeContext(t, cfg, "other", "tcp://other.example:2375", false)
				writeCurrentContext(t, cfg, "other")
			},
			want: func(dirs) []engine.Endpoint {
				return []engine.Endpoint{{Host: "tcp://remote.example:2375", Source: `context "remote" (DOCKER_CONTEXT)`}}
			},
		},
		{
			name:    "config.json currentContext used",
			reason:  "`docker context use` stores the choice in config.json; only that context is listed",
			env:     map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"},
			sockets: []string{"/run/user/1000/docker.sock"},
			setup: func(t *testing.T, d dirs) {
				cfg := filepath.Join(d.home, ".docker")
				writeContext(t, cfg, "colima", "unix:///home/me/.colima/docker.sock", false)
				writeCurrentContext(t, cfg, "colima")
			},
			want: func(dirs) []engine.Endpoint {
				return []engine.Endpoint{{Host: "unix:///home/me/.colima/docker.sock", Source: `context "colima" (~/.docker/config.json)`}}
			},
		},
		{
			name:   "DOCKER_CONTEXT default falls back to sockets",
			reason: `"default" means no context, even when config.json names another`,
			env:    map[string]string{"DOCKER_CONTEXT": "default"},
			setup: func(t *testing.T, d dirs) {
				cfg := filepath.Join(d.home, ".docker")
				writeContext(t, cfg, "remote", "tcp://remote:2375", false)
				writeCurrentContext(t, cfg, "remote")
			},
			want: func(dirs) []engine.Endpoint { return []engine.Endpoint{defaultEP} },
		},
		{
			name:    "config.json currentContext default falls back to sockets",
			reason:  `"default" in config.json also means no context`,
			env:     map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"},
			sockets: []string{"/run/user/1000/docker.sock"},
			setup: func(t *testing.T, d dirs) {
				writeCurrentContext(t, filepath.Join(d.home, ".docker"), "default")
			},
			want: func(dirs) []engine.Endpoint {
				return []engine.Endpoint{{Host: "unix:///run/user/1000/docker.sock", Source: "rootless socket ($XDG_RUNTIME_DIR/docker.sock)"}, defaultEP}
			},
		},
		{
			name:   "config.json without currentContext",
			reason: "a config.json holding only credentials says nothing about the daemon",
			setup: func(t *testing.T, d dirs) {
				writeFile(t, filepath.Join(d.home, ".docker", "config.json"), `{"auths":{"registry.example":{}}}`)
			},
			want: func(dirs) []engine.Endpoint { return []engine.Endpoint{defaultEP} },
		},
		{
			name:    "missing context from DOCKER_CONTEXT",
			reason:  "a context that does not exist is an error naming it, where it came from and the file looked for; silently using another daemon would be worse",
			env:     map[string]string{"DOCKER_CONTEXT": "ghost"},
			wantErr: []string{`docker context "ghost" (DOCKER_CONTEXT) does not exist`, filepath.Join("{home}", ".docker", "contexts", "meta", contextDirName("ghost"), "meta.json"), "docker context ls"},
			wantIs:  errs.InvalidConfig,
		},
		{
			name:   "missing context from config.json",
			reason: "the error names config.json as the place the context name came from",
			setup: func(t *testing.T, d dirs) {
				writeCurrentContext(t, filepath.Join(d.home, ".docker"), "ghost")
			},
			wantErr: []string{`docker context "ghost" (~/.docker/config.json) does not exist`, contextDirName("ghost")},
			wantIs:  errs.InvalidConfig,
		},
		{
			name:   "malformed meta.json",
			reason: "a broken context is an error naming the context and the file",
			env:    map[string]string{"DOCKER_CONTEXT": "broken"},
			setup: func(t *testing.T, d dirs) {
				writeFile(t, filepath.Join(d.home, ".docker", "contexts", "meta", contextDirName("broken"), "meta.json"), `{"Name": "broken", "Endpoints": {`)
			},
			wantErr: []string{`docker context "broken"`, "meta.json is not valid JSON", contextDirName("broken")},
			wantIs:  errs.InvalidConfig,
		},
		{
			name:   "meta.json without docker endpoint",
			reason: "a context with no docker host cannot be used",
			env:    map[string]string{"DOCKER_CONTEXT": "k8s-only"},
			setup: func(t *testing.T, d dirs) {
				writeFile(t, filepath.Join(d.home, ".docker", "contexts", "meta", contextDirName("k8s-only"), "meta.json"), `{"Name":"k8s-only","Endpoints":{"kubernetes":{}}}`)
			},
			wantErr: []string{`docker context "k8s-only"`, "has no docker endpoint host"},
			wantIs:  errs.InvalidConfig,
		},
		{
			name:   "malformed config.json",
			reason: "when config.json cannot be read heph cannot tell which daemon the user chose; it says so and names the file",
			setup: func(t *testing.T, d dirs) {
				writeFile(t, filepath.Join(d.home, ".docker", "config.json"), `{"currentContext":`)
			},
			wantErr: []string{filepath.Join("{home}", ".docker", "config.json"), "not valid JSON"},
			wantIs:  errs.InvalidConfig,
		},
		{
			name:   "context with ssh host",
			reason: "a context made by `docker context create --docker host=ssh://…`",
			env:    map[string]string{"DOCKER_CONTEXT": "ssh-box"},
			setup: func(t *testing.T, d dirs) {
				writeContext(t, filepath.Join(d.home, ".docker"), "ssh-box", "ssh://me@box", false)
			},
			want: func(dirs) []engine.Endpoint {
				return []engine.Endpoint{{Host: "ssh://me@box", Source: `context "ssh-box" (DOCKER_CONTEXT)`}}
			},
		},
		{
			name:    "rootless socket before default",
			reason:  "a rootless daemon's socket is tried first when it exists; the default socket still comes last",
			env:     map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"},
			sockets: []string{"/run/user/1000/docker.sock"},
			want: func(dirs) []engine.Endpoint {
				return []engine.Endpoint{{Host: "unix:///run/user/1000/docker.sock", Source: "rootless socket ($XDG_RUNTIME_DIR/docker.sock)"}, defaultEP}
			},
		},
		{
			name:   "rootless socket skipped when missing",
			reason: "XDG_RUNTIME_DIR is set on most desktops; without a socket there it is not a rootless daemon",
			env:    map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"},
			want:   func(dirs) []engine.Endpoint { return []engine.Endpoint{defaultEP} },
		},
		{
			name:   "DOCKER_CONFIG overrides ~/.docker",
			reason: "the docker CLI reads config.json and contexts from $DOCKER_CONFIG when set; ~/.docker is then ignored",
			env:    map[string]string{"DOCKER_CONFIG": "{other}"},
			setup: func(t *testing.T, d dirs) {
				home := filepath.Join(d.home, ".docker")
				writeContext(t, home, "ci", "tcp://wrong:2375", false)
				writeCurrentContext(t, home, "ci")
				writeContext(t, d.other, "ci", "tcp://right:2375", false)
				writeCurrentContext(t, d.other, "ci")
			},
			want: func(d dirs) []engine.Endpoint {
				return []engine.Endpoint{{Host: "tcp://right:2375", Source: `context "ci" (` + filepath.Join(d.other, "config.json") + `)`}}
			},
		},
		{
			name:   "DOCKER_CONFIG without the context",
			reason: "with DOCKER_CONFIG set, a context that exists only in ~/.docker is not found",
			env:    map[string]string{"DOCKER_CONFIG": "{other}", "DOCKER_CONTEXT": "ci"},
			setup: func(t *testing.T, d dirs) {
				writeContext(t, filepath.Join(d.home, ".docker"), "ci", "tcp://x:2375", false)
			},
			wantErr: []string{`docker context "ci" (DOCKER_CONTEXT) does not exist`, filepath.Join("{other}", "contexts", "meta")},
			wantIs:  errs.InvalidConfig,
		},
		{
			name:   "context TLS files verified",
			reason: "a context with TLS files uses TLS and verifies the server unless SkipTLSVerify",
			env:    map[string]string{"DOCKER_CONTEXT": "secure"},
			setup: func(t *testing.T, d dirs) {
				writeContext(t, filepath.Join(d.home, ".docker"), "secure", "tcp://secure:2376", false, "ca.pem", "cert.pem", "key.pem")
			},
			want: func(d dirs) []engine.Endpoint {
				tlsDir := filepath.Join(d.home, ".docker", "contexts", "tls", contextDirName("secure"), "docker")
				return []engine.Endpoint{{
					Host: "tcp://secure:2376", Source: `context "secure" (DOCKER_CONTEXT)`, TLS: true, TLSVerify: true,
					CAFile: filepath.Join(tlsDir, "ca.pem"), CertFile: filepath.Join(tlsDir, "cert.pem"), KeyFile: filepath.Join(tlsDir, "key.pem"),
				}}
			},
		},
		{
			name:   "context SkipTLSVerify",
			reason: "SkipTLSVerify alone turns TLS on without verification, as in the docker CLI",
			env:    map[string]string{"DOCKER_CONTEXT": "lab"},
			setup: func(t *testing.T, d dirs) {
				writeContext(t, filepath.Join(d.home, ".docker"), "lab", "tcp://lab", true)
			},
			want: func(dirs) []engine.Endpoint {
				return []engine.Endpoint{{Host: "tcp://lab:2376", Source: `context "lab" (DOCKER_CONTEXT)`, TLS: true}}
			},
		},
		{
			name:   "context without TLS",
			reason: "no TLS files and no SkipTLSVerify: plain connection, whatever the TLS variables say (they belong to DOCKER_HOST)",
			env:    map[string]string{"DOCKER_CONTEXT": "plain", "DOCKER_TLS_VERIFY": "1"},
			setup: func(t *testing.T, d dirs) {
				writeContext(t, filepath.Join(d.home, ".docker"), "plain", "unix:///run/plain.sock", false)
			},
			want: func(dirs) []engine.Endpoint {
				return []engine.Endpoint{{Host: "unix:///run/plain.sock", Source: `context "plain" (DOCKER_CONTEXT)`}}
			},
		},
		{
			name:   "DOCKER_TLS_VERIFY with DOCKER_CERT_PATH",
			reason: "TLS with verification, the three files from DOCKER_CERT_PATH; a tcp host without port gets 2376",
			env:    map[string]string{"DOCKER_HOST": "tcp://secure", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "{other}"},
			setup: func(t *testing.T, d dirs) {
				for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
					writeFile(t, filepath.Join(d.other, f), "pem")
				}
			},
			want: func(d dirs) []engine.Endpoint {
				return []engine.Endpoint{{
					Host: "tcp://secure:2376", Source: "DOCKER_HOST", TLS: true, TLSVerify: true,
					CAFile: filepath.Join(d.other, "ca.pem"), CertFile: filepath.Join(d.other, "cert.pem"), KeyFile: filepath.Join(d.other, "key.pem"),
				}}
			},
		},
		{
			name:   "DOCKER_TLS_VERIFY defaults cert path to ~/.docker",
			reason: "without DOCKER_CERT_PATH the files come from the config directory; missing ones are left empty",
			env:    map[string]string{"DOCKER_HOST": "tcp://secure:2376", "DOCKER_TLS_VERIFY": "1"},
			setup: func(t *testing.T, d dirs) {
				writeFile(t, filepath.Join(d.home, ".docker", "ca.pem"), "pem")
			},
			want: func(d dirs) []engine.Endpoint {
				return []engine.Endpoint{{
					Host: "tcp://secure:2376", Source: "DOCKER_HOST", TLS: true, TLSVerify: true,
					CAFile: filepath.Join(d.home, ".docker", "ca.pem"),
				}}
			},
		},
		{
			name:   "DOCKER_TLS_VERIFY with DOCKER_CONFIG",
			reason: "the default cert path follows DOCKER_CONFIG",
			env:    map[string]string{"DOCKER_HOST": "tcp://secure:2376", "DOCKER_TLS_VERIFY": "yes", "DOCKER_CONFIG": "{other}"},
			setup: func(t *testing.T, d dirs) {
				writeFile(t, filepath.Join(d.home, ".docker", "ca.pem"), "pem")
				writeFile(t, filepath.Join(d.other, "cert.pem"), "pem")
				writeFile(t, filepath.Join(d.other, "key.pem"), "pem")
			},
			want: func(d dirs) []engine.Endpoint {
				return []engine.Endpoint{{
					Host: "tcp://secure:2376", Source: "DOCKER_HOST", TLS: true, TLSVerify: true,
					CertFile: filepath.Join(d.other, "cert.pem"), KeyFile: filepath.Join(d.other, "key.pem"),
				}}
			},
		},
		{
			name:   "DOCKER_CERT_PATH without DOCKER_TLS_VERIFY",
			reason: "TLS without verification, as the SDK's FromEnv does",
			env:    map[string]string{"DOCKER_HOST": "tcp://lab:2376", "DOCKER_CERT_PATH": "{other}"},
			setup: func(t *testing.T, d dirs) {
				writeFile(t, filepath.Join(d.other, "cert.pem"), "pem")
				writeFile(t, filepath.Join(d.other, "key.pem"), "pem")
			},
			want: func(d dirs) []engine.Endpoint {
				return []engine.Endpoint{{
					Host: "tcp://lab:2376", Source: "DOCKER_HOST", TLS: true,
					CertFile: filepath.Join(d.other, "cert.pem"), KeyFile: filepath.Join(d.other, "key.pem"),
				}}
			},
		},
		{
			name:   "DOCKER_TLS alone",
			reason: "the docker CLI's DOCKER_TLS turns TLS on without verification",
			env:    map[string]string{"DOCKER_HOST": "tcp://lab:2376", "DOCKER_TLS": "1"},
			want: func(dirs) []engine.Endpoint {
				return []engine.Endpoint{{Host: "tcp://lab:2376", Source: "DOCKER_HOST", TLS: true}}
			},
		},
		{
			name:   "no TLS variables",
			reason: "plain TCP when nothing asks for TLS",
			env:    map[string]string{"DOCKER_HOST": "tcp://lab:2375"},
			want: func(dirs) []engine.Endpoint {
				return []engine.Endpoint{{Host: "tcp://lab:2375", Source: "DOCKER_HOST"}}
			},
		},
		{
			name:   "TLS variables without DOCKER_HOST",
			reason: "TLS variables go with DOCKER_HOST; the local sockets stay plain",
			env:    map[string]string{"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "{other}"},
			want:   func(dirs) []engine.Endpoint { return []engine.Endpoint{defaultEP} },
		},
		{
			name:    "DOCKER_API_VERSION valid",
			reason:  "a fixed API version applies to every endpoint listed",
			env:     map[string]string{"DOCKER_API_VERSION": "1.41", "XDG_RUNTIME_DIR": "/run/user/1000"},
			sockets: []string{"/run/user/1000/docker.sock"},
			want: func(dirs) []engine.Endpoint {
				return []engine.Endpoint{
					{Host: "unix:///run/user/1000/docker.sock", Source: "rootless socket ($XDG_RUNTIME_DIR/docker.sock)", APIVersion: "1.41"},
					{Host: defaultSock, Source: "default socket", APIVersion: "1.41"},
				}
			},
		},
		{
			name:   "DOCKER_API_VERSION with v prefix",
			reason: `the SDK accepts "v1.44"; heph stores the bare form`,
			env:    map[string]string{"DOCKER_API_VERSION": "v1.44", "DOCKER_HOST": "unix:///x.sock"},
			want: func(dirs) []engine.Endpoint {
				return []engine.Endpoint{{Host: "unix:///x.sock", Source: "DOCKER_HOST", APIVersion: "1.44"}}
			},
		},
		{
			name:    "DOCKER_API_VERSION invalid",
			reason:  "a malformed version is refused naming the variable and the value, before any connection",
			env:     map[string]string{"DOCKER_API_VERSION": "latest"},
			wantErr: []string{"DOCKER_API_VERSION", `"latest"`, `"1.41"`},
			wantIs:  errs.InvalidConfig,
		},
		{
			name:    "DOCKER_API_VERSION major only",
			reason:  `"1" is not <major>.<minor>`,
			env:     map[string]string{"DOCKER_API_VERSION": "1", "DOCKER_HOST": "tcp://x:2375"},
			wantErr: []string{"DOCKER_API_VERSION", `"1"`},
			wantIs:  errs.InvalidConfig,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := dirs{home: t.TempDir(), other: t.TempDir()}
			expand := strings.NewReplacer("{home}", d.home, "{other}", d.other).Replace
			vars := map[string]string{}
			for k, v := range tc.env {
				vars[k] = expand(v)
			}
			var socks []string
			for _, s := range tc.sockets {
				socks = append(socks, expand(s))
			}
			if tc.setup != nil {
				tc.setup(t, d)
			}

			got, err := Find(fakeEnv(d.home, vars, socks...))

			if tc.wantErr != nil {
				require.Error(t, err, tc.reason)
				for _, s := range tc.wantErr {
					require.Contains(t, err.Error(), expand(s), tc.reason)
				}
				if tc.wantIs != nil {
					require.ErrorIs(t, err, tc.wantIs, tc.reason)
				}
				require.Nil(t, got)
				return
			}
			require.NoError(t, err, tc.reason)
			require.Equal(t, tc.want(d), got, tc.reason)
		})
	}
}

func TestFindNilEnv(t *testing.T) {
	// A zero Env (no Getenv, no home) must not panic: default socket only.
	got, err := Find(Env{Exists: func(string) bool { return false }})
	require.NoError(t, err)
	require.Equal(t, []engine.Endpoint{{Host: DefaultHost, Source: "default socket"}}, got)

	// A context cannot be found without a config directory; the error says why.
	_, err = Find(Env{Getenv: func(k string) string {
		return map[string]string{"DOCKER_CONTEXT": "remote"}[k]
	}})
	require.ErrorIs(t, err, errs.InvalidConfig)
	require.ErrorContains(t, err, `docker context "remote"`)
	require.ErrorContains(t, err, "no home directory")
}

func TestOSEnv(t *testing.T) {
	t.Setenv("HEPH_TEST_VAR", "x")
	env := OSEnv()
	require.Equal(t, "x", env.Getenv("HEPH_TEST_VAR"))
	require.True(t, env.Exists(t.TempDir()))
	require.False(t, env.Exists(filepath.Join(t.TempDir(), "nope")))
}

func TestNormalizeHost(t *testing.T) {
	cases := []struct {
		host    string
		tls     bool
		want    string
		wantErr string // substring of the reason
		reason  string
	}{
		{host: "unix:///var/run/docker.sock", want: "unix:///var/run/docker.sock", reason: "a unix socket is used as given"},
		{host: "npipe:////./pipe/docker_engine", want: "npipe:////./pipe/docker_engine", reason: "a Windows named pipe is used as given"},
		{host: "UNIX:///x.sock", want: "unix:///x.sock", reason: "the scheme is case-insensitive, and the SDK gets it lower-case: it would dial a network named UNIX"},
		{host: "  unix:///x.sock\t", want: "unix:///x.sock", reason: "surrounding blanks (a line from a file) are not part of the host"},
		{host: "tcp://build-box", want: "tcp://build-box:2375", reason: "a tcp host without port gets the plain port"},
		{host: "tcp://build-box", tls: true, want: "tcp://build-box:2376", reason: "with TLS the default port is 2376"},
		{host: "tcp://build-box:1234", tls: true, want: "tcp://build-box:1234", reason: "a port given is kept"},
		{host: "build-box:1234", want: "tcp://build-box:1234", reason: "no scheme means tcp://, as the docker CLI reads it"},
		{host: "TCP://Build-Box", want: "tcp://Build-Box:2375", reason: "the scheme is lower-cased; the host name is left alone"},
		{host: "tcp://:2375", want: "tcp://localhost:2375", reason: "an empty host name is localhost"},
		{host: "tcp://[::1]:2375", want: "tcp://[::1]:2375", reason: "an IPv6 address keeps its brackets"},
		{host: "tcp://[2001:db8::1]", tls: true, want: "tcp://[2001:db8::1]:2376", reason: "an IPv6 address without port gets one, bracketed"},
		{host: "tcp://10.0.0.5:2375/proxy", want: "tcp://10.0.0.5:2375/proxy", reason: "a base path (a daemon behind a proxy) is kept"},
		{host: "unix://", wantErr: "unix:// needs a path", reason: "a socket scheme without a path names nothing"},
		{host: "NPIPE://", wantErr: "npipe:// needs a path", reason: "the reason names the scheme as heph reads it"},
		{host: "/var/run/docker.sock", wantErr: "a socket path needs the unix:// scheme: unix:///var/run/docker.sock", reason: "a bare path is a socket: say how to write it rather than dial tcp"},
		{host: "ssh://me@box", want: "ssh://me@box", reason: "reached by ssh … docker system dial-stdio"},
		{host: "ssh://me@box:2222", want: "ssh://me@box:2222", reason: "a port"},
		{host: "ssh://me@box", tls: true, wantErr: "does not take TLS settings", reason: "TLS would be ignored"},
		{host: "ssh://me:pw@box", wantErr: "cannot hold a password", reason: "ssh takes no password on its command line"},
		{host: "ssh://-oProxyCommand=x", wantErr: "cannot start with '-'", reason: "no option smuggled to ssh as a host"},
		{host: "ssh://box/sock", wantErr: "cannot hold a path", reason: "the remote default socket is used"},
		{host: "http://box:2375", wantErr: `unsupported scheme "http": use unix://, tcp://, ssh:// or npipe://`, reason: "the docker CLI refuses http:// too"},
		{host: "fd://", wantErr: `unsupported scheme "fd"`, reason: "systemd's fd:// is for the daemon's own listeners, not a client"},
		{host: "tcp://a b:2375", wantErr: "not a valid tcp:// address", reason: "a malformed address is refused, with the parser's reason"},
		{host: "tcp://box:99999", wantErr: "port 99999 is not in 1-65535", reason: "found by FuzzNormalizeHost: a port no socket has was accepted"},
		{host: "tcp://box:0", wantErr: "port 0 is not in 1-65535", reason: "found by FuzzNormalizeHost"},
		{host: " ", wantErr: "is empty", reason: "not the tcp://localhost:2375 it became"},
		{host: "::1", wantErr: "an IPv6 address goes in brackets", reason: "found by FuzzNormalizeHost: it became tcp://[:]:1"},
		{host: "box/base   #frag", wantErr: "cannot hold a query or a fragment", reason: "found by FuzzNormalizeHost: the fragment was dropped"},
		{host: "box/base path", wantErr: "cannot hold blanks", reason: "found by FuzzNormalizeHost"},
		{host: "tcp://me:secret@box", wantErr: "cannot hold credentials", reason: "they were dropped silently"},
		{host: "\xc2%80", wantErr: "holds a control character or a blank", reason: "found by FuzzNormalizeHost: a percent-encoded control character"},
		{host: "box/base%23x", want: "tcp://box:2375/base%23x", reason: "found by FuzzNormalizeHost: an escaped # in the path became a fragment"},
		{host: "unix:///x\x00.sock", wantErr: "contains a control character", reason: "found by FuzzNormalizeHost: a NUL reached the dial"},
	}
	for _, tc := range cases {
		t.Run(tc.host, func(t *testing.T) {
			got, err := NormalizeHost(tc.host, tc.tls)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr, tc.reason)
				require.Empty(t, got)
				require.NotContains(t, err.Error(), "heph:", "a reason, for the caller to prefix")
				return
			}
			require.NoError(t, err, tc.reason)
			require.Equal(t, tc.want, got, tc.reason)
			again, err := NormalizeHost(got, tc.tls)
			require.NoError(t, err)
			require.Equal(t, got, again, "normalizing is idempotent")
		})
	}
}

func TestParseAPIVersion(t *testing.T) {
	cases := []struct {
		in, want, wantErr, reason string
	}{
		{in: "1.41", want: "1.41", reason: "the usual form"},
		{in: "v1.44", want: "1.44", reason: "the SDK accepts a leading v; heph stores the bare form"},
		{in: "01.041", want: "1.41", reason: "leading zeros are dropped: the daemon compares numbers"},
		{in: "2.0", want: "2.0", reason: "a future major version is still a version"},
		{in: "1", wantErr: `want <major>.<minor>, such as "1.41"`, reason: "a major version alone is not enough"},
		{in: "1.41.0", wantErr: "want <major>.<minor>", reason: "API versions have no patch number"},
		{in: "latest", wantErr: "want <major>.<minor>", reason: "no symbolic names"},
		{in: "", wantErr: "want <major>.<minor>", reason: "empty is not a version (Find treats an unset variable before this)"},
		{in: " 1.41", wantErr: "want <major>.<minor>", reason: "the caller trims; the parser is strict"},
		{in: "V1.41", wantErr: "want <major>.<minor>", reason: "only a lower-case v, as the SDK"},
		{in: "1.-1", wantErr: "want <major>.<minor>", reason: "no signs"},
		{in: "99999999999999999999.1", wantErr: "version number out of range", reason: "a number too large for an int is refused, not wrapped"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAPIVersion(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr, tc.reason)
				require.Empty(t, got)
				return
			}
			require.NoError(t, err, tc.reason)
			require.Equal(t, tc.want, got, tc.reason)
		})
	}
}

func TestFindTrimsVariables(t *testing.T) {
	// A variable exported with a trailing blank (from a file, a CI form)
	// means the same as without it.
	got, err := Find(fakeEnv(t.TempDir(), map[string]string{"DOCKER_HOST": " tcp://box:2375 ", "DOCKER_API_VERSION": "1.41\n"}))
	require.NoError(t, err)
	require.Equal(t, []engine.Endpoint{{Host: "tcp://box:2375", Source: "DOCKER_HOST", APIVersion: "1.41"}}, got)
}

func TestFindContextErrorsUnreadable(t *testing.T) {
	// A meta.json (or config.json) that exists but cannot be read is an
	// error naming it, not "does not exist".
	home := t.TempDir()
	cfg := filepath.Join(home, ".docker")
	meta := filepath.Join(cfg, "contexts", "meta", contextDirName("locked"), "meta.json")
	require.NoError(t, os.MkdirAll(meta, 0o755)) // a directory: reading it fails
	_, err := Find(fakeEnv(home, map[string]string{"DOCKER_CONTEXT": "locked"}))
	require.ErrorIs(t, err, errs.InvalidConfig)
	require.ErrorContains(t, err, `docker context "locked" (DOCKER_CONTEXT)`)
	require.NotContains(t, err.Error(), "does not exist")

	require.NoError(t, os.MkdirAll(filepath.Join(cfg, "config.json"), 0o755))
	_, err = Find(fakeEnv(home, nil))
	require.ErrorIs(t, err, errs.InvalidConfig)
	require.ErrorContains(t, err, "docker config "+filepath.Join(cfg, "config.json"))
}

func TestTilde(t *testing.T) {
	env := Env{Home: "/home/me"}
	for in, want := range map[string]string{
		"/home/me/.docker/config.json": "~/.docker/config.json",
		"/home/meat/config.json":       "/home/meat/config.json",
		"/home/config.json":            "/home/config.json",
		"/etc/docker/config.json":      "/etc/docker/config.json",
	} {
		require.Equal(t, want, env.tilde(in), in)
	}
	require.Equal(t, "/x/config.json", Env{}.tilde("/x/config.json"), "no home: the path as it is")
}

func TestFindRootlessSocketOnDisk(t *testing.T) {
	// Without an Exists function the file system is asked.
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "docker.sock"), nil, 0o600))
	got, err := Find(Env{Getenv: func(k string) string { return map[string]string{"XDG_RUNTIME_DIR": dir}[k] }})
	require.NoError(t, err)
	require.Equal(t, []engine.Endpoint{
		{Host: "unix://" + filepath.Join(dir, "docker.sock"), Source: "rootless socket ($XDG_RUNTIME_DIR/docker.sock)"},
		{Host: DefaultHost, Source: "default socket"},
	}, got)
}
