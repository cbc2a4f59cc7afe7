package registryauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
)

// EnvAuthConfig is the environment variable CI systems set to the JSON of a
// config file; it is consulted before the config file.
const EnvAuthConfig = "DOCKER_AUTH_CONFIG"

// helperTimeout bounds one run of a credential helper.
const helperTimeout = time.Minute

// Credentials are one registry's credentials. Every field but ServerAddress
// is a secret: never print them.
type Credentials struct {
	Username, Password string
	IdentityToken      string
	RegistryToken      string
	// ServerAddress is the config key they were found under.
	ServerAddress string
}

// Result is what Lookup found for a registry, and how.
type Result struct {
	// Registry is the registry asked about.
	Registry string
	// Creds are its credentials; nil means none were found (an anonymous
	// pull).
	Creds *Credentials
	// From says where Creds came from: "DOCKER_AUTH_CONFIG",
	// "/home/me/.docker/config.json", "credential helper
	// docker-credential-pass (credHelpers in /home/me/.docker/config.json)".
	From string
	// Looked lists the places consulted, in order.
	Looked []string
	// Notes are things worth telling a user whose pull is refused (a helper
	// that is configured but not installed).
	Notes []string
}

// Describe says in words, without any secret, which credentials were used:
// "credentials from DOCKER_AUTH_CONFIG" or "no credentials (looked in
// DOCKER_AUTH_CONFIG, /home/me/.docker/config.json)".
func (r Result) Describe() string {
	var s string
	switch {
	case r.Creds != nil:
		s = "credentials from " + r.From
	case len(r.Looked) == 0:
		s = "no credentials (no DOCKER_AUTH_CONFIG, no docker config file)"
	default:
		s = "no credentials (looked in " + strings.Join(r.Looked, ", ") + ")"
	}
	if len(r.Notes) > 0 {
		s += "; " + strings.Join(r.Notes, "; ")
	}
	return s
}

// Env is where Lookup reads from. The zero value reads the process's
// environment, the user's home directory and PATH.
type Env struct {
	// Getenv reads DOCKER_AUTH_CONFIG and DOCKER_CONFIG; nil is os.Getenv.
	Getenv func(string) string
	// Home returns the home directory; nil is os.UserHomeDir.
	Home func() (string, error)
	// Helper returns the program of credential helper docker-credential-
	// <name>, or an error matching exec.ErrNotFound when it is not
	// installed; nil runs it from PATH, bounded by ctx.
	Helper func(ctx context.Context, name string) (client.ProgramFunc, error)
}

func (e Env) getenv(k string) string {
	if e.Getenv == nil {
		return os.Getenv(k)
	}
	return e.Getenv(k)
}

// ConfigFile returns the path of the docker CLI's config file:
// $DOCKER_CONFIG/config.json, else ~/.docker/config.json ("" when there is
// no home directory).
func (e Env) ConfigFile() string {
	if dir := e.getenv("DOCKER_CONFIG"); dir != "" {
		return filepath.Join(dir, "config.json")
	}
	home := os.UserHomeDir
	if e.Home != nil {
		home = e.Home
	}
	h, err := home()
	if err != nil || h == "" {
		return ""
	}
	return filepath.Join(h, ".docker", "config.json")
}

// source is one config to look in: DOCKER_AUTH_CONFIG or the file.
type source struct {
	name string // "DOCKER_AUTH_CONFIG" or the file's path
	cfg  Config
}

// sources reads DOCKER_AUTH_CONFIG and the config file, in that order; an
// absent one is left out, a malformed one is an error naming it.
func (e Env) sources() ([]source, error) {
	var out []source
	if v := e.getenv(EnvAuthConfig); strings.TrimSpace(v) != "" {
		c, err := Parse([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("%s %w", EnvAuthConfig, err)
		}
		out = append(out, source{name: EnvAuthConfig, cfg: c})
	}
	if path := e.ConfigFile(); path != "" {
		data, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("read docker config file: %w", err)
		default:
			c, err := Parse(data)
			if err != nil {
				return nil, fmt.Errorf("docker config file %s %w", path, err)
			}
			out = append(out, source{name: path, cfg: c})
		}
	}
	return out, nil
}

// Lookup finds the credentials for registry (a host as Registry returns it,
// or a config key). It consults DOCKER_AUTH_CONFIG, then the config file; in
// each, the registry's credHelpers entry or else the credsStore, then its
// auths entry. The first that has credentials wins. A helper that has none
// (or is not installed: then a Note says so) lets the search go on.
//
// It fails when DOCKER_AUTH_CONFIG or the config file is malformed, or a
// helper fails otherwise than by having no credentials; the error names the
// source, the registry and the helper, never a secret. No credentials
// anywhere is not an error: Result.Creds is nil.
func (e Env) Lookup(ctx context.Context, registry string) (Result, error) {
	key := Key(registry)
	res := Result{Registry: registry}
	srcs, err := e.sources()
	if err != nil {
		return res, err
	}
	for _, src := range srcs {
		res.Looked = append(res.Looked, src.name)
		if helper, perRegistry := src.cfg.helperFor(key); helper != "" {
			field := "credsStore"
			if perRegistry {
				field = "credHelpers"
			}
			where := fmt.Sprintf("credential helper docker-credential-%s (%s in %s)", helper, field, src.name)
			creds, err := e.runHelper(ctx, helper, key)
			switch {
			case errors.Is(err, exec.ErrNotFound):
				res.Notes = append(res.Notes, where+" is not on PATH, so it was skipped")
			case err != nil:
				return res, fmt.Errorf("%s for registry %s: %w", where, registry, err)
			case creds != nil:
				res.Creds, res.From = creds, where
				return res, nil
			}
		}
		if entry, k, ok := src.cfg.entryFor(key); ok && !entry.empty() {
			res.Creds = &Credentials{
				Username: entry.Username, Password: entry.Password,
				IdentityToken: entry.IdentityToken, RegistryToken: entry.RegistryToken,
				ServerAddress: k,
			}
			res.From = fmt.Sprintf("%s (auths[%q])", src.name, k)
			return res, nil
		}
	}
	return res, nil
}

// runHelper asks helper for key's credentials; nil, nil when it has none.
// A helper that is not installed gives an error matching exec.ErrNotFound.
func (e Env) runHelper(ctx context.Context, helper, key string) (*Credentials, error) {
	prog := e.Helper
	if prog == nil {
		prog = pathHelper
	}
	ctx, cancel := context.WithTimeout(ctx, helperTimeout)
	defer cancel()
	p, err := prog(ctx, helper)
	if err != nil {
		return nil, err
	}
	c, err := client.Get(p, key)
	switch {
	case credentials.IsErrCredentialsNotFound(err):
		return nil, nil
	case err != nil:
		if ctx.Err() != nil {
			return nil, fmt.Errorf("gave up after %s: %w", helperTimeout, ctx.Err())
		}
		return nil, err
	case c.Secret == "" && c.Username == "":
		return nil, nil
	}
	creds := &Credentials{ServerAddress: key}
	// The CLI's convention: user "<token>" means the secret is an identity
	// token.
	if c.Username == "<token>" {
		creds.IdentityToken = c.Secret
	} else {
		creds.Username, creds.Password = c.Username, c.Secret
	}
	return creds, nil
}

// pathHelper runs docker-credential-<name> from PATH, its stderr kept for
// the error (a helper writes its complaints there) rather than the
// process's stderr.
func pathHelper(ctx context.Context, name string) (client.ProgramFunc, error) {
	path, err := exec.LookPath("docker-credential-" + name)
	if err != nil {
		return nil, err // matches exec.ErrNotFound when it is not installed
	}
	return func(args ...string) client.Program {
		return &helperCmd{ctx: ctx, path: path, args: args}
	}, nil
}

// helperCmd is a client.Program bounded by a context.
type helperCmd struct {
	ctx  context.Context
	path string
	args []string
	in   io.Reader
}

func (h *helperCmd) Input(in io.Reader) { h.in = in }

func (h *helperCmd) Output() ([]byte, error) {
	cmd := exec.CommandContext(h.ctx, h.path, h.args...)
	cmd.Stdin = h.in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && stderr.Len() > 0 {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		err = fmt.Errorf("%w (stderr: %s)", err, msg)
	}
	return out, err
}
