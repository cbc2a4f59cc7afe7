package heph

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
)

// fakeEnv is a daemonEnv over a map, with fake sockets.
func fakeEnv(home string, vars map[string]string, sockets ...string) daemonEnv {
	return daemonEnv{
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

func TestFindDaemon(t *testing.T) {
	const defaultSock = "unix:///var/run/docker.sock"
	defaultEP := dockerEndpoint{Host: defaultSock, Source: "default socket"}

	type dirs struct{ home, other string } // other: a directory outside home
	tests := []struct {
		name    string
		reason  string
		env     map[string]string // "{home}" and "{other}" are replaced
		sockets []string          // existing sockets, with the same placeholders
		setup   func(t *testing.T, d dirs)
		want    func(d dirs) []dockerEndpoint
		wantErr []string // substrings of the error; "{home}"/"{other}" replaced
		wantIs  error
	}{
		{
			name:   "nothing set",
			reason: "with no variable, no config and no rootless socket only the default socket is left",
			want:   func(dirs) []dockerEndpoint { return []dockerEndpoint{defaultEP} },
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
			want: func(dirs) []dockerEndpoint {
				return []dockerEndpoint{{Host: "tcp://10.1.2.3:2375", Source: "DOCKER_HOST"}}
			},
		},
		{
			name:   "DOCKER_HOST unix socket",
			reason: "a unix:// DOCKER_HOST is used as given",
			env:    map[string]string{"DOCKER_HOST": "unix:///tmp/my.sock"},
			want: func(dirs) []dockerEndpoint {
				return []dockerEndpoint{{Host: "unix:///tmp/my.sock", Source: "DOCKER_HOST"}}
			},
		},
		{
			name:   "DOCKER_HOST without scheme or port",
			reason: "like the docker CLI, a bare host:port is tcp:// and a tcp:// host without port gets 2375",
			env:    map[string]string{"DOCKER_HOST": "build-box"},
			want: func(dirs) []dockerEndpoint {
				return []dockerEndpoint{{Host: "tcp://build-box:2375", Source: "DOCKER_HOST"}}
			},
		},
		{
			name:    "DOCKER_HOST socket path without scheme",
			reason:  "a bare path is almost surely a socket; say how to write it rather than dial tcp",
			env:     map[string]string{"DOCKER_HOST": "/var/run/docker.sock"},
			wantErr: []string{"DOCKER_HOST", `"/var/run/docker.sock"`, "unix:///var/run/docker.sock"},
			wantIs:  ErrInvalidConfig,
		},
		{
			name:    "DOCKER_HOST ssh refused",
			reason:  "ssh:// needs the docker CLI's connection helper, which heph does not have; the message says what to do instead",
			env:     map[string]string{"DOCKER_HOST": "ssh://me@build-box"},
			wantErr: []string{"DOCKER_HOST", `"ssh://me@build-box"`, "ssh:// is not supported", "ssh -nNT -L", "DOCKER_HOST=unix://"},
			wantIs:  ErrInvalidConfig,
		},
		{
			name:    "DOCKER_HOST unsupported scheme",
			reason:  "the docker CLI accepts only unix, tcp, npipe (and ssh)",
			env:     map[string]string{"DOCKER_HOST": "http://build-box:2375"},
			wantErr: []string{"DOCKER_HOST", `unsupported scheme "http"`},
			wantIs:  ErrInvalidConfig,
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
			want: func(dirs) []dockerEndpoint {
				return []dockerEndpoint{{Host: "tcp://remote.example:2375", Source: `context "remote" (DOCKER_CONTEXT)`}}
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
			want: func(dirs) []dockerEndpoint {
				return []dockerEndpoint{{Host: "unix:///home/me/.colima/docker.sock", Source: `context "colima" (~/.docker/config.json)`}}
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
			want: func(dirs) []dockerEndpoint { return []dockerEndpoint{defaultEP} },
		},
		{
			name:    "config.json currentContext default falls back to sockets",
			reason:  `"default" in config.json also means no context`,
			env:     map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"},
			sockets: []string{"/run/user/1000/docker.sock"},
			setup: func(t *testing.T, d dirs) {
				writeCurrentContext(t, filepath.Join(d.home, ".docker"), "default")
			},
			want: func(dirs) []dockerEndpoint {
				return []dockerEndpoint{{Host: "unix:///run/user/1000/docker.sock", Source: "rootless socket ($XDG_RUNTIME_DIR/docker.sock)"}, defaultEP}
			},
		},
		{
			name:   "config.json without currentContext",
			reason: "a config.json holding only credentials says nothing about the daemon",
			setup: func(t *testing.T, d dirs) {
				writeFile(t, filepath.Join(d.home, ".docker", "config.json"), `{"auths":{"registry.example":{}}}`)
			},
			want: func(dirs) []dockerEndpoint { return []dockerEndpoint{defaultEP} },
		},
		{
			name:    "missing context from DOCKER_CONTEXT",
			reason:  "a context that does not exist is an error naming it, where it came from and the file looked for; silently using another daemon would be worse",
			env:     map[string]string{"DOCKER_CONTEXT": "ghost"},
			wantErr: []string{`docker context "ghost" (DOCKER_CONTEXT) does not exist`, filepath.Join("{home}", ".docker", "contexts", "meta", contextDirName("ghost"), "meta.json"), "docker context ls"},
			wantIs:  ErrInvalidConfig,
		},
		{
			name:   "missing context from config.json",
			reason: "the error names config.json as the place the context name came from",
			setup: func(t *testing.T, d dirs) {
				writeCurrentContext(t, filepath.Join(d.home, ".docker"), "ghost")
			},
			wantErr: []string{`docker context "ghost" (~/.docker/config.json) does not exist`, contextDirName("ghost")},
			wantIs:  ErrInvalidConfig,
		},
		{
			name:   "malformed meta.json",
			reason: "a broken context is an error naming the context and the file",
			env:    map[string]string{"DOCKER_CONTEXT": "broken"},
			setup: func(t *testing.T, d dirs) {
				writeFile(t, filepath.Join(d.home, ".docker", "contexts", "meta", contextDirName("broken"), "meta.json"), `{"Name": "broken", "Endpoints": {`)
			},
			wantErr: []string{`docker context "broken"`, "meta.json is not valid JSON", contextDirName("broken")},
			wantIs:  ErrInvalidConfig,
		},
		{
			name:   "meta.json without docker endpoint",
			reason: "a context with no docker host cannot be used",
			env:    map[string]string{"DOCKER_CONTEXT": "k8s-only"},
			setup: func(t *testing.T, d dirs) {
				writeFile(t, filepath.Join(d.home, ".docker", "contexts", "meta", contextDirName("k8s-only"), "meta.json"), `{"Name":"k8s-only","Endpoints":{"kubernetes":{}}}`)
			},
			wantErr: []string{`docker context "k8s-only"`, "has no docker endpoint host"},
			wantIs:  ErrInvalidConfig,
		},
		{
			name:   "malformed config.json",
			reason: "when config.json cannot be read heph cannot tell which daemon the user chose; it says so and names the file",
			setup: func(t *testing.T, d dirs) {
				writeFile(t, filepath.Join(d.home, ".docker", "config.json"), `{"currentContext":`)
			},
			wantErr: []string{filepath.Join("{home}", ".docker", "config.json"), "not valid JSON"},
			wantIs:  ErrInvalidConfig,
		},
		{
			name:   "context with ssh host refused",
			reason: "ssh:// is refused wherever it comes from, naming the context",
			env:    map[string]string{"DOCKER_CONTEXT": "ssh-box"},
			setup: func(t *testing.T, d dirs) {
				writeContext(t, filepath.Join(d.home, ".docker"), "ssh-box", "ssh://me@box", false)
			},
			wantErr: []string{`docker context "ssh-box"`, `"ssh://me@box"`, "ssh:// is not supported"},
			wantIs:  ErrInvalidConfig,
		},
		{
			name:    "rootless socket before default",
			reason:  "a rootless daemon's socket is tried first when it exists; the default socket still comes last",
			env:     map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"},
			sockets: []string{"/run/user/1000/docker.sock"},
			want: func(dirs) []dockerEndpoint {
				return []dockerEndpoint{{Host: "unix:///run/user/1000/docker.sock", Source: "rootless socket ($XDG_RUNTIME_DIR/docker.sock)"}, defaultEP}
			},
		},
		{
			name:   "rootless socket skipped when missing",
			reason: "XDG_RUNTIME_DIR is set on most desktops; without a socket there it is not a rootless daemon",
			env:    map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"},
			want:   func(dirs) []dockerEndpoint { return []dockerEndpoint{defaultEP} },
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
			want: func(d dirs) []dockerEndpoint {
				return []dockerEndpoint{{Host: "tcp://right:2375", Source: `context "ci" (` + filepath.Join(d.other, "config.json") + `)`}}
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
			wantIs:  ErrInvalidConfig,
		},
		{
			name:   "context TLS files verified",
			reason: "a context with TLS files uses TLS and verifies the server unless SkipTLSVerify",
			env:    map[string]string{"DOCKER_CONTEXT": "secure"},
			setup: func(t *testing.T, d dirs) {
				writeContext(t, filepath.Join(d.home, ".docker"), "secure", "tcp://secure:2376", false, "ca.pem", "cert.pem", "key.pem")
			},
			want: func(d dirs) []dockerEndpoint {
				tlsDir := filepath.Join(d.home, ".docker", "contexts", "tls", contextDirName("secure"), "docker")
				return []dockerEndpoint{{
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
			want: func(dirs) []dockerEndpoint {
				return []dockerEndpoint{{Host: "tcp://lab:2376", Source: `context "lab" (DOCKER_CONTEXT)`, TLS: true}}
			},
		},
		{
			name:   "context without TLS",
			reason: "no TLS files and no SkipTLSVerify: plain connection, whatever the TLS variables say (they belong to DOCKER_HOST)",
			env:    map[string]string{"DOCKER_CONTEXT": "plain", "DOCKER_TLS_VERIFY": "1"},
			setup: func(t *testing.T, d dirs) {
				writeContext(t, filepath.Join(d.home, ".docker"), "plain", "unix:///run/plain.sock", false)
			},
			want: func(dirs) []dockerEndpoint {
				return []dockerEndpoint{{Host: "unix:///run/plain.sock", Source: `context "plain" (DOCKER_CONTEXT)`}}
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
			want: func(d dirs) []dockerEndpoint {
				return []dockerEndpoint{{
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
			want: func(d dirs) []dockerEndpoint {
				return []dockerEndpoint{{
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
			want: func(d dirs) []dockerEndpoint {
				return []dockerEndpoint{{
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
			want: func(d dirs) []dockerEndpoint {
				return []dockerEndpoint{{
					Host: "tcp://lab:2376", Source: "DOCKER_HOST", TLS: true,
					CertFile: filepath.Join(d.other, "cert.pem"), KeyFile: filepath.Join(d.other, "key.pem"),
				}}
			},
		},
		{
			name:   "DOCKER_TLS alone",
			reason: "the docker CLI's DOCKER_TLS turns TLS on without verification",
			env:    map[string]string{"DOCKER_HOST": "tcp://lab:2376", "DOCKER_TLS": "1"},
			want: func(dirs) []dockerEndpoint {
				return []dockerEndpoint{{Host: "tcp://lab:2376", Source: "DOCKER_HOST", TLS: true}}
			},
		},
		{
			name:   "no TLS variables",
			reason: "plain TCP when nothing asks for TLS",
			env:    map[string]string{"DOCKER_HOST": "tcp://lab:2375"},
			want: func(dirs) []dockerEndpoint {
				return []dockerEndpoint{{Host: "tcp://lab:2375", Source: "DOCKER_HOST"}}
			},
		},
		{
			name:   "TLS variables without DOCKER_HOST",
			reason: "TLS variables go with DOCKER_HOST; the local sockets stay plain",
			env:    map[string]string{"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "{other}"},
			want:   func(dirs) []dockerEndpoint { return []dockerEndpoint{defaultEP} },
		},
		{
			name:    "DOCKER_API_VERSION valid",
			reason:  "a fixed API version applies to every endpoint listed",
			env:     map[string]string{"DOCKER_API_VERSION": "1.41", "XDG_RUNTIME_DIR": "/run/user/1000"},
			sockets: []string{"/run/user/1000/docker.sock"},
			want: func(dirs) []dockerEndpoint {
				return []dockerEndpoint{
					{Host: "unix:///run/user/1000/docker.sock", Source: "rootless socket ($XDG_RUNTIME_DIR/docker.sock)", APIVersion: "1.41"},
					{Host: defaultSock, Source: "default socket", APIVersion: "1.41"},
				}
			},
		},
		{
			name:   "DOCKER_API_VERSION with v prefix",
			reason: `the SDK accepts "v1.44"; heph stores the bare form`,
			env:    map[string]string{"DOCKER_API_VERSION": "v1.44", "DOCKER_HOST": "unix:///x.sock"},
			want: func(dirs) []dockerEndpoint {
				return []dockerEndpoint{{Host: "unix:///x.sock", Source: "DOCKER_HOST", APIVersion: "1.44"}}
			},
		},
		{
			name:    "DOCKER_API_VERSION invalid",
			reason:  "a malformed version is refused naming the variable and the value, before any connection",
			env:     map[string]string{"DOCKER_API_VERSION": "latest"},
			wantErr: []string{"DOCKER_API_VERSION", `"latest"`, `"1.41"`},
			wantIs:  ErrInvalidConfig,
		},
		{
			name:    "DOCKER_API_VERSION major only",
			reason:  `"1" is not <major>.<minor>`,
			env:     map[string]string{"DOCKER_API_VERSION": "1", "DOCKER_HOST": "tcp://x:2375"},
			wantErr: []string{"DOCKER_API_VERSION", `"1"`},
			wantIs:  ErrInvalidConfig,
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

			got, err := findDaemon(fakeEnv(d.home, vars, socks...))

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

func TestFindDaemonNilEnv(t *testing.T) {
	// A zero daemonEnv (no Getenv, no home) must not panic: default socket only.
	got, err := findDaemon(daemonEnv{Exists: func(string) bool { return false }})
	require.NoError(t, err)
	require.Equal(t, []dockerEndpoint{{Host: client.DefaultDockerHost, Source: "default socket"}}, got)

	// A context cannot be found without a config directory; the error says why.
	_, err = findDaemon(daemonEnv{Getenv: func(k string) string {
		return map[string]string{"DOCKER_CONTEXT": "remote"}[k]
	}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, `docker context "remote"`)
	require.ErrorContains(t, err, "no home directory")
}

func TestOSDaemonEnv(t *testing.T) {
	t.Setenv("HEPH_TEST_VAR", "x")
	env := osDaemonEnv()
	require.Equal(t, "x", env.Getenv("HEPH_TEST_VAR"))
	require.True(t, env.Exists(t.TempDir()))
	require.False(t, env.Exists(filepath.Join(t.TempDir(), "nope")))
}

func TestEndpointClientOptions(t *testing.T) {
	t.Run("unix host", func(t *testing.T) {
		cli := newTestClient(t, dockerEndpoint{Host: "unix:///tmp/heph-test.sock", Source: "DOCKER_HOST"})
		require.Equal(t, "unix:///tmp/heph-test.sock", cli.DaemonHost())
	})
	t.Run("fixed API version", func(t *testing.T) {
		// WithAPIVersion fixes the version at once and turns negotiation off.
		cli := newTestClient(t, dockerEndpoint{Host: "unix:///tmp/heph-test.sock", APIVersion: "1.41"})
		require.Equal(t, "1.41", cli.ClientVersion())
	})
	t.Run("ssh refused", func(t *testing.T) {
		_, err := dockerEndpoint{Host: "ssh://me@box", Source: "DOCKER_HOST"}.clientOptions()
		require.ErrorIs(t, err, ErrInvalidConfig)
		require.ErrorContains(t, err, "ssh:// is not supported")
	})
	t.Run("insecure TLS with cert but no key", func(t *testing.T) {
		_, err := dockerEndpoint{Host: "tcp://lab:2376", Source: "DOCKER_HOST", TLS: true, CertFile: "/x/cert.pem"}.clientOptions()
		require.ErrorContains(t, err, "needs both cert.pem and key.pem")
		require.ErrorContains(t, err, "tcp://lab:2376 (DOCKER_HOST)")
	})
	t.Run("insecure TLS with unreadable cert", func(t *testing.T) {
		dir := t.TempDir()
		_, err := dockerEndpoint{
			Host: "tcp://lab:2376", Source: "DOCKER_HOST", TLS: true,
			CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"),
		}.clientOptions()
		require.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("verified TLS with missing CA", func(t *testing.T) {
		opts, err := dockerEndpoint{Host: "tcp://lab:2376", TLS: true, TLSVerify: true, CAFile: "/nonexistent/ca.pem"}.clientOptions()
		require.NoError(t, err)
		_, err = client.New(opts...)
		require.ErrorContains(t, err, "/nonexistent/ca.pem")
	})

	// TLS against a real TLS server answering /_ping like a daemon.
	srv := httptest.NewUnstartedServer(fakeDaemonHandler("1.41"))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failing cases log handshake errors
	srv.StartTLS()
	t.Cleanup(srv.Close)
	host := "tcp://" + srv.Listener.Addr().String()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))

	pingTLS := func(t *testing.T, ep dockerEndpoint) error {
		t.Helper()
		cli := newTestClient(t, ep)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		return err
	}
	t.Run("TLS without verification", func(t *testing.T) {
		require.NoError(t, pingTLS(t, dockerEndpoint{Host: host, TLS: true}))
	})
	t.Run("TLS verified with the server's CA", func(t *testing.T) {
		require.NoError(t, pingTLS(t, dockerEndpoint{Host: host, TLS: true, TLSVerify: true, CAFile: caFile}))
	})
	t.Run("TLS verified without the CA fails", func(t *testing.T) {
		err := pingTLS(t, dockerEndpoint{Host: host, TLS: true, TLSVerify: true})
		require.ErrorContains(t, err, "certificate")
	})
	t.Run("plain HTTP to a TLS server fails", func(t *testing.T) {
		require.Error(t, pingTLS(t, dockerEndpoint{Host: host}))
	})
}

func newTestClient(t *testing.T, ep dockerEndpoint) *client.Client {
	t.Helper()
	opts, err := ep.clientOptions()
	require.NoError(t, err)
	cli, err := client.New(opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// fakeDaemonHandler answers /_ping as a daemon of the given API version.
func fakeDaemonHandler(apiVersion string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_ping" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Api-Version", apiVersion)
		w.Header().Set("Ostype", "linux")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte("OK"))
		}
	})
}

// socketDir is a short temporary directory: unix socket paths are limited to
// about 100 bytes, and t.TempDir's names grow with the test's name.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "heph")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// fakeDaemon serves a fake daemon of the given API version on a unix socket
// and returns the socket's path.
func fakeDaemon(t *testing.T, dir, apiVersion string) string {
	t.Helper()
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(fakeDaemonHandler(apiVersion))
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return sock
}

// silentSocket accepts connections on a unix socket and never answers.
func silentSocket(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(socketDir(t), "silent.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
			close(done)
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { _ = l.Close(); <-done })
	return sock
}

func TestConnectDaemonNonexistentSocket(t *testing.T) {
	env := fakeEnv(t.TempDir(), map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
	start := time.Now()
	cli, ep, err := connectDaemon(context.Background(), env)
	elapsed := time.Since(start)

	require.Nil(t, cli)
	require.Equal(t, dockerEndpoint{}, ep)
	require.ErrorIs(t, err, ErrDockerUnavailable)
	msg := err.Error()
	t.Logf("error:\n%s", msg)
	require.True(t, strings.HasPrefix(msg, ErrDockerUnavailable.Error()), msg)
	require.Contains(t, msg, "unix:///nonexistent/docker.sock (DOCKER_HOST)")
	require.Contains(t, msg, "/nonexistent/docker.sock: connect: no such file or directory")
	require.Contains(t, msg, "sudo systemctl start docker")
	require.Contains(t, msg, "docker group")
	require.Contains(t, msg, "DOCKER_CONTEXT")
	require.Contains(t, msg, "docker info")
	require.Less(t, elapsed, 3*time.Second, "a missing socket fails at once")
}

func TestConnectDaemonDiscoveryError(t *testing.T) {
	// Nothing can be tried: the error still matches ErrDockerUnavailable, and
	// the configuration error too, and says which variable is wrong.
	env := fakeEnv(t.TempDir(), map[string]string{"DOCKER_API_VERSION": "one"})
	_, _, err := connectDaemon(context.Background(), env)
	require.ErrorIs(t, err, ErrDockerUnavailable)
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.Equal(t, `heph: Docker daemon unavailable: invalid configuration: DOCKER_API_VERSION "one": `+
		`want <major>.<minor>, such as "1.41" (unset it to negotiate the version with the daemon)`, err.Error())
}

func TestConnectDaemonFakeDaemon(t *testing.T) {
	tests := []struct {
		name, reason string
		server       string // API version the fake daemon reports
		fixed        string // DOCKER_API_VERSION
		wantVersion  string
		wantErr      string
	}{
		{name: "old daemon", reason: "Docker 20.10 speaks 1.41: negotiation goes down to it", server: "1.41", wantVersion: "1.41"},
		{name: "new daemon", reason: "Docker 29 accepts only >= 1.44: negotiation uses what it says", server: "1.44", wantVersion: "1.44"},
		{name: "fixed version", reason: "DOCKER_API_VERSION turns negotiation off", server: "1.41", fixed: "1.43", wantVersion: "1.43"},
		{name: "too old daemon", reason: "below the SDK's minimum the endpoint fails, with the SDK's reason", server: "1.24", wantErr: "minimum supported API version is"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sock := fakeDaemon(t, socketDir(t), tc.server)
			env := fakeEnv(t.TempDir(), map[string]string{"DOCKER_HOST": "unix://" + sock, "DOCKER_API_VERSION": tc.fixed})

			cli, ep, err := connectDaemon(context.Background(), env)

			if tc.wantErr != "" {
				require.ErrorIs(t, err, ErrDockerUnavailable, tc.reason)
				require.ErrorContains(t, err, tc.wantErr, tc.reason)
				require.Nil(t, cli)
				return
			}
			require.NoError(t, err, tc.reason)
			t.Cleanup(func() { _ = cli.Close() })
			require.Equal(t, tc.wantVersion, cli.ClientVersion(), tc.reason)
			require.Equal(t, "DOCKER_HOST", ep.Source)
			require.Equal(t, "unix://"+sock, cli.DaemonHost())
		})
	}
}

func TestConnectDaemonRootless(t *testing.T) {
	// The rootless socket is found through XDG_RUNTIME_DIR and answers first,
	// so the default socket is never dialled.
	dir := socketDir(t)
	sock := fakeDaemon(t, dir, "1.41")
	cli, ep, err := connectDaemon(context.Background(), osLikeEnv(t, map[string]string{"XDG_RUNTIME_DIR": dir}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	require.Equal(t, dockerEndpoint{Host: "unix://" + sock, Source: "rootless socket ($XDG_RUNTIME_DIR/docker.sock)"}, ep)
}

// osLikeEnv is a daemonEnv with fake variables, a temporary home and the real
// file system.
func osLikeEnv(t *testing.T, vars map[string]string) daemonEnv {
	return daemonEnv{Getenv: func(k string) string { return vars[k] }, Home: t.TempDir(), Exists: pathExists}
}

func TestConnectEndpointsOrder(t *testing.T) {
	dead := dockerEndpoint{Host: "unix:///nonexistent/rootless.sock", Source: "rootless socket ($XDG_RUNTIME_DIR/docker.sock)"}
	alive := dockerEndpoint{Host: "unix://" + fakeDaemon(t, socketDir(t), "1.41"), Source: "default socket"}

	t.Run("first that answers", func(t *testing.T) {
		cli, ep, err := connectEndpoints(context.Background(), []dockerEndpoint{dead, alive}, time.Second)
		require.NoError(t, err)
		t.Cleanup(func() { _ = cli.Close() })
		require.Equal(t, alive, ep)
		require.Equal(t, "1.41", cli.ClientVersion())
	})

	t.Run("none answers", func(t *testing.T) {
		dead2 := dockerEndpoint{Host: "unix:///nonexistent/docker.sock", Source: "default socket"}
		_, _, err := connectEndpoints(context.Background(), []dockerEndpoint{dead, dead2}, time.Second)
		require.ErrorIs(t, err, ErrDockerUnavailable)
		msg := err.Error()
		first := strings.Index(msg, "unix:///nonexistent/rootless.sock (rootless socket ($XDG_RUNTIME_DIR/docker.sock))")
		second := strings.Index(msg, "unix:///nonexistent/docker.sock (default socket)")
		require.True(t, first >= 0 && second > first, "both endpoints, in order:\n%s", msg)
	})

	t.Run("bad endpoint does not stop the others", func(t *testing.T) {
		bad := dockerEndpoint{Host: "ssh://me@box", Source: "DOCKER_HOST"}
		cli, ep, err := connectEndpoints(context.Background(), []dockerEndpoint{bad, alive}, time.Second)
		require.NoError(t, err)
		t.Cleanup(func() { _ = cli.Close() })
		require.Equal(t, alive, ep)
	})
}

func TestConnectEndpointsTimeout(t *testing.T) {
	// A socket that accepts and never answers costs one timeout, then the
	// next endpoint is tried.
	silent := dockerEndpoint{Host: "unix://" + silentSocket(t), Source: "DOCKER_HOST"}
	start := time.Now()
	_, _, err := connectEndpoints(context.Background(), []dockerEndpoint{silent}, 200*time.Millisecond)
	require.Less(t, time.Since(start), 2*time.Second)
	require.ErrorIs(t, err, ErrDockerUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "(DOCKER_HOST): no answer within 200ms")
}

func TestConnectEndpointsCallerDeadline(t *testing.T) {
	// The caller's deadline ends the search: the endpoint being pinged says it
	// was interrupted, the rest were not tried.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	eps := []dockerEndpoint{
		{Host: "unix://" + silentSocket(t), Source: "DOCKER_HOST"},
		{Host: "unix:///b.sock", Source: "default socket"},
	}
	start := time.Now()
	_, _, err := connectEndpoints(ctx, eps, 3*time.Second)
	require.Less(t, time.Since(start), 2*time.Second, "the caller's deadline is sooner than the endpoint's")
	require.ErrorIs(t, err, ErrDockerUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "(DOCKER_HOST): interrupted: the caller's context is done: context deadline exceeded")
	require.ErrorContains(t, err, "unix:///b.sock (default socket): not tried: context deadline exceeded")
}

func TestConnectEndpointsCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	eps := []dockerEndpoint{{Host: "unix:///a.sock", Source: "DOCKER_HOST"}}
	_, _, err := connectEndpoints(ctx, eps, time.Second)
	require.ErrorIs(t, err, ErrDockerUnavailable)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "unix:///a.sock (DOCKER_HOST): not tried: context canceled")
	require.False(t, errors.Is(err, ErrInvalidConfig))
}
