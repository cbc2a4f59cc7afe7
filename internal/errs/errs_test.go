package errs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestOpError(t *testing.T) {
	cause := errors.New("No such container: heph-db-1a2b3c4d")
	cases := []struct {
		reason string
		err    error
		want   string
	}{
		{"op, quoted subject, cause", Op("start container", "heph-db-1a2b3c4d", nil, cause),
			`heph: start container "heph-db-1a2b3c4d": No such container: heph-db-1a2b3c4d`},
		{"no subject: no empty quotes", Op("list heph's containers", "", nil, cause),
			`heph: list heph's containers: No such container: heph-db-1a2b3c4d`},
		{"a cause that is heph's own error keeps one prefix", Op("start app", "app", nil, Op("start container", "heph-app-1", nil, cause)),
			`heph: start app "app": start container "heph-app-1": No such container: heph-db-1a2b3c4d`},
		{"three levels, still one prefix", Op("run", "", nil, Op("start app", "app", nil, Op("start container", "c", nil, cause))),
			`heph: run: start app "app": start container "c": No such container: heph-db-1a2b3c4d`},
		{"a sentinel as the cause loses its prefix too", Op("connect", "", nil, DockerUnavailable),
			`heph: connect: Docker daemon unavailable`},
		{"an invalid value as the cause", Op("create container", "x", nil, Invalid("Env key", "A=B", `must not contain "="`)),
			`heph: create container "x": invalid configuration: Env key "A=B": must not contain "="`},
		{"a subject with quotes is quoted, not broken", Op("pull image", `a"b`, nil, cause),
			`heph: pull image "a\"b": No such container: heph-db-1a2b3c4d`},
	}
	for _, tc := range cases {
		require.EqualError(t, tc.err, tc.want, tc.reason)
		require.Equal(t, 1, strings.Count(tc.err.Error(), "heph:"), "never heph: … heph: (%s)", tc.reason)
	}
}

func TestOpErrorCauseWrappedBeforeReachingOp(t *testing.T) {
	// A heph error wrapped with fmt.Errorf on its way up has its prefix in
	// the middle of the cause's message: that one goes too.
	inner := Op("inspect container", "c", nil, errors.New("timeout"))
	err := Op("wait", "app", nil, fmt.Errorf("heph: poll: %w", inner))
	require.EqualError(t, err, `heph: wait "app": poll: inspect container "c": timeout`)
	require.ErrorIs(t, err, inner, "the chain is untouched")

	joined := Op("teardown", "", nil, errors.Join(Op("remove container", "a", nil, errors.New("busy")), Op("remove network", "n", nil, errors.New("in use"))))
	require.EqualError(t, joined, "heph: teardown: remove container \"a\": busy\nheph: remove network \"n\": in use",
		"joined errors: one prefix per line, each line a message")
}

func TestOpNil(t *testing.T) {
	require.NoError(t, Op("start container", "x", ContainerNotFound, nil), "nil stays nil: Op can wrap any call's result")
}

func TestOpErrorUnwrap(t *testing.T) {
	cause := fmt.Errorf("dial unix /var/run/docker.sock: %w", os.ErrNotExist)
	err := Op("start container", "c", ContainerNotFound, cause)
	require.ErrorIs(t, err, ContainerNotFound, "the sentinel")
	require.ErrorIs(t, err, cause, "the cause")
	require.ErrorIs(t, err, os.ErrNotExist, "and what the cause wraps")
	require.NotErrorIs(t, err, ImageNotFound)
	var op *OpError
	require.ErrorAs(t, err, &op)
	require.Equal(t, "start container", op.Op)
	require.Equal(t, "c", op.Subject)
	require.Equal(t, []error{cause, ContainerNotFound}, op.Unwrap(), "the cause first")

	noSentinel := Op("stop container", "c", nil, context.DeadlineExceeded)
	require.ErrorIs(t, noSentinel, context.DeadlineExceeded)
	require.Equal(t, []error{context.DeadlineExceeded}, noSentinel.(*OpError).Unwrap(), "no nil in the tree")
	for _, s := range []error{DockerUnavailable, ImageNotFound, ContainerNotFound, NetworkNotFound, InvalidConfig, NetworkPoolExhausted, Watchdog} {
		require.NotErrorIs(t, noSentinel, s)
	}

	nested := Op("start app", "app", nil, Op("pull image", "x", ImageNotFound, errors.New("manifest unknown")))
	require.ErrorIs(t, nested, ImageNotFound, "a sentinel deep in the chain is found")
}

func TestInvalid(t *testing.T) {
	cases := []struct {
		reason string
		err    error
		want   string
	}{
		{"a string value is quoted", Invalid("Env key", "A=B", `must not contain "="`),
			`heph: invalid configuration: Env key "A=B": must not contain "="`},
		{"an empty string is shown, quoted", Invalid("Image", "", "is empty"),
			`heph: invalid configuration: Image "": is empty`},
		{"a number is not quoted", Invalid("HostPorts[9000]", 99999, "is outside 1-65535"),
			`heph: invalid configuration: HostPorts[9000] 99999: is outside 1-65535`},
		{"a duration as Go prints it", Invalid("PullTimeout", -time.Second, "is negative"),
			`heph: invalid configuration: PullTimeout -1s: is negative`},
		{"a variable", Invalid("DOCKER_API_VERSION", "latest", `want <major>.<minor>`),
			`heph: invalid configuration: DOCKER_API_VERSION "latest": want <major>.<minor>`},
		{"control characters are escaped, not printed", Invalid("Env key", "A\nB", "bad"),
			`heph: invalid configuration: Env key "A\nB": bad`},
		{"an option with its argument", Option("WithEnv", "A=B", `the key must not contain "="`),
			`heph: invalid configuration: WithEnv("A=B"): the key must not contain "="`},
		{"an option with a number", Option("WithHostPort", 0, "the host port is outside 1-65535"),
			`heph: invalid configuration: WithHostPort(0): the host port is outside 1-65535`},
		{"an option with a duration", Option("WithStartupTimeout", time.Duration(0), "must be positive"),
			`heph: invalid configuration: WithStartupTimeout(0s): must be positive`},
		{"an option with nil", Option("WithNetwork", "nil", "the network is nil"),
			`heph: invalid configuration: WithNetwork("nil"): the network is nil`},
		{"no value: the field alone", &InvalidError{What: "Mounts", Reason: "too many"},
			`heph: invalid configuration: Mounts: too many`},
	}
	for _, tc := range cases {
		require.EqualError(t, tc.err, tc.want, tc.reason)
		require.ErrorIs(t, tc.err, InvalidConfig, tc.reason)
		require.NotErrorIs(t, tc.err, DockerUnavailable, tc.reason)
	}
	var ie *InvalidError
	require.ErrorAs(t, Invalid("Service", "my_db", "x"), &ie)
	require.Equal(t, InvalidError{What: "Service", Value: `"my_db"`, Reason: "x"}, *ie)
}

func TestStrip(t *testing.T) {
	cases := []struct{ in, want, reason string }{
		{"heph: x", "x", "the leading prefix"},
		{"heph: heph: x", "x", "repeated"},
		{"x: heph: y", "x: y", "a heph error wrapped by fmt.Errorf(\"x: %w\")"},
		{"x: heph: heph: y: heph: z", "x: y: z", "wherever it starts a part"},
		{"heph:x", "heph:x", "not the prefix: no space"},
		{"Heph: x", "Heph: x", "case matters"},
		{"label heph.test: x", "label heph.test: x", "heph's label names are not a prefix"},
		{"", "", "nothing"},
		{"heph: ", "", "the prefix alone"},
		{"heph: invalid: heph", "invalid: heph", "a word at the end is not a prefix"},
		{"heph: a\nheph: b: heph: c", "a\nheph: b: heph: c", "joined errors: each further line is a message of its own"},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, Strip(tc.in), "%q: %s", tc.in, tc.reason)
	}
}

func TestSentinels(t *testing.T) {
	all := []error{DockerUnavailable, ImageNotFound, ContainerNotFound, NetworkNotFound, InvalidConfig, NetworkPoolExhausted, Watchdog}
	seen := map[string]bool{}
	for _, s := range all {
		require.True(t, strings.HasPrefix(s.Error(), "heph: "), "a sentinel carries the prefix once: %q", s)
		require.Equal(t, 1, strings.Count(s.Error(), "heph:"))
		require.False(t, seen[s.Error()], "distinct messages: %q", s)
		seen[s.Error()] = true
		for _, o := range all {
			require.Equal(t, s == o, errors.Is(s, o), "%q is %q", s, o)
		}
	}
}
