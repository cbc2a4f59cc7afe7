package heph

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/heph-go/heph/internal/shared"
)

// startShared takes the shared container of r (see package internal/shared:
// found, created once, or replaced when broken) for a test (st) or for Run
// (st nil), waits with the strategy, joins it to the WithNetwork networks and
// the test's, and runs WithPerTest's setup. Terminate lets it go.
func (r ContainerRequest) startShared(ctx context.Context, o *Orchestrator, st *testState) (*Container, error) {
	idle, _ := shared.IdleFromEnv() // checked by checkShared
	store, err := shared.Open()
	if err != nil {
		return nil, err
	}
	image, err := r.provideImage(ctx, o, st)
	if err != nil {
		return nil, err
	}
	img, err := o.api.ImageInspect(ctx, image)
	if err != nil {
		return nil, wrap("inspect image", image, err, ErrImageNotFound)
	}
	service, key := r.service(), r.sharedKey(o, store, img.ID)
	if err := o.watch(); err != nil {
		return nil, err
	}
	first, err := shared.Process.Hold(store, key, idle)
	if err != nil {
		return nil, err
	}
	if err := o.lease(key); first && err != nil {
		shared.Process.Release(store, key)
		return nil, err
	}
	shared.Process.SweepOnce(ctx, shared.Expiry{API: o.api, Store: store, Host: o.labels[LabelHost], Idle: idle}, key)

	ctx, cancel := context.WithTimeout(ctx, r.opts.startupTimeout)
	defer cancel()
	inner := r // what a take that finds no container creates
	inner.shared, inner.perTest, inner.networks, inner.provided = false, nil, nil, image
	inner.cfg.sharedKey, inner.cfg.Service = key, service
	var c *Container
	take := shared.Take{API: o.api, Store: store, Key: key, Name: shared.Name(service, key), Ports: r.cfg.ExposedPorts,
		Create: func(ctx context.Context) (string, error) {
			made, err := inner.start(ctx, o, nil, "", nil)
			if err != nil && made != nil {
				err = errors.Join(err, o.removeAfterFailure(ctx, made.id))
			}
			if err != nil {
				return "", err
			}
			return made.id, nil
		},
		Ready: func(ctx context.Context, id string) error {
			c = &Container{o: o, id: id, name: shared.Name(service, key), service: service, opts: r.opts, host: o.ports(ctx).Host, logsSince: time.Now()}
			c.attach = &shared.Attachment{API: o.api, ID: id, Name: c.name, Service: service, NotFound: ErrNetworkNotFound}
			if err := c.ready(ctx); err != nil {
				return r.decorate(ctx, c, err)
			}
			return nil
		}}
	taken, err := take.Run(ctx)
	if err != nil {
		return nil, err
	}
	if taken.Replaced && st != nil {
		st.t.Logf("heph: replaced shared container %s: %s", c.name, taken.Why)
	}
	for _, n := range r.networks {
		if err := c.attach.Join(ctx, n.name); err != nil {
			return nil, errors.Join(err, c.attach.Leave(context.WithoutCancel(ctx)))
		}
	}
	if st != nil {
		c.t = st.t
		if err := st.addShared(ctx, c); err != nil {
			return nil, errors.Join(err, c.attach.Leave(context.WithoutCancel(ctx)))
		}
		if r.logsToTest || envLogsOn() {
			st.followLogs(c)
		}
	}
	return c, c.setUp(ctx, r.perTest)
}

// checkShared refuses, before any Docker call, what a shared request cannot
// do, and a bad HEPH_SHARED_IDLE.
func (r ContainerRequest) checkShared() error {
	if _, err := shared.IdleFromEnv(); r.shared && err != nil {
		return invalid(shared.EnvIdle, os.Getenv(shared.EnvIdle), err.Error())
	}
	if r.shared && r.opts.graceful {
		return invalid("WithGracefulStop", r.opts.stopTimeout, "cannot be combined with Shared: a shared container is removed by its idle time, not by a test")
	}
	return nil
}

// addShared adds the shared container c to the test: on its network now if
// the test has one, else when the test makes it (st.network). A test that
// uses only shared containers makes no network.
func (st *testState) addShared(ctx context.Context, c *Container) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.net != nil {
		if err := c.attach.Join(ctx, st.net.name); err != nil {
			return err
		}
	}
	st.containers = append(st.containers, c)
	return nil
}

// setUp runs WithPerTest's setup (nil: none) and keeps its release for
// Terminate.
func (c *Container) setUp(ctx context.Context, setup func(context.Context, *Container) (func(context.Context) error, error)) error {
	if setup == nil {
		return nil
	}
	release, err := setup(ctx, c)
	if err != nil {
		return fmt.Errorf("heph: WithPerTest setup on container %s: %w", c.name, err)
	}
	c.release = release
	return nil
}

// lease tells this process's watchdog that the process holds the shared
// container of key (nothing with HEPH_REAPER=off): once the process has
// ended, the watchdog waits out the idle time and removes it unless another
// holder holds it.
func (o *Orchestrator) lease(key string) error {
	if on, _ := reaperOn(); !on || o.watchdogs == nil {
		return nil
	}
	return o.watchdogs.Lease(o.watchdogEndpoint(), key)
}

// sharedKey is the content key of r with the image's content ID, for the
// holders of store (its ports are normalised by WithExposedPorts and
// WithHostPort).
func (r ContainerRequest) sharedKey(o *Orchestrator, store *shared.Store, imageID string) string {
	c := r.cfg
	s := shared.Spec{Daemon: o.endpoint.Host, Host: o.labels[LabelHost], Store: store.Dir(), ImageID: imageID, Platform: c.Platform, Service: r.service(),
		Cmd: c.Cmd, Entrypoint: c.Entrypoint, Env: c.Env, Ports: c.ExposedPorts, HostPorts: c.HostPorts, Labels: c.Labels, User: c.User, Dir: c.WorkingDir}
	for _, m := range c.Mounts {
		s.Mounts = append(s.Mounts, shared.Mount{Type: string(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	for _, f := range r.files {
		s.Files = append(s.Files, shared.File(f))
	}
	return s.Key()
}
