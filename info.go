package heph

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// ContainerStatus is a container's state as Docker reports it.
type ContainerStatus int

// Container states. Anything Docker reports that is not one of these is
// StatusUnknown.
const (
	StatusUnknown ContainerStatus = iota
	StatusCreated
	StatusRunning
	StatusPaused
	StatusRestarting
	StatusRemoving
	StatusExited
	StatusDead
)

var statusNames = [...]string{
	StatusUnknown:    "unknown",
	StatusCreated:    "created",
	StatusRunning:    "running",
	StatusPaused:     "paused",
	StatusRestarting: "restarting",
	StatusRemoving:   "removing",
	StatusExited:     "exited",
	StatusDead:       "dead",
}

// String returns the state as Docker spells it ("running", "exited", …).
func (s ContainerStatus) String() string {
	if s < 0 || int(s) >= len(statusNames) {
		return "unknown"
	}
	return statusNames[s]
}

// parseStatus maps Docker's state string onto ContainerStatus.
func parseStatus(s string) ContainerStatus {
	for i, name := range statusNames {
		if name == s && i != int(StatusUnknown) {
			return ContainerStatus(i)
		}
	}
	return StatusUnknown
}

// PortBinding is where a container port is published on the host.
type PortBinding struct {
	// HostIP is the host address the port is bound to ("127.0.0.1", or
	// "0.0.0.0" / "::" for every interface).
	HostIP string
	// HostPort is the host port number.
	HostPort int
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

// Health is the state of a container's HEALTHCHECK.
type Health struct {
	// Status is "starting", "healthy" or "unhealthy".
	Status string
	// FailingStreak counts consecutive failed checks.
	FailingStreak int
	// Log holds the last few check results, oldest first.
	Log []HealthResult
}

// HealthResult is the outcome of one health check.
type HealthResult struct {
	// Start and End bound the check's run.
	Start, End time.Time
	// ExitCode is 0 for healthy, 1 for unhealthy, anything else an error
	// running the check.
	ExitCode int
	// Output is what the check printed.
	Output string
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
	// Health is nil when the image has no HEALTHCHECK.
	Health *Health
	// Ports maps container ports ("8080/tcp") to their host bindings.
	Ports map[string][]PortBinding
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

// infoFromInspect maps a full inspect response.
func infoFromInspect(r container.InspectResponse) ContainerInfo {
	info := ContainerInfo{
		ID:      r.ID,
		Name:    strings.TrimPrefix(r.Name, "/"),
		Created: parseTime(r.Created),
	}
	if r.Config != nil {
		info.Image = r.Config.Image
		info.Labels = r.Config.Labels
		info.Service = r.Config.Labels[LabelService]
	}
	if s := r.State; s != nil {
		info.Status = parseStatus(string(s.Status))
		info.ExitCode = s.ExitCode
		info.OOMKilled = s.OOMKilled
		info.Error = s.Error
		info.Started = parseTime(s.StartedAt)
		info.Finished = parseTime(s.FinishedAt)
		if h := s.Health; h != nil && h.Status != "" && h.Status != container.NoHealthcheck {
			info.Health = &Health{Status: string(h.Status), FailingStreak: h.FailingStreak}
			for _, l := range h.Log {
				if l != nil {
					info.Health.Log = append(info.Health.Log, HealthResult{Start: l.Start, End: l.End, ExitCode: l.ExitCode, Output: l.Output})
				}
			}
		}
	}
	if ns := r.NetworkSettings; ns != nil {
		info.Ports = portsFromMap(ns.Ports)
		info.Networks = endpointsFrom(ns.Networks)
	}
	return info
}

// infoFromSummary maps an entry of a container list.
func infoFromSummary(s container.Summary) ContainerInfo {
	info := ContainerInfo{
		ID:      s.ID,
		Image:   s.Image,
		Status:  parseStatus(string(s.State)),
		Labels:  s.Labels,
		Service: s.Labels[LabelService],
		Created: time.Unix(s.Created, 0),
	}
	if len(s.Names) > 0 {
		info.Name = strings.TrimPrefix(s.Names[0], "/")
	}
	if info.Status == StatusExited {
		info.ExitCode = exitCodeFromStatus(s.Status)
	}
	if s.Health != nil && s.Health.Status != "" && s.Health.Status != container.NoHealthcheck {
		info.Health = &Health{Status: string(s.Health.Status), FailingStreak: s.Health.FailingStreak}
	}
	for _, p := range s.Ports {
		if p.PublicPort == 0 {
			continue
		}
		if info.Ports == nil {
			info.Ports = map[string][]PortBinding{}
		}
		key := strconv.Itoa(int(p.PrivatePort)) + "/" + p.Type
		info.Ports[key] = append(info.Ports[key], PortBinding{HostIP: addrString(p.IP), HostPort: int(p.PublicPort)})
	}
	if s.NetworkSettings != nil {
		info.Networks = endpointsFrom(s.NetworkSettings.Networks)
	}
	return info
}

var exitedStatus = regexp.MustCompile(`^Exited \((-?\d+)\)`)

// exitCodeFromStatus reads the code out of "Exited (3) 2 seconds ago".
func exitCodeFromStatus(status string) int {
	if m := exitedStatus.FindStringSubmatch(status); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func portsFromMap(pm network.PortMap) map[string][]PortBinding {
	if len(pm) == 0 {
		return nil
	}
	out := make(map[string][]PortBinding, len(pm))
	for p, bindings := range pm {
		key := p.String()
		for _, b := range bindings {
			hp, err := strconv.Atoi(b.HostPort)
			if err != nil {
				continue
			}
			out[key] = append(out[key], PortBinding{HostIP: addrString(b.HostIP), HostPort: hp})
		}
		sort.Slice(out[key], func(i, j int) bool { return out[key][i].HostIP < out[key][j].HostIP })
	}
	return out
}

func endpointsFrom(nets map[string]*network.EndpointSettings) map[string]NetworkEndpoint {
	if len(nets) == 0 {
		return nil
	}
	out := make(map[string]NetworkEndpoint, len(nets))
	for name, ep := range nets {
		if ep == nil {
			continue
		}
		out[name] = NetworkEndpoint{
			NetworkID: ep.NetworkID,
			IP:        addrString(ep.IPAddress),
			Gateway:   addrString(ep.Gateway),
			Aliases:   ep.Aliases,
		}
	}
	return out
}

type addr interface {
	IsValid() bool
	String() string
}

func addrString(a addr) string {
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

func hasNamePrefix(name string) bool { return strings.HasPrefix(name, namePrefix) }
