package heph

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestInvalidConfigsAreRefusedBeforeAnyDockerCall(t *testing.T) {
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
		{"bad tag", with(func(c *ContainerConfig) { c.Image = "app:-x" }), `Image "app:-x"`},
		{"unknown protocol", with(func(c *ContainerConfig) { c.ExposedPorts = []string{"80/xyz"} }), `ExposedPorts "80/xyz": protocol "xyz" is not tcp, udp or sctp`},
		{"port out of range", with(func(c *ContainerConfig) { c.ExposedPorts = []string{"70000/tcp"} }), `ExposedPorts "70000/tcp": port 70000 is outside 1-65535`},
		{"port zero", with(func(c *ContainerConfig) { c.ExposedPorts = []string{"0"} }), `ExposedPorts "0": port 0 is outside 1-65535`},
		{"not a number", with(func(c *ContainerConfig) { c.ExposedPorts = []string{"abc"} }), `ExposedPorts "abc": "abc" is not a port number`},
		{"same port twice", with(func(c *ContainerConfig) { c.ExposedPorts = []string{"8080", "8080/tcp"} }), `ExposedPorts "8080/tcp": is listed twice (as 8080/tcp)`},
		{"host port for a port not exposed", with(func(c *ContainerConfig) { c.HostPorts = map[string]int{"9000": 19000} }), `HostPorts key "9000": is not in ExposedPorts`},
		{"host port out of range", with(func(c *ContainerConfig) {
			c.ExposedPorts = []string{"9000"}
			c.HostPorts = map[string]int{"9000": 99999}
		}), `HostPorts[9000] 99999: is outside 1-65535`},
		{"env key with =", with(func(c *ContainerConfig) { c.Env = map[string]string{"A=B": "c"} }), `Env key "A=B": must not contain "=" or NUL`},
		{"empty env key", with(func(c *ContainerConfig) { c.Env = map[string]string{"": "c"} }), `Env key "": is empty`},
		{"relative bind source", with(func(c *ContainerConfig) { c.Mounts = []Mount{{Type: MountBind, Source: "data", Target: "/data"}} }), `Mounts[0].Source "data": must be an absolute host path`},
		{"empty bind source", with(func(c *ContainerConfig) { c.Mounts = []Mount{{Type: MountBind, Target: "/data"}} }), `Mounts[0].Source "": is empty`},
		{"relative mount target", with(func(c *ContainerConfig) { c.Mounts = []Mount{{Type: MountTmpfs, Target: "tmp"}} }), `Mounts[0].Target "tmp": must be an absolute path in the container`},
		{"same target twice", with(func(c *ContainerConfig) {
			c.Mounts = []Mount{{Type: MountTmpfs, Target: "/tmp"}, {Type: MountTmpfs, Target: "/tmp/"}}
		}), `Mounts[1].Target "/tmp/": is mounted twice`},
		{"unknown mount type", with(func(c *ContainerConfig) { c.Mounts = []Mount{{Type: "nfs", Target: "/x"}} }), `Mounts[0].Type "nfs": is not bind, volume or tmpfs`},
		{"bad volume name", with(func(c *ContainerConfig) { c.Mounts = []Mount{{Type: MountVolume, Source: "a/b", Target: "/x"}} }), `Mounts[0].Source "a/b": is not a valid volume name`},
		{"tmpfs with a source", with(func(c *ContainerConfig) { c.Mounts = []Mount{{Type: MountTmpfs, Source: "/x", Target: "/x"}} }), `Mounts[0].Source "/x": must be empty for a tmpfs mount`},
		{"service not a host name", with(func(c *ContainerConfig) { c.Service = "my_db" }), `Service "my_db": is not a valid host name`},
		{"service with a leading dash", with(func(c *ContainerConfig) { c.Service = "-db" }), `Service "-db": is not a valid host name`},
		{"service too long", with(func(c *ContainerConfig) { c.Service = strings.Repeat("a", 64) }), `Service "` + strings.Repeat("a", 64) + `"`},
		{"negative pull timeout", with(func(c *ContainerConfig) { c.PullTimeout = -time.Second }), `PullTimeout -1s: is negative`},
		{"reserved label prefix", with(func(c *ContainerConfig) { c.Labels = map[string]string{"heph.session": "x"} }), `Labels key "heph.session": uses the "heph." prefix`},
		{"empty label key", with(func(c *ContainerConfig) { c.Labels = map[string]string{"": "x"} }), `Labels key "": is empty`},
		{"relative working dir", with(func(c *ContainerConfig) { c.WorkingDir = "src" }), `WorkingDir "src": must be an absolute path`},
		{"user with a space", with(func(c *ContainerConfig) { c.User = "root user" }), `User "root user"`},
		{"empty network", with(func(c *ContainerConfig) { c.Networks = []string{""} }), `Networks[0] "": is empty`},
		{"network twice", with(func(c *ContainerConfig) { c.Networks = []string{"n", "n"} }), `Networks[1] "n": is listed twice`},
	}
	require.GreaterOrEqual(t, len(cases), 15)
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			o, m := newMocked() // no expectations: any Docker call panics the mock
			_, err := o.CreateContainer(context.Background(), tc.cfg)
			require.Error(t, err)
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.Contains(t, err.Error(), tc.want)
			require.Empty(t, m.Calls, "no Docker call for an invalid config")
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := ContainerConfig{Image: "Bad Image", ExposedPorts: []string{"x"}, PullTimeout: -1}.validate()
	var joined interface{ Unwrap() []error }
	require.True(t, errors.As(err, &joined))
	require.Len(t, joined.Unwrap(), 3)
	for _, e := range joined.Unwrap() {
		require.ErrorIs(t, e, ErrInvalidConfig)
	}
}

func TestValidConfigsPass(t *testing.T) {
	for _, c := range []ContainerConfig{
		{Image: "postgres"},
		{Image: "127.0.0.1:5000/team/app:dev", Service: "db-1", ExposedPorts: []string{"5432", "53/udp", "9/sctp"}, HostPorts: map[string]int{"5432/tcp": 15432}},
		{Image: "app@sha256:" + strings.Repeat("a", 64), Env: map[string]string{"EMPTY": ""}, User: "1000:1000", WorkingDir: "/srv"},
		{Image: "app", Mounts: []Mount{{Type: MountVolume, Target: "/anon"}, {Type: MountVolume, Source: "data.v1", Target: "/data"}}},
	} {
		require.NoError(t, c.validate(), "%+v", c)
	}
}

func TestNormalizePort(t *testing.T) {
	p, err := NormalizePort("8080")
	require.NoError(t, err)
	require.Equal(t, "8080/tcp", p)
	_, err = NormalizePort("8080/foo")
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, `port "8080/foo"`)
}
