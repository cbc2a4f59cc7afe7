package wait_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/wait"
	"github.com/heph-go/heph/wait/waittest"
)

// TestValidate: bad arguments are caught when the strategy is built and
// reported by Validate, the Validate method and Wait (at once, without
// touching the target), never by a panic.
func TestValidate(t *testing.T) {
	t.Parallel()
	var nilStrategy *wait.LogStrategy
	tests := []struct {
		name   string
		s      wait.Strategy
		want   string // the whole error; "" means valid
		reason string
	}{
		{"log", wait.ForLog("ready"), "", ""},
		{"empty substring", wait.ForLog(""), `wait: invalid strategy ForLog(""): empty substring: every line would match`, "matches every line: surely a mistake"},
		{"newline in substring", wait.ForLog("a\nb"), `wait: invalid strategy ForLog("a\nb"): substring "a\nb" contains a newline: lines never do`, "could never match a line"},
		{"bad regexp", wait.ForLogRegexp(`(`), "wait: invalid strategy ForLogRegexp(\"(\"): bad regexp: error parsing regexp: missing closing ): `(`", "does not compile"},
		{"occurrence 0", wait.ForLog("x").WithOccurrence(0), `wait: invalid strategy ForLog("x").WithOccurrence(0): occurrence must be at least 1, got 0`, "would be ready at once"},
		{"every problem is listed", wait.ForLogRegexp(`(`).WithOccurrence(-1),
			"wait: invalid strategy ForLogRegexp(\"(\").WithOccurrence(-1): bad regexp: error parsing regexp: missing closing ): `(`\noccurrence must be at least 1, got -1", "fstest style: all problems at once"},
		{"port", wait.ForListeningPort("8080/udp"), "", ""},
		{"port not a number", wait.ForListeningPort("http"), `wait: invalid strategy ForListeningPort("http"): bad port "http": want a number from 1 to 65535, optionally followed by /tcp, /udp or /sctp`, ""},
		{"port 0", wait.ForListeningPort("0"), `wait: invalid strategy ForListeningPort("0"): bad port "0": want a number from 1 to 65535, optionally followed by /tcp, /udp or /sctp`, "out of range"},
		{"port 65536", wait.ForListeningPort("65536/tcp"), `wait: invalid strategy ForListeningPort("65536/tcp"): bad port "65536/tcp": want a number from 1 to 65535, optionally followed by /tcp, /udp or /sctp`, "out of range"},
		{"port with host", wait.ForListeningPort("127.0.0.1:8080"), `wait: invalid strategy ForListeningPort("127.0.0.1:8080"): bad port "127.0.0.1:8080": want a number from 1 to 65535, optionally followed by /tcp, /udp or /sctp`, "a container port, not an address"},
		{"port protocol", wait.ForListeningPort("8080/http"), `wait: invalid strategy ForListeningPort("8080/http"): bad port "8080/http": protocol "http" is not tcp, udp or sctp`, ""},
		{"http", wait.ForHTTP("/healthz").WithPort("8080").WithMethod("HEAD").WithHeader("X-A", "b").WithStatus(func(int) bool { return true }).
			WithResponseMatcher(func([]byte) bool { return true }).WithTLS(true).WithRequestTimeout(time.Second), "", ""},
		{"empty path", wait.ForHTTP(""), `wait: invalid strategy ForHTTP(GET ): empty path: want one starting with "/", e.g. "/healthz"`, ""},
		{"relative path", wait.ForHTTP("healthz"), `wait: invalid strategy ForHTTP(GET healthz): path "healthz" does not start with "/"`, ""},
		{"bad method", wait.ForHTTP("/").WithMethod("GE T"), `wait: invalid strategy ForHTTP(GE T /): invalid method "GE T"`, "not a token"},
		{"empty method", wait.ForHTTP("/").WithMethod(""), `wait: invalid strategy ForHTTP( /): invalid method ""`, ""},
		{"bad header", wait.ForHTTP("/").WithHeader("X A", "v").WithHeader("X-B", "a\r\nInjected: 1"),
			"wait: invalid strategy ForHTTP(GET /): invalid header name \"X A\"\ninvalid value for header \"X-B\": \"a\\r\\nInjected: 1\" contains a newline or NUL", ""},
		{"http udp port", wait.ForHTTP("/").WithPort("53/udp"), `wait: invalid strategy ForHTTP(GET / on "53/udp"): port 53/udp is not a TCP port`, ""},
		{"http bad port", wait.ForHTTP("/").WithPort("x"), `wait: invalid strategy ForHTTP(GET / on "x"): bad port "x": want a number from 1 to 65535, optionally followed by /tcp, /udp or /sctp`, ""},
		{"nil status", wait.ForHTTP("/").WithStatus(nil), `wait: invalid strategy ForHTTP(GET /): nil status function`, ""},
		{"nil matcher", wait.ForHTTP("/").WithResponseMatcher(nil), `wait: invalid strategy ForHTTP(GET /): nil response matcher`, ""},
		{"request timeout 0", wait.ForHTTP("/").WithRequestTimeout(0), `wait: invalid strategy ForHTTP(GET /): request timeout must be positive, got 0s`, ""},
		{"health", wait.ForHealthCheck(), "", ""},
		{"exec", wait.ForExec("true").WithOutputMatcher(func([]byte) bool { return true }), "", ""},
		{"empty cmd", wait.ForExec(), `wait: invalid strategy ForExec(): empty command`, ""},
		{"empty program", wait.ForExec("", "x"), `wait: invalid strategy ForExec("", "x"): empty command`, ""},
		{"nil output matcher", wait.ForExec("x").WithOutputMatcher(nil), `wait: invalid strategy ForExec("x"): nil output matcher`, ""},
		{"exit", wait.ForExit().WithExitCode(-1), "", "any code: Windows codes can be anything"},
		{"nil func", wait.ForFunc(nil), `wait: invalid strategy ForFunc(nil): nil function`, ""},
		{"nil", nil, `wait: invalid strategy: nil strategy`, ""},
		{"nil pointer", nilStrategy, `wait: invalid strategy: nil strategy`, "would panic when called"},
		{"all", wait.All(wait.ForLog("a"), wait.ForHealthCheck()), "", ""},
		{"all empty", wait.All(), "", "vacuously ready"},
		{"nil in all", wait.All(wait.ForLog("a"), nil), `wait: invalid strategy All(ForLog("a"), <nil>): strategy 2 (<nil>): nil strategy`, ""},
		{"invalid in any", wait.Any(wait.ForLog(""), wait.ForExec()),
			"wait: invalid strategy Any(ForLog(\"\"), ForExec()): strategy 1 (ForLog(\"\")): empty substring: every line would match\nstrategy 2 (ForExec()): empty command", ""},
		{"any empty", wait.Any(), `wait: invalid strategy Any(): no strategies: Any needs at least one`, "could never be ready"},
		{"nested", wait.All(wait.Any(wait.ForLog("a"), wait.WithTimeout(time.Second, nil))),
			`wait: invalid strategy All(Any(ForLog("a"), WithTimeout(1s, <nil>))): strategy 1 (Any(ForLog("a"), WithTimeout(1s, <nil>))): strategy 2 (WithTimeout(1s, <nil>)): <nil>: nil strategy`, ""},
		{"negative timeout", wait.WithTimeout(-time.Second, wait.ForLog("a")), `wait: invalid strategy WithTimeout(-1s, ForLog("a")): timeout must be positive, got -1s`, ""},
		{"zero timeout", wait.WithTimeout(0, wait.ForLog("a")), `wait: invalid strategy WithTimeout(0s, ForLog("a")): timeout must be positive, got 0s`, "would time out at once"},
		// Zero values: only a For… function builds a strategy that waits
		// for something (issue #9: LogStrategy{} was ready at once,
		// HTTPStrategy{} never ready, and both passed validation).
		{"zero log", wait.LogStrategy{}, `wait: invalid strategy LogStrategy{}: zero value LogStrategy{}: build it with ForLog or ForLogRegexp`, "would be ready at once"},
		{"zero log with options", wait.LogStrategy{}.WithOccurrence(2), `wait: invalid strategy LogStrategy{}: zero value LogStrategy{}: build it with ForLog or ForLogRegexp`, "an option does not build it"},
		{"zero http", wait.HTTPStrategy{}, `wait: invalid strategy HTTPStrategy{}: zero value HTTPStrategy{}: build it with ForHTTP`, "would never be ready"},
		{"zero http with options", wait.HTTPStrategy{}.WithPort("8080"), `wait: invalid strategy HTTPStrategy{}: zero value HTTPStrategy{}: build it with ForHTTP`, "an option does not build it"},
		{"zero port", wait.PortStrategy{}, `wait: invalid strategy PortStrategy{}: zero value PortStrategy{}: build it with ForListeningPort`, ""},
		{"zero exec", wait.ExecStrategy{}, `wait: invalid strategy ExecStrategy{}: zero value ExecStrategy{}: build it with ForExec`, ""},
		{"zero exec with options", wait.ExecStrategy{}.WithExitCode(1), `wait: invalid strategy ExecStrategy{}: zero value ExecStrategy{}: build it with ForExec`, ""},
		{"zero func", wait.FuncStrategy{}, `wait: invalid strategy FuncStrategy{}: zero value FuncStrategy{}: build it with ForFunc`, ""},
		{"zero exit", wait.ExitStrategy{}, `wait: invalid strategy ExitStrategy{}: zero value ExitStrategy{}: build it with ForExit`, "one rule for every strategy"},
		{"zero health", wait.HealthStrategy{}, `wait: invalid strategy HealthStrategy{}: zero value HealthStrategy{}: build it with ForHealthCheck`, "one rule for every strategy"},
		{"zero inside all", wait.All(wait.ForLog("a"), wait.LogStrategy{}), `wait: invalid strategy All(ForLog("a"), LogStrategy{}): strategy 2 (LogStrategy{}): zero value LogStrategy{}: build it with ForLog or ForLogRegexp`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := wait.Validate(tt.s)
			if tt.want == "" {
				require.NoError(t, err, tt.reason)
				return
			}
			require.EqualError(t, err, tt.want, tt.reason)
			require.ErrorIs(t, err, wait.ErrInvalid)
			if v, ok := tt.s.(interface{ Validate() error }); ok && tt.s != nil && tt.name != "nil pointer" {
				require.EqualError(t, v.Validate(), tt.want, "the Validate method says the same")
			}
			if tt.s == nil || tt.name == "nil pointer" {
				return
			}
			tg := waittest.New()
			start := time.Now()
			require.EqualError(t, tt.s.Wait(context.Background(), tg), tt.want, "Wait returns it at once")
			require.Less(t, time.Since(start), time.Second, "no polling: an invalid strategy fails before any probe")
			require.Zero(t, tg.Calls(waittest.MethodState)+tg.Calls(waittest.MethodLogs)+tg.Calls(waittest.MethodMappedPort))
		})
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    wait.Strategy
		want string
	}{
		{wait.ForLog("ready"), `ForLog("ready")`},
		{wait.ForLog("ready").WithOccurrence(2), `ForLog("ready").WithOccurrence(2)`},
		{wait.ForLogRegexp(`^ok \d+$`), `ForLogRegexp("^ok \\d+$")`},
		{wait.ForListeningPort("8080"), `ForListeningPort(8080/tcp)`},
		{wait.ForListeningPort("53/UDP"), `ForListeningPort(53/udp)`},
		{wait.ForHTTP("/healthz").WithPort("8080"), `ForHTTP(GET /healthz on 8080/tcp)`},
		{wait.ForHTTP("/healthz"), `ForHTTP(GET /healthz)`},
		{wait.ForHTTP("/").WithMethod("POST").WithPort("8443/tcp").WithTLS(true), `ForHTTP(POST / on 8443/tcp, TLS insecure)`},
		{wait.ForHTTP("/").WithTLS(false), `ForHTTP(GET /, TLS)`},
		{wait.ForHealthCheck(), `ForHealthCheck()`},
		{wait.ForExec("pg_isready", "-U", "app"), `ForExec("pg_isready", "-U", "app")`},
		{wait.ForExec("check").WithExitCode(2), `ForExec("check").WithExitCode(2)`},
		{wait.ForExit(), `ForExit()`},
		{wait.ForExit().WithExitCode(3), `ForExit().WithExitCode(3)`},
		{wait.All(wait.ForListeningPort("5432"), wait.ForLog("ready")), `All(ForListeningPort(5432/tcp), ForLog("ready"))`},
		{wait.Any(wait.ForHealthCheck(), wait.WithTimeout(5*time.Second, wait.ForLog("ready"))), `Any(ForHealthCheck(), WithTimeout(5s, ForLog("ready")))`},
		{wait.WithTimeout(1500*time.Millisecond, wait.ForExit()), `WithTimeout(1.5s, ForExit())`},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, tt.s.(interface{ String() string }).String())
	}
}

// TestWithReturnsCopies: With… never changes the value it is called on.
func TestWithReturnsCopies(t *testing.T) {
	t.Parallel()
	log := wait.ForLog("x")
	_ = log.WithOccurrence(0)
	require.NoError(t, log.Validate())
	require.Equal(t, `ForLog("x")`, log.String())

	h := wait.ForHTTP("/")
	_ = h.WithMethod("").WithPort("x").WithTLS(true)
	require.NoError(t, h.Validate())
	require.Equal(t, "ForHTTP(GET /)", h.String())

	bad := wait.ForHTTP("/").WithMethod("")
	b1 := bad.WithHeader("X A", "1")
	b2 := bad.WithStatus(nil)
	require.EqualError(t, b1.Validate(), "wait: invalid strategy ForHTTP( /): invalid method \"\"\ninvalid header name \"X A\"")
	require.EqualError(t, b2.Validate(), "wait: invalid strategy ForHTTP( /): invalid method \"\"\nnil status function", "problems of b1 do not leak into b2")

	e := wait.ForExec("a")
	_ = e.WithExitCode(3)
	require.Equal(t, `ForExec("a")`, e.String())
}
