package heph

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/moby/moby/client"
)

// Labels heph puts on every container, network and volume it creates. The
// "heph." prefix is reserved: user labels may not use it.
const (
	// LabelManaged marks a resource as made by heph; its value is "true".
	LabelManaged = "heph.managed"
	// LabelSession holds the id of the Orchestrator session that made it.
	LabelSession = "heph.session"
	// LabelService holds a container's service name.
	LabelService = "heph.service"
	// LabelTest holds the name of the test that made it, when there is one.
	LabelTest = "heph.test"
	// LabelPID holds the process id of the process that made it.
	LabelPID = "heph.pid"
	// LabelHost holds the host name of the machine where that process ran.
	LabelHost = "heph.host"
	// LabelCreated holds the creation time, RFC 3339 in UTC.
	LabelCreated = "heph.created"

	labelPrefix = "heph."
)

// Defaults for the lifecycle primitives.
const (
	// DefaultStopTimeout is how long StopContainer waits after SIGTERM before
	// the daemon sends SIGKILL.
	DefaultStopTimeout = 10 * time.Second
	// DefaultPullTimeout bounds an image pull when ContainerConfig.PullTimeout
	// is zero.
	DefaultPullTimeout = 5 * time.Minute

	// namePrefix starts the name of every container and network heph makes.
	namePrefix = "heph-"
)

// Orchestrator creates, starts, stops, inspects and removes containers and
// networks on one Docker daemon, and tracks the ones it created so that
// Teardown can remove them all. It is safe for concurrent use.
//
// Make one with NewOrchestrator and release it with Close. Resources it
// created are not removed by Close: call Teardown (the test-facing builder
// does this for you in t.Cleanup).
type Orchestrator struct {
	api      dockerAPI
	endpoint dockerEndpoint
	session  string
	ownsAPI  bool
	labels   map[string]string // session labels put on every resource

	accessState

	mu                sync.Mutex
	managedContainers map[string]string // container ID → name
	managedNetworks   map[string]string // network ID → name
	pulls             map[string]*pullCall
}

// Option configures NewOrchestrator.
type Option interface {
	apply(*orchestratorOptions)
}

type orchestratorOptions struct {
	api     dockerAPI
	ownsAPI bool
	session string
}

type optionFunc func(*orchestratorOptions)

func (f optionFunc) apply(o *orchestratorOptions) { f(o) }

// WithDockerClient makes the Orchestrator use a Docker SDK client the caller
// built (for a custom transport or TLS setup) instead of finding the daemon
// from the environment. The caller keeps ownership: Close does not close it.
func WithDockerClient(c *client.Client) Option {
	return optionFunc(func(o *orchestratorOptions) {
		o.api = c
		o.ownsAPI = false
	})
}

// NewOrchestrator connects to the Docker daemon and returns an Orchestrator
// with a fresh session id.
//
// The daemon is found as the docker CLI finds it: DOCKER_HOST; else
// DOCKER_CONTEXT or the current context of ~/.docker/config.json; else the
// rootless socket $XDG_RUNTIME_DIR/docker.sock; else /var/run/docker.sock.
// DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and DOCKER_API_VERSION are honoured, and
// the API version is negotiated with the daemon. When no daemon answers the
// error matches ErrDockerUnavailable and names every place that was tried.
func NewOrchestrator(opts ...Option) (*Orchestrator, error) {
	var o orchestratorOptions
	for _, opt := range opts {
		opt.apply(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var endpoint dockerEndpoint
	if o.api == nil {
		cli, ep, err := connectDaemon(ctx, osDaemonEnv())
		if err != nil {
			return nil, err
		}
		o.api, o.ownsAPI, endpoint = cli, true, ep
	} else {
		if _, err := o.api.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
			return nil, fmt.Errorf("%w: ping the given Docker client: %w", ErrDockerUnavailable, err)
		}
		if c, ok := o.api.(*client.Client); ok {
			endpoint = dockerEndpoint{Host: c.DaemonHost(), Source: "WithDockerClient"}
		}
	}
	return newOrchestrator(o, endpoint), nil
}

func newOrchestrator(o orchestratorOptions, endpoint dockerEndpoint) *Orchestrator {
	session := o.session
	if session == "" {
		session = uuid.NewString()
	}
	host, _ := os.Hostname()
	return &Orchestrator{
		api:      o.api,
		endpoint: endpoint,
		session:  session,
		ownsAPI:  o.ownsAPI,
		labels: map[string]string{
			LabelManaged: "true",
			LabelSession: session,
			LabelPID:     strconv.Itoa(os.Getpid()),
			LabelHost:    host,
		},
		accessState:       accessState{hostEnv: defaultHostEnv()},
		managedContainers: map[string]string{},
		managedNetworks:   map[string]string{},
		pulls:             map[string]*pullCall{},
	}
}

// Session returns the id this Orchestrator puts in the heph.session label of
// everything it creates.
func (o *Orchestrator) Session() string { return o.session }

// DaemonHost returns the address of the Docker daemon in use, in DOCKER_HOST
// form (for example unix:///var/run/docker.sock).
func (o *Orchestrator) DaemonHost() string { return o.endpoint.Host }

// Close releases the connection to the daemon when the Orchestrator opened
// it. It does not remove any container or network: call Teardown first.
func (o *Orchestrator) Close() error {
	if !o.ownsAPI {
		return nil
	}
	return o.api.Close()
}

// resourceLabels returns the labels for a new resource: the session labels,
// the creation time, then extra (already validated).
func (o *Orchestrator) resourceLabels(extra ...map[string]string) map[string]string {
	l := make(map[string]string, len(o.labels)+4)
	for k, v := range o.labels {
		l[k] = v
	}
	l[LabelCreated] = time.Now().UTC().Format(time.RFC3339)
	for _, m := range extra {
		for k, v := range m {
			l[k] = v
		}
	}
	return l
}

// newName returns "heph-<part>-<8 hex>".
func newName(part string) string {
	return namePrefix + part + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:8]
}

// isLocal reports whether the daemon runs on this machine: a unix socket or
// named pipe, or TCP to a loopback address. An unknown host counts as local.
func (e dockerEndpoint) isLocal() bool {
	host := e.Host
	switch {
	case host == "", strings.HasPrefix(host, "unix://"), strings.HasPrefix(host, "npipe://"):
		return true
	}
	return isLoopback(e.hostname())
}

// hostname returns the host part of a tcp:// (or http[s]://) daemon address,
// "" for sockets.
func (e dockerEndpoint) hostname() string {
	rest, ok := strings.CutPrefix(e.Host, "tcp://")
	if !ok {
		if _, r, found := strings.Cut(e.Host, "://"); found && !strings.HasPrefix(e.Host, "unix") && !strings.HasPrefix(e.Host, "npipe") {
			rest, ok = r, true
		}
	}
	if !ok {
		return ""
	}
	rest, _, _ = strings.Cut(rest, "/")
	if h, _, err := net.SplitHostPort(rest); err == nil {
		return h
	}
	return strings.Trim(rest, "[]")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
