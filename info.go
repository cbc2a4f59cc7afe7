package heph

import (
	"net/netip"
	"strings"
	"time"

	"github.com/heph-go/heph/internal/engine"
)

// ContainerStatus is a container's state as Docker spells it.
type ContainerStatus string

// Container states. Anything else Docker reports is StatusUnknown.
const (
	StatusUnknown    ContainerStatus = "unknown"
	StatusCreated    ContainerStatus = "created"
	StatusRunning    ContainerStatus = "running"
	StatusPaused     ContainerStatus = "paused"
	StatusRestarting ContainerStatus = "restarting"
	StatusRemoving   ContainerStatus = "removing"
	StatusExited     ContainerStatus = "exited"
	StatusDead       ContainerStatus = "dead"
)

func parseStatus(s string) ContainerStatus {
	switch st := ContainerStatus(s); st {
	case StatusCreated, StatusRunning, StatusPaused, StatusRestarting, StatusRemoving, StatusExited, StatusDead:
		return st
	}
	return StatusUnknown
}

// NetworkEndpoint is a container's attachment to one network.
type NetworkEndpoint struct {
	// NetworkID is the network's ID.
	NetworkID string
	// IP is the container's IPv4 address on the network ("" when stopped).
	IP string
	// Gateway is the network's gateway address as seen by the container.
	Gateway string
	// Aliases are the container's DNS names on the network besides its name.
	Aliases []string
}

// ContainerInfo describes a container.
type ContainerInfo struct {
	// ID is the full container ID.
	ID string
	// Name is the container name, without Docker's leading "/".
	Name string
	// Service is the service name, from the heph.service label.
	Service string
	// Image is the image reference the container was created from.
	Image string
	// Status is the container's state.
	Status ContainerStatus
	// ExitCode is the exit code of the last run, once it has exited.
	ExitCode int
	// OOMKilled reports that the kernel killed the container for memory.
	OOMKilled bool
	// Error is the daemon's error message for the last start, if any.
	Error string
	// Health is "" when the image has no HEALTHCHECK, else "starting",
	// "healthy" or "unhealthy"; HealthLog holds the output of the last few
	// checks, oldest first.
	Health    string
	HealthLog []string
	// Ports maps container ports ("8080/tcp") to their host bindings
	// (address and port).
	Ports map[string][]netip.AddrPort
	// Networks maps network names to the container's endpoint on them.
	Networks map[string]NetworkEndpoint
	// Labels are the container's labels, heph's included.
	Labels map[string]string
	// Created, Started and Finished are zero when unknown (ListContainers
	// reports only Created).
	Created, Started, Finished time.Time
}

// Running reports whether the container is running (or paused or
// restarting: its process exists).
func (i ContainerInfo) Running() bool {
	return i.Status == StatusRunning || i.Status == StatusPaused || i.Status == StatusRestarting
}

// infoFrom maps the seam's description of a container.
func infoFrom(c engine.Container) ContainerInfo {
	info := ContainerInfo{
		ID: c.ID, Name: c.Name, Service: c.Labels[LabelService], Image: c.Image,
		Status: parseStatus(c.Status), ExitCode: c.ExitCode, OOMKilled: c.OOMKilled, Error: c.Error,
		Health: c.Health, Ports: c.Ports, Labels: c.Labels,
		Created: c.Created, Started: c.Started, Finished: c.Finished,
	}
	for _, h := range c.HealthLog {
		info.HealthLog = append(info.HealthLog, strings.TrimSpace(h.Output))
	}
	if len(c.Networks) > 0 {
		info.Networks = make(map[string]NetworkEndpoint, len(c.Networks))
		for name, a := range c.Networks {
			info.Networks[name] = NetworkEndpoint(a)
		}
	}
	return info
}
