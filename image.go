package heph

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/imagebuild"
	"github.com/heph-go/heph/internal/imagepull"
	"github.com/heph-go/heph/internal/registryauth"
	"github.com/heph-go/heph/internal/rules"
)

// Environment variables that set image defaults.
const (
	// EnvPullPolicy is HEPH_PULL_POLICY, the pull policy of every request
	// and ContainerConfig that sets none: "missing" (the default: pull only
	// an image that is not present), "always", or "older-than=<duration>"
	// ("older-than=24h"). Any other value is refused with ErrInvalidConfig.
	EnvPullPolicy = "HEPH_PULL_POLICY"
	// EnvRegistryMirror is HEPH_REGISTRY_MIRROR, host[:port][/path] of a
	// registry that mirrors Docker Hub: every Docker Hub image is pulled and
	// run from there instead ("postgres:16" becomes
	// "<mirror>/library/postgres:16"), after WithImageSubstitution. Images of
	// other registries, and the FROM lines of Dockerfile builds, are left as
	// they are. A malformed value (a scheme, no host) is refused with
	// ErrInvalidConfig.
	EnvRegistryMirror = "HEPH_REGISTRY_MIRROR"
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

// describe names the image for messages: "postgres:16", or "postgres:16
// (as mirror.corp/library/postgres:16)" when it was substituted.
func describe(asked, ref string) string {
	if asked == ref || asked == "" {
		return ref
	}
	return asked + " (as " + ref + ")"
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
	ref, err := substitute(q.asked, q.substitute)
	if err != nil {
		return "", err
	}
	if q.policy == (PullPolicy{}) {
		if q.policy, err = envPullPolicy(); err != nil {
			return "", err
		}
	}
	return ref, o.ensureImage(ctx, q, ref)
}

// substitute applies the hook, then HEPH_REGISTRY_MIRROR, to image.
func substitute(image string, hook func(string) string) (string, error) {
	ref := image
	if hook != nil {
		ref = hook(image)
		if err := rules.Image(ref); err != nil {
			return "", invalid("WithImageSubstitution", ref, fmt.Sprintf("(returned for %q) %v", image, err))
		}
	}
	m := os.Getenv(EnvRegistryMirror)
	if m == "" {
		return ref, nil
	}
	if err := imagepull.CheckMirror(m); err != nil {
		return "", invalid(EnvRegistryMirror, m, err.Error())
	}
	return imagepull.Mirror(ref, m), nil
}

// envPullPolicy reads HEPH_PULL_POLICY.
func envPullPolicy() (PullPolicy, error) {
	v := os.Getenv(EnvPullPolicy)
	always, age, err := imagepull.ParsePolicy(v)
	if err != nil {
		return PullPolicy{}, invalid(EnvPullPolicy, v, err.Error())
	}
	return PullPolicy{Always: always, OlderThan: age}, nil
}

// ensureImage pulls ref when it is missing (or of another platform than
// q.platform), or when q.policy says the local copy is due.
func (o *Orchestrator) ensureImage(ctx context.Context, q imageRequest, ref string) error {
	local, err := o.api.ImageInspect(ctx, ref)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return wrap("inspect image", describe(q.asked, ref), err, nil)
	}
	present := err == nil && samePlatform(local, q.platform)
	key := o.endpoint.Host + " " + ref + " " + q.platform
	switch {
	case !present, q.policy.Always:
	case q.policy.OlderThan > 0 && imagepull.Due(q.policy.OlderThan, local.Created, o.records.Last(key, local.ID), time.Now()):
	default:
		return nil
	}
	return o.pullShared(ctx, q, ref, key)
}

// samePlatform reports whether a local image is of platform p ("" matches
// any).
func samePlatform(img engine.Image, p string) bool {
	want, err := imagebuild.ParsePlatform(p)
	if p == "" || err != nil {
		return true
	}
	return want.OS == img.OS && want.Arch == img.Arch && (want.Variant == "" || want.Variant == img.Variant)
}

// PullImage pulls an image from its registry, as given (no substitution),
// with the credentials the docker CLI would use for its registry (see
// package doc, "Images"), reading the daemon's progress to its end, bounded
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

// sharedCall is one pull or build shared by every caller that needs its
// image while it runs.
type sharedCall struct {
	done   chan struct{}
	result string
	err    error
	rep    *imagepull.Reporter
}

// sharedJob is a pull or build for shared.
type sharedJob struct {
	key         string // what makes two jobs the same
	op, subject string // for the error of a caller who gives up
	// doing and finished are what the reports say ("pulling x", "pulled
	// x"), with status's words.
	doing, finished string
	status          func() string
	timeout         time.Duration
	progress        func(string) // this caller's listener; may be nil
	work            func(ctx context.Context, rep *imagepull.Reporter) (string, error)
}

// shared runs j.work once for all concurrent callers with the same key,
// detached from the first caller's cancellation and bounded by j.timeout,
// and returns its result. While a caller waits, its progress hears the
// job's reports: every few seconds once it has taken a couple, and at its
// end when it was reported on. A caller whose ctx ends gets ctx's error at
// once; the job goes on for the others.
func (o *Orchestrator) shared(ctx context.Context, j sharedJob) (string, error) {
	o.mu.Lock()
	call, running := o.pulls[j.key]
	if !running {
		call = &sharedCall{done: make(chan struct{}), rep: imagepull.StartReporter(j.doing, j.status)}
		o.pulls[j.key] = call
		go func() {
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), j.timeout)
			defer cancel()
			call.result, call.err = j.work(wctx, call.rep)
			finished := j.finished
			if call.err != nil {
				finished = "" // the error says what happened
			}
			call.rep.Stop(finished)
			o.mu.Lock()
			delete(o.pulls, j.key)
			o.mu.Unlock()
			close(call.done)
		}()
	}
	unlisten := call.rep.Listen(j.progress)
	o.mu.Unlock()
	defer unlisten()
	select {
	case <-call.done:
		return call.result, call.err
	case <-ctx.Done():
		return "", wrap(j.op, j.subject, ctx.Err(), nil)
	}
}

// pullShared pulls ref (shared with concurrent callers) and records when.
func (o *Orchestrator) pullShared(ctx context.Context, q imageRequest, ref, key string) error {
	subject := describe(q.asked, ref)
	meter := &imagepull.Meter{}
	_, err := o.shared(ctx, sharedJob{
		key: "pull " + key, op: "pull image", subject: subject,
		doing: "pulling " + subject, finished: "pulled " + subject, status: meter.String,
		timeout: q.timeout, progress: q.progress,
		work: func(ctx context.Context, _ *imagepull.Reporter) (string, error) {
			if err := o.pull(ctx, q, ref, meter); err != nil {
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

// pull pulls ref once, with its registry's credentials, and explains a
// failure: which registry, whether credentials were sent and from where.
func (o *Orchestrator) pull(ctx context.Context, q imageRequest, ref string, meter *imagepull.Meter) error {
	subject := describe(q.asked, ref)
	start := time.Now()
	registry, _ := registryauth.Registry(ref) // ref is valid
	creds, err := o.creds.Lookup(ctx, registry)
	if err != nil {
		return errs.Op("pull image", subject, ErrInvalidConfig, fmt.Errorf("the credentials for registry %s: %w", registry, err))
	}
	err = o.api.ImagePull(ctx, ref, engine.PullOptions{Auth: engineAuth(creds.Creds), Platform: q.platform}, meter.Add)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		cause := err
		if !errors.Is(err, ctx.Err()) {
			cause = errors.Join(ctx.Err(), err)
		}
		err = fmt.Errorf("timed out after %s (pull timeout %s): %w", time.Since(start).Round(time.Millisecond), q.timeout, cause)
	}
	var sentinel error
	switch imagepull.Classify(err.Error()) {
	case imagepull.Rejected:
		sentinel = ErrRegistryAuth
		if creds.Creds != nil {
			err = fmt.Errorf("registry %s rejected the %s: %w; check them, or log in again (docker login %s)", registry, creds.Describe(), err, registry)
		} else {
			err = fmt.Errorf("registry %s rejected a pull with %s: %w; log in (docker login %s) or set DOCKER_AUTH_CONFIG", registry, creds.Describe(), err, registry)
		}
	case imagepull.Missing:
		sentinel = ErrImageNotFound
		err = fmt.Errorf("%w (registry %s, %s)", err, registry, creds.Describe())
	default:
		if errors.Is(err, engine.ErrNotFound) {
			sentinel = ErrImageNotFound
		}
		err = fmt.Errorf("%w (registry %s, %s)", err, registry, creds.Describe())
	}
	if errors.Is(err, engine.ErrUnavailable) {
		sentinel = ErrDockerUnavailable
	}
	return errs.Op("pull image", subject, sentinel, err)
}

// engineAuth turns credentials into the seam's (nil stays nil).
func engineAuth(c *registryauth.Credentials) *engine.AuthConfig {
	if c == nil {
		return nil
	}
	return &engine.AuthConfig{Username: c.Username, Password: c.Password, IdentityToken: c.IdentityToken, RegistryToken: c.RegistryToken, ServerAddress: c.ServerAddress}
}

// buildAuth returns the credentials of the registries a Dockerfile's FROM
// lines pull from, by config key, as the daemon wants them for a build.
func (o *Orchestrator) buildAuth(ctx context.Context, dockerfile []byte, args map[string]string) (map[string]engine.AuthConfig, error) {
	auths := map[string]engine.AuthConfig{}
	for _, base := range imagebuild.BaseImages(dockerfile, args) {
		registry, err := registryauth.Registry(base)
		if err != nil {
			continue // the daemon will say what is wrong with it
		}
		key := registryauth.Key(registry)
		if _, done := auths[key]; done {
			continue
		}
		res, err := o.creds.Lookup(ctx, registry)
		if err != nil {
			return nil, fmt.Errorf("the credentials for registry %s (FROM %s): %w", registry, base, err)
		}
		if a := engineAuth(res.Creds); a != nil {
			auths[key] = *a
		}
	}
	return auths, nil
}

// lastLines keeps the last n lines it is given.
type lastLines struct {
	n     int
	lines []string
}

func (l *lastLines) add(line string) {
	l.lines = append(l.lines, line)
	if len(l.lines) > l.n {
		l.lines = l.lines[len(l.lines)-l.n:]
	}
}

func (l *lastLines) String() string { return strings.Join(l.lines, "\n  ") }
