package shared

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"slices"
	"strings"
)

// keyVersion starts every hashed spec: a change of what the key covers
// changes it, so an old heph's container is never taken for a new one's.
const keyVersion = "heph-shared-v1"

// Spec is the normalised content of a shared request: everything that makes
// one container different from another. Two requests with equal Specs get
// the same container; any difference gives another one.
type Spec struct {
	// Daemon is the daemon's address (DOCKER_HOST, …), Host this machine's
	// name and Store the directory of the Store whose leases count its
	// holders: holders are seen only through one store, so each machine
	// using a remote daemon, and each user (or runtime directory) of one
	// machine, gets its own container, which no one else's expiry removes.
	Daemon, Host, Store string
	// ImageID is the image's content ID after the pull ("sha256:…"), not
	// its tag: a tag pushed again with new content gives a new key.
	ImageID  string
	Platform string
	Service  string
	// Cmd and Entrypoint as given (nil: the image's).
	Cmd, Entrypoint []string
	Env             map[string]string
	// Ports are the published container ports, normalised ("8080/tcp");
	// HostPorts the fixed host ports among them.
	Ports     []string
	HostPorts map[string]int
	Mounts    []Mount
	Labels    map[string]string
	User      string
	Dir       string // the working directory
	Files     []File
}

// Mount is one mount of a Spec.
type Mount struct {
	Type, Source, Target string
	ReadOnly             bool
}

// File is a file written into the container before it starts.
type File struct {
	Path    string
	Mode    fs.FileMode
	Content []byte
}

// Key returns the spec's content key: 64 hex digits of a SHA-256 over the
// spec with a version prefix. Order does not matter where it means nothing
// (ports, mounts, map keys); it does where it does (Cmd, Entrypoint, and
// files, where a later one at the same path wins). File contents enter as
// their own hashes.
func (s Spec) Key() string {
	type file struct {
		Path   string
		Mode   uint32
		SHA256 string
	}
	files := make([]file, 0, len(s.Files))
	for _, f := range s.Files {
		sum := sha256.Sum256(f.Content)
		files = append(files, file{f.Path, uint32(f.Mode.Perm()), hex.EncodeToString(sum[:])})
	}
	// Empty is empty, however it was made.
	if len(s.Cmd) == 0 {
		s.Cmd = nil
	}
	if len(s.Entrypoint) == 0 {
		s.Entrypoint = nil
	}
	if len(s.Env) == 0 {
		s.Env = nil
	}
	if len(s.HostPorts) == 0 {
		s.HostPorts = nil
	}
	if len(s.Labels) == 0 {
		s.Labels = nil
	}
	ports := slices.Clone(s.Ports)
	slices.Sort(ports)
	mounts := slices.Clone(s.Mounts)
	slices.SortFunc(mounts, func(a, b Mount) int { return strings.Compare(a.Target, b.Target) })
	canon := struct {
		Spec
		Ports  []string
		Mounts []Mount
		Files  []file
	}{s, ports, mounts, files} // the outer fields hide the Spec's
	b, err := json.Marshal(canon) // map keys come out sorted
	if err != nil {
		panic("shared: a Spec always encodes: " + err.Error())
	}
	h := sha256.New()
	h.Write([]byte(keyVersion + "\n"))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// Name returns the name of the shared container of key for service:
// heph-<service>-<first 8 hex of key>. The name makes the daemon refuse a
// second container of the key, whoever asks.
func Name(service, key string) string {
	return "heph-" + service + "-" + key[:8]
}

// ValidKey reports whether key is a content key: 64 lower-case hex digits.
func ValidKey(key string) bool {
	if len(key) != 64 {
		return false
	}
	for _, r := range key {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}
