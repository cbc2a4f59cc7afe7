package heph

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/port"
)

// specs makes the fake note every container spec it is asked to create.
func specs(f *enginetest.Fake) func() []engine.ContainerSpec {
	var mu sync.Mutex
	var got []engine.ContainerSpec
	f.Hook = func(_ context.Context, call string, arg any) error {
		if call == "ContainerCreate" {
			mu.Lock()
			got = append(got, arg.(engine.ContainerSpec))
			mu.Unlock()
		}
		return nil
	}
	return func() []engine.ContainerSpec {
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

func TestCreateContainerSkipsThePullWhenTheImageIsPresent(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	f.AddImage("app:1", engine.Image{})
	c, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "app:1"})
	require.NoError(t, err)
	require.Equal(t, []string{"ImageInspect", "ContainerCreate"}, f.Calls())
	info, err := c.Inspect(context.Background())
	require.NoError(t, err)
	require.Equal(t, StatusCreated, info.Status, "created, not started")
	require.Equal(t, map[string]string{c.ID(): c.Name()}, trackedContainers(o), "create tracks the container")
}

func TestCreateContainerPullsAMissingImageUnderThePullTimeout(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	f.AddToRegistry("app:1", engine.Image{})
	var deadline time.Time
	f.Hook = func(ctx context.Context, call string, _ any) error {
		if call == "ImagePull" {
			deadline, _ = ctx.Deadline()
		}
		return nil
	}
	start := time.Now()
	_, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "app:1", PullTimeout: 42 * time.Second})
	require.NoError(t, err)
	require.Equal(t, []string{"ImageInspect", "ImagePull", "ContainerCreate"}, f.Calls())
	require.WithinDuration(t, start.Add(42*time.Second), deadline, 10*time.Second, "the pull runs under PullTimeout")
}

func TestCreateContainerSpec(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	for _, n := range []string{"net-a", "net-b"} {
		f.AddNetwork(engine.Network{Name: n})
	}
	got := specs(f)
	cfg := ContainerConfig{
		Image:        "registry.local/team/app:1",
		Service:      "db",
		Cmd:          []string{"-http", ":8080"},
		Entrypoint:   []string{"/app"},
		Env:          map[string]string{"B": "2", "A": "1=x"},
		WorkingDir:   "/work",
		User:         "1000:1000",
		ExposedPorts: []string{"8080", "53/UDP", "9000/tcp"},
		HostPorts:    map[string]int{"9000": 19000},
		Mounts: []Mount{
			{Type: MountBind, Source: "/srv/data", Target: "/data", ReadOnly: true},
			{Type: MountVolume, Source: "cache", Target: "/cache"},
			{Type: MountVolume, Target: "/anon"},
			{Type: MountTmpfs, Target: "/tmp"},
		},
		Labels:   map[string]string{"team": "core"},
		Networks: []string{"net-a", "net-b"},
	}
	c, err := o.CreateContainer(context.Background(), cfg)
	require.NoError(t, err)
	require.Len(t, got(), 1)
	s := got()[0]

	require.Regexp(t, `^heph-db-[0-9a-f]{8}$`, s.Name)
	require.Equal(t, c.Name(), s.Name)
	require.Equal(t, "db", c.Service())
	require.Equal(t, "registry.local/team/app:1", s.Image)
	require.Equal(t, "db", s.Hostname, "the hostname is the service name")
	require.Equal(t, []string{"-http", ":8080"}, s.Cmd)
	require.Equal(t, []string{"/app"}, s.Entrypoint)
	require.Equal(t, []string{"A=1=x", "B=2"}, s.Env, "sorted, values kept whole")
	require.Equal(t, "/work", s.WorkingDir)
	require.Equal(t, "1000:1000", s.User)
	require.Equal(t, "true", s.Labels[LabelManaged])
	require.Equal(t, o.Session(), s.Labels[LabelSession])
	require.Equal(t, "db", s.Labels[LabelService])
	require.Equal(t, "core", s.Labels["team"])
	require.Equal(t, []engine.PortSpec{
		{Port: port.Port{Num: 8080, Proto: "tcp"}, HostIP: "127.0.0.1"},
		{Port: port.Port{Num: 53, Proto: "udp"}, HostIP: "127.0.0.1"},
		{Port: port.Port{Num: 9000, Proto: "tcp"}, HostIP: "127.0.0.1", HostPort: 19000},
	}, s.Ports, "published on loopback only, random host ports but the one asked for")

	require.Len(t, s.Mounts, 4)
	require.Equal(t, engine.MountSpec{Type: "bind", Source: "/srv/data", Target: "/data", ReadOnly: true}, s.Mounts[0])
	require.Equal(t, "cache", s.Mounts[1].Source)
	require.Equal(t, o.Session(), s.Mounts[1].VolumeLabels[LabelSession], "a named volume the daemon creates is the session's")
	require.Equal(t, engine.MountSpec{Type: "volume", Target: "/anon"}, s.Mounts[2], "an anonymous volume goes with the container")
	require.Equal(t, engine.MountSpec{Type: "tmpfs", Target: "/tmp"}, s.Mounts[3])

	require.Equal(t, "net-a", s.Network, "the first network is joined at create")
	require.Equal(t, []string{"db"}, s.Aliases)
	info, err := c.Inspect(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"db"}, info.Networks["net-b"].Aliases, "the others after, with the same alias")
	require.Equal(t, "127.0.0.1", c.Host())
}

func TestCreateContainerOnARemoteDaemonPublishesOnEveryInterface(t *testing.T) {
	t.Parallel()
	f := enginetest.NewFake()
	o := newOrchestratorOver(f, "tcp://10.0.0.5:2376")
	got := specs(f)
	c, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "app", ExposedPorts: []string{"80"}})
	require.NoError(t, err)
	require.Equal(t, "", got()[0].Ports[0].HostIP, "every interface: the test reaches the daemon's machine from outside")
	require.Equal(t, "10.0.0.5", c.Host())
	require.NoError(t, c.Start(context.Background()))
	require.Equal(t, "10.0.0.5:32768", c.Endpoint("80"))
}

func TestTheServiceNameIsDerivedFromTheImage(t *testing.T) {
	t.Parallel()
	for image, want := range map[string]string{
		"postgres":                    "postgres",
		"postgres:16":                 "postgres",
		"docker.io/library/redis:7":   "redis",
		"127.0.0.1:5000/team/app:dev": "app",
		"heph-build/testapp:abc123":   "testapp",
		"ghcr.io/org/my_app@sha256:" + strings.Repeat("a", 64): "my-app",
		"localhost/weird__name":                                "weird-name",
	} {
		o, f := newTestOrchestrator()
		got := specs(f)
		c, err := o.CreateContainer(context.Background(), ContainerConfig{Image: image})
		require.NoError(t, err, image)
		require.Equal(t, want, c.Service(), image)
		require.Regexp(t, `^heph-`+want+`-[0-9a-f]{8}$`, c.Name(), image)
		require.Equal(t, want, got()[0].Hostname, image)
	}
}

func TestCreateContainerRemovesTheContainerWhenAJoinFails(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	f.AddNetwork(engine.Network{Name: "net-a"})
	f.AddNetwork(engine.Network{Name: "net-b"})
	_, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "app", Service: "web", Networks: []string{"net-a", "net-b", "net-c"}})
	require.Regexp(t, `^heph: connect container "heph-web-[0-9a-f]{8}" to network "net-c": network net-c not found$`, err.Error())
	require.ErrorIs(t, err, ErrNetworkNotFound)
	require.ErrorIs(t, err, engine.ErrNotFound, "the daemon's error class still matches")
	containers, _, _ := f.Counts()
	require.Zero(t, containers, "the container is removed")
	require.Empty(t, trackedContainers(o), "and no longer tracked")
}

func TestCreateContainerRemovesTheContainerEvenWhenTheCallerGaveUp(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	f.AddNetwork(engine.Network{Name: "net-a"})
	ctx, cancel := context.WithCancel(context.Background())
	f.Hook = func(_ context.Context, call string, _ any) error {
		if call == "NetworkConnect" {
			cancel() // the caller gives up between the create and the join
		}
		return nil
	}
	_, err := o.CreateContainer(ctx, ContainerConfig{Image: "app", Networks: []string{"net-a", "net-b"}})
	require.ErrorIs(t, err, context.Canceled)
	containers, _, _ := f.Counts()
	require.Zero(t, containers, "removed under a context of its own")
	require.Empty(t, trackedContainers(o))
}

func TestCreateContainerErrorsAreWrapped(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	failOn(f, "ImageInspect", enginetest.Unavailable("daemon is busy"))
	_, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "app"})
	require.EqualError(t, err, `heph: inspect image "app": daemon is busy`)
	require.ErrorIs(t, err, ErrDockerUnavailable)
	require.ErrorIs(t, err, engine.ErrUnavailable)

	o, f = newTestOrchestrator()
	failOn(f, "ContainerCreate", enginetest.Conflict("name in use"))
	_, err = o.CreateContainer(context.Background(), ContainerConfig{Image: "app", Service: "db"})
	require.Regexp(t, `^heph: create container "heph-db-[0-9a-f]{8}": name in use$`, err.Error())
	require.ErrorIs(t, err, engine.ErrConflict)
	require.NotErrorIs(t, err, ErrImageNotFound)
	require.Empty(t, trackedContainers(o))

	o, f = newTestOrchestrator()
	failOn(f, "ContainerCreate", enginetest.NotFound("No such image: app:latest"))
	_, err = o.CreateContainer(context.Background(), ContainerConfig{Image: "app"})
	require.ErrorIs(t, err, ErrImageNotFound, "an image removed between the inspect and the create")
}

func TestRemoveInspectAndListErrorsAreWrapped(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	ctx := context.Background()
	c, err := o.CreateContainer(ctx, ContainerConfig{Image: "app", Service: "db"})
	require.NoError(t, err)
	require.NoError(t, f.ContainerRemove(ctx, c.ID())) // behind heph's back

	_, err = o.InspectContainer(ctx, c.ID())
	require.ErrorIs(t, err, ErrContainerNotFound)
	require.EqualError(t, err, `heph: inspect container "`+c.Name()+`": No such container: `+c.ID())

	err = o.RemoveContainer(ctx, c.ID())
	require.ErrorIs(t, err, ErrContainerNotFound)
	require.Empty(t, trackedContainers(o), "a container already gone is no longer tracked")

	err = o.RemoveContainer(ctx, c.ID())
	require.EqualError(t, err, `heph: remove container "`+c.ID()[:12]+`": No such container: `+c.ID(), "an untracked ID is shown short")

	failOn(f, "ContainerList", enginetest.Unavailable("boom"))
	_, err = o.ListContainers(ctx)
	require.EqualError(t, err, "heph: list containers: boom")
	require.ErrorIs(t, err, ErrDockerUnavailable)
}

func TestListContainersSeesEveryHephContainer(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	other := newOrchestrator(f, engine.Endpoint{Host: "unix:///fake.sock"}, nil)
	other.hostEnv = o.hostEnv
	ctx := context.Background()
	mine, err := o.CreateContainer(ctx, ContainerConfig{Image: "app", Service: "web", ExposedPorts: []string{"80"}})
	require.NoError(t, err)
	require.NoError(t, mine.Start(ctx))
	theirs, err := other.CreateContainer(ctx, ContainerConfig{Image: "app", Service: "job"})
	require.NoError(t, err)
	_, err = f.ContainerCreate(ctx, engine.ContainerSpec{Name: "not-heph", Image: "app"})
	require.NoError(t, err)
	var filter engine.Filter
	f.Hook = func(_ context.Context, call string, arg any) error {
		if call == "ContainerList" {
			filter = arg.(engine.Filter)
		}
		return nil
	}

	infos, err := o.ListContainers(ctx)
	require.NoError(t, err)
	require.Equal(t, engine.Filter{"name": {"^/heph-"}}, filter)
	require.Len(t, infos, 2, "heph's containers, whoever made them; no other")
	byName := map[string]ContainerInfo{}
	for _, i := range infos {
		byName[i.Name] = i
	}
	require.Equal(t, StatusRunning, byName[mine.Name()].Status)
	require.Equal(t, "web", byName[mine.Name()].Service)
	require.Equal(t, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:32768")}, byName[mine.Name()].Ports["80/tcp"])
	require.Equal(t, StatusCreated, byName[theirs.Name()].Status)
	require.Equal(t, other.Session(), byName[theirs.Name()].Labels[LabelSession])
}

func TestInfoFromMapsEveryField(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 11, 25, 9, 59, 59, 0, time.UTC)
	started := created.Add(time.Second)
	info := infoFrom(engine.Container{
		ID: "x", Name: "heph-db-1a2b3c4d", Image: "postgres:16", Status: "exited", ExitCode: 137, OOMKilled: true,
		Error: "oops", Health: "unhealthy", HealthLog: []engine.HealthResult{{Output: " no \n"}, {Output: "still no\n"}},
		Ports:    map[string][]netip.AddrPort{"5432/tcp": {netip.MustParseAddrPort("127.0.0.1:49153")}},
		Networks: map[string]engine.Attachment{"heph-net-1": {NetworkID: "n1", IP: "172.18.0.2", Gateway: "172.18.0.1", Aliases: []string{"db"}}},
		Labels:   map[string]string{LabelService: "db"},
		Created:  created, Started: started,
	})
	require.Equal(t, ContainerInfo{
		ID: "x", Name: "heph-db-1a2b3c4d", Service: "db", Image: "postgres:16", Status: StatusExited, ExitCode: 137,
		OOMKilled: true, Error: "oops", Health: "unhealthy", HealthLog: []string{"no", "still no"},
		Ports:    map[string][]netip.AddrPort{"5432/tcp": {netip.MustParseAddrPort("127.0.0.1:49153")}},
		Networks: map[string]NetworkEndpoint{"heph-net-1": {NetworkID: "n1", IP: "172.18.0.2", Gateway: "172.18.0.1", Aliases: []string{"db"}}},
		Labels:   map[string]string{LabelService: "db"},
		Created:  created, Started: started,
	}, info)
}

func TestEveryDockerStateMaps(t *testing.T) {
	t.Parallel()
	for state, want := range map[string]ContainerStatus{
		"created": StatusCreated, "running": StatusRunning, "paused": StatusPaused, "restarting": StatusRestarting,
		"removing": StatusRemoving, "exited": StatusExited, "dead": StatusDead, "": StatusUnknown, "frozen": StatusUnknown,
	} {
		info := infoFrom(engine.Container{Status: state})
		require.Equal(t, want, info.Status, "state %q", state)
		require.Equal(t, state == "running" || state == "paused" || state == "restarting", info.Running(), "state %q", state)
	}
}
