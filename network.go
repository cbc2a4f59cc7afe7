package heph

import (
	"context"
	"errors"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// NetworkConfig describes a network for Orchestrator.CreateNetwork.
type NetworkConfig struct {
	// Labels are added to the network. Keys may not start with "heph.".
	Labels map[string]string
	// Internal makes a network without a route to the outside world.
	Internal bool

	internalLabels map[string]string
}

// NetworkInfo identifies a network heph created.
type NetworkInfo struct {
	// ID is the network's ID.
	ID string
	// Name is heph-net-<8 hex>; containers join the network by it.
	Name string
}

func (c NetworkConfig) validate() error {
	var errs []error
	for _, k := range sortedKeys(c.Labels) {
		switch {
		case k == "":
			errs = append(errs, invalid("NetworkConfig.Labels key", k, "is empty"))
		case len(k) >= len(labelPrefix) && k[:len(labelPrefix)] == labelPrefix:
			errs = append(errs, invalid("NetworkConfig.Labels key", k, `uses the "heph." prefix, which is reserved for heph`))
		}
	}
	return errors.Join(errs...)
}

// CreateNetwork creates a bridge network named heph-net-<8 hex>, labelled
// with this session, and tracks it until RemoveNetwork or Teardown. Docker's
// default address pools hold about 30 bridge networks; when they are used up
// the error matches ErrNetworkPoolExhausted.
func (o *Orchestrator) CreateNetwork(ctx context.Context, cfg NetworkConfig) (NetworkInfo, error) {
	if err := cfg.validate(); err != nil {
		return NetworkInfo{}, err
	}
	if err := o.watch(); err != nil {
		return NetworkInfo{}, err
	}
	name := newName("net")
	res, err := o.api.NetworkCreate(ctx, name, client.NetworkCreateOptions{
		Driver:   "bridge",
		Internal: cfg.Internal,
		Labels:   o.resourceLabels(cfg.Labels, cfg.internalLabels),
	})
	if err != nil {
		if isPoolExhausted(err) {
			return NetworkInfo{}, &opError{op: "create network", subject: name, sentinel: ErrNetworkPoolExhausted, err: err}
		}
		return NetworkInfo{}, wrap("create network", name, err, nil)
	}
	o.mu.Lock()
	o.managedNetworks[res.ID] = name
	o.mu.Unlock()
	return NetworkInfo{ID: res.ID, Name: name}, nil
}

// RemoveNetwork removes a network and stops tracking it. Containers still
// attached make it fail; a network already gone gives ErrNetworkNotFound.
func (o *Orchestrator) RemoveNetwork(ctx context.Context, id string) error {
	o.mu.Lock()
	name, ok := o.managedNetworks[id]
	o.mu.Unlock()
	if !ok {
		name = id
	}
	_, err := o.api.NetworkRemove(ctx, id, client.NetworkRemoveOptions{})
	if err == nil || cerrdefs.IsNotFound(err) {
		o.mu.Lock()
		delete(o.managedNetworks, id)
		o.mu.Unlock()
	}
	return wrap("remove network", name, err, ErrNetworkNotFound)
}

// ConnectContainer attaches a container to a network (name or ID) with the
// given DNS aliases.
func (o *Orchestrator) ConnectContainer(ctx context.Context, networkID, containerID string, aliases ...string) error {
	_, err := o.api.NetworkConnect(ctx, networkID, client.NetworkConnectOptions{
		Container:      containerID,
		EndpointConfig: &network.EndpointSettings{Aliases: aliases},
	})
	return wrap("connect container "+quote(o.nameOf(containerID))+" to network", networkID, err, nil)
}
