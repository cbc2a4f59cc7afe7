package heph

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/port"
	"github.com/heph-go/heph/internal/shared"
)

// checkShared refuses, before any Docker call, what a shared request
// cannot do, and a bad HEPH_SHARED_IDLE.
func (r ContainerRequest) checkShared() error {
	if !r.shared {
		return nil
	}
	if r.opts.graceful {
		return invalid("WithGracefulStop", r.opts.stopTimeout, "cannot be combined with Shared: a shared container is removed by its last holder's idle time, not by a test")
	}
	if _, err := shared.IdleFromEnv(); err != nil {
		return invalid(shared.EnvIdle, os.Getenv(shared.EnvIdle), err.Error())
	}
	return nil
}

// sharedLabels turns a resource's labels into a shared container's (key
// set): heph.shared=<key> instead of heph.session and heph.pid, so that no
// session's teardown or watchdog removes it.
func sharedLabels(l map[string]string, key string) map[string]string {
	if key != "" {
		delete(l, LabelSession)
		delete(l, LabelPID)
		l[labels.Shared] = key
	}
	return l
}

// startShared takes the shared container of r — creating it, joining it, or
// replacing a broken one (see package internal/shared) — for a test (st) or
// for Run (st nil), waits with the strategy, joins it to the WithNetwork
// networks and the test's under its service name, and runs WithPerTest's
// setup. The container it returns is let go, not removed, by Terminate.
func (r ContainerRequest) startShared(ctx context.Context, o *Orchestrator, st *testState) (*Container, error) {
	idle, _ := shared.IdleFromEnv() // checked by check
	store, err := shared.Open()
	if err != nil {
		return nil, err
	}
	cfg := r.cfg
	cfg.Service = r.service()
	image, err := r.provideImage(ctx, o, st)
	if err != nil {
		return nil, err
	}
	img, err := o.api.ImageInspect(ctx, image)
	if err != nil {
		return nil, wrap("inspect image", image, err, ErrImageNotFound)
	}
	key := r.sharedSpec(o, cfg.Service, img.ID).Key()
	name := shared.Name(cfg.Service, key)
	if err := o.watch(); err != nil {
		return nil, err
	}
	if first, err := shared.Process.Hold(store, key, idle); err != nil {
		return nil, err
	} else if first {
		if err := o.lease(key); err != nil {
			shared.Process.Release(store, key)
			return nil, err
		}
	}
	if shared.Process.FirstSweep() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, _ = shared.Expiry{API: o.api, Store: store, Host: o.labels[LabelHost], Idle: idle}.Sweep(sctx, key) // best effort
		cancel()
	}

	ctx, cancel := context.WithTimeout(ctx, r.opts.startupTimeout)
	defer cancel()
	inner := r
	inner.shared, inner.perTest, inner.networks = false, nil, nil
	inner.cfg.sharedKey, inner.cfg.Service, inner.provided = key, cfg.Service, image
	take := shared.Take{API: o.api, Store: store, Key: key, Name: name, Ports: r.sharedPorts(),
		Create: func(ctx context.Context) (string, error) {
			c, err := inner.start(ctx, o, nil, "", nil)
			if err != nil && c != nil {
				err = errors.Join(err, o.removeAfterFailure(ctx, c.id))
			}
			if err != nil {
				return "", err
			}
			return c.id, nil
		}}
	for attempt := 0; ; attempt++ {
		taken, err := take.Run(ctx)
		if err != nil {
			return nil, err
		}
		if taken.Replaced && st != nil {
			st.t.Logf("heph: replaced shared container %s: %s", name, taken.Why)
		}
		c := &Container{o: o, id: taken.ID, name: name, service: cfg.Service, opts: r.opts, host: o.ports(ctx).Host, logsSince: time.Now()}
		c.leave = c.detach
		if err := c.ready(ctx); err != nil {
			info, ierr := o.api.ContainerInspect(ctx, c.id)
			if attempt == 0 && (ierr != nil || shared.Check(info, take.Ports) != nil) {
				take.Bad = c.id // it broke: replace it, once
				continue
			}
			return nil, r.decorate(ctx, c, err)
		}
		for _, n := range r.networks {
			if err := c.join(ctx, n); err != nil {
				return nil, errors.Join(err, c.detach(context.WithoutCancel(ctx)))
			}
		}
		if st != nil {
			c.t = st.t
			if err := st.addShared(ctx, c); err != nil {
				return nil, errors.Join(err, c.detach(context.WithoutCancel(ctx)))
			}
			if r.logsToTest || envLogsOn() {
				st.followLogs(c)
			}
		}
		return c, c.setUp(ctx, r.perTest)
	}
}

// addShared adds the shared container c to the test: on its network now if
// the test has one, else when the test makes it (st.network). A test that
// uses only shared containers makes no network.
func (st *testState) addShared(ctx context.Context, c *Container) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.net != nil {
		if err := c.join(ctx, st.net); err != nil {
			return err
		}
	}
	st.containers = append(st.containers, c)
	return nil
}

// join attaches the shared container c to n with its service name as
// alias; Terminate detaches it again.
func (c *Container) join(ctx context.Context, n *Network) error {
	if err := c.o.api.NetworkConnect(ctx, n.name, c.id, []string{c.service}); err != nil {
		return wrap("connect shared container "+fmt.Sprintf("%q", c.name)+" to network", n.name, err, ErrNetworkNotFound)
	}
	c.mu.Lock()
	c.joined = append(c.joined, n)
	c.mu.Unlock()
	return nil
}

// detach disconnects the shared container c from every network it joined.
func (c *Container) detach(ctx context.Context) error {
	c.mu.Lock()
	nets := c.joined
	c.joined = nil
	c.mu.Unlock()
	var errs []error
	for _, n := range nets {
		if err := c.o.api.NetworkDisconnect(ctx, n.name, c.id); err != nil && !errors.Is(err, engine.ErrNotFound) {
			errs = append(errs, wrap("disconnect shared container "+fmt.Sprintf("%q", c.name)+" from network", n.name, err, nil))
		}
	}
	return errors.Join(errs...)
}

// setUp runs WithPerTest's setup on the ready container c (nil: nothing to
// do) and keeps its release for Terminate.
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
// container of key, so that once the process has ended the watchdog waits
// out the idle time and removes it unless another holder holds it. It does
// nothing with HEPH_REAPER=off.
func (o *Orchestrator) lease(key string) error {
	if on, _ := reaperOn(); !on || o.watchdogs == nil {
		return nil
	}
	return o.watchdogs.Lease(o.watchdogEndpoint(), key)
}

// sharedPorts returns the published ports, normalised ("8080/tcp").
func (r ContainerRequest) sharedPorts() []string {
	ports := make([]string, 0, len(r.cfg.ExposedPorts))
	for _, p := range r.cfg.ExposedPorts {
		pp, _ := port.Parse(p) // validated
		ports = append(ports, pp.String())
	}
	return ports
}

// sharedSpec is the normalised content of r for its key, with the image's
// content ID.
func (r ContainerRequest) sharedSpec(o *Orchestrator, service, imageID string) shared.Spec {
	hostPorts := map[string]int{}
	for p, hp := range r.cfg.HostPorts {
		pp, _ := port.Parse(p) // validated
		hostPorts[pp.String()] = hp
	}
	s := shared.Spec{
		Daemon: o.endpoint.Host, Host: o.labels[LabelHost], ImageID: imageID, Platform: r.cfg.Platform, Service: service,
		Cmd: r.cfg.Cmd, Entrypoint: r.cfg.Entrypoint, Env: r.cfg.Env, Ports: r.sharedPorts(), HostPorts: hostPorts,
		Labels: r.cfg.Labels, User: r.cfg.User, Dir: r.cfg.WorkingDir,
	}
	for _, m := range r.cfg.Mounts {
		s.Mounts = append(s.Mounts, shared.Mount{Type: string(m.Type), Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	for _, f := range r.files {
		s.Files = append(s.Files, shared.File{Path: f.path, Mode: f.mode, Content: f.content})
	}
	return s
}
