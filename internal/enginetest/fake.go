// Package enginetest holds the fakes of heph's Docker seam for unit tests:
// Fake, an in-memory daemon behind engine.API that the layers above the seam
// test against (containers, networks, volumes, images, exec, logs, events),
// honouring contexts as the real client does; and Server (server.go), a fake
// Engine API served over HTTP that the seam's own SDK mapping is tested
// against.
package enginetest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/heph-go/heph/internal/engine"
)

// Fake is an in-memory Docker daemon behind engine.API. Every call first
// fails with the context's error when ctx is done (as the real client
// does), then asks Hook (when set), then acts on the fake's state. It is
// safe for concurrent use.
type Fake struct {
	// Hook, when not nil, runs before every call with the call's name
	// ("ContainerCreate") and its main argument (an ID, a name, a spec); a
	// non-nil error is returned as the call's error, before anything
	// happens. A hook may also block (to simulate a slow daemon).
	Hook func(ctx context.Context, call string, arg any) error
	// ExecFunc answers Exec; nil answers exit code 0 and no output.
	ExecFunc func(id string, cmd []string) (engine.ExecResult, error)
	// MaxPoolNetworks is how many networks without a subnet of their own
	// the daemon's default pools hold (0: unlimited); the next create fails
	// as Docker's does.
	MaxPoolNetworks int
	// Version and Info answer Version and Info.
	VersionInfo engine.Version
	SystemInfo  engine.Info

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced at every state change
	seq        int
	nextPort   int
	calls      []string
	containers map[string]*fakeContainer
	networks   map[string]*engine.Network
	volumes    map[string]*engine.Volume
	images     map[string]engine.Image // by every tag and ID
	registry   map[string]engine.Image // what ImagePull can pull, by reference
	events     []chan engine.Event
	closed     bool
}

type fakeContainer struct {
	spec  engine.ContainerSpec
	c     engine.Container
	logs  bytes.Buffer
	files map[string][]byte // CopyTo's archives, by destination
	from  map[string][]byte // CopyFrom's archives, by path
}

// NewFake returns an empty fake daemon with every image present
// ("AddImage" is needed only for the tests of pulls).
func NewFake() *Fake {
	return &Fake{
		changed:     make(chan struct{}),
		nextPort:    32768,
		containers:  map[string]*fakeContainer{},
		networks:    map[string]*engine.Network{},
		volumes:     map[string]*engine.Volume{},
		images:      map[string]engine.Image{},
		registry:    map[string]engine.Image{},
		VersionInfo: engine.Version{Product: "Fake Engine", Version: "20.10.24", APIVersion: "1.41", MinAPIVersion: "1.12", OS: "linux", Arch: "amd64"},
		SystemInfo:  engine.Info{Name: "fake", OSType: "linux"},
	}
}

var _ engine.API = (*Fake)(nil)

// NotFound, Conflict and Unavailable make errors of the classes the real
// client gives.
func NotFound(format string, args ...any) error {
	return classed{engine.ErrNotFound, fmt.Sprintf(format, args...)}
}

// Conflict makes an error matching engine.ErrConflict.
func Conflict(format string, args ...any) error {
	return classed{engine.ErrConflict, fmt.Sprintf(format, args...)}
}

// Unavailable makes an error matching engine.ErrUnavailable.
func Unavailable(format string, args ...any) error {
	return classed{engine.ErrUnavailable, fmt.Sprintf(format, args...)}
}

type classed struct {
	class error
	msg   string
}

func (e classed) Error() string        { return e.msg }
func (e classed) Is(target error) bool { return target == e.class }

// enter records a call and runs the context check and the hook.
func (f *Fake) enter(ctx context.Context, call string, arg any) error {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	hook := f.Hook
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if hook != nil {
		if err := hook(ctx, call, arg); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Calls returns the names of the calls made so far, in order.
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// CallCount returns how many times call was made.
func (f *Fake) CallCount(call string) int {
	n := 0
	for _, c := range f.Calls() {
		if c == call {
			n++
		}
	}
	return n
}

// notify wakes whoever waits for a state change; f.mu is held.
func (f *Fake) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Fake) newID() string {
	f.seq++
	return fmt.Sprintf("%064x", f.seq)
}

// Ping implements engine.API.
func (f *Fake) Ping(ctx context.Context) error { return f.enter(ctx, "Ping", nil) }

// APIVersion implements engine.API.
func (f *Fake) APIVersion() string { return f.VersionInfo.APIVersion }

// Close implements engine.API.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

// Closed reports whether Close was called.
func (f *Fake) Closed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// Version implements engine.API.
func (f *Fake) Version(ctx context.Context) (engine.Version, error) {
	if err := f.enter(ctx, "Version", nil); err != nil {
		return engine.Version{}, err
	}
	return f.VersionInfo, nil
}

// Info implements engine.API.
func (f *Fake) Info(ctx context.Context) (engine.Info, error) {
	if err := f.enter(ctx, "Info", nil); err != nil {
		return engine.Info{}, err
	}
	return f.SystemInfo, nil
}

// ContainerCreate implements engine.API: the image must be present (see
// AddImage; a fake made by NewFake has none and accepts any image unless one
// was added), the name unused, and every network joined must exist.
func (f *Fake) ContainerCreate(ctx context.Context, s engine.ContainerSpec) (string, error) {
	if err := f.enter(ctx, "ContainerCreate", s); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.images) > 0 {
		if _, ok := f.images[s.Image]; !ok {
			return "", NotFound("No such image: %s", s.Image)
		}
	}
	for _, c := range f.containers {
		if c.c.Name == s.Name {
			return "", Conflict("Conflict. The container name %q is already in use", "/"+s.Name)
		}
	}
	c := &fakeContainer{spec: s, files: map[string][]byte{}, from: map[string][]byte{}}
	c.c = engine.Container{
		ID: f.newID(), Name: s.Name, Image: s.Image, Status: "created",
		Labels: cloneMap(s.Labels), Created: time.Now(), Networks: map[string]engine.Attachment{},
	}
	if s.Network != "" {
		n := f.network(s.Network)
		if n == nil {
			return "", NotFound("network %s not found", s.Network)
		}
		c.c.Networks[n.Name] = engine.Attachment{NetworkID: n.ID, Aliases: slices.Clone(s.Aliases)}
	}
	for _, m := range s.Mounts {
		if m.Type == "volume" && m.Source != "" {
			if _, ok := f.volumes[m.Source]; !ok {
				f.volumes[m.Source] = &engine.Volume{Name: m.Source, Labels: cloneMap(m.VolumeLabels), Created: time.Now()}
			}
		}
	}
	f.containers[c.c.ID] = c
	f.notify()
	return c.c.ID, nil
}

// container finds a container by ID, ID prefix or name; f.mu is held.
func (f *Fake) container(ref string) *fakeContainer {
	if c, ok := f.containers[ref]; ok {
		return c
	}
	for _, c := range f.containers {
		if c.c.Name == strings.TrimPrefix(ref, "/") || (len(ref) >= 12 && strings.HasPrefix(c.c.ID, ref)) {
			return c
		}
	}
	return nil
}

// network finds a network by ID or name; f.mu is held.
func (f *Fake) network(ref string) *engine.Network {
	if n, ok := f.networks[ref]; ok {
		return n
	}
	for _, n := range f.networks {
		if n.Name == ref {
			return n
		}
	}
	return nil
}

// ContainerStart implements engine.API: the container runs, its ports get
// host ports (random ones from 32768 up) and its networks addresses.
func (f *Fake) ContainerStart(ctx context.Context, id string) error {
	if err := f.enter(ctx, "ContainerStart", id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.container(id)
	if c == nil {
		return NotFound("No such container: %s", id)
	}
	if c.c.Status == "running" {
		return nil
	}
	c.c.Status, c.c.Started, c.c.ExitCode = "running", time.Now(), 0
	c.c.Ports = map[string][]netip.AddrPort{}
	for _, p := range c.spec.Ports {
		hp := p.HostPort
		if hp == 0 {
			hp = f.nextPort
			f.nextPort++
		}
		addr := netip.IPv4Unspecified()
		if p.HostIP != "" {
			addr = netip.MustParseAddr(p.HostIP)
		}
		c.c.Ports[p.Port.String()] = []netip.AddrPort{netip.AddrPortFrom(addr, uint16(hp))}
	}
	i := 2
	for name, a := range c.c.Networks {
		a.IP = fmt.Sprintf("172.30.%d.%d", f.seq%250, i)
		a.Gateway = fmt.Sprintf("172.30.%d.1", f.seq%250)
		c.c.Networks[name] = a
		i++
	}
	f.notify()
	return nil
}

// Exit makes a running container exit with code (as its process would).
func (f *Fake) Exit(id string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.container(id); c != nil {
		c.c.Status, c.c.ExitCode, c.c.Finished = "exited", code, time.Now()
		f.notify()
	}
}

// ContainerStop implements engine.API: the container exits with 0.
func (f *Fake) ContainerStop(ctx context.Context, id string, timeout time.Duration) error {
	if err := f.enter(ctx, "ContainerStop", id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.container(id)
	if c == nil {
		return NotFound("No such container: %s", id)
	}
	if c.c.Status == "running" {
		c.c.Status, c.c.Finished = "exited", time.Now()
		f.notify()
	}
	return nil
}

// ContainerRemove implements engine.API.
func (f *Fake) ContainerRemove(ctx context.Context, id string) error {
	if err := f.enter(ctx, "ContainerRemove", id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.container(id)
	if c == nil {
		return NotFound("No such container: %s", id)
	}
	delete(f.containers, c.c.ID)
	f.notify()
	return nil
}

// matches reports whether an object with this name and labels passes f's
// "label" and "name" filters ("name" is a regular expression, as Docker's).
func matches(flt engine.Filter, name string, labels map[string]string) bool {
	for _, l := range flt["label"] {
		k, v, hasValue := strings.Cut(l, "=")
		got, ok := labels[k]
		if !ok || (hasValue && got != v) {
			return false
		}
	}
	if names := flt["name"]; len(names) > 0 {
		ok := false
		for _, n := range names {
			if re, err := regexp.Compile(n); err == nil && re.MatchString("/"+name) || strings.Contains(name, n) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// ContainerList implements engine.API ("label" and "name" filters).
func (f *Fake) ContainerList(ctx context.Context, flt engine.Filter) ([]engine.Container, error) {
	if err := f.enter(ctx, "ContainerList", flt); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []engine.Container
	for _, c := range f.containers {
		if matches(flt, c.c.Name, c.c.Labels) {
			out = append(out, clone(c.c))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ContainerInspect implements engine.API.
func (f *Fake) ContainerInspect(ctx context.Context, id string) (engine.Container, error) {
	if err := f.enter(ctx, "ContainerInspect", id); err != nil {
		return engine.Container{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.container(id)
	if c == nil {
		return engine.Container{}, NotFound("No such container: %s", id)
	}
	return clone(c.c), nil
}

// SetHealth sets a container's health status and appends a check result.
func (f *Fake) SetHealth(id, status, output string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.container(id); c != nil {
		c.c.Health = status
		c.c.HealthLog = append(c.c.HealthLog, engine.HealthResult{Output: output, End: time.Now()})
		f.notify()
	}
}

// WriteLog appends output to a container's log.
func (f *Fake) WriteLog(id, output string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.container(id); c != nil {
		c.logs.WriteString(output)
		f.notify()
	}
}

// ContainerLogs implements engine.API: the log written with WriteLog (the
// last Tail lines); with Follow the stream stays open, delivering new output,
// until the container is not running or ctx ends.
func (f *Fake) ContainerLogs(ctx context.Context, id string, opts engine.LogOptions) (io.ReadCloser, error) {
	if err := f.enter(ctx, "ContainerLogs", id); err != nil {
		return nil, err
	}
	f.mu.Lock()
	c := f.container(id)
	if c == nil {
		f.mu.Unlock()
		return nil, NotFound("No such container: %s", id)
	}
	text := c.logs.String()
	f.mu.Unlock()
	if opts.Tail > 0 {
		lines := strings.SplitAfter(text, "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		if len(lines) > opts.Tail {
			lines = lines[len(lines)-opts.Tail:]
		}
		text = strings.Join(lines, "")
	}
	if !opts.Follow {
		return io.NopCloser(strings.NewReader(text)), nil
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer cancel()
		sent := len(text)
		if _, err := io.WriteString(pw, text); err != nil {
			return
		}
		for {
			f.mu.Lock()
			c := f.container(id)
			var more string
			running := false
			if c != nil {
				all := c.logs.String()
				more, sent = all[sent:], len(all)
				running = c.c.Status == "running"
			}
			changed := f.changed
			f.mu.Unlock()
			if more != "" {
				if _, err := io.WriteString(pw, more); err != nil {
					return
				}
			}
			if !running {
				pw.Close()
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
				pw.CloseWithError(ctx.Err())
				return
			}
		}
	}()
	return &closer{Reader: pr, close: func() error { cancel(); return pr.Close() }}, nil
}

type closer struct {
	io.Reader
	close func() error
}

func (c *closer) Close() error { return c.close() }

// ContainerWait implements engine.API: it returns once the container is not
// running, or fails with ctx's error.
func (f *Fake) ContainerWait(ctx context.Context, id string) error {
	if err := f.enter(ctx, "ContainerWait", id); err != nil {
		return err
	}
	for {
		f.mu.Lock()
		c := f.container(id)
		if c == nil {
			f.mu.Unlock()
			return NotFound("No such container: %s", id)
		}
		running := c.c.Status == "running"
		changed := f.changed
		f.mu.Unlock()
		if !running {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Exec implements engine.API through ExecFunc; a container that is not
// running gives a conflict, as Docker does.
func (f *Fake) Exec(ctx context.Context, id string, cmd []string) (engine.ExecResult, error) {
	if err := f.enter(ctx, "Exec", cmd); err != nil {
		return engine.ExecResult{}, err
	}
	f.mu.Lock()
	c := f.container(id)
	run := f.ExecFunc
	f.mu.Unlock()
	switch {
	case c == nil:
		return engine.ExecResult{}, NotFound("No such container: %s", id)
	case c.c.Status != "running":
		return engine.ExecResult{}, Conflict("Container %s is not running", id)
	case run == nil:
		return engine.ExecResult{}, nil
	}
	return run(c.c.ID, slices.Clone(cmd))
}

// CopyTo implements engine.API: the archive is kept (see Copied).
func (f *Fake) CopyTo(ctx context.Context, id, dir string, r io.Reader) error {
	if err := f.enter(ctx, "CopyTo", id); err != nil {
		return err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.container(id)
	if c == nil {
		return NotFound("No such container: %s", id)
	}
	c.files[dir] = b
	return nil
}

// Copied returns the last archive CopyTo extracted at dir in the container.
func (f *Fake) Copied(id, dir string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.container(id); c != nil {
		return c.files[dir]
	}
	return nil
}

// SetArchive makes CopyFrom of path in the container answer the tar tarball.
func (f *Fake) SetArchive(id, path string, tarball []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.container(id); c != nil {
		c.from[path] = tarball
	}
}

// CopyFrom implements engine.API with the archives set by SetArchive.
func (f *Fake) CopyFrom(ctx context.Context, id, path string) (io.ReadCloser, error) {
	if err := f.enter(ctx, "CopyFrom", id); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.container(id)
	if c == nil {
		return nil, NotFound("No such container: %s", id)
	}
	b, ok := c.from[path]
	if !ok {
		return nil, NotFound("Could not find the file %s in container %s", path, id)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// Events implements engine.API: it delivers what Emit sends until ctx ends
// or CutEvents cuts the streams.
func (f *Fake) Events(ctx context.Context, flt engine.Filter) (<-chan engine.Event, <-chan error) {
	msgs := make(chan engine.Event, 16)
	errs := make(chan error, 1)
	if err := f.enter(ctx, "Events", flt); err != nil {
		errs <- err
		close(errs)
		close(msgs)
		return msgs, errs
	}
	in := make(chan engine.Event, 16)
	f.mu.Lock()
	f.events = append(f.events, in)
	f.mu.Unlock()
	go func() {
		defer close(errs)
		defer close(msgs)
		for {
			select {
			case e, ok := <-in:
				if !ok {
					errs <- io.ErrUnexpectedEOF
					return
				}
				if !eventMatches(flt, e) {
					continue
				}
				select {
				case msgs <- e:
				case <-ctx.Done():
					errs <- ctx.Err()
					return
				}
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			}
		}
	}()
	return msgs, errs
}

func eventMatches(flt engine.Filter, e engine.Event) bool {
	for key, vals := range flt {
		var got string
		switch key {
		case "type":
			got = e.Type
		case "container":
			got = e.ID
		case "event":
			got, _, _ = strings.Cut(e.Action, ":")
		default:
			continue
		}
		if !slices.Contains(vals, got) {
			return false
		}
	}
	return true
}

// Emit sends an event to every open event stream.
func (f *Fake) Emit(e engine.Event) {
	f.mu.Lock()
	streams := slices.Clone(f.events)
	f.mu.Unlock()
	for _, s := range streams {
		func() {
			defer func() { _ = recover() }() // a stream cut meanwhile
			s <- e
		}()
	}
}

// CutEvents breaks every open event stream, as a daemon restart does.
func (f *Fake) CutEvents() {
	f.mu.Lock()
	streams := f.events
	f.events = nil
	f.mu.Unlock()
	for _, s := range streams {
		close(s)
	}
}

// AddImage makes an image present locally under ref (and its ID).
func (f *Fake) AddImage(ref string, img engine.Image) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if img.ID == "" {
		img.ID = "sha256:" + f.newID()
	}
	img.RepoTags = append(img.RepoTags, ref)
	f.images[ref] = img
	f.images[img.ID] = img
}

// AddToRegistry makes ImagePull of ref succeed, adding img locally.
func (f *Fake) AddToRegistry(ref string, img engine.Image) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.registry[ref] = img
}

// ImageInspect implements engine.API.
func (f *Fake) ImageInspect(ctx context.Context, ref string) (engine.Image, error) {
	if err := f.enter(ctx, "ImageInspect", ref); err != nil {
		return engine.Image{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.images) == 0 && len(f.registry) == 0 {
		return engine.Image{ID: "sha256:any", RepoTags: []string{ref}}, nil // every image is there
	}
	img, ok := f.images[ref]
	if !ok {
		return engine.Image{}, NotFound("No such image: %s", ref)
	}
	return img, nil
}

// ImagePull implements engine.API: refs added with AddToRegistry are pulled;
// others fail as a registry without them does.
func (f *Fake) ImagePull(ctx context.Context, ref string, opts engine.PullOptions, progress func(engine.Progress)) error {
	if err := f.enter(ctx, "ImagePull", ref); err != nil {
		return err
	}
	f.mu.Lock()
	img, ok := f.registry[ref]
	f.mu.Unlock()
	if !ok {
		return &engine.StreamError{Message: "manifest for " + ref + " not found: manifest unknown: manifest unknown"}
	}
	if progress != nil {
		progress(engine.Progress{ID: "layer", Status: "Downloading", Current: 1, Total: 1})
	}
	f.AddImage(ref, img)
	return nil
}

// ImageBuild implements engine.API: it reads the context to its end and tags
// an image with opts.Tags.
func (f *Fake) ImageBuild(ctx context.Context, r io.Reader, opts engine.BuildOptions, output func(string)) error {
	if err := f.enter(ctx, "ImageBuild", opts); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	if output != nil {
		output("Step 1/1 : FROM scratch")
	}
	for _, t := range opts.Tags {
		f.AddImage(t, engine.Image{Labels: cloneMap(opts.Labels)})
	}
	return nil
}

// ImageLoad implements engine.API: it reads the archive to its end.
func (f *Fake) ImageLoad(ctx context.Context, r io.Reader) error {
	if err := f.enter(ctx, "ImageLoad", nil); err != nil {
		return err
	}
	// Tag what a `docker save` tar's manifest.json names, as the daemon does.
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if hdr.Name != "manifest.json" {
			continue
		}
		var manifest []struct{ RepoTags []string }
		if err := json.NewDecoder(tr).Decode(&manifest); err != nil {
			return fmt.Errorf("manifest.json: %w", err)
		}
		for _, m := range manifest {
			for _, t := range m.RepoTags {
				f.AddImage(t, engine.Image{})
			}
		}
	}
}

// ImageList implements engine.API ("label" and "reference" filters).
func (f *Fake) ImageList(ctx context.Context, flt engine.Filter) ([]engine.Image, error) {
	if err := f.enter(ctx, "ImageList", flt); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]bool{}
	var out []engine.Image
	for _, img := range f.images {
		if seen[img.ID] || !matches(engine.Filter{"label": flt["label"]}, "", img.Labels) {
			continue
		}
		seen[img.ID] = true
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ImageRemove implements engine.API.
func (f *Fake) ImageRemove(ctx context.Context, ref string) error {
	if err := f.enter(ctx, "ImageRemove", ref); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.images[ref]
	if !ok {
		return NotFound("No such image: %s", ref)
	}
	for k, v := range f.images {
		if v.ID == img.ID {
			delete(f.images, k)
		}
	}
	return nil
}

// NetworkCreate implements engine.API: names are unique; a network with a
// subnet of its own must not overlap another's; one without takes from the
// default pools (MaxPoolNetworks).
func (f *Fake) NetworkCreate(ctx context.Context, s engine.NetworkSpec) (string, error) {
	if err := f.enter(ctx, "NetworkCreate", s); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	pooled := 0
	for _, n := range f.networks {
		if n.Name == s.Name {
			return "", Conflict("network with name %s already exists", s.Name)
		}
		if len(n.Subnets) == 0 || n.Labels["fake.pool"] == "true" {
			pooled++
		}
		for _, sub := range n.Subnets {
			if s.Subnet.IsValid() && sub.Prefix.Overlaps(s.Subnet) {
				return "", errors.New("Error response from daemon: Pool overlaps with other one on this address space")
			}
		}
	}
	n := &engine.Network{ID: f.newID(), Name: s.Name, Driver: "bridge", Labels: cloneMap(s.Labels), Created: time.Now()}
	if s.Subnet.IsValid() {
		n.Subnets = []engine.Subnet{{Prefix: s.Subnet, Gateway: s.Gateway}}
	} else {
		if f.MaxPoolNetworks > 0 && pooled >= f.MaxPoolNetworks {
			return "", errors.New("Error response from daemon: could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
	}
	f.networks[n.ID] = n
	f.notify()
	return n.ID, nil
}

// NetworkRemove implements engine.API: a network with containers attached
// is refused, as Docker does.
func (f *Fake) NetworkRemove(ctx context.Context, id string) error {
	if err := f.enter(ctx, "NetworkRemove", id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.network(id)
	if n == nil {
		return NotFound("network %s not found", id)
	}
	for _, c := range f.containers {
		if _, ok := c.c.Networks[n.Name]; ok {
			return Conflict("error while removing network: network %s id %s has active endpoints", n.Name, n.ID)
		}
	}
	delete(f.networks, n.ID)
	f.notify()
	return nil
}

// NetworkConnect implements engine.API.
func (f *Fake) NetworkConnect(ctx context.Context, network, container string, aliases []string) error {
	if err := f.enter(ctx, "NetworkConnect", network); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, c := f.network(network), f.container(container)
	switch {
	case n == nil:
		return NotFound("network %s not found", network)
	case c == nil:
		return NotFound("No such container: %s", container)
	}
	if _, ok := c.c.Networks[n.Name]; ok {
		return Conflict("endpoint with name %s already exists in network %s", c.c.Name, n.Name)
	}
	c.c.Networks[n.Name] = engine.Attachment{NetworkID: n.ID, Aliases: slices.Clone(aliases)}
	f.notify()
	return nil
}

// NetworkDisconnect implements engine.API.
func (f *Fake) NetworkDisconnect(ctx context.Context, network, container string) error {
	if err := f.enter(ctx, "NetworkDisconnect", network); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, c := f.network(network), f.container(container)
	if n == nil || c == nil {
		return NotFound("network %s or container %s not found", network, container)
	}
	delete(c.c.Networks, n.Name)
	f.notify()
	return nil
}

// NetworkList implements engine.API ("label", "name" and "driver" filters).
func (f *Fake) NetworkList(ctx context.Context, flt engine.Filter) ([]engine.Network, error) {
	if err := f.enter(ctx, "NetworkList", flt); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []engine.Network
	for _, n := range f.networks {
		if d := flt["driver"]; len(d) > 0 && !slices.Contains(d, n.Driver) {
			continue
		}
		if matches(engine.Filter{"label": flt["label"]}, n.Name, n.Labels) && (len(flt["name"]) == 0 || slices.ContainsFunc(flt["name"], func(s string) bool { return strings.Contains(n.Name, s) })) {
			nn := *n
			nn.Labels = cloneMap(n.Labels)
			nn.Subnets = slices.Clone(n.Subnets)
			for _, c := range f.containers {
				if _, ok := c.c.Networks[n.Name]; ok {
					nn.Containers = append(nn.Containers, c.c.ID)
				}
			}
			out = append(out, nn)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// AddNetwork adds a network that exists on the daemon without heph (the
// default bridge, a user's network).
func (f *Fake) AddNetwork(n engine.Network) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n.ID == "" {
		n.ID = f.newID()
	}
	if n.Driver == "" {
		n.Driver = "bridge"
	}
	f.networks[n.ID] = &n
	return n.ID
}

// VolumeList implements engine.API ("label" and "name" filters).
func (f *Fake) VolumeList(ctx context.Context, flt engine.Filter) ([]engine.Volume, error) {
	if err := f.enter(ctx, "VolumeList", flt); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []engine.Volume
	for _, v := range f.volumes {
		if matches(engine.Filter{"label": flt["label"]}, v.Name, v.Labels) && (len(flt["name"]) == 0 || slices.Contains(flt["name"], v.Name)) {
			vv := *v
			vv.Labels = cloneMap(v.Labels)
			out = append(out, vv)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// AddVolume adds a volume that exists on the daemon without heph.
func (f *Fake) AddVolume(v engine.Volume) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.volumes[v.Name] = &v
}

// VolumeRemove implements engine.API: a volume a container uses is refused.
func (f *Fake) VolumeRemove(ctx context.Context, name string) error {
	if err := f.enter(ctx, "VolumeRemove", name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.volumes[name]; !ok {
		return NotFound("get %s: no such volume", name)
	}
	for _, c := range f.containers {
		for _, m := range c.spec.Mounts {
			if m.Type == "volume" && m.Source == name {
				return Conflict("remove %s: volume is in use - [%s]", name, c.c.ID)
			}
		}
	}
	delete(f.volumes, name)
	return nil
}

// Counts returns how many containers, networks and volumes the fake holds.
func (f *Fake) Counts() (containers, networks, volumes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.containers), len(f.networks), len(f.volumes)
}

func clone(c engine.Container) engine.Container {
	c.Labels = cloneMap(c.Labels)
	c.HealthLog = slices.Clone(c.HealthLog)
	if c.Ports != nil {
		ports := make(map[string][]netip.AddrPort, len(c.Ports))
		for k, v := range c.Ports {
			ports[k] = slices.Clone(v)
		}
		c.Ports = ports
	}
	if c.Networks != nil {
		nets := make(map[string]engine.Attachment, len(c.Networks))
		for k, v := range c.Networks {
			v.Aliases = slices.Clone(v.Aliases)
			nets[k] = v
		}
		c.Networks = nets
	}
	return c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
