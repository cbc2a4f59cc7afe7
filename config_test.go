package heph

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/wait"
)

func TestInvalidConfigsAreRefusedBeforeAnyDockerCall(t *testing.T) {
	t.Parallel()
	ok := ContainerConfig{Image: "app:1"}
	with := func(f func(*ContainerConfig)) ContainerConfig {
		c := ok
		f(&c)
		return c
	}
	cases := []struct {
		reason string
		cfg    ContainerConfig
		want   string // must appear in the message: the field and the value
	}{
		{"an image is required", ContainerConfig{}, `Image "": is empty`},
		{"blank image", with(func(c *ContainerConfig) { c.Image = "   " }), `Image "   ": is empty`},
		{"spaces in the reference", with(func(c *ContainerConfig) { c.Image = "my app:1" }), `Image "my app:1": is not a valid image reference`},
		{"upper-case repository", with(func(c *ContainerConfig) { c.Image = "Postgres:16" }), `Image "Postgres:16": is not a valid image reference`},
		{"bad tag", with(func(c *ContainerConfig) { c.Image = "app:-x" }), `Image "app:-x": is not a valid image reference`},
		{"NUL in the image", with(func(c *ContainerConfig) { c.Image = "app\x00" }), `Image "app\x00": must not contain NUL`},
		{"unknown protocol", with(func(c *ContainerConfig) { c.ExposedPorts = []string{"80/xyz"} }), `ExposedPorts "80/xyz": protocol "xyz" is not tcp, udp or sctp`},
		{"port out of range", with(func(c *ContainerConfig) { c.ExposedPorts = []string{"70000/tcp"} }), `ExposedPorts "70000/tcp": want a number from 1 to 65535`},
		{"port zero", with(func(c *ContainerConfig) { c.ExposedPorts = []string{"0"} }), `ExposedPorts "0": want a number from 1 to 65535`},
		{"not a number", with(func(c *ContainerConfig) { c.ExposedPorts = []string{"abc"} }), `ExposedPorts "abc": want a number from 1 to 65535`},
		{"same port twice", with(func(c *ContainerConfig) { c.ExposedPorts = []string{"8080", "8080/TCP"} }), `ExposedPorts "8080/TCP": is listed twice (as 8080/tcp)`},
		{"host port for a port not exposed", with(func(c *ContainerConfig) { c.HostPorts = map[string]int{"9000": 19000} }), `HostPorts key "9000": is not in ExposedPorts`},
		{"malformed host port key", with(func(c *ContainerConfig) { c.HostPorts = map[string]int{"x": 19000} }), `HostPorts key "x": want a number`},
		{"host port out of range", with(func(c *ContainerConfig) {
			c.ExposedPorts = []string{"9000"}
			c.HostPorts = map[string]int{"9000": 99999}
		}), `HostPorts[9000] 99999: is outside 1-65535`},
		{"one host port for two container ports", with(func(c *ContainerConfig) {
			c.ExposedPorts = []string{"9000", "9001"}
			c.HostPorts = map[string]int{"9000": 19000, "9001": 19000}
		}), `HostPorts[9001] 19000: is also asked for by 9000`},
		{"env key with =", with(func(c *ContainerConfig) { c.Env = map[string]string{"A=B": "c"} }), `Env key "A=…": the key must not contain "=" or NUL`},
		{"empty env key", with(func(c *ContainerConfig) { c.Env = map[string]string{"": "c"} }), `Env key "": the key is empty`},
		{"NUL in an argument", with(func(c *ContainerConfig) { c.Cmd = []string{"a", "b\x00"} }), `Cmd 2: an argument contains NUL`},
		{"NUL in the entrypoint", with(func(c *ContainerConfig) { c.Entrypoint = []string{"\x00"} }), `Entrypoint 1: an argument contains NUL`},
		{"relative bind source", with(func(c *ContainerConfig) { c.Mounts = []Mount{{Type: MountBind, Source: "data", Target: "/data"}} }), `Mounts[0].Source "data": must be an absolute host path`},
		{"empty bind source", with(func(c *ContainerConfig) { c.Mounts = []Mount{{Type: MountBind, Target: "/data"}} }), `Mounts[0].Source "": is empty (a bind mount needs a host path)`},
		{"relative mount target", with(func(c *ContainerConfig) { c.Mounts = []Mount{{Type: MountTmpfs, Target: "tmp"}} }), `Mounts[0].Target "tmp": must be an absolute path in the container`},
		{"mount on the root", with(func(c *ContainerConfig) { c.Mounts = []Mount{{Type: MountTmpfs, Target: "/"}} }), `Mounts[0].Target "/": must not be the root directory`},
		{"same target twice", with(func(c *ContainerConfig) {
			c.Mounts = []Mount{{Type: MountTmpfs, Target: "/tmp"}, {Type: MountTmpfs, Target: "/tmp/"}}
		}), `Mounts[1].Target "/tmp/": is mounted twice`},
		{"unknown mount type", with(func(c *ContainerConfig) { c.Mounts = []Mount{{Type: "nfs", Target: "/x"}} }), `Mounts[0].Type "nfs": is not bind, volume or tmpfs`},
		{"bad volume name", with(func(c *ContainerConfig) { c.Mounts = []Mount{{Type: MountVolume, Source: "a/b", Target: "/x"}} }), `Mounts[0].Source "a/b": is not a valid volume name`},
		{"tmpfs with a source", with(func(c *ContainerConfig) { c.Mounts = []Mount{{Type: MountTmpfs, Source: "/x", Target: "/x"}} }), `Mounts[0].Source "/x": must be empty for a tmpfs mount`},
		{"service not a host name", with(func(c *ContainerConfig) { c.Service = "my_db" }), `Service "my_db": is not a valid host name`},
		{"service with a leading dash", with(func(c *ContainerConfig) { c.Service = "-db" }), `Service "-db": is not a valid host name`},
		{"service too long", with(func(c *ContainerConfig) { c.Service = strings.Repeat("a", 64) }), `Service "` + strings.Repeat("a", 64) + `": is not a valid host name`},
		{"negative pull timeout", with(func(c *ContainerConfig) { c.PullTimeout = -time.Second }), `PullTimeout -1s: is negative`},
		{"negative stop timeout", with(func(c *ContainerConfig) { c.StopTimeout = -time.Second }), `StopTimeout -1s: is negative`},
		{"reserved label prefix", with(func(c *ContainerConfig) { c.Labels = map[string]string{"heph.session": "x"} }), `Labels key "heph.session": the "heph." prefix is reserved for heph`},
		{"empty label key", with(func(c *ContainerConfig) { c.Labels = map[string]string{"": "x"} }), `Labels key "": the key is empty`},
		{"NUL in a label value", with(func(c *ContainerConfig) { c.Labels = map[string]string{"k": "\x00"} }), `Labels[k] "\x00": the value must not contain NUL`},
		{"relative working dir", with(func(c *ContainerConfig) { c.WorkingDir = "src" }), `WorkingDir "src": must be an absolute path`},
		{"user with a space", with(func(c *ContainerConfig) { c.User = "root user" }), `User "root user": must be "user", "uid", "user:group" or "uid:gid"`},
		{"empty network", with(func(c *ContainerConfig) { c.Networks = []string{""} }), `Networks[0] "": is empty`},
		{"network twice", with(func(c *ContainerConfig) { c.Networks = []string{"n", "n"} }), `Networks[1] "n": is listed twice`},
		{"a malformed wait strategy", with(func(c *ContainerConfig) { c.WaitStrategy = wait.ForListeningPort("80/xyz") }), `WaitStrategy: wait: invalid strategy ForListeningPort("80/xyz"): bad port "80/xyz": protocol "xyz" is not tcp, udp or sctp`},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			t.Parallel()
			o, f := newTestOrchestrator()
			_, err := o.CreateContainer(context.Background(), tc.cfg)
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.ErrorContains(t, err, "heph: invalid configuration: "+tc.want)
			require.Empty(t, f.Calls(), "no Docker call for an invalid config")
			require.Empty(t, trackedContainers(o))
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	err := ContainerConfig{Image: "Bad Image", ExposedPorts: []string{"x"}, PullTimeout: -1}.validate()
	var joined interface{ Unwrap() []error }
	require.True(t, errors.As(err, &joined))
	require.Len(t, joined.Unwrap(), 3, "every problem, not the first")
	for _, e := range joined.Unwrap() {
		require.ErrorIs(t, e, ErrInvalidConfig)
		require.Equal(t, 1, strings.Count(e.Error(), "heph:"))
	}
}

func TestValidConfigsPass(t *testing.T) {
	t.Parallel()
	for _, c := range []ContainerConfig{
		{Image: "postgres"},
		{Image: "127.0.0.1:5000/team/app:dev", Service: "db-1", ExposedPorts: []string{"5432", "53/udp", "9/sctp"}, HostPorts: map[string]int{"5432/tcp": 15432}},
		{Image: "app", ExposedPorts: []string{"53/UDP"}, HostPorts: map[string]int{"53/udp": 1053}},
		{Image: "app@sha256:" + strings.Repeat("a", 64), Env: map[string]string{"EMPTY": ""}, User: "1000:1000", WorkingDir: "/srv"},
		{Image: "app", Mounts: []Mount{{Type: MountVolume, Target: "/anon"}, {Type: MountVolume, Source: "data.v1", Target: "/data"}}},
		{Image: "app", Labels: map[string]string{"hephaestus": "not heph's prefix"}, Networks: []string{"a", "b"}},
		{Image: "app", WaitStrategy: wait.ForListeningPort("8080")},
	} {
		require.NoError(t, c.validate(), "%+v", c)
	}
}

func TestEnvValuesAreNeverPrinted(t *testing.T) {
	t.Parallel()
	o, f := newTestOrchestrator()
	for _, env := range []map[string]string{
		{"DB_PASSWORD": "hunter2\x00"},
		{"DB_PASSWORD=hunter2": ""}, // the value put in the key by mistake
	} {
		_, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "app", Env: env})
		require.ErrorIs(t, err, ErrInvalidConfig)
		require.ErrorContains(t, err, "DB_PASSWORD", "the key is named")
		require.NotContains(t, err.Error(), "hunter2", "the value is not")
	}
	require.Empty(t, f.Calls())
}

func TestNetworkConfigIsValidatedBeforeAnyDockerCall(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{"heph.test": "x"}, `NetworkConfig.Labels key "heph.test": the "heph." prefix is reserved for heph`},
		{map[string]string{" ": "x"}, `NetworkConfig.Labels key " ": the key is empty`},
		{map[string]string{"k": "a\x00"}, `NetworkConfig.Labels[k] "a\x00": the value must not contain NUL`},
	} {
		o, f := newTestOrchestrator()
		_, err := o.CreateNetwork(context.Background(), NetworkConfig{Labels: tc.labels})
		require.ErrorIs(t, err, ErrInvalidConfig)
		require.ErrorContains(t, err, "heph: invalid configuration: "+tc.want)
		require.Empty(t, f.Calls())
	}
}
