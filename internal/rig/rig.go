// Package rig starts the daemon endpoints heph's engine tests run against,
// each on this machine and each torn down after: Podman's Docker API on a
// socket of its own, the local Docker daemon reached over ssh:// (through an
// sshd on 127.0.0.1 with a key made for the run), the local daemon behind a
// TLS endpoint that verifies client certificates, and the local daemon with
// its API pinned to the floor (DOCKER_API_VERSION=1.40). Start returns the
// environment that points heph (and the docker CLI) at the endpoint.
//
// The entry point is `go run ./internal/rig/cmd <kind> -- <command>` (the
// Makefile's test-podman, test-ssh, test-tls, test-api-floor).
package rig

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/heph-go/heph/internal/daemon"
	"github.com/heph-go/heph/internal/engine"
)

// Kinds are the endpoints Start knows, in the order `all` runs them.
var Kinds = []string{"podman", "ssh", "tls", "api-floor"}

// Endpoint is a started endpoint.
type Endpoint struct {
	// Kind is what was started ("podman", "ssh", ...).
	Kind string
	// Env is what to set for heph to reach it (DOCKER_HOST, ...).
	Env map[string]string
	// Unset are variables to remove from the environment.
	Unset []string
	// closers run in reverse order by Close.
	closers []func() error
	// check, when set, replaces the ping of await.
	check func(context.Context) error
}

// Environ returns base with the endpoint's variables set and those it
// unsets removed.
func (e *Endpoint) Environ(base []string) []string {
	drop := map[string]bool{}
	for _, k := range e.Unset {
		drop[k] = true
	}
	for k := range e.Env {
		drop[k] = true
	}
	var out []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	keys := make([]string, 0, len(e.Env))
	for k := range e.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+e.Env[k])
	}
	return out
}

// Close stops what Start started.
func (e *Endpoint) Close() error {
	var errs []error
	for i := len(e.closers) - 1; i >= 0; i-- {
		errs = append(errs, e.closers[i]())
	}
	return errors.Join(errs...)
}

func (e *Endpoint) onClose(f func() error) { e.closers = append(e.closers, f) }

// Start starts an endpoint of the given kind, with its files in dir (which
// the caller removes), and returns once the daemon answers through it.
func Start(ctx context.Context, kind, dir string) (*Endpoint, error) {
	// HEPH_RIG tells the tests which endpoint they run against.
	e := &Endpoint{Kind: kind, Env: map[string]string{"HEPH_RIG": kind}}
	// The endpoints put in front of the local daemon reach it as heph would
	// without the rig.
	var err error
	switch kind {
	case "podman":
		err = startPodman(ctx, e, dir)
	case "ssh":
		err = startSSH(ctx, e, dir)
	case "tls":
		err = startTLS(ctx, e, dir)
	case "api-floor":
		e.Env["DOCKER_API_VERSION"] = APIFloor
	case "docker":
	default:
		return nil, fmt.Errorf("unknown kind %q: want one of %s or docker", kind, strings.Join(Kinds, ", "))
	}
	if err != nil {
		_ = e.Close()
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	if err := e.await(ctx, 60*time.Second); err != nil {
		_ = e.Close()
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	return e, nil
}

// APIFloor is the oldest API version heph supports: Docker 19.03's.
const APIFloor = "1.40"

// await pings the daemon through the endpoint, as heph finds it from Env,
// until it answers or the time is up.
func (e *Endpoint) await(ctx context.Context, limit time.Duration) error {
	env := e.Environ(os.Environ())
	getenv := func(k string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if kk, v, _ := strings.Cut(env[i], "="); kk == k {
				return v
			}
		}
		return ""
	}
	home, _ := os.UserHomeDir()
	denv := daemon.Env{Getenv: getenv, Home: home}
	ping := func(ctx context.Context) error {
		api, _, err := daemon.Connect(ctx, denv)
		if err != nil {
			return err
		}
		return api.Close()
	}
	if e.check != nil {
		ping = e.check
	}
	deadline := time.Now().Add(limit)
	var last error
	for {
		ctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := ping(ctx2)
		cancel()
		if err == nil {
			return nil
		}
		last = err
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the daemon does not answer through the endpoint within %v: %w", limit, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// localDaemon returns the endpoint of the daemon the rig puts in front of:
// the one heph finds in this environment.
func localDaemon() (engine.Endpoint, error) {
	eps, err := daemon.Find(daemon.OSEnv())
	if err != nil {
		return engine.Endpoint{}, err
	}
	return eps[0], nil
}
