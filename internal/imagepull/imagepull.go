// Package imagepull decides and describes image pulls: the pull policy
// (parsed from HEPH_PULL_POLICY's words, and whether a local copy is due for
// a pull), the Docker Hub mirror rule (HEPH_REGISTRY_MIRROR), when each image
// was last pulled (a small record per image in the user's cache directory),
// what a failed pull's message means (rejected credentials, a missing
// image), and the progress of a pull in words.
package imagepull

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/registryauth"
	"github.com/heph-go/heph/internal/rules"
)

// The environment variables package heph documents (EnvPullPolicy,
// EnvRegistryMirror).
const (
	EnvPolicyName = "HEPH_PULL_POLICY"
	EnvMirrorName = "HEPH_REGISTRY_MIRROR"
)

// EnvPolicy reads HEPH_PULL_POLICY's value v (ParsePolicy); a bad one is
// errs.InvalidConfig naming the variable.
func EnvPolicy(v string) (always bool, olderThan time.Duration, err error) {
	always, olderThan, err = ParsePolicy(v)
	if err != nil {
		return false, 0, errs.Invalid(EnvPolicyName, v, err.Error())
	}
	return always, olderThan, nil
}

// Substitute applies hook (WithImageSubstitution; may be nil), then the
// mirror rule of HEPH_REGISTRY_MIRROR's value mirror ("" for none), to
// image. A reference hook returns that is not valid, or a bad mirror, is
// errs.InvalidConfig naming the option or the variable.
func Substitute(image string, hook func(string) string, mirror string) (string, error) {
	ref := image
	if hook != nil {
		ref = hook(image)
		if err := rules.Image(ref); err != nil {
			return "", errs.Invalid("WithImageSubstitution", ref, fmt.Sprintf("(returned for %q) %v", image, err))
		}
	}
	if mirror == "" {
		return ref, nil
	}
	if err := CheckMirror(mirror); err != nil {
		return "", errs.Invalid(EnvMirrorName, mirror, err.Error())
	}
	return Mirror(ref, mirror), nil
}

// PolicyWords lists the values ParsePolicy accepts, for messages.
const PolicyWords = "missing, always or older-than=<duration> (older-than=24h)"

// ParsePolicy reads a pull policy: "missing" (or ""), "always", or
// "older-than=<Go duration>" (positive); case and surrounding spaces do not
// matter. It returns the policy's fields as package heph's PullPolicy has
// them.
func ParsePolicy(s string) (always bool, olderThan time.Duration, err error) {
	v := strings.ToLower(strings.TrimSpace(s))
	switch {
	case v == "" || v == "missing":
		return false, 0, nil
	case v == "always":
		return true, 0, nil
	}
	if d, ok := strings.CutPrefix(v, "older-than="); ok {
		age, err := time.ParseDuration(d)
		if err == nil && age > 0 {
			return false, age, nil
		}
	}
	return false, 0, errors.New("want " + PolicyWords)
}

// Due reports whether a local copy is due for a pull under "older than
// maxAge": when the most recent of its creation time and its last recorded
// pull is more than maxAge before now (a copy without either is due).
func Due(maxAge time.Duration, created, lastPull, now time.Time) bool {
	newest := created
	if lastPull.After(newest) {
		newest = lastPull
	}
	return newest.IsZero() || now.Sub(newest) > maxAge
}

// CheckMirror checks a mirror rule's value: host[:port] with an optional
// path prefix ("mirror.corp:5000", "artifactory.corp/dockerhub"), no scheme.
func CheckMirror(m string) error {
	switch {
	case strings.Contains(m, "://"):
		return errors.New("give host[:port][/path] without a scheme: the daemon chooses https, or http for loopback and its insecure-registries")
	case strings.TrimSpace(m) != m || m == "":
		return errors.New("is empty or has surrounding spaces")
	}
	ref, err := reference.ParseNormalizedNamed(strings.TrimSuffix(m, "/") + "/library/busybox:latest")
	if err != nil || !strings.ContainsAny(reference.Domain(ref), ".:") && reference.Domain(ref) != "localhost" {
		return errors.New("is not a registry host[:port][/path] (a host needs a '.' or a ':port', or is localhost)")
	}
	if registryauth.IsHub(reference.Domain(ref)) {
		return errors.New("names Docker Hub itself")
	}
	return nil
}

// Mirror rewrites a Docker Hub image to the mirror m (checked with
// CheckMirror): "postgres:16" becomes "<m>/library/postgres:16",
// "bitnami/redis" "<m>/bitnami/redis:latest". Images of other registries
// are returned as they are; so is an image that does not parse.
func Mirror(image, m string) string {
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil || !registryauth.IsHub(reference.Domain(ref)) {
		return image
	}
	ref = reference.TagNameOnly(ref)
	out := strings.TrimSuffix(m, "/") + "/" + reference.Path(ref)
	if tagged, ok := ref.(reference.Tagged); ok {
		out += ":" + tagged.Tag()
	}
	if digested, ok := ref.(reference.Digested); ok {
		out += "@" + digested.Digest().String()
	}
	return out
}

// Failure is what a failed pull's message says.
type Failure int

// Failures.
const (
	// Other: none of the below.
	Other Failure = iota
	// Rejected: the registry refused the credentials, or wanted some and
	// got none ("unauthorized", "no basic auth credentials").
	Rejected
	// Missing: the registry does not have the image ("manifest unknown",
	// "name unknown", "not found"), or Docker Hub's "pull access denied",
	// which says the repository does not exist or needs a login.
	Missing
)

// Classify reads a pull error's message.
func Classify(msg string) Failure {
	m := strings.ToLower(msg)
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(m, w) {
				return true
			}
		}
		return false
	}
	switch {
	case has("pull access denied", "repository does not exist"):
		return Missing
	case has("unauthorized", "no basic auth credentials", "authentication required", "incorrect username or password", "invalid username/password"):
		return Rejected
	case has("manifest unknown", "name unknown", "not found", "no such image"):
		return Missing
	}
	return Other
}

// Records remembers when images were last pulled, one small file per image
// under Dir, so "older than" policies hold across test processes. A Dir of
// "" remembers nothing.
type Records struct {
	Dir string
}

// DefaultRecords keeps the records in heph/pulls under the user's cache
// directory (os.UserCacheDir: $XDG_CACHE_HOME or ~/.cache on Linux), or
// nowhere when there is none.
func DefaultRecords() Records {
	dir, err := os.UserCacheDir()
	if err != nil {
		return Records{}
	}
	return Records{Dir: filepath.Join(dir, "heph", "pulls")}
}

func (r Records) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(r.Dir, hex.EncodeToString(sum[:16]))
}

// Last returns when the image (key: daemon, reference and platform) was
// last pulled as imageID; zero when there is no record for that image ID.
func (r Records) Last(key, imageID string) time.Time {
	if r.Dir == "" {
		return time.Time{}
	}
	b, err := os.ReadFile(r.path(key))
	if err != nil {
		return time.Time{}
	}
	at, id, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || id != imageID {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Note records that the image (key) was pulled as imageID at t. Failing to
// write the record is not an error worth failing a pull for: the image is
// then due again at the next check.
func (r Records) Note(key, imageID string, t time.Time) {
	if r.Dir == "" || os.MkdirAll(r.Dir, 0o755) != nil {
		return
	}
	f, err := os.CreateTemp(r.Dir, ".tmp-*")
	if err != nil {
		return
	}
	_, werr := fmt.Fprintf(f, "%d %s\n", t.UnixNano(), imageID)
	if errors.Join(werr, f.Close()) != nil || os.Rename(f.Name(), r.path(key)) != nil {
		_ = os.Remove(f.Name())
	}
}

// Subject names an image for messages: "postgres:16", or "postgres:16 (as
// mirror.corp/library/postgres:16)" when asked was substituted by ref.
func Subject(asked, ref string) string {
	if asked == ref || asked == "" {
		return ref
	}
	return asked + " (as " + ref + ")"
}

// SamePlatform reports whether a local image is of platform p,
// "os/arch[/variant]" ("" matches any; a variant not asked for is not
// compared).
func SamePlatform(img engine.Image, p string) bool {
	if p == "" {
		return true
	}
	want := strings.Split(p, "/")
	return len(want) >= 2 && want[0] == img.OS && want[1] == img.Arch && (len(want) < 3 || want[2] == img.Variant)
}
