// Package imagebuild is what heph needs to build images and to know when
// not to: a content hash of a Docker build context (after .dockerignore,
// ignoring times and owners, so a checkout or a touch does not force a
// rebuild), the base images a Dockerfile's FROM lines name (whose registries
// need credentials), and an image made from a Go package without Dockerfile
// or builder (goimage.go).
package imagebuild

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/heph-go/heph/internal/archive"
	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/imagepull"
	"github.com/heph-go/heph/internal/registryauth"
	"github.com/heph-go/heph/internal/rules"
)

// Name makes the repository part of heph-build/<name>: lower-case letters,
// digits, '.', '_' and '-', from s (a directory or package base name); "app"
// when nothing is left.
func Name(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '.' || r == '_' || r == '-':
			if b.Len() > 0 {
				b.WriteRune(r)
			}
		default:
			if b.Len() > 0 {
				b.WriteByte('-')
			}
		}
	}
	n := strings.TrimRight(b.String(), "._-")
	if len(n) > 64 {
		n = strings.TrimRight(n[:64], "._-")
	}
	if n == "" {
		return "app"
	}
	return n
}

// Hash returns the hex SHA-256 of parts, each length-prefixed so that no two
// different lists hash alike.
func Hash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ContextHash hashes the build context of contextDir as the daemon would
// receive it (archive.BuildContext: .dockerignore applied, dockerfile always
// sent): every entry's name, type, permission bits, link target and content,
// in order. Modification times and owners are left out.
func ContextHash(contextDir, dockerfile string) (string, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.BuildContext(pw, contextDir, dockerfile)) }()
	defer pr.Close()
	h := sha256.New()
	tr := tar.NewReader(pr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%q %c %o %q %d\n", hdr.Name, hdr.Typeflag, hdr.Mode&0o7777, hdr.Linkname, hdr.Size)
		if _, err := io.Copy(h, tr); err != nil {
			return "", err
		}
	}
}

var (
	fromLine = regexp.MustCompile(`(?i)^\s*FROM\s+(.*)$`)
	argLine  = regexp.MustCompile(`(?i)^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$`)
	varRef   = regexp.MustCompile(`\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))`)
)

// BaseImages returns the images the FROM lines of a Dockerfile name, in
// order and without repeats: the ARGs before the first FROM (their
// defaults, overridden by args) substituted, stage names and scratch left
// out. It reads what it understands and skips the rest: it only decides
// which registries to send credentials for.
func BaseImages(dockerfile []byte, args map[string]string) []string {
	vars := map[string]string{}
	stages := map[string]bool{"scratch": true}
	seen := map[string]bool{}
	var out []string
	beforeFrom := true
	for _, line := range logicalLines(dockerfile) {
		if beforeFrom {
			if m := argLine.FindStringSubmatch(line); m != nil {
				v, given := args[m[1]]
				if !given {
					v = strings.Trim(strings.TrimSpace(m[2]), `"'`)
				}
				vars[m[1]] = v
				continue
			}
		}
		m := fromLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		beforeFrom = false
		fields := strings.Fields(m[1])
		var image string
		for i, f := range fields {
			if strings.HasPrefix(f, "--") {
				continue
			}
			image = f
			if i+2 < len(fields) && strings.EqualFold(fields[i+1], "AS") {
				stages[strings.ToLower(fields[i+2])] = true
			}
			break
		}
		image = varRef.ReplaceAllStringFunc(image, func(ref string) string {
			s := varRef.FindStringSubmatch(ref)
			name := s[1] + s[3]
			if v, ok := vars[name]; ok && v != "" {
				return v
			}
			return s[2]
		})
		if image == "" || stages[strings.ToLower(image)] || seen[image] {
			continue
		}
		seen[image] = true
		out = append(out, image)
	}
	return out
}

// logicalLines joins a Dockerfile's continued lines (a trailing backslash)
// and drops comments and blank lines.
func logicalLines(b []byte) []string {
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// CheckDockerfile checks that the Dockerfile path rel is inside contextDir
// and a regular file there, and returns its content.
func CheckDockerfile(contextDir, rel string) ([]byte, error) {
	if filepath.IsAbs(rel) || !filepath.IsLocal(rel) {
		return nil, errors.New("must be a path inside the context directory, relative to it")
	}
	p := filepath.Join(contextDir, rel)
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("is not a regular file")
	}
	return os.ReadFile(p)
}

// Check returns every problem of a build's options (package heph's Build)
// with contextDir, each errs.InvalidConfig naming the field ("Build.Args
// key"), before any Docker call.
func Check(contextDir, name, dockerfile string, args map[string]string, target string, labels map[string]string) error {
	var problems []error
	bad := func(field string, value any, reason string) {
		problems = append(problems, errs.Invalid(field, value, reason))
	}
	if st, err := os.Stat(contextDir); err != nil {
		bad("contextDir", contextDir, err.Error())
	} else if !st.IsDir() {
		bad("contextDir", contextDir, "is not a directory")
	} else if _, err := CheckDockerfile(contextDir, dockerfile); err != nil {
		bad("Build.Dockerfile", dockerfile, err.Error())
	}
	if name != "" && Name(name) != name {
		bad("Build.Name", name, "use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit")
	}
	for _, k := range sortedKeys(args) {
		if k == "" || strings.ContainsAny(k, "=\x00 ") {
			bad("Build.Args key", k, "is empty or holds '=', a space or NUL")
		}
	}
	if strings.TrimSpace(target) != target {
		bad("Build.Target", target, "has surrounding spaces")
	}
	for _, k := range sortedKeys(labels) {
		if err := errors.Join(rules.LabelKey(k), rules.LabelValue(labels[k])); err != nil {
			bad("Build.Labels key", k, err.Error())
		}
	}
	return errors.Join(problems...)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SortedPairs renders a map as "k=v" lines in key order, for hashing.
func SortedPairs(m map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(&b, "%q=%q\n", k, m[k])
	}
	return b.String()
}

// Auth returns the credentials of the registries the Dockerfile's FROM
// lines pull from (see BaseImages), by config key, as the daemon wants them
// for a build. It fails when a lookup fails (a malformed config, a failing
// helper); a registry without credentials is left out.
func Auth(ctx context.Context, creds registryauth.Env, dockerfile []byte, args map[string]string) (map[string]engine.AuthConfig, error) {
	auths := map[string]engine.AuthConfig{}
	for _, base := range BaseImages(dockerfile, args) {
		registry, err := registryauth.Registry(base)
		if err != nil {
			continue // the daemon will say what is wrong with it
		}
		key := registryauth.Key(registry)
		if _, done := auths[key]; done {
			continue
		}
		res, err := creds.Lookup(ctx, registry)
		if err != nil {
			return nil, fmt.Errorf("the credentials for registry %s (FROM %s): %w", registry, base, err)
		}
		if a := imagepull.EngineAuth(res.Creds); a != nil {
			auths[key] = *a
		}
	}
	return auths, nil
}
