package engine

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/heph-go/heph/internal/retry"
)

// Client is API over the moby SDK.
type Client struct {
	cli   *client.Client
	fixed bool // the API version is fixed: do not negotiate
	// spares are the ssh connections started ahead of need (ssh:// only).
	spares *sshSpares

	kindOnce sync.Once
	kind     string // Kind of the daemon, asked once when needed; "" when it did not say
}

// engineKind returns the daemon's Kind, asking GET /version the first time;
// "" when the daemon does not answer it.
func (c *Client) engineKind(ctx context.Context) string {
	c.kindOnce.Do(func() {
		if v, err := c.Version(ctx); err == nil {
			c.kind = Kind(v)
		}
	})
	return c.kind
}

// podmanVolumes creates the named volumes of the mounts that carry labels
// before the container: Podman creates a missing volume of a mount without
// the mount's VolumeOptions labels (Docker applies them), and heph finds a
// session's volumes by label. A volume that exists is left as it is, as
// Docker does.
func (c *Client) podmanVolumes(ctx context.Context, ms []MountSpec) error {
	for _, m := range ms {
		if m.Type != "volume" || m.Source == "" || m.VolumeLabels == nil {
			continue
		}
		if c.engineKind(ctx) != KindPodman {
			return nil
		}
		if _, err := c.cli.VolumeInspect(ctx, m.Source, client.VolumeInspectOptions{}); err == nil {
			continue
		}
		_, err := c.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: m.Source, Labels: m.VolumeLabels})
		if err != nil && !cerrdefs.IsConflict(err) {
			return fmt.Errorf("create volume %q (Podman does not label the volumes it creates for a mount): %w", m.Source, classify(err))
		}
	}
	return nil
}

var _ API = (*Client)(nil)

// classError is an SDK error with heph's class added.
type classError struct {
	class error
	err   error
}

func (e *classError) Error() string   { return e.err.Error() }
func (e *classError) Unwrap() []error { return []error{e.err, e.class} }

// classify adds ErrNotFound, ErrConflict or ErrUnavailable to an SDK error,
// keeping the SDK's error (and so its own classes) in the chain.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var class error
	switch {
	case cerrdefs.IsNotFound(err):
		class = ErrNotFound
	case cerrdefs.IsConflict(err), cerrdefs.IsPermissionDenied(err):
		// The daemon answers 403 Forbidden, not 409, when the object's state
		// forbids the call: removing a network that has endpoints.
		class = ErrConflict
	case client.IsErrConnectionFailed(err), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		class = ErrUnavailable
	default:
		return err
	}
	return &classError{class: class, err: err}
}

// Ping implements API.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: !c.fixed})
	return classify(err)
}

// APIVersion implements API.
func (c *Client) APIVersion() string { return c.cli.ClientVersion() }

// Close implements API.
func (c *Client) Close() error {
	if c.spares != nil {
		_ = c.spares.Close()
	}
	return c.cli.Close()
}

// Version implements API.
func (c *Client) Version(ctx context.Context) (Version, error) {
	v, err := c.cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return Version{}, classify(err)
	}
	out := Version{
		Product: v.Platform.Name, Version: v.Version,
		APIVersion: v.APIVersion, MinAPIVersion: v.MinAPIVersion,
		OS: v.Os, Arch: v.Arch,
	}
	for _, comp := range v.Components {
		out.Components = append(out.Components, comp.Name)
	}
	return out, nil
}

// Info implements API.
func (c *Client) Info(ctx context.Context) (Info, error) {
	res, err := c.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return Info{}, classify(err)
	}
	in := Info{Name: res.Info.Name, OSType: res.Info.OSType, SecurityOptions: res.Info.SecurityOptions}
	for _, opt := range in.SecurityOptions {
		for _, kv := range strings.Split(opt, ",") {
			if kv == "name=rootless" {
				in.Rootless = true
			}
		}
	}
	return in, nil
}

// hasLabels reports whether labels satisfy every "label" filter ("key" or
// "key=value"), as Docker applies them: all of them.
func hasLabels(labels map[string]string, want []string) bool {
	for _, w := range want {
		k, v, withValue := strings.Cut(w, "=")
		got, ok := labels[k]
		if !ok || (withValue && got != v) {
			return false
		}
	}
	return true
}

// portableNames makes "name" filters anchored at Docker's leading slash
// ("^/heph-") match on Podman too, whose names have no slash: "^/?heph-".
func portableNames(f Filter) Filter {
	names, ok := f["name"]
	if !ok {
		return f
	}
	out := make(Filter, len(f))
	for k, v := range f {
		out[k] = v
	}
	out["name"] = make([]string, len(names))
	for i, n := range names {
		if strings.HasPrefix(n, "^/") && !strings.HasPrefix(n, "^/?") {
			n = "^/?" + n[2:]
		}
		out["name"][i] = n
	}
	return out
}

func filters(f Filter) client.Filters {
	out := make(client.Filters)
	for k, vs := range f {
		out.Add(k, vs...)
	}
	return out
}

// platform parses "os/arch[/variant]"; nil for "".
func platform(s string) *ocispec.Platform {
	if s == "" {
		return nil
	}
	parts := strings.SplitN(s, "/", 3)
	p := &ocispec.Platform{OS: parts[0]}
	if len(parts) > 1 {
		p.Architecture = parts[1]
	}
	if len(parts) > 2 {
		p.Variant = parts[2]
	}
	return p
}

// ContainerCreate implements API.
func (c *Client) ContainerCreate(ctx context.Context, s ContainerSpec) (string, error) {
	exposed := network.PortSet{}
	bindings := network.PortMap{}
	for _, p := range s.Ports {
		dp, ok := network.PortFrom(p.Port.Num, network.IPProtocol(p.Port.Proto))
		if !ok {
			return "", fmt.Errorf("port %s cannot be published", p.Port)
		}
		exposed[dp] = struct{}{}
		var b network.PortBinding
		if p.HostIP != "" {
			ip, err := netip.ParseAddr(p.HostIP)
			if err != nil {
				// Never fall open to every interface on a bad address.
				return "", fmt.Errorf("bind address %q: %w", p.HostIP, err)
			}
			b.HostIP = ip
		}
		if p.HostPort != 0 {
			b.HostPort = strconv.Itoa(p.HostPort)
		}
		bindings[dp] = append(bindings[dp], b)
	}
	if err := c.podmanVolumes(ctx, s.Mounts); err != nil {
		return "", err
	}
	mounts := make([]mount.Mount, 0, len(s.Mounts))
	for _, m := range s.Mounts {
		mm := mount.Mount{Type: mount.Type(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
		if m.VolumeLabels != nil {
			mm.VolumeOptions = &mount.VolumeOptions{Labels: m.VolumeLabels}
		}
		mounts = append(mounts, mm)
	}
	var netCfg *network.NetworkingConfig
	if s.Network != "" {
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			s.Network: {Aliases: s.Aliases},
		}}
	}
	cfg := &container.Config{
		Image: s.Image, Hostname: s.Hostname, Cmd: s.Cmd, Entrypoint: s.Entrypoint,
		Env: s.Env, WorkingDir: s.WorkingDir, User: s.User, ExposedPorts: exposed, Labels: s.Labels,
	}
	if s.StopTimeout != nil {
		secs := int(math.Ceil(s.StopTimeout.Seconds()))
		cfg.StopTimeout = &secs
	}
	res, err := c.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:             s.Name,
		Config:           cfg,
		HostConfig:       &container.HostConfig{PortBindings: bindings, Mounts: mounts},
		NetworkingConfig: netCfg,
		Platform:         platform(s.Platform),
	})
	if err != nil {
		return "", classify(err)
	}
	return res.ID, nil
}

// ContainerStart implements API.
func (c *Client) ContainerStart(ctx context.Context, id string) error {
	_, err := c.cli.ContainerStart(ctx, id, client.ContainerStartOptions{})
	return classify(err)
}

// ContainerStop implements API.
func (c *Client) ContainerStop(ctx context.Context, id string, timeout time.Duration) error {
	secs := int(math.Ceil(timeout.Seconds()))
	_, err := c.cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs})
	return classify(err)
}

// ContainerRemove implements API.
func (c *Client) ContainerRemove(ctx context.Context, id string) error {
	_, err := c.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	return classify(err)
}

// ContainerList implements API.
func (c *Client) ContainerList(ctx context.Context, f Filter) ([]Container, error) {
	res, err := c.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filters(portableNames(f))})
	if err != nil {
		return nil, classify(err)
	}
	out := make([]Container, 0, len(res.Items))
	for _, s := range res.Items {
		out = append(out, fromSummary(s))
	}
	return out, nil
}

// ContainerInspect implements API.
func (c *Client) ContainerInspect(ctx context.Context, id string) (Container, error) {
	res, err := c.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return Container{}, classify(err)
	}
	return fromInspect(res.Container), nil
}

// ContainerLogs implements API.
func (c *Client) ContainerLogs(ctx context.Context, id string, opts LogOptions) (io.ReadCloser, error) {
	lo := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow}
	if opts.Tail > 0 {
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	if !opts.Since.IsZero() {
		// Seconds.nanoseconds, exact: a float64 of the nanoseconds since
		// 1970 is off by up to a few hundred.
		lo.Since = fmt.Sprintf("%d.%09d", opts.Since.Unix(), opts.Since.Nanosecond())
	}
	raw, err := c.cli.ContainerLogs(ctx, id, lo)
	if err != nil {
		return nil, classify(err)
	}
	return NewDemuxReader(raw), nil
}

// ContainerWait implements API.
func (c *Client) ContainerWait(ctx context.Context, id string) error {
	res := c.cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-res.Result:
		return nil
	case err := <-res.Error:
		if ctx.Err() != nil {
			return ctx.Err() // the SDK's error is the request's, wrapping it
		}
		return classify(err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// execGrace bounds how long Exec waits, once the command closed its output,
// for the daemon to report that it ended: a command that closes stdout and
// stderr but keeps running would otherwise hold Exec forever. A variable
// only so that the package's tests can shorten it.
var execGrace = 10 * time.Second

// Exec implements API: create, attach, read the output to its end, then
// wait for the daemon to record the exit code.
func (c *Client) Exec(ctx context.Context, id string, cmd []string) (ExecResult, error) {
	created, err := c.cli.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return ExecResult{}, classify(err)
	}
	att, err := c.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return ExecResult{}, classify(err)
	}
	var stdout, stderr bytes.Buffer
	copied := make(chan error, 1)
	go func() {
		copied <- demuxCopy(&stdout, &stderr, att.Reader)
	}()
	select {
	case err = <-copied:
		att.Close()
	case <-ctx.Done():
		att.Close() // unblocks the copy
		<-copied
		return ExecResult{}, ctx.Err()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return ExecResult{}, fmt.Errorf("read output: %w", err)
	}
	// The output ends when the process does (or when it closes both
	// streams); the daemon records the exit code a moment later.
	wctx, cancel := context.WithTimeout(ctx, execGrace)
	defer cancel()
	var res client.ExecInspectResult
	err = retry.Poll(wctx, retry.Policy{Initial: time.Millisecond, Max: 50 * time.Millisecond, Jitter: 0.1}, func(ctx context.Context) error {
		var err error
		if res, err = c.cli.ExecInspect(ctx, created.ID, client.ExecInspectOptions{}); err != nil {
			return retry.Permanent(classify(err))
		}
		if res.Running {
			return errors.New("still running")
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return ExecResult{}, fmt.Errorf("the command closed its output but was still running %s later", execGrace)
		}
		return ExecResult{}, err
	}
	return ExecResult{ExitCode: res.ExitCode, Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}, nil
}

// CopyTo implements API.
func (c *Client) CopyTo(ctx context.Context, id, dir string, r io.Reader) error {
	_, err := c.cli.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: dir, Content: r})
	return classify(err)
}

// CopyFrom implements API.
func (c *Client) CopyFrom(ctx context.Context, id, path string) (io.ReadCloser, error) {
	res, err := c.cli.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: path})
	if err != nil {
		return nil, classify(err)
	}
	return res.Content, nil
}

// Events implements API.
func (c *Client) Events(ctx context.Context, f Filter) (<-chan Event, <-chan error) {
	synth := make(chan string)
	synthesized := false
	if id, ok := healthSubscription(f); ok && c.engineKind(ctx) == KindPodman {
		synthesized = true
		go c.podmanHealth(ctx, id, func(status string) bool {
			select {
			case synth <- status:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}
	ev := c.cli.Events(ctx, client.EventsListOptions{Filters: filters(f)})
	msgs := make(chan Event)
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		defer close(msgs)
		for {
			select {
			case h := <-synth:
				select {
				case msgs <- Event{Type: "container", Action: "health_status: " + h, ID: f["container"][0], Time: time.Now()}:
				case <-ctx.Done():
					errs <- ctx.Err()
					return
				}
			case m, ok := <-ev.Messages:
				if !ok {
					errs <- io.ErrUnexpectedEOF
					return
				}
				e := Event{Type: string(m.Type), Action: string(m.Action), ID: m.Actor.ID, Attributes: m.Actor.Attributes}
				if h := m.Actor.Attributes["health_status"]; e.Action == "health_status" && h != "" {
					// Podman says the status in an attribute; Docker in the
					// action: "health_status: healthy".
					e.Action = "health_status: " + h
				}
				if synthesized && e.Action == "health_status" {
					continue // a Podman event without the status: podmanHealth reports it
				}
				if m.TimeNano != 0 {
					e.Time = time.Unix(0, m.TimeNano)
				}
				select {
				case msgs <- e:
				case <-ctx.Done():
					errs <- ctx.Err()
					return
				}
			case err := <-ev.Err:
				if err == nil {
					err = io.ErrUnexpectedEOF
				}
				if ctx.Err() != nil {
					err = ctx.Err()
				}
				errs <- classify(err)
				return
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			}
		}
	}()
	return msgs, errs
}

// ImageInspect implements API.
func (c *Client) ImageInspect(ctx context.Context, ref string) (Image, error) {
	res, err := c.cli.ImageInspect(ctx, ref)
	if err != nil {
		return Image{}, classify(err)
	}
	img := Image{
		ID: res.ID, RepoTags: res.RepoTags, RepoDigests: res.RepoDigests,
		OS: res.Os, Arch: res.Architecture, Variant: res.Variant, Created: parseTime(res.Created), Size: res.Size,
	}
	if res.Config != nil {
		img.Labels = res.Config.Labels
	}
	return img, nil
}

// encodeAuth is the X-Registry-Auth header value for a.
func encodeAuth(a *AuthConfig) (string, error) {
	if a == nil {
		return "", nil
	}
	b, err := json.Marshal(registryAuth(*a))
	if err != nil {
		return "", err
	}
	return base64.URLEncoding.EncodeToString(b), nil
}

// registryAuth maps credentials to the SDK's.
func registryAuth(a AuthConfig) registry.AuthConfig {
	return registry.AuthConfig{
		Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken, ServerAddress: a.ServerAddress,
	}
}

// ImagePull implements API.
func (c *Client) ImagePull(ctx context.Context, ref string, opts PullOptions, progress func(Progress)) error {
	auth, err := encodeAuth(opts.Auth)
	if err != nil {
		return err
	}
	po := client.ImagePullOptions{RegistryAuth: auth}
	if p := platform(opts.Platform); p != nil {
		po.Platforms = []ocispec.Platform{*p}
	}
	resp, err := c.cli.ImagePull(ctx, ref, po)
	if err != nil {
		return classify(err)
	}
	defer resp.Close()
	return ReadProgress(resp, func(m ProgressMessage) {
		if progress != nil {
			progress(Progress{ID: m.ID, Status: m.Status, Current: m.Detail.Current, Total: m.Detail.Total})
		}
	})
}

// ImageBuild implements API.
func (c *Client) ImageBuild(ctx context.Context, r io.Reader, opts BuildOptions, output func(string)) error {
	args := make(map[string]*string, len(opts.BuildArgs))
	for k, v := range opts.BuildArgs {
		args[k] = &v
	}
	auths := make(map[string]registry.AuthConfig, len(opts.Auth))
	for host, a := range opts.Auth {
		auths[host] = registryAuth(a)
	}
	res, err := c.cli.ImageBuild(ctx, r, client.ImageBuildOptions{
		Tags:        opts.Tags,
		Dockerfile:  opts.Dockerfile,
		BuildArgs:   args,
		Target:      opts.Target,
		Labels:      opts.Labels,
		NoCache:     opts.NoCache,
		PullParent:  opts.PullParent,
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
		Platforms:   platforms(opts.Platform),
		AuthConfigs: auths,
	})
	if err != nil {
		return classify(err)
	}
	defer res.Body.Close()
	return ReadProgress(res.Body, func(m ProgressMessage) {
		if output == nil || m.Stream == "" {
			return
		}
		for _, line := range strings.Split(strings.TrimRight(m.Stream, "\n"), "\n") {
			if line != "" {
				output(line)
			}
		}
	})
}

func platforms(s string) []ocispec.Platform {
	if p := platform(s); p != nil {
		return []ocispec.Platform{*p}
	}
	return nil
}

// ImageLoad implements API.
func (c *Client) ImageLoad(ctx context.Context, r io.Reader) error {
	res, err := c.cli.ImageLoad(ctx, r)
	if err != nil {
		return classify(err)
	}
	defer res.Close()
	return ReadProgress(res, nil)
}

// ImageList implements API.
func (c *Client) ImageList(ctx context.Context, f Filter) ([]Image, error) {
	res, err := c.cli.ImageList(ctx, client.ImageListOptions{Filters: filters(f)})
	if err != nil {
		return nil, classify(err)
	}
	out := make([]Image, 0, len(res.Items))
	for _, s := range res.Items {
		out = append(out, Image{ID: s.ID, RepoTags: s.RepoTags, RepoDigests: s.RepoDigests, Labels: s.Labels, Created: time.Unix(s.Created, 0), Size: s.Size})
	}
	return out, nil
}

// ImageRemove implements API.
func (c *Client) ImageRemove(ctx context.Context, ref string) error {
	_, err := c.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true})
	return classify(err)
}

// NetworkCreate implements API.
func (c *Client) NetworkCreate(ctx context.Context, s NetworkSpec) (string, error) {
	opts := client.NetworkCreateOptions{Driver: "bridge", Internal: s.Internal, Labels: s.Labels}
	if c.engineKind(ctx) == KindPodman {
		// Podman's bridges reach one another unless isolated (netavark's
		// isolate option); Docker isolates its bridge networks always.
		opts.Options = map[string]string{"isolate": "true"}
	}
	if s.Subnet.IsValid() {
		cfg := network.IPAMConfig{Subnet: s.Subnet}
		if s.Gateway.IsValid() {
			cfg.Gateway = s.Gateway
		}
		opts.IPAM = &network.IPAM{Driver: "default", Config: []network.IPAMConfig{cfg}}
	}
	res, err := c.cli.NetworkCreate(ctx, s.Name, opts)
	// Podman (4.3, netavark) fails a create now and then while another
	// bridge comes or goes: "route ip+net: no such network interface". The
	// network was not made: try again, a few times.
	for try := 0; err != nil && try < 3 && strings.Contains(err.Error(), "route ip+net: no such network interface"); try++ {
		select {
		case <-ctx.Done():
			return "", classify(err)
		case <-time.After(time.Duration(100*(try+1)) * time.Millisecond):
		}
		res, err = c.cli.NetworkCreate(ctx, s.Name, opts)
	}
	if err != nil {
		return "", classify(err)
	}
	return res.ID, nil
}

// NetworkRemove implements API.
func (c *Client) NetworkRemove(ctx context.Context, id string) error {
	_, err := c.cli.NetworkRemove(ctx, id, client.NetworkRemoveOptions{})
	return classify(err)
}

// NetworkConnect implements API.
func (c *Client) NetworkConnect(ctx context.Context, net, ctr string, aliases []string) error {
	_, err := c.cli.NetworkConnect(ctx, net, client.NetworkConnectOptions{
		Container: ctr, EndpointConfig: &network.EndpointSettings{Aliases: aliases},
	})
	return classify(err)
}

// NetworkDisconnect implements API.
func (c *Client) NetworkDisconnect(ctx context.Context, net, ctr string) error {
	_, err := c.cli.NetworkDisconnect(ctx, net, client.NetworkDisconnectOptions{Container: ctr, Force: true})
	return classify(err)
}

// NetworkList implements API.
func (c *Client) NetworkList(ctx context.Context, f Filter) ([]Network, error) {
	res, err := c.cli.NetworkList(ctx, client.NetworkListOptions{Filters: filters(f)})
	if err != nil {
		return nil, classify(err)
	}
	out := make([]Network, 0, len(res.Items))
	for _, n := range res.Items {
		nw := Network{ID: n.ID, Name: n.Name, Driver: n.Driver, Labels: n.Labels, Created: n.Created}
		for _, cfg := range n.IPAM.Config {
			nw.Subnets = append(nw.Subnets, Subnet{Prefix: cfg.Subnet, Gateway: cfg.Gateway})
		}
		out = append(out, nw)
	}
	return out, nil
}

// VolumeList implements API.
func (c *Client) VolumeList(ctx context.Context, f Filter) ([]Volume, error) {
	res, err := c.cli.VolumeList(ctx, client.VolumeListOptions{Filters: filters(f)})
	if err != nil {
		return nil, classify(err)
	}
	out := make([]Volume, 0, len(res.Items))
	for _, v := range res.Items {
		if !hasLabels(v.Labels, f["label"]) {
			continue // Podman (4.x) ORs a volume list's label filters
		}
		out = append(out, Volume{Name: v.Name, Labels: v.Labels, Created: parseTime(v.CreatedAt)})
	}
	return out, nil
}

// VolumeRemove implements API.
func (c *Client) VolumeRemove(ctx context.Context, name string) error {
	_, err := c.cli.VolumeRemove(ctx, name, client.VolumeRemoveOptions{Force: true})
	return classify(err)
}

// fromInspect maps a full inspect response.
func fromInspect(r container.InspectResponse) Container {
	out := Container{ID: r.ID, Name: strings.TrimPrefix(r.Name, "/"), ImageID: r.Image, Created: parseTime(r.Created), Volumes: volumesOf(r.Mounts)}
	if r.Config != nil {
		out.Image = r.Config.Image
		out.Labels = r.Config.Labels
	}
	if s := r.State; s != nil {
		out.Status = string(s.Status)
		out.ExitCode = s.ExitCode
		out.OOMKilled = s.OOMKilled
		out.Error = s.Error
		out.Started = parseTime(s.StartedAt)
		out.Finished = parseTime(s.FinishedAt)
		if h := s.Health; h != nil && h.Status != "" && h.Status != container.NoHealthcheck {
			out.Health, out.HealthFailingStreak = string(h.Status), h.FailingStreak
			for _, l := range h.Log {
				if l != nil {
					out.HealthLog = append(out.HealthLog, HealthResult{Start: l.Start, End: l.End, ExitCode: l.ExitCode, Output: l.Output})
				}
			}
		}
	}
	if ns := r.NetworkSettings; ns != nil {
		out.Ports = portsFromMap(ns.Ports)
		out.Networks = endpointsFrom(ns.Networks)
	}
	return out
}

// fromSummary maps an entry of a container list.
func fromSummary(s container.Summary) Container {
	out := Container{ID: s.ID, Image: s.Image, ImageID: s.ImageID, Status: string(s.State), Labels: s.Labels, Created: time.Unix(s.Created, 0)}
	if len(s.Names) > 0 {
		out.Name = strings.TrimPrefix(s.Names[0], "/")
	}
	if out.Status == "exited" {
		out.ExitCode = exitCodeFromStatus(s.Status)
	}
	if s.Health != nil && s.Health.Status != "" && s.Health.Status != container.NoHealthcheck {
		out.Health, out.HealthFailingStreak = string(s.Health.Status), s.Health.FailingStreak
	}
	for _, p := range s.Ports {
		if p.PublicPort == 0 {
			continue
		}
		if out.Ports == nil {
			out.Ports = map[string][]netip.AddrPort{}
		}
		key := strconv.Itoa(int(p.PrivatePort)) + "/" + p.Type
		out.Ports[key] = append(out.Ports[key], netip.AddrPortFrom(p.IP.Unmap(), p.PublicPort))
	}
	for _, bindings := range out.Ports {
		sortBindings(bindings)
	}
	if s.NetworkSettings != nil {
		out.Networks = endpointsFrom(s.NetworkSettings.Networks)
	}
	out.Volumes = volumesOf(s.Mounts)
	return out
}

// volumesOf lists the names of the volume mounts.
func volumesOf(ms []container.MountPoint) []string {
	var out []string
	for _, m := range ms {
		if m.Type == mount.TypeVolume && m.Name != "" {
			out = append(out, m.Name)
		}
	}
	return out
}

// exitCodeFromStatus reads the code out of "Exited (3) 2 seconds ago".
func exitCodeFromStatus(status string) int {
	rest, ok := strings.CutPrefix(status, "Exited (")
	if !ok {
		return 0
	}
	num, _, ok := strings.Cut(rest, ")")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(num)
	return n
}

func portsFromMap(pm network.PortMap) map[string][]netip.AddrPort {
	if len(pm) == 0 {
		return nil
	}
	out := make(map[string][]netip.AddrPort, len(pm))
	for p, bindings := range pm {
		key := p.String()
		for _, b := range bindings {
			hp, err := strconv.ParseUint(b.HostPort, 10, 16)
			if err != nil {
				continue
			}
			out[key] = append(out[key], netip.AddrPortFrom(b.HostIP.Unmap(), uint16(hp)))
		}
		sortBindings(out[key])
	}
	return out
}

// sortBindings orders a port's host bindings by address, then port, so that
// an inspect and a list give the same order whatever the daemon's.
func sortBindings(b []netip.AddrPort) {
	slices.SortFunc(b, func(x, y netip.AddrPort) int { return x.Compare(y) })
}

func endpointsFrom(nets map[string]*network.EndpointSettings) map[string]Attachment {
	if len(nets) == 0 {
		return nil
	}
	out := make(map[string]Attachment, len(nets))
	for name, ep := range nets {
		if ep == nil {
			continue
		}
		out[name] = Attachment{NetworkID: ep.NetworkID, IP: addrString(ep.IPAddress), Gateway: addrString(ep.Gateway), Aliases: ep.Aliases}
	}
	return out
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// parseTime parses Docker's RFC 3339 times; Docker's "zero" time
// (0001-01-01…) and garbage give the zero time.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// ProgressMessage is one line of the daemon's JSON progress stream (pull,
// push, build, load). Old daemons set "error"; newer ones "errorDetail".
type ProgressMessage struct {
	ID          string `json:"id"`
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Detail struct {
		Current int64 `json:"current"`
		Total   int64 `json:"total"`
	} `json:"progressDetail"`
}

// ReadProgress reads a progress stream to its end, calling onMsg for each
// message when it is not nil, and returns the first error the daemon put in
// the stream (as a *StreamError), or a read error (a stream cut short).
func ReadProgress(r io.Reader, onMsg func(ProgressMessage)) error {
	dec := json.NewDecoder(r)
	var streamErr error
	for {
		var m ProgressMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return streamErr
			}
			return errors.Join(streamErr, fmt.Errorf("read progress stream: %w", err))
		}
		if onMsg != nil {
			onMsg(m)
		}
		if streamErr == nil {
			switch {
			case m.ErrorDetail != nil && m.ErrorDetail.Message != "":
				streamErr = &StreamError{Message: m.ErrorDetail.Message}
			case m.Error != "":
				streamErr = &StreamError{Message: m.Error}
			}
		}
	}
}
