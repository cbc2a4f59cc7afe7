package heph

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// CreateContainer validates cfg, pulls the image when it is not present
// locally, and creates (but does not start) the container: named
// heph-<service>-<8 hex>, with hostname and network alias = the service name,
// labelled with heph.managed, heph.session and heph.service plus cfg.Labels,
// its ports published on 127.0.0.1 (local daemon) to random or fixed host
// ports. It returns the container ID.
//
// An invalid cfg is refused before any Docker call with an error matching
// ErrInvalidConfig. A missing image gives ErrImageNotFound. If a step after
// the create fails, the container is removed before the error is returned.
// The container is tracked until RemoveContainer or Teardown removes it.
func (o *Orchestrator) CreateContainer(ctx context.Context, cfg ContainerConfig) (string, error) {
	if err := cfg.validate(); err != nil {
		return "", err
	}
	if err := o.ensureImage(ctx, cfg.Image, cfg.PullTimeout); err != nil {
		return "", err
	}
	return o.createContainer(ctx, cfg)
}

// createContainer creates a container from a validated config whose image
// is present.
func (o *Orchestrator) createContainer(ctx context.Context, cfg ContainerConfig) (string, error) {
	if cfg.Service == "" {
		cfg.Service = ServiceFromImage(cfg.Image)
	}
	if err := o.watch(); err != nil {
		return "", err
	}

	name := newName(cfg.Service)
	opts := o.createOptions(name, o.access(ctx).bindIP, cfg)
	res, err := o.api.ContainerCreate(ctx, opts)
	if err != nil {
		return "", wrap("create container", name, err, ErrImageNotFound)
	}
	o.track(res.ID, name)

	for _, n := range cfg.Networks[min(1, len(cfg.Networks)):] {
		if err := o.ConnectContainer(ctx, n, res.ID, cfg.Service); err != nil {
			return "", errors.Join(err, o.removeAfterFailure(ctx, res.ID))
		}
	}
	return res.ID, nil
}

// removeAfterFailure force-removes a container a failed operation left
// behind, under a context that outlives the caller's cancellation.
func (o *Orchestrator) removeAfterFailure(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := o.RemoveContainer(ctx, id); err != nil && !errors.Is(err, ErrContainerNotFound) {
		return fmt.Errorf("heph: clean up after failure: %w", err)
	}
	return nil
}

// createOptions turns a validated config into the SDK request.
func (o *Orchestrator) createOptions(name, bindIP string, cfg ContainerConfig) client.ContainerCreateOptions {
	env := make([]string, 0, len(cfg.Env))
	for _, k := range sortedKeys(cfg.Env) {
		env = append(env, k+"="+cfg.Env[k])
	}
	labels := o.resourceLabels(cfg.Labels, cfg.internalLabels, map[string]string{LabelService: cfg.Service})

	exposed := network.PortSet{}
	bindings := network.PortMap{}
	hostIP, _ := netip.ParseAddr(bindIP) // zero Addr = all interfaces
	hostPorts := map[string]int{}
	for p, hp := range cfg.HostPorts {
		pp, _ := parsePort(p) // validated
		hostPorts[pp.String()] = hp
	}
	for _, p := range cfg.ExposedPorts {
		pp, _ := parsePort(p) // validated
		dp, _ := network.PortFrom(uint16(pp.num), network.IPProtocol(pp.proto))
		exposed[dp] = struct{}{}
		b := network.PortBinding{HostIP: hostIP}
		if hp := hostPorts[pp.String()]; hp != 0 {
			b.HostPort = strconv.Itoa(hp)
		}
		bindings[dp] = []network.PortBinding{b}
	}

	mounts := make([]mount.Mount, 0, len(cfg.Mounts))
	for _, m := range cfg.Mounts {
		mm := mount.Mount{Type: mount.Type(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
		if m.Type == MountVolume && m.Source != "" {
			// Applied only when the daemon creates the volume for this mount,
			// so a pre-existing volume is never claimed by the session.
			mm.VolumeOptions = &mount.VolumeOptions{Labels: o.resourceLabels()}
		}
		mounts = append(mounts, mm)
	}

	var netCfg *network.NetworkingConfig
	if len(cfg.Networks) > 0 {
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			cfg.Networks[0]: {Aliases: []string{cfg.Service}},
		}}
	}
	return client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image:        cfg.Image,
			Hostname:     cfg.Service,
			Cmd:          cfg.Cmd,
			Entrypoint:   cfg.Entrypoint,
			Env:          env,
			WorkingDir:   cfg.WorkingDir,
			User:         cfg.User,
			ExposedPorts: exposed,
			Labels:       labels,
		},
		HostConfig: &container.HostConfig{
			PortBindings: bindings,
			Mounts:       mounts,
		},
		NetworkingConfig: netCfg,
	}
}

// StartContainer starts a created or stopped container.
func (o *Orchestrator) StartContainer(ctx context.Context, id string) error {
	_, err := o.api.ContainerStart(ctx, id, client.ContainerStartOptions{})
	return wrap("start container", o.nameOf(id), err, ErrContainerNotFound)
}

// StopOption changes how StopContainer stops a container.
type StopOption interface {
	applyStop(*stopOptions)
}

type stopOptions struct {
	timeout time.Duration
}

type stopTimeout time.Duration

func (d stopTimeout) applyStop(o *stopOptions) { o.timeout = time.Duration(d) }

// StopTimeout sets how long StopContainer waits after SIGTERM before SIGKILL,
// instead of DefaultStopTimeout. Docker counts in whole seconds, so the value
// is rounded up to the next second; zero kills at once.
func StopTimeout(d time.Duration) StopOption { return stopTimeout(d) }

// StopContainer stops a running container gracefully: SIGTERM, then SIGKILL
// after DefaultStopTimeout (or StopTimeout). Stopping a stopped container is
// not an error. ctx should outlive the timeout.
func (o *Orchestrator) StopContainer(ctx context.Context, id string, opts ...StopOption) error {
	so := stopOptions{timeout: DefaultStopTimeout}
	for _, opt := range opts {
		opt.applyStop(&so)
	}
	if so.timeout < 0 {
		return invalid("StopTimeout", so.timeout, "is negative")
	}
	secs := int(math.Ceil(so.timeout.Seconds()))
	_, err := o.api.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs})
	return wrap("stop container", o.nameOf(id), err, ErrContainerNotFound)
}

// RemoveContainer force-removes a container, running or not, with its
// anonymous volumes, and stops tracking it. A container that is already gone
// gives an error matching ErrContainerNotFound (and is no longer tracked).
func (o *Orchestrator) RemoveContainer(ctx context.Context, id string) error {
	name := o.nameOf(id)
	_, err := o.api.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err == nil || cerrdefs.IsNotFound(err) {
		o.untrack(id)
	}
	return wrap("remove container", name, err, ErrContainerNotFound)
}

// ListContainers returns every container whose name starts with "heph-",
// running or not, whoever created it.
func (o *Orchestrator) ListContainers(ctx context.Context) ([]ContainerInfo, error) {
	res, err := o.api.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("name", "^/"+namePrefix),
	})
	if err != nil {
		return nil, wrap("list containers", "", err, nil)
	}
	infos := make([]ContainerInfo, 0, len(res.Items))
	for _, s := range res.Items {
		if info := infoFromSummary(s); hasNamePrefix(info.Name) {
			infos = append(infos, info)
		}
	}
	return infos, nil
}

// InspectContainer returns the current state of a container. A container
// that does not exist gives ErrContainerNotFound.
func (o *Orchestrator) InspectContainer(ctx context.Context, id string) (ContainerInfo, error) {
	res, err := o.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return ContainerInfo{}, wrap("inspect container", o.nameOf(id), err, ErrContainerNotFound)
	}
	return infoFromInspect(res.Container), nil
}

// Teardown removes every container this Orchestrator created and still
// tracks, concurrently, then every network it created, then the named
// volumes the daemon created for its mounts. It returns every failure joined;
// resources already gone are not failures. It may be called more than once.
func (o *Orchestrator) Teardown(ctx context.Context) error {
	o.mu.Lock()
	ids := make([]string, 0, len(o.managedContainers))
	for id := range o.managedContainers {
		ids = append(ids, id)
	}
	o.mu.Unlock()

	errs := eachConcurrently(ids, func(_ int, id string) error {
		if err := o.RemoveContainer(ctx, id); !errors.Is(err, ErrContainerNotFound) {
			return err
		}
		return nil
	})

	o.mu.Lock()
	nets := make([]string, 0, len(o.managedNetworks))
	for id := range o.managedNetworks {
		nets = append(nets, id)
	}
	o.mu.Unlock()
	for _, id := range nets {
		if err := o.RemoveNetwork(ctx, id); !errors.Is(err, ErrNetworkNotFound) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, o.removeSessionVolumes(ctx))
	return errors.Join(errs...)
}

// removeSessionVolumes removes the named volumes labelled with this session.
func (o *Orchestrator) removeSessionVolumes(ctx context.Context) error {
	res, err := o.api.VolumeList(ctx, client.VolumeListOptions{
		Filters: make(client.Filters).Add("label", LabelSession+"="+o.session),
	})
	if err != nil {
		return wrap("list volumes of session", o.session, err, nil)
	}
	var errs []error
	for _, v := range res.Items {
		if _, err := o.api.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, wrap("remove volume", v.Name, err, nil))
		}
	}
	return errors.Join(errs...)
}

// ManagedContainers returns the IDs and names of the containers this
// Orchestrator created and has not removed (ID → name).
func (o *Orchestrator) ManagedContainers() map[string]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.managedContainers)
}

func (o *Orchestrator) track(id, name string) {
	o.mu.Lock()
	o.managedContainers[id] = name
	o.mu.Unlock()
}

func (o *Orchestrator) untrack(id string) {
	o.mu.Lock()
	delete(o.managedContainers, id)
	o.mu.Unlock()
}

// nameOf returns the name of a tracked container, else the ID as given
// (shortened), for error messages.
func (o *Orchestrator) nameOf(id string) string {
	o.mu.Lock()
	name, ok := o.managedContainers[id]
	o.mu.Unlock()
	if ok {
		return name
	}
	if len(id) == 64 {
		return id[:12]
	}
	return id
}
