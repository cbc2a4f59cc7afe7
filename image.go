package heph

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/imagepull"
	"github.com/heph-go/heph/internal/rules"
)

// Environment variables that set image defaults.
const (
	// EnvPullPolicy is HEPH_PULL_POLICY, the pull policy of every request
	// and ContainerConfig that sets none: "missing" (the default: pull only
	// an image that is not present), "always", or "older-than=<duration>"
	// ("older-than=24h"). Any other value is refused with ErrInvalidConfig.
	EnvPullPolicy = imagepull.EnvPolicyName
	// EnvRegistryMirror is HEPH_REGISTRY_MIRROR, host[:port][/path] of a
	// registry that mirrors Docker Hub: every Docker Hub image is pulled and
	// run from there instead ("postgres:16" becomes
	// "<mirror>/library/postgres:16"), after WithImageSubstitution. Images of
	// other registries, and the FROM lines of Dockerfile builds, are left as
	// they are. A malformed value (a scheme, no host) is refused with
	// ErrInvalidConfig.
	EnvRegistryMirror = imagepull.EnvMirrorName
)

// PullPolicy says when an image that is present locally is pulled again. An
// image that is not present is always pulled. The zero value is the default:
// HEPH_PULL_POLICY's policy, else pull only when missing. Setting both
// fields is refused with ErrInvalidConfig.
type PullPolicy struct {
	// Always pulls at every start: a tag that moved (":latest", a re-pushed
	// ":dev") is picked up. Concurrent starts share one pull.
	Always bool
	// OlderThan, when positive, pulls when the local copy is older than
	// this: when both its creation time and the time heph last pulled it
	// (recorded per daemon and image in heph/pulls under the user's cache
	// directory, so the check holds across test runs) lie further back.
	OlderThan time.Duration
}

// policyText shows a PullPolicy in messages.
type policyText PullPolicy

func (p policyText) String() string {
	return fmt.Sprintf("PullPolicy{Always: %t, OlderThan: %s}", p.Always, p.OlderThan)
}

// check returns why p is invalid, or nil.
func (p PullPolicy) check() error {
	switch {
	case p.OlderThan < 0:
		return errors.New("OlderThan is negative")
	case p.Always && p.OlderThan > 0:
		return errors.New("sets both Always and OlderThan")
	}
	return nil
}

// imageRequest is what starting a container needs of its image.
type imageRequest struct {
	asked      string              // the image as given
	substitute func(string) string // WithImageSubstitution; may be nil
	policy     PullPolicy
	platform   string
	timeout    time.Duration
	progress   func(string) // told of long pulls and builds; may be nil
	echo       bool         // also tell progress every line a build prints
	build      *buildSource // FromDockerfile; nil otherwise
	goPackage  *goSource    // FromGoPackage; nil otherwise
}

// provide makes the image of q present — built, or pulled as the policy
// says — and returns the reference to create the container from.
func (o *Orchestrator) provide(ctx context.Context, q imageRequest) (string, error) {
	if q.timeout == 0 {
		q.timeout = DefaultPullTimeout
	}
	switch {
	case q.build != nil:
		return o.buildImage(ctx, q.build.dir, q.build.b, q)
	case q.goPackage != nil:
		return o.goImage(ctx, *q.goPackage, q)
	}
	ref, err := imagepull.Substitute(q.asked, q.substitute, os.Getenv(EnvRegistryMirror))
	if err != nil {
		return "", err
	}
	if q.policy == (PullPolicy{}) {
		if q.policy.Always, q.policy.OlderThan, err = imagepull.EnvPolicy(os.Getenv(EnvPullPolicy)); err != nil {
			return "", err
		}
	}
	return ref, o.ensureImage(ctx, q, ref)
}

// ensureImage pulls ref when it is missing (or of another platform than
// q.platform), or when q.policy says the local copy is due.
func (o *Orchestrator) ensureImage(ctx context.Context, q imageRequest, ref string) error {
	ictx, cancel := context.WithTimeout(ctx, q.timeout) // a daemon that does not answer cannot hold a start forever
	local, err := o.api.ImageInspect(ictx, ref)
	cancel()
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return wrap("inspect image", imagepull.Subject(q.asked, ref), err, nil)
	}
	present := err == nil && imagepull.SamePlatform(local, q.platform)
	key := o.endpoint.Host + " " + ref + " " + q.platform
	switch {
	case !present, q.policy.Always:
	case q.policy.OlderThan > 0 && imagepull.Due(q.policy.OlderThan, local.Created, o.records.Last(key, local.ID), time.Now()):
	default:
		return nil
	}
	return o.pullShared(ctx, q, ref, key)
}

// PullImage pulls an image from its registry, as given (no substitution),
// with the credentials the docker CLI would use for its registry —
// DOCKER_AUTH_CONFIG first, then the config file ($DOCKER_CONFIG or
// ~/.docker): its credHelpers, credsStore, auths — reading the daemon's
// progress to its end, bounded
// by timeout (DefaultPullTimeout when zero). Concurrent pulls of one image
// share a single daemon pull, which survives the cancellation of one
// caller's context so the others still get it.
//
// An image the registry does not have gives ErrImageNotFound; credentials
// the registry rejects (or wants and does not get) give ErrRegistryAuth,
// the error naming the registry and where the credentials came from; a
// malformed DOCKER_AUTH_CONFIG or docker config file gives
// ErrInvalidConfig; a pull that outlasts the timeout gives an error matching
// context.DeadlineExceeded.
func (o *Orchestrator) PullImage(ctx context.Context, image string, timeout time.Duration) error {
	if timeout < 0 {
		return invalid("PullTimeout", timeout, "is negative")
	}
	if timeout == 0 {
		timeout = DefaultPullTimeout
	}
	if err := rules.Image(image); err != nil {
		return invalid("Image", image, err.Error())
	}
	return o.pullShared(ctx, imageRequest{asked: image, timeout: timeout}, image, o.endpoint.Host+" "+image+" ")
}

// pullShared pulls ref (shared with concurrent callers) and records when.
func (o *Orchestrator) pullShared(ctx context.Context, q imageRequest, ref, key string) error {
	subject := imagepull.Subject(q.asked, ref)
	meter := &imagepull.Meter{}
	_, err := o.jobs.Do(ctx, imagepull.Job{
		Key: "pull " + key, Op: "pull image", Subject: subject,
		Doing: "pulling " + subject, Finished: "pulled " + subject, Status: meter.String,
		Timeout: q.timeout, Progress: q.progress,
		Work: func(ctx context.Context, _ *imagepull.Reporter) (string, error) {
			req := imagepull.Request{Ref: ref, Subject: subject, Platform: q.platform, Timeout: q.timeout}
			if err := imagepull.Pull(ctx, o.api, o.creds, req, meter); err != nil {
				return "", err
			}
			if o.records.Dir != "" {
				if img, err := o.api.ImageInspect(ctx, ref); err == nil {
					o.records.Note(key, img.ID, time.Now())
				}
			}
			return "", nil
		},
	})
	return err
}
