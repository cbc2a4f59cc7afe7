package heph

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/reclaim"
	"github.com/heph-go/heph/internal/redact"
	"github.com/heph-go/heph/internal/rules"
	"github.com/heph-go/heph/internal/shared"
)

// CreateContainer validates cfg, pulls the image as cfg.PullPolicy says
// (when it is not present locally, by default; after cfg.ImageSubstitution
// and HEPH_REGISTRY_MIRROR, with the credentials of its registry: see
// PullImage), and creates (but does not start) the container: named
// heph-<service>-<8 hex>, with hostname and network alias = the service name,
// labelled with heph.managed, heph.session and heph.service plus cfg.Labels,
// its ports published on 127.0.0.1 (local daemon) to random or fixed host
// ports. Start it with Container.Start, which waits for cfg.WaitStrategy.
//
// An invalid cfg is refused before any Docker call with an error matching
// ErrInvalidConfig. A missing image gives ErrImageNotFound; credentials its
// registry refuses give ErrRegistryAuth. If a step after the create fails,
// the container is removed before the error is returned; a container (and
// volume) the daemon still creates after ctx ended is removed in the
// background, and Teardown waits for that.
// The container is tracked until it is removed (Container.Terminate,
// RemoveContainer) or Teardown removes it.
func (o *Orchestrator) CreateContainer(ctx context.Context, cfg ContainerConfig) (*Container, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if _, err := reaperOn(); err != nil {
		return nil, err
	}
	if cfg.Service == "" {
		cfg.Service = rules.ServiceFromImage(cfg.Image)
	}
	image, err := o.provide(ctx, cfg.imageRequest())
	if err != nil {
		return nil, err
	}
	cfg.Image = image
	return o.createContainer(ctx, cfg, startOptions{stopTimeout: cfg.StopTimeout, strategy: cfg.WaitStrategy})
}

// createContainer creates a container from a validated config whose image
// is present.
func (o *Orchestrator) createContainer(ctx context.Context, cfg ContainerConfig, so startOptions) (*Container, error) {
	if cfg.Service == "" {
		cfg.Service = rules.ServiceFromImage(cfg.Image)
	}
	if err := o.watch(); err != nil {
		return nil, err
	}

	name := newName(cfg.Service)
	if cfg.sharedKey != "" {
		name = shared.Name(cfg.Service, cfg.sharedKey)
	} else {
		o.trackVolumes(cfg.Mounts) // a shared container's volumes outlive the session too
	}
	access := o.ports(ctx)
	spec := o.spec(name, access.BindIP, cfg)
	id, err := o.reclaims.Create(ctx, reclaim.Container(o.api), name, func(ctx context.Context) (string, error) {
		return o.api.ContainerCreate(ctx, spec)
	})
	if err != nil {
		return nil, wrap("create container", name, err, ErrImageNotFound)
	}
	if cfg.sharedKey == "" { // a shared container outlives its Orchestrator's Teardown
		o.track(id, name)
	}
	c := &Container{o: o, id: id, name: name, service: cfg.Service, host: access.Host, opts: so, secrets: redact.EnvSecrets(cfg.Env)}

	for _, n := range cfg.Networks[min(1, len(cfg.Networks)):] {
		err := o.api.NetworkConnect(ctx, n, id, []string{cfg.Service})
		if err != nil {
			err = wrap("connect container "+fmt.Sprintf("%q", name)+" to network", n, err, ErrNetworkNotFound)
			return nil, errors.Join(err, o.removeAfterFailure(ctx, id))
		}
	}
	return c, nil
}

// trackVolumes notes the named volumes of mounts: Teardown removes those
// heph made once no container uses them.
func (o *Orchestrator) trackVolumes(mounts []Mount) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range mounts {
		if m.Type == MountVolume && m.Source != "" {
			o.volumes[m.Source] = true
		}
	}
}

// removeAfterFailure force-removes a container a failed operation left
// behind, under a context that outlives the caller's cancellation.
func (o *Orchestrator) removeAfterFailure(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := o.RemoveContainer(ctx, id); err != nil && !errors.Is(err, ErrContainerNotFound) {
		return fmt.Errorf("clean up after the failure: %w", err)
	}
	return nil
}

// RemoveContainer force-removes a container, running or not, with its
// anonymous volumes, and stops tracking it. A container that is already gone
// gives an error matching ErrContainerNotFound (and is no longer tracked).
func (o *Orchestrator) RemoveContainer(ctx context.Context, id string) error {
	name := o.nameOf(id)
	err := o.api.ContainerRemove(ctx, id)
	if err == nil || errors.Is(err, engine.ErrNotFound) {
		o.untrack(id)
	}
	return wrap("remove container", name, err, ErrContainerNotFound)
}

// ListContainers returns every container whose name starts with "heph-",
// running or not, whoever created it.
func (o *Orchestrator) ListContainers(ctx context.Context) ([]ContainerInfo, error) {
	cs, err := o.api.ContainerList(ctx, engine.Filter{}.Add("name", "^/"+namePrefix))
	if err != nil {
		return nil, wrap("list containers", "", err, nil)
	}
	infos := make([]ContainerInfo, 0, len(cs))
	for _, c := range cs {
		if len(c.Name) >= len(namePrefix) && c.Name[:len(namePrefix)] == namePrefix {
			infos = append(infos, infoFrom(c))
		}
	}
	return infos, nil
}

// InspectContainer returns the current state of a container. A container
// that does not exist gives ErrContainerNotFound.
func (o *Orchestrator) InspectContainer(ctx context.Context, id string) (ContainerInfo, error) {
	c, err := o.api.ContainerInspect(ctx, id)
	if err != nil {
		return ContainerInfo{}, wrap("inspect container", o.nameOf(id), err, ErrContainerNotFound)
	}
	return infoFrom(c), nil
}
