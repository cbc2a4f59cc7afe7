package heph

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/heph-go/heph/internal/daemon"
	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/envflag"
	"github.com/heph-go/heph/internal/imagepull"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/parallel"
	"github.com/heph-go/heph/internal/reclaim"
	"github.com/heph-go/heph/internal/registryauth"
	"github.com/heph-go/heph/internal/retry"
	"github.com/heph-go/heph/internal/sessions"
	"github.com/heph-go/heph/internal/watchdog"
)

// Labels heph puts on every container, network and volume it creates. The
// "heph." prefix is reserved: user labels may not use it.
const (
	// LabelManaged marks a resource as made by heph; its value is "true".
	LabelManaged = labels.Managed
	// LabelSession holds the id of the Orchestrator session that made it.
	LabelSession = labels.Session
	// LabelService holds a container's service name.
	LabelService = labels.Service
	// LabelTest holds the name of the test that made it, when there is one.
	LabelTest = labels.Test
	// LabelPID holds the process id of the process that made it.
	LabelPID = labels.PID
	// LabelHost holds the host name of the machine where that process ran;
	// heph.pidns and heph.boot hold its pid namespace and its machine's
	// boot id (where they exist), so that its pid is judged only where it
	// means the same process.
	LabelHost = labels.Host
	// LabelCreated holds the creation time, RFC 3339 in UTC.
	LabelCreated = labels.Created
	// LabelBuild marks an image heph built (FromDockerfile, FromGoPackage,
	// BuildImage); its value is the content hash its tag
	// heph-build/<name>:<hash> starts with. `heph ps` lists these images and
	// `heph prune --images` removes them.
	LabelBuild = labels.Build
)

// Defaults for the lifecycle primitives.
const (
	// DefaultStopTimeout is how long Container.Stop waits after SIGTERM
	// before the daemon sends SIGKILL.
	DefaultStopTimeout = 10 * time.Second
	// DefaultPullTimeout bounds an image pull when ContainerConfig.PullTimeout
	// is zero.
	DefaultPullTimeout = 5 * time.Minute

	// namePrefix starts the name of every container and network heph makes.
	namePrefix = "heph-"
)

// EnvReaper is the environment variable that controls the watchdog.
//
// By default, before an Orchestrator makes its first container or network,
// heph starts one watchdog process for the running process (one per daemon):
// the running binary itself, re-executed, so it needs nothing installed — no
// image, no registry, no socket mount, no privilege — and works the same
// from a test binary, a TestMain or any program. It talks to the same daemon
// as its parent, reached the same way. When the process ends, however it
// ends (normal exit, panic, go test -timeout, Ctrl-C, SIGKILL), the watchdog
// removes every container (with its anonymous volumes), network and volume
// of the process's sessions, retrying for up to two minutes, and exits. It
// touches no other session's resources, and leaves those kept with
// HEPH_KEEP. It logs to heph-watchdog-<parent pid>-*.log in os.TempDir, and
// deletes that file unless it removed something or failed.
//
// HEPH_REAPER=off (or 0, false, no) turns it off: resources of a process
// that dies without running its cleanups are then left on the daemon,
// labelled with heph.pid, heph.host and heph.created, and `heph prune
// --stale` removes them later. Unset or on (1, true, yes) leaves it on; any
// other value is refused with ErrInvalidConfig. A process whose watchdog
// cannot start gets an error matching ErrWatchdog from the create call, and
// nothing is created.
const EnvReaper = "HEPH_REAPER"

// Orchestrator creates, starts, stops, inspects and removes containers and
// networks on one Docker daemon, and tracks the ones it created so that
// Teardown can remove them all. It is safe for concurrent use.
//
// Make one with NewOrchestrator and release it with Close. Resources it
// created are not removed by Close: call Teardown (the test-facing builder
// does this for you in t.Cleanup).
type Orchestrator struct {
	api       engine.API
	endpoint  engine.Endpoint
	session   string
	labels    map[string]string // session labels put on every resource
	watchdogs *watchdog.Set     // nil: no watchdog (unit tests)
	hostEnv   daemon.HostEnv

	accessOnce sync.Once
	access     daemon.Access

	creds   registryauth.Env  // where registry credentials are found
	records imagepull.Records // when images were last pulled
	jobs    imagepull.Group   // the pulls and builds under way
	built   sync.Map          // tags of images this Orchestrator built (not found)

	reclaims reclaim.Set // creates whose callers gave up

	mu         sync.Mutex
	containers map[string]string // container ID → name
	networks   map[string]string // network ID → name
	volumes    map[string]bool   // named volumes its containers mount
}

// Daemon says how to reach a Docker daemon, as the docker CLI's environment
// does (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH,
// DOCKER_API_VERSION), for NewOrchestrator. Everything in it is plain data,
// so heph's watchdog reaches the very same daemon.
type Daemon struct {
	// Host is the daemon's address: unix:///path/docker.sock,
	// tcp://host:2376 (a port defaults to 2376 with TLS, 2375 without). It
	// is required.
	Host string
	// TLS speaks TLS; TLSVerify also verifies the daemon's certificate.
	TLS, TLSVerify bool
	// CAFile, CertFile and KeyFile are PEM files (the CA that signed the
	// daemon's certificate, and this client's certificate and key); each
	// may be empty, but CertFile and KeyFile go together, and a file named
	// must exist.
	CAFile, CertFile, KeyFile string
	// APIVersion fixes the Engine API version ("1.41"); empty negotiates it.
	APIVersion string
}

// endpoint checks d and turns it into an endpoint.
func (d Daemon) endpoint() (engine.Endpoint, error) { return daemon.Settings(d).Endpoint() }

// NewOrchestrator connects to the Docker daemon and returns an Orchestrator
// with a fresh session id.
//
// The daemon is found as the docker CLI finds it: DOCKER_HOST; else
// DOCKER_CONTEXT or the current context of ~/.docker/config.json; else the
// rootless socket $XDG_RUNTIME_DIR/docker.sock; else /var/run/docker.sock.
// DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and DOCKER_API_VERSION are honoured, and
// the API version is negotiated with the daemon.
//
// NewOrchestrator(heph.Daemon{…}) connects to that daemon instead (one at
// most; a malformed one is refused with ErrInvalidConfig before any
// connection). When no daemon answers the error matches
// ErrDockerUnavailable and names every place that was tried.
func NewOrchestrator(d ...Daemon) (*Orchestrator, error) {
	if len(d) > 1 {
		return nil, invalid("NewOrchestrator", len(d), "takes at most one Daemon")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var (
		api engine.API
		ep  engine.Endpoint
		err error
	)
	if len(d) == 1 {
		if ep, err = d[0].endpoint(); err != nil {
			return nil, err
		}
		api, ep, err = daemon.ConnectEndpoints(ctx, []engine.Endpoint{ep}, 10*time.Second, daemon.DialSDK)
	} else {
		api, ep, err = daemon.Connect(ctx, daemon.OSEnv())
	}
	if err != nil {
		return nil, err
	}
	return newOrchestrator(api, ep, watchdog.Process), nil
}

// newOrchestrator makes an Orchestrator over api, with the watchdogs of ws
// (nil: none, for unit tests over a fake api).
func newOrchestrator(api engine.API, ep engine.Endpoint, ws *watchdog.Set) *Orchestrator {
	session := uuid.NewString()
	// heph.pid, heph.host, heph.pidns and heph.boot: where the pid means
	// this process, so that heph prune judges it only there.
	l := sessions.Self().Labels()
	l[LabelManaged] = "true"
	l[LabelSession] = session
	o := &Orchestrator{
		api:        api,
		endpoint:   ep,
		session:    session,
		watchdogs:  ws,
		hostEnv:    daemon.OSHostEnv(),
		labels:     l,
		containers: map[string]string{},
		networks:   map[string]string{},
		volumes:    map[string]bool{},
		records:    imagepull.DefaultRecords(),
	}
	o.reclaims.Watch = o.pending
	return o
}

// pending tells the watchdog that the create of name was given up on while
// the daemon may still carry it out (see watchdog.Set.Pending); it returns
// the function that tells the watchdog the create is dealt with.
func (o *Orchestrator) pending(name string) (settle func()) {
	if on, _ := reaperOn(); !on || o.watchdogs == nil {
		return func() {}
	}
	ep := o.watchdogEndpoint()
	_ = o.watchdogs.Pending(ep, name) // at worst, the watchdog's usual removal
	return func() { _ = o.watchdogs.Settled(ep, name) }
}

var defaultOrchestrator struct {
	sync.Mutex
	o *Orchestrator
}

// DefaultOrchestrator returns the process-wide Orchestrator that Start and
// TestNetwork use, made on first use from the environment (see
// NewOrchestrator). It is never closed; each test's resources are removed by
// the test's cleanup. When no daemon answers the error matches
// ErrDockerUnavailable, and the next call tries again.
func DefaultOrchestrator() (*Orchestrator, error) {
	defaultOrchestrator.Lock()
	defer defaultOrchestrator.Unlock()
	if defaultOrchestrator.o == nil {
		o, err := NewOrchestrator()
		if err != nil {
			return nil, err
		}
		defaultOrchestrator.o = o
	}
	return defaultOrchestrator.o, nil
}

// Session returns the id this Orchestrator puts in the heph.session label of
// everything it creates.
func (o *Orchestrator) Session() string { return o.session }

// Close releases the connection to the daemon. It does not remove any
// container or network: call Teardown first.
func (o *Orchestrator) Close() error { return o.api.Close() }

// resourceLabels returns the labels for a new resource: the session labels,
// the creation time, then extra (already validated).
func (o *Orchestrator) resourceLabels(extra ...map[string]string) map[string]string {
	l := make(map[string]string, len(o.labels)+4)
	maps.Copy(l, o.labels)
	l[LabelCreated] = time.Now().UTC().Format(time.RFC3339)
	for _, m := range extra {
		maps.Copy(l, m)
	}
	return l
}

// newName returns "heph-<part>-<8 hex>".
func newName(part string) string {
	return namePrefix + part + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:8]
}

// reaperOn reads HEPH_REAPER.
func reaperOn() (bool, error) { return envflag.Get(EnvReaper, true) }

// watchdogEndpoint is the endpoint the watchdog dials: o's, with the API
// version o negotiated.
func (o *Orchestrator) watchdogEndpoint() engine.Endpoint {
	ep := o.endpoint
	if ep.APIVersion == "" {
		ep.APIVersion = o.api.APIVersion()
	}
	return ep
}

// watch makes sure this process's watchdog knows o's session before o makes
// its first resource, so the resource is removed even if the process dies
// without running its cleanups. After the first call for a session it costs
// a mutex and a map lookup. It does nothing with HEPH_REAPER=off.
func (o *Orchestrator) watch() error {
	on, err := reaperOn()
	if err != nil || !on || o.watchdogs == nil {
		return err
	}
	return o.watchdogs.Announce(o.session, o.watchdogEndpoint())
}

// keep asks the watchdog to leave these resources (container and network
// IDs) in place when the process exits (HEPH_KEEP), so a kept test's
// containers outlive it.
func (o *Orchestrator) keep(ids ...string) error {
	if on, _ := reaperOn(); !on || o.watchdogs == nil {
		return nil
	}
	return o.watchdogs.Keep(o.watchdogEndpoint(), ids...)
}

// ports decides, once, where published ports are bound and reached (see
// daemon.Decide).
func (o *Orchestrator) ports(ctx context.Context) daemon.Access {
	o.accessOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		o.access = daemon.Decide(ctx, o.endpoint, o.hostEnv, o.api)
	})
	return o.access
}

// Teardown removes every container this Orchestrator created and still
// tracks, concurrently, then every network it created, then the named
// volumes heph made (for its mounts, or another session's) that its
// containers mounted — but one another session's container still uses: a
// named volume is shared by name, and its last user removes it. First it
// waits (within ctx) for the removal of what creates made after their
// callers gave up. A removal that fails because the daemon does not answer
// (a restart) is tried again with backoff for up to 30 s, within ctx. It
// returns every failure joined; resources already gone are not failures. It
// may be called more than once.
func (o *Orchestrator) Teardown(ctx context.Context) error {
	reclaimErr := o.reclaims.Wait(ctx)
	o.mu.Lock()
	ids := slices.Collect(maps.Keys(o.containers))
	o.mu.Unlock()

	errs := parallel.Each(ids, func(_ int, id string) error {
		_, err := retry.Answered(ctx, func() error { return o.RemoveContainer(ctx, id) })
		if !errors.Is(err, ErrContainerNotFound) {
			return err
		}
		return nil
	})
	errs = append(errs, reclaimErr)

	o.mu.Lock()
	nets := slices.Collect(maps.Keys(o.networks))
	o.mu.Unlock()
	for _, id := range nets {
		_, err := retry.Answered(ctx, func() error { return o.removeNetwork(ctx, id) })
		if !errors.Is(err, ErrNetworkNotFound) {
			errs = append(errs, err)
		}
	}
	_, err := retry.Answered(ctx, func() error { return o.removeSessionVolumes(ctx) })
	errs = append(errs, err)
	return errors.Join(errs...)
}

// removeSessionVolumes removes the named volumes labelled with this session
// and the heph-made ones its containers mounted, unless a container of
// another session still uses them (see sessions.RemoveVolumes).
func (o *Orchestrator) removeSessionVolumes(ctx context.Context) error {
	o.mu.Lock()
	mounted := slices.Sorted(maps.Keys(o.volumes))
	o.mu.Unlock()
	removed, err := sessions.RemoveSessionVolumes(ctx, o.api, o.session, mounted)
	o.mu.Lock()
	for _, v := range removed {
		delete(o.volumes, v)
	}
	o.mu.Unlock()
	return err
}

func (o *Orchestrator) track(id, name string) {
	o.mu.Lock()
	o.containers[id] = name
	o.mu.Unlock()
}

func (o *Orchestrator) untrack(id string) {
	o.mu.Lock()
	delete(o.containers, id)
	o.mu.Unlock()
}

// nameOf returns the name of a tracked container, else the ID as given
// (shortened), for error messages.
func (o *Orchestrator) nameOf(id string) string {
	o.mu.Lock()
	name, ok := o.containers[id]
	o.mu.Unlock()
	if ok {
		return name
	}
	if len(id) == 64 {
		return id[:12]
	}
	return id
}
