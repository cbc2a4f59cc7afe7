package heph

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestCreateContainerSkipsPullWhenImagePresent(t *testing.T) {
	o, m := newMocked()
	m.On("ImageInspect", anyCtx, "app:1").Return(client.ImageInspectResult{}, nil).Once()
	m.On("ContainerCreate", anyCtx, mock.Anything).Return(client.ContainerCreateResult{ID: testID}, nil).Once()

	id, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "app:1"})
	require.NoError(t, err)
	require.Equal(t, testID, id)
	m.AssertExpectations(t)
	m.AssertNotCalled(t, "ImagePull", mock.Anything, mock.Anything, mock.Anything)
}

func TestCreateContainerPullsMissingImageWithTimeout(t *testing.T) {
	o, m := newMocked()
	m.On("ImageInspect", anyCtx, "app:1").Return(client.ImageInspectResult{}, cerrdefs.ErrNotFound).Once()
	stream := newPullStream(`{"status":"Pulling from app"}`, `{"status":"Download complete"}`)
	var deadline time.Time
	m.On("ImagePull", anyCtx, "app:1", client.ImagePullOptions{}).Run(func(a mock.Arguments) {
		deadline, _ = a.Get(0).(context.Context).Deadline()
	}).Return(stream, nil).Once()
	m.On("ContainerCreate", anyCtx, mock.Anything).Return(client.ContainerCreateResult{ID: testID}, nil).Once()

	start := time.Now()
	_, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "app:1", PullTimeout: 42 * time.Second})
	require.NoError(t, err)
	m.AssertExpectations(t)
	require.WithinDuration(t, start.Add(42*time.Second), deadline, 2*time.Second, "the pull runs under PullTimeout")
	require.True(t, stream.closed, "the pull stream is closed")
}

func TestPullDefaultTimeout(t *testing.T) {
	o, m := newMocked()
	var deadline time.Time
	m.On("ImagePull", anyCtx, "app:1", mock.Anything).Run(func(a mock.Arguments) {
		deadline, _ = a.Get(0).(context.Context).Deadline()
	}).Return(newPullStream(), nil).Once()
	require.NoError(t, o.PullImage(context.Background(), "app:1", 0))
	require.WithinDuration(t, time.Now().Add(DefaultPullTimeout), deadline, 2*time.Second)
}

func TestPullErrors(t *testing.T) {
	cases := []struct {
		name       string
		pullErr    error
		stream     []string
		isNotFound bool
		contains   string
	}{
		{"error inside the stream", nil, []string{`{"status":"Pulling"}`, `{"errorDetail":{"message":"unexpected EOF"},"error":"unexpected EOF"}`}, false, "unexpected EOF"},
		{"old-style error field", nil, []string{`{"error":"toomanyrequests: slow down"}`}, false, "toomanyrequests"},
		{"manifest unknown in the stream", nil, []string{`{"errorDetail":{"message":"manifest for 127.0.0.1:5000/x:1 not found: manifest unknown"}}`}, true, "manifest unknown"},
		{"daemon answers 404", cerrdefs.ErrNotFound.WithMessage("pull access denied for x"), nil, true, "pull access denied"},
		{"garbage in the stream", nil, []string{`{"status":`}, false, "read progress stream"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, m := newMocked()
			var resp client.ImagePullResponse
			if tc.pullErr == nil {
				resp = newPullStream(tc.stream...)
			}
			m.On("ImagePull", anyCtx, "app:1", mock.Anything).Return(resp, tc.pullErr).Once()
			err := o.PullImage(context.Background(), "app:1", time.Minute)
			require.Error(t, err)
			require.Contains(t, err.Error(), `heph: pull image "app:1"`)
			require.Contains(t, err.Error(), tc.contains)
			require.Equal(t, tc.isNotFound, errors.Is(err, ErrImageNotFound), "ErrImageNotFound: %v", err)
		})
	}
}

func TestConcurrentPullsShareOneDaemonPull(t *testing.T) {
	o, m := newMocked()
	release := make(chan struct{})
	m.On("ImagePull", anyCtx, "app:1", mock.Anything).Run(func(mock.Arguments) { <-release }).
		Return(newPullStream(`{"status":"done"}`), nil).Once()
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- o.PullImage(context.Background(), "app:1", time.Minute) }()
	}
	// Every caller must be waiting on the one pull before it finishes.
	require.Eventually(t, func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.pulls["app:1"] != nil && o.pulls["app:1"].waiters == 5
	}, 5*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	m.AssertNumberOfCalls(t, "ImagePull", 1)
}

func TestCreateContainerRequest(t *testing.T) {
	o, m := newMocked()
	m.On("ImageInspect", anyCtx, "registry.local/team/app:1").Return(client.ImageInspectResult{}, nil)
	var got client.ContainerCreateOptions
	m.On("ContainerCreate", anyCtx, mock.Anything).Run(func(a mock.Arguments) {
		got = a.Get(1).(client.ContainerCreateOptions)
	}).Return(client.ContainerCreateResult{ID: testID}, nil).Once()

	cfg := ContainerConfig{
		Image:        "registry.local/team/app:1",
		Service:      "db",
		Cmd:          []string{"-http", ":8080"},
		Entrypoint:   []string{"/app"},
		Env:          map[string]string{"B": "2", "A": "1=x"},
		WorkingDir:   "/work",
		User:         "1000:1000",
		ExposedPorts: []string{"8080", "53/udp", "9000/tcp"},
		HostPorts:    map[string]int{"9000": 19000},
		Mounts: []Mount{
			{Type: MountBind, Source: "/srv/data", Target: "/data", ReadOnly: true},
			{Type: MountVolume, Source: "cache", Target: "/cache"},
			{Type: MountTmpfs, Target: "/tmp"},
		},
		Labels:   map[string]string{"team": "core"},
		Networks: []string{"heph-net-1"},
	}
	id, err := o.CreateContainer(context.Background(), cfg)
	require.NoError(t, err)
	require.Equal(t, testID, id)

	require.Regexp(t, `^heph-db-[0-9a-f]{8}$`, got.Name)
	c := got.Config
	require.Equal(t, "registry.local/team/app:1", c.Image)
	require.Equal(t, "db", c.Hostname)
	require.Equal(t, []string{"-http", ":8080"}, []string(c.Cmd))
	require.Equal(t, []string{"/app"}, []string(c.Entrypoint))
	require.Equal(t, []string{"A=1=x", "B=2"}, c.Env)
	require.Equal(t, "/work", c.WorkingDir)
	require.Equal(t, "1000:1000", c.User)

	require.Equal(t, "true", c.Labels[LabelManaged])
	require.Equal(t, o.Session(), c.Labels[LabelSession])
	require.Equal(t, "db", c.Labels[LabelService])
	require.Equal(t, "core", c.Labels["team"])
	require.Equal(t, fmt.Sprint(os.Getpid()), c.Labels[LabelPID])
	require.NotEmpty(t, c.Labels[LabelCreated])

	ports := map[string]bool{}
	for p := range c.ExposedPorts {
		ports[p.String()] = true
	}
	require.Equal(t, map[string]bool{"8080/tcp": true, "53/udp": true, "9000/tcp": true}, ports)
	bindings := map[string]string{}
	for p, bs := range got.HostConfig.PortBindings {
		require.Len(t, bs, 1)
		require.Equal(t, "127.0.0.1", bs[0].HostIP.String(), "port %s is published on loopback only", p)
		bindings[p.String()] = bs[0].HostPort
	}
	require.Equal(t, map[string]string{"8080/tcp": "", "53/udp": "", "9000/tcp": "19000"}, bindings)

	mounts := got.HostConfig.Mounts
	require.Len(t, mounts, 3)
	require.Equal(t, mount.Mount{Type: mount.TypeBind, Source: "/srv/data", Target: "/data", ReadOnly: true}, mounts[0])
	require.Equal(t, mount.TypeVolume, mounts[1].Type)
	require.Equal(t, "cache", mounts[1].Source)
	require.Equal(t, o.Session(), mounts[1].VolumeOptions.Labels[LabelSession], "named volumes are labelled with the session")
	require.Equal(t, mount.Mount{Type: mount.TypeTmpfs, Target: "/tmp"}, mounts[2])

	require.Equal(t, map[string]*network.EndpointSettings{"heph-net-1": {Aliases: []string{"db"}}}, got.NetworkingConfig.EndpointsConfig)
	require.Equal(t, map[string]string{testID: got.Name}, o.ManagedContainers(), "create tracks the container")
}

func TestCreateContainerDerivesServiceFromImage(t *testing.T) {
	o, m := newMocked()
	m.On("ImageInspect", anyCtx, mock.Anything).Return(client.ImageInspectResult{}, nil)
	var got client.ContainerCreateOptions
	m.On("ContainerCreate", anyCtx, mock.Anything).Run(func(a mock.Arguments) {
		got = a.Get(1).(client.ContainerCreateOptions)
	}).Return(client.ContainerCreateResult{ID: testID}, nil)
	_, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "docker.io/library/postgres:16"})
	require.NoError(t, err)
	require.Regexp(t, `^heph-postgres-[0-9a-f]{8}$`, got.Name)
	require.Equal(t, "postgres", got.Config.Hostname)
}

func TestServiceFromImage(t *testing.T) {
	for image, want := range map[string]string{
		"postgres":                    "postgres",
		"postgres:16":                 "postgres",
		"docker.io/library/redis:7":   "redis",
		"127.0.0.1:5000/team/app:dev": "app",
		"heph-build/testapp:abc123":   "testapp",
		"ghcr.io/org/my_app@sha256:" + strings.Repeat("a", 64): "my-app",
		"localhost/Weird..Name":                                "weird-name",
	} {
		require.Equal(t, want, ServiceFromImage(image), image)
	}
}

func TestCreateContainerJoinsExtraNetworksAndRemovesOnFailure(t *testing.T) {
	o, m := newMocked()
	m.On("ImageInspect", anyCtx, mock.Anything).Return(client.ImageInspectResult{}, nil)
	m.On("ContainerCreate", anyCtx, mock.Anything).Return(client.ContainerCreateResult{ID: testID}, nil)
	m.On("NetworkConnect", anyCtx, "net-b", client.NetworkConnectOptions{Container: testID, EndpointConfig: &network.EndpointSettings{Aliases: []string{"web"}}}).
		Return(client.NetworkConnectResult{}, nil).Once()
	m.On("NetworkConnect", anyCtx, "net-c", mock.Anything).Return(client.NetworkConnectResult{}, cerrdefs.ErrNotFound.WithMessage("network net-c not found")).Once()
	m.On("ContainerRemove", anyCtx, testID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}).Return(client.ContainerRemoveResult{}, nil).Once()

	_, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "app", Service: "web", Networks: []string{"net-a", "net-b", "net-c"}})
	require.Error(t, err)
	require.Contains(t, err.Error(), `connect container "heph-web-`)
	require.Contains(t, err.Error(), "net-c")
	require.True(t, cerrdefs.IsNotFound(err), "the SDK's error class still matches")
	m.AssertExpectations(t)
	require.Empty(t, o.ManagedContainers(), "the removed container is no longer tracked")
}

func TestCreateContainerErrorsAreWrapped(t *testing.T) {
	o, m := newMocked()
	m.On("ImageInspect", anyCtx, "app").Return(client.ImageInspectResult{}, cerrdefs.ErrUnavailable.WithMessage("daemon is busy"))
	_, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "app"})
	require.ErrorContains(t, err, `heph: inspect image "app": daemon is busy`)
	require.True(t, cerrdefs.IsUnavailable(err))

	o, m = newMocked()
	m.On("ImageInspect", anyCtx, "app").Return(client.ImageInspectResult{}, nil)
	m.On("ContainerCreate", anyCtx, mock.Anything).Return(client.ContainerCreateResult{}, cerrdefs.ErrConflict.WithMessage("name in use"))
	_, err = o.CreateContainer(context.Background(), ContainerConfig{Image: "app", Service: "db"})
	require.Regexp(t, `^heph: create container "heph-db-[0-9a-f]{8}": name in use$`, err.Error())
	require.True(t, cerrdefs.IsConflict(err))
	require.Empty(t, o.ManagedContainers())
}

func TestLifecycleCalls(t *testing.T) {
	o, m := newMocked()
	o.track(testID, "heph-db-1a2b3c4d")
	m.On("ContainerStart", anyCtx, testID, client.ContainerStartOptions{}).Return(client.ContainerStartResult{}, nil).Once()
	ten := 10
	m.On("ContainerStop", anyCtx, testID, client.ContainerStopOptions{Timeout: &ten}).Return(client.ContainerStopResult{}, nil).Once()
	two := 2
	m.On("ContainerStop", anyCtx, testID, client.ContainerStopOptions{Timeout: &two}).Return(client.ContainerStopResult{}, nil).Once()
	m.On("ContainerRemove", anyCtx, testID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}).Return(client.ContainerRemoveResult{}, nil).Once()

	ctx := context.Background()
	require.NoError(t, o.StartContainer(ctx, testID))
	require.NoError(t, o.StopContainer(ctx, testID), "default: 10 s graceful")
	require.NoError(t, o.StopContainer(ctx, testID, StopTimeout(1500*time.Millisecond)), "rounded up to whole seconds")
	require.NoError(t, o.RemoveContainer(ctx, testID))
	m.AssertExpectations(t)
	require.Empty(t, o.ManagedContainers(), "remove untracks")
	require.ErrorIs(t, o.StopContainer(ctx, testID, StopTimeout(-time.Second)), ErrInvalidConfig)
}

func TestLifecycleErrorsAreWrapped(t *testing.T) {
	o, m := newMocked()
	o.track(testID, "heph-db-1a2b3c4d")
	notFound := cerrdefs.ErrNotFound.WithMessage("No such container")
	m.On("ContainerStart", anyCtx, testID, mock.Anything).Return(client.ContainerStartResult{}, notFound)
	m.On("ContainerStop", anyCtx, testID, mock.Anything).Return(client.ContainerStopResult{}, cerrdefs.ErrUnavailable.WithMessage("busy"))
	m.On("ContainerInspect", anyCtx, testID, mock.Anything).Return(client.ContainerInspectResult{}, notFound)
	m.On("ContainerList", anyCtx, mock.Anything).Return(client.ContainerListResult{}, errors.New("boom"))
	m.On("ContainerRemove", anyCtx, testID, mock.Anything).Return(client.ContainerRemoveResult{}, notFound)

	ctx := context.Background()
	err := o.StartContainer(ctx, testID)
	require.EqualError(t, err, `heph: start container "heph-db-1a2b3c4d": No such container`)
	require.ErrorIs(t, err, ErrContainerNotFound)
	require.True(t, cerrdefs.IsNotFound(err))

	err = o.StopContainer(ctx, testID)
	require.EqualError(t, err, `heph: stop container "heph-db-1a2b3c4d": busy`)
	require.True(t, cerrdefs.IsUnavailable(err))
	require.NotErrorIs(t, err, ErrContainerNotFound)

	_, err = o.InspectContainer(ctx, testID)
	require.ErrorIs(t, err, ErrContainerNotFound)
	require.Contains(t, err.Error(), `inspect container "heph-db-1a2b3c4d"`)

	_, err = o.ListContainers(ctx)
	require.EqualError(t, err, "heph: list containers: boom")

	err = o.RemoveContainer(ctx, testID)
	require.ErrorIs(t, err, ErrContainerNotFound)
	require.Empty(t, o.ManagedContainers(), "a container already gone is untracked")
}

func TestListContainersFiltersAndMaps(t *testing.T) {
	o, m := newMocked()
	var opts client.ContainerListOptions
	m.On("ContainerList", anyCtx, mock.Anything).Run(func(a mock.Arguments) {
		opts = a.Get(1).(client.ContainerListOptions)
	}).Return(client.ContainerListResult{Items: []container.Summary{
		{
			ID: "a1", Names: []string{"/heph-db-1a2b3c4d"}, Image: "postgres:16", State: container.StateRunning,
			Status: "Up 3 seconds", Labels: map[string]string{LabelService: "db", LabelManaged: "true"}, Created: 1700000000,
			Ports: []container.PortSummary{{IP: mustAddr("127.0.0.1"), PrivatePort: 5432, PublicPort: 49153, Type: "tcp"}, {PrivatePort: 9, Type: "udp"}},
		},
		{ID: "b2", Names: []string{"/heph-job-00000000"}, State: container.StateExited, Status: "Exited (3) 2 seconds ago"},
		{ID: "c3", Names: []string{"/not-heph-x"}, State: container.StateRunning}, // a name filter matches substrings; heph rechecks
	}}, nil)

	infos, err := o.ListContainers(context.Background())
	require.NoError(t, err)
	require.True(t, opts.All, "stopped containers are listed too")
	require.Equal(t, client.Filters{"name": {"^/heph-": true}}, opts.Filters)
	require.Len(t, infos, 2)
	require.Equal(t, ContainerInfo{
		ID: "a1", Name: "heph-db-1a2b3c4d", Service: "db", Image: "postgres:16", Status: StatusRunning,
		Labels:  map[string]string{LabelService: "db", LabelManaged: "true"},
		Ports:   map[string][]PortBinding{"5432/tcp": {{HostIP: "127.0.0.1", HostPort: 49153}}},
		Created: time.Unix(1700000000, 0),
	}, infos[0])
	require.Equal(t, StatusExited, infos[1].Status)
	require.Equal(t, 3, infos[1].ExitCode)
}

func TestInspectMapsEveryState(t *testing.T) {
	for state, want := range map[container.ContainerState]ContainerStatus{
		container.StateCreated: StatusCreated, container.StateRunning: StatusRunning, container.StatePaused: StatusPaused,
		container.StateRestarting: StatusRestarting, container.StateRemoving: StatusRemoving, container.StateExited: StatusExited,
		container.StateDead: StatusDead, "": StatusUnknown, "frozen": StatusUnknown,
	} {
		o, m := newMocked()
		m.On("ContainerInspect", anyCtx, "x", mock.Anything).Return(client.ContainerInspectResult{Container: container.InspectResponse{
			ID: "x", Name: "/heph-a-00000000", State: &container.State{Status: state},
		}}, nil)
		info, err := o.InspectContainer(context.Background(), "x")
		require.NoError(t, err)
		require.Equal(t, want, info.Status, "state %q", state)
		if state != "" && state != "frozen" {
			require.Equal(t, string(state), info.Status.String())
		}
	}
	require.Equal(t, "unknown", ContainerStatus(99).String())
}

func TestInspectMapsDetails(t *testing.T) {
	o, m := newMocked()
	started := "2026-11-25T10:00:00.123456789Z"
	hc := time.Date(2026, 11, 25, 10, 0, 1, 0, time.UTC)
	m.On("ContainerInspect", anyCtx, "x", mock.Anything).Return(client.ContainerInspectResult{Container: container.InspectResponse{
		ID: "x", Name: "/heph-db-1a2b3c4d", Created: "2026-11-25T09:59:59Z",
		State: &container.State{
			Status: container.StateExited, ExitCode: 137, OOMKilled: true, StartedAt: started, FinishedAt: "0001-01-01T00:00:00Z",
			Health: &container.Health{Status: container.Unhealthy, FailingStreak: 3, Log: []*container.HealthcheckResult{{Start: hc, End: hc, ExitCode: 1, Output: "no"}}},
		},
		Config: &container.Config{Image: "postgres:16", Labels: map[string]string{LabelService: "db"}},
		NetworkSettings: &container.NetworkSettings{
			Ports: network.PortMap{network.MustParsePort("5432/tcp"): {{HostIP: mustAddr("127.0.0.1"), HostPort: "49153"}}},
			Networks: map[string]*network.EndpointSettings{"heph-net-1": {
				NetworkID: "n1", IPAddress: mustAddr("172.18.0.2"), Gateway: mustAddr("172.18.0.1"), Aliases: []string{"db"},
			}},
		},
	}}, nil)
	info, err := o.InspectContainer(context.Background(), "x")
	require.NoError(t, err)
	require.Equal(t, "heph-db-1a2b3c4d", info.Name)
	require.Equal(t, "db", info.Service)
	require.Equal(t, 137, info.ExitCode)
	require.True(t, info.OOMKilled)
	require.Equal(t, time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC), info.Started)
	require.True(t, info.Finished.IsZero(), "Docker's zero time maps to the zero time")
	require.Equal(t, &Health{Status: "unhealthy", FailingStreak: 3, Log: []HealthResult{{Start: hc, End: hc, ExitCode: 1, Output: "no"}}}, info.Health)
	require.Equal(t, map[string][]PortBinding{"5432/tcp": {{HostIP: "127.0.0.1", HostPort: 49153}}}, info.Ports)
	require.Equal(t, map[string]NetworkEndpoint{"heph-net-1": {NetworkID: "n1", IP: "172.18.0.2", Gateway: "172.18.0.1", Aliases: []string{"db"}}}, info.Networks)
}

func TestNetworks(t *testing.T) {
	o, m := newMocked()
	var opts client.NetworkCreateOptions
	var name string
	m.On("NetworkCreate", anyCtx, mock.Anything, mock.Anything).Run(func(a mock.Arguments) {
		name, opts = a.String(1), a.Get(2).(client.NetworkCreateOptions)
	}).Return(client.NetworkCreateResult{ID: "n1"}, nil).Once()
	m.On("NetworkConnect", anyCtx, "n1", client.NetworkConnectOptions{Container: testID, EndpointConfig: &network.EndpointSettings{Aliases: []string{"db", "postgres"}}}).
		Return(client.NetworkConnectResult{}, nil).Once()
	m.On("NetworkRemove", anyCtx, "n1", client.NetworkRemoveOptions{}).Return(client.NetworkRemoveResult{}, nil).Once()

	ctx := context.Background()
	n, err := o.CreateNetwork(ctx, NetworkConfig{Labels: map[string]string{"team": "core"}})
	require.NoError(t, err)
	require.Regexp(t, `^heph-net-[0-9a-f]{8}$`, name)
	require.Equal(t, NetworkInfo{ID: "n1", Name: name}, n)
	require.Equal(t, "bridge", opts.Driver)
	require.Equal(t, "true", opts.Labels[LabelManaged])
	require.Equal(t, o.Session(), opts.Labels[LabelSession])
	require.Equal(t, "core", opts.Labels["team"])
	require.NoError(t, o.ConnectContainer(ctx, "n1", testID, "db", "postgres"))
	require.NoError(t, o.RemoveNetwork(ctx, "n1"))
	m.AssertExpectations(t)

	_, err = o.CreateNetwork(ctx, NetworkConfig{Labels: map[string]string{"heph.test": "x"}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	m.AssertNumberOfCalls(t, "NetworkCreate", 1)
}

func TestCreateNetworkPoolExhausted(t *testing.T) {
	o, m := newMocked()
	m.On("NetworkCreate", anyCtx, mock.Anything, mock.Anything).Return(client.NetworkCreateResult{},
		cerrdefs.ErrInvalidArgument.WithMessage("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"))
	_, err := o.CreateNetwork(context.Background(), NetworkConfig{})
	require.ErrorIs(t, err, ErrNetworkPoolExhausted)
	require.True(t, cerrdefs.IsInvalidArgument(err))
}

func TestTeardownRemovesContainersConcurrentlyThenNetworksThenVolumes(t *testing.T) {
	o, m := newMocked()
	ids := []string{"c1", "c2", "c3"}
	for _, id := range ids {
		o.track(id, "heph-x-"+id)
	}
	o.managedNetworks["n1"] = "heph-net-1"

	var mu sync.Mutex
	var order []string
	inFlight, maxInFlight := 0, 0
	all := make(chan struct{})
	m.On("ContainerRemove", anyCtx, mock.Anything, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}).Run(func(a mock.Arguments) {
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		if inFlight == len(ids) {
			close(all)
		}
		mu.Unlock()
		select { // all three removals are in flight at once
		case <-all:
		case <-time.After(5 * time.Second):
		}
		mu.Lock()
		inFlight--
		order = append(order, "container")
		mu.Unlock()
	}).Return(client.ContainerRemoveResult{}, nil)
	m.On("NetworkRemove", anyCtx, "n1", mock.Anything).Run(func(mock.Arguments) {
		mu.Lock()
		order = append(order, "network")
		mu.Unlock()
	}).Return(client.NetworkRemoveResult{}, cerrdefs.ErrConflict.WithMessage("network has active endpoints"))
	m.On("VolumeList", anyCtx, client.VolumeListOptions{Filters: client.Filters{"label": {LabelSession + "=" + o.Session(): true}}}).
		Return(client.VolumeListResult{Items: []volume.Volume{{Name: "cache"}}}, nil)
	m.On("VolumeRemove", anyCtx, "cache", client.VolumeRemoveOptions{Force: true}).Return(client.VolumeRemoveResult{}, nil)

	err := o.Teardown(context.Background())
	require.Equal(t, len(ids), maxInFlight, "containers are removed concurrently")
	require.Equal(t, []string{"container", "container", "container", "network"}, order)
	require.ErrorContains(t, err, `heph: remove network "heph-net-1": network has active endpoints`)
	require.True(t, cerrdefs.IsConflict(err))
	require.Empty(t, o.ManagedContainers())
	m.AssertCalled(t, "VolumeRemove", anyCtx, "cache", client.VolumeRemoveOptions{Force: true})
}

func TestTeardownJoinsErrorsAndIgnoresGone(t *testing.T) {
	o, m := newMocked()
	o.track("gone", "heph-a-1")
	o.track("stuck", "heph-b-2")
	m.On("ContainerRemove", anyCtx, "gone", mock.Anything).Return(client.ContainerRemoveResult{}, cerrdefs.ErrNotFound)
	m.On("ContainerRemove", anyCtx, "stuck", mock.Anything).Return(client.ContainerRemoveResult{}, errors.New("device busy"))
	m.On("VolumeList", anyCtx, mock.Anything).Return(client.VolumeListResult{}, nil)
	err := o.Teardown(context.Background())
	require.EqualError(t, err, `heph: remove container "heph-b-2": device busy`)
	require.Equal(t, map[string]string{"stuck": "heph-b-2"}, o.ManagedContainers(), "a container that could not be removed stays tracked")
}

func TestBuildImageSendsContextHonouringDockerignore(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"Dockerfile":     "FROM scratch\nCOPY app /app\n",
		".dockerignore":  "*.log\nsecret/\n!keep.log\n",
		"app":            "binary",
		"debug.log":      "noise",
		"keep.log":       "kept",
		"secret/key":     "s3cr3t",
		"sub/data.txt":   "data",
		"sub/deep/x.log": "deep noise is kept: *.log matches only at the top",
	} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	o, m := newMocked()
	var files []string
	var opts client.ImageBuildOptions
	m.On("ImageBuild", anyCtx, mock.Anything, mock.Anything).Run(func(a mock.Arguments) {
		opts = a.Get(2).(client.ImageBuildOptions)
		tr := tar.NewReader(bytes.NewReader(a.Get(1).([]byte)))
		for {
			h, err := tr.Next()
			if err != nil {
				require.ErrorIs(t, err, io.EOF)
				break
			}
			if h.Typeflag == tar.TypeReg {
				files = append(files, h.Name)
			}
		}
	}).Return(client.ImageBuildResult{Body: io.NopCloser(strings.NewReader(`{"stream":"Step 1/2 : FROM scratch\n"}` + "\n" + `{"aux":{"ID":"sha256:1"}}`))}, nil)

	require.NoError(t, o.BuildImage(context.Background(), dir, "heph-build/app:1"))
	sort.Strings(files)
	require.Equal(t, []string{".dockerignore", "Dockerfile", "app", "keep.log", "sub/data.txt", "sub/deep/x.log"}, files)
	require.Equal(t, []string{"heph-build/app:1"}, opts.Tags)
	require.True(t, opts.Remove)
}

func TestBuildImageReturnsStreamError(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY missing /\n"), 0o644))
	o, m := newMocked()
	m.On("ImageBuild", anyCtx, mock.Anything, mock.Anything).Return(client.ImageBuildResult{Body: io.NopCloser(strings.NewReader(
		`{"stream":"Step 2/2 : COPY missing /\n"}` + "\n" +
			`{"errorDetail":{"message":"COPY failed: file not found in build context"},"error":"COPY failed: file not found in build context"}`))}, nil)
	err := o.BuildImage(context.Background(), dir, "heph-build/app:1")
	require.ErrorContains(t, err, `heph: build image "heph-build/app:1": COPY failed: file not found in build context`)
	require.ErrorContains(t, err, "Step 2/2 : COPY missing /")
	var se *StreamError
	require.ErrorAs(t, err, &se)

	require.ErrorIs(t, o.BuildImage(context.Background(), filepath.Join(dir, "nope"), "x:1"), ErrInvalidConfig)
	require.ErrorIs(t, o.BuildImage(context.Background(), dir, "Bad Tag"), ErrInvalidConfig)
	m.AssertNumberOfCalls(t, "ImageBuild", 1)
}
