package imagepull

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/registryauth"
)

// Request is one pull.
type Request struct {
	Ref      string // what to pull (valid)
	Subject  string // how messages name it: "postgres:16 (as mirror/library/postgres:16)"
	Platform string
	Timeout  time.Duration // for the message of a pull that ran out of time
}

// Pull pulls r.Ref once with its registry's credentials (creds.Lookup),
// feeding meter, and explains a failure: which registry, whether
// credentials were sent and from where, never their value. Its errors are
// errs.Op("pull image", r.Subject, …) with the sentinel errs.RegistryAuth
// (the credentials were rejected, or wanted and missing),
// errs.ImageNotFound, errs.DockerUnavailable or errs.InvalidConfig (a
// malformed DOCKER_AUTH_CONFIG or config file).
func Pull(ctx context.Context, api engine.API, creds registryauth.Env, r Request, meter *Meter) error {
	start := time.Now()
	registry, _ := registryauth.Registry(r.Ref) // r.Ref is valid
	found, err := creds.Lookup(ctx, registry)
	if err != nil {
		return errs.Op("pull image", r.Subject, errs.InvalidConfig, fmt.Errorf("the credentials for registry %s: %w", registry, err))
	}
	err = api.ImagePull(ctx, r.Ref, engine.PullOptions{Auth: EngineAuth(found.Creds), Platform: r.Platform}, meter.Add)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		cause := err
		if !errors.Is(err, ctx.Err()) {
			cause = errors.Join(ctx.Err(), err)
		}
		err = fmt.Errorf("timed out after %s (pull timeout %s): %w", time.Since(start).Round(time.Millisecond), r.Timeout, cause)
	}
	var sentinel error
	switch Classify(err.Error()) {
	case Rejected:
		sentinel = errs.RegistryAuth
		if found.Creds != nil {
			err = fmt.Errorf("registry %s rejected the %s: %w; check them, or log in again (docker login %s)", registry, found.Describe(), err, registry)
		} else {
			err = fmt.Errorf("registry %s rejected a pull with %s: %w; log in (docker login %s) or set DOCKER_AUTH_CONFIG", registry, found.Describe(), err, registry)
		}
	case Missing:
		sentinel = errs.ImageNotFound
		err = fmt.Errorf("%w (registry %s, %s)", err, registry, found.Describe())
	default:
		if errors.Is(err, engine.ErrNotFound) {
			sentinel = errs.ImageNotFound
		}
		err = fmt.Errorf("%w (registry %s, %s)", err, registry, found.Describe())
	}
	if errors.Is(err, engine.ErrUnavailable) {
		sentinel = errs.DockerUnavailable
	}
	return errs.Op("pull image", r.Subject, sentinel, err)
}

// EngineAuth turns credentials into the seam's (nil stays nil).
func EngineAuth(c *registryauth.Credentials) *engine.AuthConfig {
	if c == nil {
		return nil
	}
	return &engine.AuthConfig{Username: c.Username, Password: c.Password, IdentityToken: c.IdentityToken, RegistryToken: c.RegistryToken, ServerAddress: c.ServerAddress}
}
