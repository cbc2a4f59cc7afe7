// Package rules holds what makes each part of a container's configuration
// valid — service names, environment keys, labels, mounts, users, paths,
// image references — written once. Each check returns nil or the reason in
// words, without naming the field: the Orchestrator puts the field in front
// ("Env key"), the builder the option ("WithEnv"), from the same rule.
package rules

import (
	"errors"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/distribution/reference"
)

// LabelPrefix starts every label heph sets; users may not use it.
const LabelPrefix = "heph."

var (
	hostnameLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	volumeName    = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)
	userSpec      = regexp.MustCompile(`^[a-zA-Z0-9_.][a-zA-Z0-9_.-]*(:[a-zA-Z0-9_.][a-zA-Z0-9_.-]*)?$`)
)

func reason(s string) error { return errors.New(s) }

// Service checks a service name: a host name label.
func Service(s string) error {
	if !hostnameLabel.MatchString(s) {
		return reason("is not a valid host name: use 1-63 lower-case letters, digits and '-', not starting or ending with '-'")
	}
	return nil
}

// Image checks an image reference.
func Image(ref string) error {
	if strings.TrimSpace(ref) == "" {
		return reason("is empty")
	}
	if strings.ContainsRune(ref, 0) {
		return reason("must not contain NUL")
	}
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return reason("is not a valid image reference: " + err.Error())
	}
	return nil
}

var platformSpec = regexp.MustCompile(`^[a-z0-9_]+/[a-z0-9_]+(/[a-z0-9_]+)?$`)

// Platform checks a platform: "os/arch" or "os/arch/variant", lower case
// (linux/amd64, linux/arm64, linux/arm/v7).
func Platform(p string) error {
	if !platformSpec.MatchString(p) {
		return reason(`is not "os/arch" or "os/arch/variant" in lower case (linux/amd64, linux/arm64, linux/arm/v7)`)
	}
	return nil
}

// EnvKey checks the name of an environment variable.
func EnvKey(k string) error {
	switch {
	case k == "":
		return reason("the key is empty")
	case strings.ContainsAny(k, "=\x00"):
		return reason(`the key must not contain "=" or NUL`)
	}
	return nil
}

// EnvValue checks the value of an environment variable.
func EnvValue(v string) error {
	if strings.ContainsRune(v, 0) {
		return reason("the value must not contain NUL")
	}
	return nil
}

// LabelKey checks a user label key: not empty, no NUL, not heph's prefix.
func LabelKey(k string) error {
	switch {
	case strings.TrimSpace(k) == "":
		return reason("the key is empty")
	case strings.ContainsRune(k, 0):
		return reason("the key must not contain NUL")
	case strings.HasPrefix(k, LabelPrefix):
		return reason(`the "heph." prefix is reserved for heph`)
	}
	return nil
}

// LabelValue checks a label value.
func LabelValue(v string) error {
	if strings.ContainsRune(v, 0) {
		return reason("the value must not contain NUL")
	}
	return nil
}

// Args checks a command line (Cmd, Entrypoint, an exec): no NUL in any
// argument.
func Args(args []string) error {
	for _, a := range args {
		if strings.ContainsRune(a, 0) {
			return reason("an argument contains NUL")
		}
	}
	return nil
}

// ContainerPath checks an absolute path in the container that is not "/".
func ContainerPath(p string) error {
	switch {
	case strings.ContainsRune(p, 0):
		return reason("must not contain NUL")
	case !path.IsAbs(p):
		return reason("must be an absolute path in the container")
	case path.Clean(p) == "/":
		return reason("must not be the root directory")
	}
	return nil
}

// FilePath checks the path of a file written into the container: absolute,
// not a directory (no trailing "/"), not "/".
func FilePath(p string) error {
	if err := ContainerPath(p); err != nil {
		return err
	}
	if strings.HasSuffix(p, "/") {
		return reason("must be a file path, not end in /")
	}
	return nil
}

// WorkingDir checks a working directory: an absolute path.
func WorkingDir(p string) error {
	switch {
	case strings.ContainsRune(p, 0):
		return reason("must not contain NUL")
	case !path.IsAbs(p):
		return reason("must be an absolute path")
	}
	return nil
}

// HostPath checks the host side of a bind mount: an absolute host path.
func HostPath(p string) error {
	switch {
	case p == "":
		return reason("is empty (a bind mount needs a host path)")
	case strings.ContainsRune(p, 0):
		return reason("must not contain NUL")
	case !filepath.IsAbs(p):
		return reason("must be an absolute host path")
	}
	return nil
}

// Volume checks a named volume's name.
func Volume(name string) error {
	if !volumeName.MatchString(name) {
		return reason("is not a valid volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)")
	}
	return nil
}

// User checks a user spec.
func User(u string) error {
	if !userSpec.MatchString(u) {
		return reason(`must be "user", "uid", "user:group" or "uid:gid"`)
	}
	return nil
}

// NetworkName checks the name or ID of a network to join.
func NetworkName(n string) error {
	switch {
	case strings.TrimSpace(n) == "":
		return reason("is empty")
	case strings.ContainsRune(n, 0):
		return reason("must not contain NUL")
	}
	return nil
}

// ServiceFromImage derives a service name from an image reference: the last
// path element of the repository, lower-cased, with every run of characters
// not allowed in a host name replaced by "-" ("docker.io/library/postgres:16"
// gives "postgres", "heph-build/testapp:abc" gives "testapp"); "svc" when
// nothing is left.
func ServiceFromImage(image string) string {
	name := image
	if ref, err := reference.ParseNormalizedNamed(image); err == nil {
		name = reference.Path(ref)
	} else {
		name, _, _ = strings.Cut(name, "@")
		if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
			name = name[:i]
		}
	}
	name = path.Base(name)
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.TrimRight(b.String(), "-")
	if len(s) > 40 {
		s = strings.TrimRight(s[:40], "-")
	}
	if s == "" {
		s = "svc"
	}
	return s
}
