package heph

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/port"
	"github.com/heph-go/heph/wait"
)

func TestRequestIsImmutable(t *testing.T) {
	base := NewContainer("app:1").WithName("db").WithEnv("A", "1").WithExposedPorts("8080").WithLabel("team", "core").WithCmd("serve")
	snapshot := base.clone()
	t.Run("branches", func(t *testing.T) {
		for i := range 50 {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				v := base.WithEnv("A", strconv.Itoa(i)).WithEnv(fmt.Sprintf("K%d", i), "v").
					WithExposedPorts(strconv.Itoa(9000+i)).WithLabel("i", strconv.Itoa(i)).
					WithCmd("serve", strconv.Itoa(i)).WithEntrypoint("/app", strconv.Itoa(i)).
					WithTmpfs(fmt.Sprintf("/t%d", i)).WithVolume(fmt.Sprintf("v%d", i), "/v").
					WithFile(fmt.Sprintf("/f%d", i), []byte("x"), 0o644).WithHostPort("8080", 20000+i).
					WithWorkingDir("/w").WithUser("1000").WithStartupTimeout(time.Duration(i+1) * time.Second).
					WithPullTimeout(time.Minute).WithGracefulStop(time.Second).WithLogsToTest()
				require.Equal(t, strconv.Itoa(i), v.cfg.Env["A"])
				require.Equal(t, []string{"8080/tcp", fmt.Sprintf("%d/tcp", 9000+i)}, v.cfg.ExposedPorts)
				require.Equal(t, []string{"serve", strconv.Itoa(i)}, v.cfg.Cmd)
				require.Len(t, v.cfg.Mounts, 2)
				require.Len(t, v.files, 1)
				require.Equal(t, 20000+i, v.cfg.HostPorts["8080/tcp"])
				require.Equal(t, time.Duration(i+1)*time.Second, v.opts.startupTimeout)
				require.NoError(t, v.check())
			})
		}
	})
	require.Equal(t, snapshot, base, "the template is unchanged after 50 parallel branches")
	require.Equal(t, map[string]string{"A": "1"}, base.cfg.Env)
	require.Equal(t, DefaultStartupTimeout, base.opts.startupTimeout)
	require.False(t, base.logsToTest)
}

func TestRequestWithMethodsCopyTheirArguments(t *testing.T) {
	t.Parallel()
	args := []string{"a", "b"}
	entry := []string{"/app"}
	content := []byte("hello")
	r := NewContainer("app").WithCmd(args...).WithEntrypoint(entry...).WithFile("/etc/x", content, 0o600)
	args[0], entry[0], content[0] = "changed", "changed", 'J'
	require.Equal(t, []string{"a", "b"}, r.cfg.Cmd)
	require.Equal(t, []string{"/app"}, r.cfg.Entrypoint)
	require.Equal(t, "hello", string(r.files[0].Content))
}

func TestARefusedOptionChangesNothing(t *testing.T) {
	t.Parallel()
	r := NewContainer("app").WithName("db").WithExposedPorts("8080")
	bad := r.WithName("Bad_Name").WithExposedPorts("80/xyz").WithHostPort("8080", 0).WithTmpfs("tmp")
	require.Equal(t, "db", bad.cfg.Service, "the last good value stays")
	require.Equal(t, []string{"8080/tcp"}, bad.cfg.ExposedPorts)
	require.Empty(t, bad.cfg.HostPorts)
	require.Empty(t, bad.cfg.Mounts)
	require.Len(t, bad.errs, 4, "each refusal recorded, for Start to report")
	require.NoError(t, r.check(), "the request it came from is still good")
}

func TestExposingAPortTwiceKeepsOne(t *testing.T) {
	t.Parallel()
	r := NewContainer("app").WithExposedPorts("8080", "8080/tcp", "8080/TCP").WithHostPort("8080/tcp", 18080).WithExposedPorts("53/UDP")
	require.Equal(t, []string{"8080/tcp", "53/udp"}, r.cfg.ExposedPorts)
	require.Equal(t, map[string]int{"8080/tcp": 18080}, r.cfg.HostPorts)
	require.NoError(t, r.check())
	r = NewContainer("app").WithHostPort("9000", 19000)
	require.Equal(t, []string{"9000/tcp"}, r.cfg.ExposedPorts, "WithHostPort exposes the port")
}

func TestServiceNameAndDescription(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		req  ContainerRequest
		want string
	}{
		{NewContainer("postgres:16"), `postgres:16 (service "postgres")`},
		{NewContainer("docker.io/library/redis:7").WithName("cache"), `docker.io/library/redis:7 (service "cache")`},
		{NewContainer("127.0.0.1:5000/team/my_app:dev"), `127.0.0.1:5000/team/my_app:dev (service "my-app")`},
	} {
		require.Equal(t, tc.want, tc.req.String())
	}
}

func TestInvalidOptionsAreReportedAtStartAndRun(t *testing.T) {
	cases := []struct {
		reason string
		req    ContainerRequest
		want   string
	}{
		{"empty image", NewContainer(""), `NewContainer(""): is empty`},
		{"upper-case image", NewContainer("App:1"), `NewContainer("App:1"): is not a valid image reference`},
		{"bad service name", NewContainer("app").WithName("my_db"), `WithName("my_db"): is not a valid host name`},
		{"bad port", NewContainer("app").WithExposedPorts("8080", "80/xyz"), `WithExposedPorts("80/xyz"): protocol "xyz" is not tcp, udp or sctp`},
		{"port out of range", NewContainer("app").WithExposedPorts("70000"), `WithExposedPorts("70000"): want a number from 1 to 65535`},
		{"bad container port for a host port", NewContainer("app").WithHostPort("x", 1), `WithHostPort("x"): want a number from 1 to 65535`},
		{"bad host port", NewContainer("app").WithHostPort("8080", 0), `WithHostPort(0): the host port is outside 1-65535`},
		{"env key with =", NewContainer("app").WithEnv("A=B", "x"), `WithEnv("A=…"): the key must not contain "=" or NUL`},
		{"empty env key", NewContainer("app").WithEnv("", "x"), `WithEnv(""): the key is empty`},
		{"reserved label", NewContainer("app").WithLabel("heph.test", "x"), `WithLabel("heph.test"): the "heph." prefix is reserved for heph`},
		{"NUL in a label value", NewContainer("app").WithLabel("k", "\x00"), `WithLabel("k"): the value must not contain NUL`},
		{"NUL in a command", NewContainer("app").WithCmd("a", "\x00"), `WithCmd(2): an argument contains NUL`},
		{"NUL in an entrypoint", NewContainer("app").WithEntrypoint("\x00"), `WithEntrypoint(1): an argument contains NUL`},
		{"relative bind", NewContainer("app").WithBindMount("data", "/data"), `WithBindMount("data"): must be an absolute host path`},
		{"relative read-only bind", NewContainer("app").WithReadOnlyBindMount("/data", "data"), `WithReadOnlyBindMount("data"): must be an absolute path in the container`},
		{"relative target", NewContainer("app").WithTmpfs("tmp"), `WithTmpfs("tmp"): must be an absolute path in the container`},
		{"mounted twice", NewContainer("app").WithTmpfs("/x").WithVolume("v1", "/x/"), `WithVolume("/x/"): something is already mounted there`},
		{"empty volume name", NewContainer("app").WithVolume("", "/x"), `WithVolume(""): the volume name is empty`},
		{"bad volume name", NewContainer("app").WithVolume("a/b", "/x"), `WithVolume("a/b"): is not a valid volume name`},
		{"relative file", NewContainer("app").WithFile("etc/x", nil, 0o644), `WithFile("etc/x"): must be an absolute path in the container`},
		{"a directory as a file", NewContainer("app").WithFile("/etc/", nil, 0o644), `WithFile("/etc/"): must be a file path, not end in /`},
		{"file mode", NewContainer("app").WithFile("/x", nil, 0o644|1<<31), `WithFile("/x"): mode drw-r--r-- has more than permission bits`},
		{"relative working dir", NewContainer("app").WithWorkingDir("src"), `WithWorkingDir("src"): must be an absolute path`},
		{"bad user", NewContainer("app").WithUser("a b"), `WithUser("a b"): must be "user", "uid", "user:group" or "uid:gid"`},
		{"nil strategy", NewContainer("app").WithWaitStrategy(nil), `WithWaitStrategy: wait: invalid strategy: nil strategy`},
		{"malformed strategy", NewContainer("app").WithWaitStrategy(wait.ForListeningPort("0")), `WithWaitStrategy: wait: invalid strategy ForListeningPort("0"): bad port "0"`},
		{"zero startup timeout", NewContainer("app").WithStartupTimeout(0), `WithStartupTimeout(0s): must be positive`},
		{"negative pull timeout", NewContainer("app").WithPullTimeout(-time.Second), `WithPullTimeout(-1s): must be positive`},
		{"nil network", NewContainer("app").WithNetwork(nil), `WithNetwork("nil"): the network is nil`},
		{"negative graceful stop", NewContainer("app").WithGracefulStop(-time.Second), `WithGracefulStop(-1s): is negative`},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			h := newHarness(t)
			h.ft.run(func(t testing.TB) { tc.req.Start(t) })
			require.Contains(t, h.ft.fatal, "invalid configuration: "+tc.want)
			require.Empty(t, h.f.Calls(), "refused before any Docker call")

			_, err := tc.req.Run(context.Background(), h.o)
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.ErrorContains(t, err, "heph: invalid configuration: "+tc.want)
			require.Empty(t, h.f.Calls(), "refused before any Docker call")
			if strings.Contains(tc.want, "WithWaitStrategy") {
				require.ErrorIs(t, err, wait.ErrInvalid, "the strategy's own error is kept, not parsed back into a string")
			}
		})
	}
}

func TestEveryBadOptionIsReported(t *testing.T) {
	t.Parallel()
	_, err := NewContainer("App").WithName("x_y").WithExposedPorts("0", "1", "65536").WithTmpfs("rel").Run(context.Background(), nil)
	require.ErrorIs(t, err, ErrInvalidConfig)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 5, err.Error())
	for _, want := range []string{`NewContainer("App")`, `WithName("x_y")`, `WithExposedPorts("0")`, `WithExposedPorts("65536")`, `WithTmpfs("rel")`} {
		require.Contains(t, err.Error(), want)
	}
	for _, l := range lines {
		require.True(t, strings.HasPrefix(l, "heph: invalid configuration: "), l)
	}
}

func TestRunWithoutAnOrchestratorIsRefused(t *testing.T) {
	t.Parallel()
	_, err := NewContainer("app").Run(context.Background(), nil)
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.EqualError(t, err, "heph: invalid configuration: Run: the Orchestrator is nil: make one with NewOrchestrator, or use DefaultOrchestrator")
}

func TestWithEnvNeverPrintsTheValue(t *testing.T) {
	t.Parallel()
	for _, r := range []ContainerRequest{
		NewContainer("app").WithEnv("DB_PASSWORD", "hunter2\x00"),
		NewContainer("app").WithEnv("DB_PASSWORD=hunter2", ""), // the value put in the key by mistake
	} {
		o, f := newTestOrchestrator()
		_, err := r.Run(context.Background(), o)
		require.ErrorIs(t, err, ErrInvalidConfig)
		require.ErrorContains(t, err, `WithEnv("DB_PASSWORD`, "the key is named")
		require.NotContains(t, err.Error(), "hunter2", "the value is not")
		require.NotContains(t, fmt.Sprintf("%+v", err), "hunter2")
		require.Empty(t, f.Calls())
	}
}

// TestOnePortParser: the builder, the config, package wait and
// internal/port give the same answer for every port string, and the builder
// stores the canonical form.
func TestOnePortParser(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want string // canonical form; "" when refused
	}{
		{"8080", "8080/tcp"},
		{"8080/tcp", "8080/tcp"},
		{"53/UDP", "53/udp"},
		{"53/udp", "53/udp"},
		{"9/SCTP", "9/sctp"},
		{"80/Tcp", "80/tcp"},
		{"1", "1/tcp"},
		{"65535/udp", "65535/udp"},
		{"08080", ""},
		{"0", ""},
		{"00", ""},
		{"65536", ""},
		{"99999999999999999999", ""},
		{"-1", ""},
		{"+80", ""},
		{"", ""},
		{" 80", ""},
		{"80 ", ""},
		{"80/", ""},
		{"/tcp", ""},
		{"80/xyz", ""},
		{"80/ tcp", ""},
		{"80/tcp/udp", ""},
		{"0x50", ""},
		{"80.0", ""},
		{"1e3", ""},
		{"８０", ""},
		{"tcp", ""},
	}
	require.GreaterOrEqual(t, len(cases), 20)
	for _, tc := range cases {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			refused := tc.want == ""

			p, err := port.Parse(tc.in)
			require.Equal(t, refused, err != nil, "internal/port: %v", err)
			if !refused {
				require.Equal(t, tc.want, p.String())
			}

			r := NewContainer("app").WithExposedPorts(tc.in)
			err = r.check()
			require.Equal(t, refused, err != nil, "WithExposedPorts: %v", err)
			if refused {
				require.ErrorIs(t, err, ErrInvalidConfig)
				require.ErrorContains(t, err, "WithExposedPorts("+strconv.Quote(tc.in)+")")
				require.Empty(t, r.cfg.ExposedPorts)
			} else {
				require.Equal(t, []string{tc.want}, r.cfg.ExposedPorts, "the builder stores the canonical form")
			}

			err = ContainerConfig{Image: "app", ExposedPorts: []string{tc.in}}.validate()
			require.Equal(t, refused, err != nil, "ContainerConfig.ExposedPorts: %v", err)

			s := wait.ForListeningPort(tc.in)
			err = s.Validate()
			require.Equal(t, refused, err != nil, "wait.ForListeningPort: %v", err)
			if !refused {
				require.Equal(t, "ForListeningPort("+tc.want+")", s.String(), "package wait normalises the same way")
			}
		})
	}
}
