package heph

import (
	"context"
	"io"
	"iter"
	"net/netip"
	"strings"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/mock"
)

// mockAPI is a testify mock of the Docker seam. Every method records its
// call; tests set expectations with On(...).Return(...).
type mockAPI struct{ mock.Mock }

var _ dockerAPI = (*mockAPI)(nil)

func ret[T any](args mock.Arguments, i int) T {
	v, _ := args.Get(i).(T)
	return v
}

func (m *mockAPI) Ping(ctx context.Context, o client.PingOptions) (client.PingResult, error) {
	a := m.Called(ctx, o)
	return ret[client.PingResult](a, 0), a.Error(1)
}
func (m *mockAPI) Close() error { return m.Called().Error(0) }
func (m *mockAPI) Info(ctx context.Context, o client.InfoOptions) (client.SystemInfoResult, error) {
	a := m.Called(ctx, o)
	return ret[client.SystemInfoResult](a, 0), a.Error(1)
}
func (m *mockAPI) ServerVersion(ctx context.Context, o client.ServerVersionOptions) (client.ServerVersionResult, error) {
	a := m.Called(ctx, o)
	return ret[client.ServerVersionResult](a, 0), a.Error(1)
}
func (m *mockAPI) Events(ctx context.Context, o client.EventsListOptions) client.EventsResult {
	return ret[client.EventsResult](m.Called(ctx, o), 0)
}
func (m *mockAPI) ContainerLogs(ctx context.Context, id string, o client.ContainerLogsOptions) (client.ContainerLogsResult, error) {
	a := m.Called(ctx, id, o)
	return ret[client.ContainerLogsResult](a, 0), a.Error(1)
}
func (m *mockAPI) ContainerWait(ctx context.Context, id string, o client.ContainerWaitOptions) client.ContainerWaitResult {
	return ret[client.ContainerWaitResult](m.Called(ctx, id, o), 0)
}
func (m *mockAPI) ExecCreate(ctx context.Context, id string, o client.ExecCreateOptions) (client.ExecCreateResult, error) {
	a := m.Called(ctx, id, o)
	return ret[client.ExecCreateResult](a, 0), a.Error(1)
}
func (m *mockAPI) ExecAttach(ctx context.Context, id string, o client.ExecAttachOptions) (client.ExecAttachResult, error) {
	a := m.Called(ctx, id, o)
	return ret[client.ExecAttachResult](a, 0), a.Error(1)
}
func (m *mockAPI) ExecInspect(ctx context.Context, id string, o client.ExecInspectOptions) (client.ExecInspectResult, error) {
	a := m.Called(ctx, id, o)
	return ret[client.ExecInspectResult](a, 0), a.Error(1)
}
func (m *mockAPI) CopyToContainer(ctx context.Context, id string, o client.CopyToContainerOptions) (client.CopyToContainerResult, error) {
	a := m.Called(ctx, id, o)
	return ret[client.CopyToContainerResult](a, 0), a.Error(1)
}
func (m *mockAPI) CopyFromContainer(ctx context.Context, id string, o client.CopyFromContainerOptions) (client.CopyFromContainerResult, error) {
	a := m.Called(ctx, id, o)
	return ret[client.CopyFromContainerResult](a, 0), a.Error(1)
}
func (m *mockAPI) NetworkList(ctx context.Context, o client.NetworkListOptions) (client.NetworkListResult, error) {
	a := m.Called(ctx, o)
	return ret[client.NetworkListResult](a, 0), a.Error(1)
}
func (m *mockAPI) ContainerCreate(ctx context.Context, o client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	a := m.Called(ctx, o)
	return ret[client.ContainerCreateResult](a, 0), a.Error(1)
}
func (m *mockAPI) ContainerStart(ctx context.Context, id string, o client.ContainerStartOptions) (client.ContainerStartResult, error) {
	a := m.Called(ctx, id, o)
	return ret[client.ContainerStartResult](a, 0), a.Error(1)
}
func (m *mockAPI) ContainerStop(ctx context.Context, id string, o client.ContainerStopOptions) (client.ContainerStopResult, error) {
	a := m.Called(ctx, id, o)
	return ret[client.ContainerStopResult](a, 0), a.Error(1)
}
func (m *mockAPI) ContainerRemove(ctx context.Context, id string, o client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	a := m.Called(ctx, id, o)
	return ret[client.ContainerRemoveResult](a, 0), a.Error(1)
}
func (m *mockAPI) ContainerList(ctx context.Context, o client.ContainerListOptions) (client.ContainerListResult, error) {
	a := m.Called(ctx, o)
	return ret[client.ContainerListResult](a, 0), a.Error(1)
}
func (m *mockAPI) ContainerInspect(ctx context.Context, id string, o client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	a := m.Called(ctx, id, o)
	return ret[client.ContainerInspectResult](a, 0), a.Error(1)
}
func (m *mockAPI) ImageInspect(ctx context.Context, image string, o ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	a := m.Called(ctx, image)
	return ret[client.ImageInspectResult](a, 0), a.Error(1)
}
func (m *mockAPI) ImagePull(ctx context.Context, ref string, o client.ImagePullOptions) (client.ImagePullResponse, error) {
	a := m.Called(ctx, ref, o)
	return ret[client.ImagePullResponse](a, 0), a.Error(1)
}

// ImageBuild consumes the build context as the daemon would and hands the
// mock its bytes (the mock must not hold the live pipe).
func (m *mockAPI) ImageBuild(ctx context.Context, r io.Reader, o client.ImageBuildOptions) (client.ImageBuildResult, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return client.ImageBuildResult{}, err
	}
	a := m.Called(ctx, data, o)
	return ret[client.ImageBuildResult](a, 0), a.Error(1)
}
func (m *mockAPI) NetworkCreate(ctx context.Context, name string, o client.NetworkCreateOptions) (client.NetworkCreateResult, error) {
	a := m.Called(ctx, name, o)
	return ret[client.NetworkCreateResult](a, 0), a.Error(1)
}
func (m *mockAPI) NetworkRemove(ctx context.Context, id string, o client.NetworkRemoveOptions) (client.NetworkRemoveResult, error) {
	a := m.Called(ctx, id, o)
	return ret[client.NetworkRemoveResult](a, 0), a.Error(1)
}
func (m *mockAPI) NetworkConnect(ctx context.Context, id string, o client.NetworkConnectOptions) (client.NetworkConnectResult, error) {
	a := m.Called(ctx, id, o)
	return ret[client.NetworkConnectResult](a, 0), a.Error(1)
}
func (m *mockAPI) VolumeList(ctx context.Context, o client.VolumeListOptions) (client.VolumeListResult, error) {
	a := m.Called(ctx, o)
	return ret[client.VolumeListResult](a, 0), a.Error(1)
}
func (m *mockAPI) VolumeRemove(ctx context.Context, id string, o client.VolumeRemoveOptions) (client.VolumeRemoveResult, error) {
	a := m.Called(ctx, id, o)
	return ret[client.VolumeRemoveResult](a, 0), a.Error(1)
}

// fakePullStream is an ImagePullResponse over a fixed JSON stream.
type fakePullStream struct {
	io.Reader
	closed bool
}

func newPullStream(lines ...string) *fakePullStream {
	return &fakePullStream{Reader: strings.NewReader(strings.Join(lines, "\n"))}
}

func (f *fakePullStream) Close() error { f.closed = true; return nil }
func (f *fakePullStream) JSONMessages(context.Context) iter.Seq2[jsonstream.Message, error] {
	return func(func(jsonstream.Message, error) bool) {}
}
func (f *fakePullStream) Wait(context.Context) error { return nil }

// newMocked returns an Orchestrator over a fresh mock, without a ping.
func newMocked() (*Orchestrator, *mockAPI) {
	m := &mockAPI{}
	o := newOrchestrator(orchestratorOptions{api: m}, dockerEndpoint{Host: "unix:///var/run/docker.sock"})
	o.hostEnv.exists = func(string) bool { return false } // not in a container: loopback without asking the daemon
	return o, m
}

var anyCtx = mock.Anything

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
