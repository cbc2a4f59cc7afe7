// Package engine is heph's seam to the Docker Engine API: the narrow
// interface API, in heph's own types ("create this container spec",
// "inspect → Container"), and its one implementation over the moby SDK
// (Dial). It is the only package of heph that imports the SDK, so an SDK
// upgrade touches nothing else.
//
// Errors keep the SDK's error as their cause and add a class heph tests with
// errors.Is: ErrNotFound, ErrConflict, ErrUnavailable. Streams the daemon
// multiplexes (logs, exec output) come back demultiplexed; progress streams
// (pull, build, load) are read to their end here, and an error the daemon
// puts in one is returned as a *StreamError.
//
// Layers above fake API in their unit tests (package enginetest); this
// package is tested against a fake Engine API served over HTTP.
package engine

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/heph-go/heph/internal/errs"
	"github.com/heph-go/heph/internal/port"
)

// API is every call heph makes to a Docker daemon. Implementations are safe
// for concurrent use and return promptly when ctx ends.
type API interface {
	// Ping checks that the daemon answers and, unless the version is fixed,
	// negotiates the API version.
	Ping(ctx context.Context) error
	// Version and Info describe the daemon.
	Version(ctx context.Context) (Version, error)
	Info(ctx context.Context) (Info, error)
	// APIVersion is the API version in use (after Ping's negotiation).
	APIVersion() string
	// Close releases the connection.
	Close() error

	ContainerCreate(ctx context.Context, spec ContainerSpec) (id string, err error)
	ContainerStart(ctx context.Context, id string) error
	// ContainerStop sends SIGTERM, then SIGKILL after timeout (rounded up
	// to whole seconds by the daemon).
	ContainerStop(ctx context.Context, id string, timeout time.Duration) error
	// ContainerRemove force-removes a container with its anonymous volumes.
	ContainerRemove(ctx context.Context, id string) error
	// ContainerList lists containers, running or not, matching f.
	ContainerList(ctx context.Context, f Filter) ([]Container, error)
	ContainerInspect(ctx context.Context, id string) (Container, error)
	// ContainerLogs returns stdout and stderr demultiplexed into one stream.
	ContainerLogs(ctx context.Context, id string, opts LogOptions) (io.ReadCloser, error)
	// ContainerWait returns once the container is not running (at once for
	// one that is not).
	ContainerWait(ctx context.Context, id string) error
	// Exec runs cmd in a running container and waits for it to end.
	Exec(ctx context.Context, id string, cmd []string) (ExecResult, error)
	// CopyTo extracts the tar stream r at dir in the container.
	CopyTo(ctx context.Context, id, dir string, r io.Reader) error
	// CopyFrom returns path in the container as a tar stream.
	CopyFrom(ctx context.Context, id, path string) (io.ReadCloser, error)

	// Events follows the daemon's events matching f until ctx ends or the
	// stream breaks; then errs delivers the reason (ctx's error, or the
	// break) and both channels close.
	Events(ctx context.Context, f Filter) (msgs <-chan Event, errs <-chan error)

	// ImageInspect fails with ErrNotFound when the image is not present.
	ImageInspect(ctx context.Context, ref string) (Image, error)
	// ImagePull pulls ref, reading the progress to its end; progress, when
	// not nil, sees every message.
	ImagePull(ctx context.Context, ref string, opts PullOptions, progress func(Progress)) error
	// ImageBuild builds the context tar r; output, when not nil, sees each
	// line the build prints.
	ImageBuild(ctx context.Context, r io.Reader, opts BuildOptions, output func(string)) error
	// ImageLoad loads an image tar (docker save / OCI layout) into the daemon.
	ImageLoad(ctx context.Context, r io.Reader) error
	// ImageList lists images matching f.
	ImageList(ctx context.Context, f Filter) ([]Image, error)
	// ImageRemove removes an image (force, keeping untagged parents).
	ImageRemove(ctx context.Context, ref string) error

	NetworkCreate(ctx context.Context, spec NetworkSpec) (id string, err error)
	NetworkRemove(ctx context.Context, id string) error
	NetworkConnect(ctx context.Context, network, container string, aliases []string) error
	NetworkDisconnect(ctx context.Context, network, container string) error
	NetworkList(ctx context.Context, f Filter) ([]Network, error)

	VolumeList(ctx context.Context, f Filter) ([]Volume, error)
	VolumeRemove(ctx context.Context, name string) error
}

// Error classes, matched with errors.Is on any error API returns.
var (
	// ErrNotFound: the container, network, volume, image or exec does not
	// exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the daemon refused because of the object's state (a name
	// in use, a removal already in progress, a network with endpoints).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the daemon could not be reached at all.
	ErrUnavailable = errors.New("daemon unreachable")
)

// Filter selects objects in a list call: key → values ("label" →
// ["heph.managed=true"], "name" → ["^/heph-"]). Values of one key are ORed
// by the daemon, except "label", whose values must all match.
type Filter map[string][]string

// Add returns f with key=value added (f is created when nil).
func (f Filter) Add(key string, values ...string) Filter {
	if f == nil {
		f = Filter{}
	}
	f[key] = append(f[key], values...)
	return f
}

// Version is the daemon's answer to GET /version.
type Version struct {
	Product, Version          string // "Docker Engine - Community", "20.10.24"
	APIVersion, MinAPIVersion string // the range the daemon speaks
	OS, Arch                  string // "linux", "amd64"
	Components                []string
}

// Info is the part of GET /info heph reads.
type Info struct {
	Name            string
	OSType          string
	SecurityOptions []string
	// Rootless is true when SecurityOptions has name=rootless.
	Rootless bool
}

// PortSpec publishes one container port.
type PortSpec struct {
	Port     port.Port
	HostIP   string // "" for every interface
	HostPort int    // 0 for a random one
}

// MountSpec is one mount of a container.
type MountSpec struct {
	Type     string // "bind", "volume", "tmpfs"
	Source   string
	Target   string
	ReadOnly bool
	// VolumeLabels label a named volume when the daemon creates it for this
	// mount (an existing volume keeps its labels).
	VolumeLabels map[string]string
}

// ContainerSpec is a container to create.
type ContainerSpec struct {
	Name, Image, Hostname string
	Cmd, Entrypoint       []string
	Env                   []string // "K=V"
	WorkingDir, User      string
	Labels                map[string]string
	Ports                 []PortSpec
	Mounts                []MountSpec
	// Network, when set, is joined at create with Aliases.
	Network string
	Aliases []string
	// Platform, when set, is "os/arch[/variant]".
	Platform string
	// StopTimeout, when set, is the container's own stop timeout.
	StopTimeout *time.Duration
}

// Container describes a container, from an inspect or a list.
type Container struct {
	ID, Name, Image string // Name without the leading "/"
	ImageID         string
	// Status is Docker's state: created, running, paused, restarting,
	// removing, exited, dead (or "" when unknown).
	Status    string
	ExitCode  int
	OOMKilled bool
	Error     string
	// Health is "" without a HEALTHCHECK, else starting, healthy, unhealthy.
	Health              string
	HealthFailingStreak int
	HealthLog           []HealthResult
	// Ports maps "8080/tcp" to its host bindings.
	Ports map[string][]netip.AddrPort
	// Networks maps a network's name to the container's attachment to it.
	Networks map[string]Attachment
	// Volumes are the names of the volumes it mounts (named and
	// anonymous), in the order the daemon gives them.
	Volumes []string
	Labels  map[string]string
	// Created, Started, Finished are zero when unknown (a list gives only
	// Created).
	Created, Started, Finished time.Time
}

// HealthResult is one health check's outcome.
type HealthResult struct {
	Start, End time.Time
	ExitCode   int
	Output     string
}

// Attachment is a container's endpoint on a network.
type Attachment struct {
	NetworkID, IP, Gateway string
	Aliases                []string
}

// LogOptions selects the output ContainerLogs returns.
type LogOptions struct {
	Follow bool
	Tail   int       // 0 means all
	Since  time.Time // zero means from the start
}

// ExecResult is the outcome of Exec.
type ExecResult struct {
	ExitCode       int
	Stdout, Stderr []byte
}

// Event is one message of the daemon's event stream.
type Event struct {
	Type, Action, ID string
	Attributes       map[string]string
	Time             time.Time
}

// Image describes a local image.
type Image struct {
	ID          string
	RepoTags    []string
	RepoDigests []string
	OS, Arch    string
	Variant     string
	Created     time.Time
	Labels      map[string]string
	Size        int64
}

// AuthConfig are credentials for one registry. Its fields are secrets: never
// print them.
type AuthConfig struct {
	Username, Password string
	// IdentityToken is an OAuth2 refresh token the daemon trades for a
	// registry token; RegistryToken is a bearer token sent as it is.
	IdentityToken string
	RegistryToken string
	ServerAddress string
}

// PullOptions qualify a pull.
type PullOptions struct {
	Auth     *AuthConfig // nil: anonymous
	Platform string      // "" for the daemon's own
}

// Progress is one message of a pull's (or load's) progress stream.
type Progress struct {
	ID, Status     string
	Current, Total int64
}

// BuildOptions qualify a build (the classic builder; BuildKit is not used).
type BuildOptions struct {
	Tags       []string
	Dockerfile string // relative to the context; "" for "Dockerfile"
	BuildArgs  map[string]string
	Target     string
	Labels     map[string]string
	NoCache    bool
	PullParent bool
	Platform   string
	// Auth are the credentials for the base images' registries, by
	// registry host.
	Auth map[string]AuthConfig
}

// NetworkSpec is a network to create (always a bridge).
type NetworkSpec struct {
	Name     string
	Labels   map[string]string
	Internal bool
	// Subnet and Gateway, when valid, are the network's own address range
	// (instead of one from the daemon's default pools).
	Subnet  netip.Prefix
	Gateway netip.Addr
}

// Network describes a network.
type Network struct {
	ID, Name, Driver string
	Labels           map[string]string
	Created          time.Time
	// Subnets are its IPAM configs.
	Subnets []Subnet
	// Containers are the IDs of the containers attached to it (inspect
	// only; a list leaves it empty).
	Containers []string
}

// Subnet is one IPAM config of a network.
type Subnet struct {
	Prefix  netip.Prefix
	Gateway netip.Addr
}

// Volume describes a volume.
type Volume struct {
	Name    string
	Labels  map[string]string
	Created time.Time
}

// StreamError is an error the daemon reported inside a progress stream
// (pull, build, load): the request was accepted, the work failed.
type StreamError struct {
	Message string
}

func (e *StreamError) Error() string { return e.Message }

// Op wraps an error of an API call as heph reports it: "heph: <op>
// "<subject>": <cause>", adding the sentinel notFound when the daemon says
// the subject does not exist, or errs.DockerUnavailable when it could not be
// reached. nil stays nil.
func Op(op, subject string, err, notFound error) error {
	if err == nil {
		return nil
	}
	var sentinel error
	switch {
	case notFound != nil && errors.Is(err, ErrNotFound):
		sentinel = notFound
	case errors.Is(err, ErrUnavailable):
		sentinel = errs.DockerUnavailable
	}
	return errs.Op(op, subject, sentinel, err)
}

// HealthStatuses follows the daemon's health_status events for container id
// and sends each new status ("healthy", "unhealthy", "starting"). The
// channel closes when the event stream breaks or ctx ends.
func HealthStatuses(ctx context.Context, api API, id string) <-chan string {
	msgs, _ := api.Events(ctx, Filter{}.Add("type", "container").Add("container", id).Add("event", "health_status"))
	out := make(chan string)
	go func() {
		defer close(out)
		for m := range msgs {
			// "health_status: healthy" (newer daemons may add the status to
			// the filter name too).
			status := strings.TrimSpace(strings.TrimPrefix(m.Action, "health_status:"))
			select {
			case out <- status:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
