package rules

import (
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"
)

// tc is one case of a rule: the value, the reason wanted ("" when valid),
// and why.
type tc struct {
	in     string
	want   string // a substring of the reason; "" means valid
	reason string
}

var digest = "sha256:" + strings.Repeat("a", 64)

var ruleCases = []struct {
	rule  string
	check func(string) error
	cases []tc
}{
	{"Service", Service, []tc{
		{"db", "", "a plain name"},
		{"db-1", "", "digits and dashes inside"},
		{"1db", "", "a leading digit is a valid host name label (RFC 1123)"},
		{"a", "", "one character is enough"},
		{strings.Repeat("a", 63), "", "63 characters: the longest label"},
		{strings.Repeat("a", 64), "is not a valid host name", "64 is one too many for a DNS label"},
		{"my_db", "is not a valid host name", "an underscore is not allowed in a host name"},
		{"-db", "not starting or ending with '-'", "a leading dash"},
		{"db-", "not starting or ending with '-'", "a trailing dash"},
		{"DB", "lower-case", "the service is also the DNS alias: lower case only, so it resolves as written"},
		{"db.local", "is not a valid host name", "a dot would make it a domain, not a label"},
		{"", "is not a valid host name", "empty"},
	}},
	{"Image", Image, []tc{
		{"postgres", "", "a Docker Hub name"},
		{"postgres:16", "", "with a tag"},
		{"docker.io/library/redis:7", "", "fully qualified"},
		{"127.0.0.1:5000/team/app:dev", "", "a registry with a port: the port is not a tag"},
		{"app@" + digest, "", "by digest"},
		{"app:1@" + digest, "", "tag and digest"},
		{"", "is empty", "nothing to run"},
		{"   ", "is empty", "blanks only"},
		{"my app:1", "is not a valid image reference", "a space"},
		{"Postgres:16", "is not a valid image reference", "an upper-case repository"},
		{"app:-x", "is not a valid image reference", "a tag cannot start with -"},
		{"app@sha256:abc", "is not a valid image reference", "a truncated digest"},
		{"a\x00b", "must not contain NUL", "NUL would cut the reference short on its way to the daemon"},
	}},
	{"EnvKey", EnvKey, []tc{
		{"PATH", "", "a usual name"},
		{"lower.case-dash", "", "the daemon takes any name without = or NUL"},
		{"A B", "", "even with a space: a process environment allows it"},
		{"", "the key is empty", "no name"},
		{"A=B", `must not contain "="`, "= would split the name in two"},
		{"=A", `must not contain "="`, "a leading ="},
		{"A\x00", "NUL", "NUL ends the string in the kernel"},
	}},
	{"EnvValue", EnvValue, []tc{
		{"", "", "an empty value is a value"},
		{"x=y", "", "= is fine in a value"},
		{"line1\nline2", "", "new lines are fine"},
		{"héllo", "", "any UTF-8"},
		{"a\x00b", "the value must not contain NUL", "NUL ends the string in the kernel"},
	}},
	{"LabelKey", LabelKey, []tc{
		{"team", "", "a plain key"},
		{"com.example.team", "", "reverse-DNS, as Docker recommends"},
		{"hephaestus", "", "heph's prefix includes the dot"},
		{"HEPH.session", "", "label keys are case-sensitive: not heph's key"},
		{"", "the key is empty", "no key"},
		{"  ", "the key is empty", "blanks only"},
		{"heph.session", `the "heph." prefix is reserved for heph`, "a test must not forge heph's labels: removal trusts them"},
		{"heph.", `the "heph." prefix is reserved`, "the bare prefix"},
		{"a\x00", "must not contain NUL", "NUL"},
	}},
	{"LabelValue", LabelValue, []tc{
		{"", "", "an empty value"},
		{"core", "", "a plain value"},
		{"heph.managed", "", "heph's names are fine as values"},
		{"a\nb", "", "new lines are fine"},
		{"a\x00b", "the value must not contain NUL", "NUL"},
	}},
	{"ContainerPath", ContainerPath, []tc{
		{"/data", "", "absolute"},
		{"/a/b/", "", "a trailing slash names the same directory"},
		{"/../etc", "", "cleaned, it is /etc (inside the container)"},
		{"/", "must not be the root directory", "mounting or copying over / would replace the whole file system"},
		{"//", "must not be the root directory", "/ in disguise"},
		{"/a/..", "must not be the root directory", "/ in disguise"},
		{"data", "must be an absolute path in the container", "relative to what? the container has no working directory yet"},
		{"", "must be an absolute path in the container", "empty"},
		{"/a\x00", "must not contain NUL", "NUL"},
	}},
	{"FilePath", FilePath, []tc{
		{"/etc/app.conf", "", "a file"},
		{"/etc/app.d/10-x.conf", "", "a file in a directory"},
		{"/etc/", "must be a file path, not end in /", "a directory is not a file"},
		{"/", "must not be the root directory", "the root is not a file"},
		{"etc/app.conf", "must be an absolute path", "relative"},
		{"/a\x00", "must not contain NUL", "NUL"},
	}},
	{"WorkingDir", WorkingDir, []tc{
		{"/srv", "", "absolute"},
		{"/", "", "the root is a valid working directory"},
		{"/srv/app/", "", "a trailing slash"},
		{"src", "must be an absolute path", "relative"},
		{"", "must be an absolute path", "empty (the config checks it only when set)"},
		{"/a\x00", "must not contain NUL", "NUL"},
	}},
	{"HostPath", HostPath, []tc{
		{"/tmp/data", "", "absolute"},
		{"/", "", "binding the host's root is the user's choice"},
		{"", "is empty (a bind mount needs a host path)", "no source"},
		{"data", "must be an absolute host path", "relative: the daemon would take it as a volume name"},
		{"./data", "must be an absolute host path", "relative to this process, not to the daemon"},
		{"/a\x00", "must not contain NUL", "NUL"},
	}},
	{"Volume", Volume, []tc{
		{"data", "", "a name"},
		{"data.v1", "", "dots"},
		{"my_vol-2", "", "underscores and dashes inside"},
		{"ab", "", "two characters, Docker's minimum"},
		{"a", "is not a valid volume name", "one character: Docker refuses it"},
		{"a/b", "is not a valid volume name", "a slash would make it a path"},
		{"-a", "is not a valid volume name", "a leading dash"},
		{"_a", "is not a valid volume name", "a leading underscore"},
		{"", "is not a valid volume name", "empty: an anonymous volume has no Source at all"},
	}},
	{"User", User, []tc{
		{"root", "", "a name"},
		{"1000", "", "a uid"},
		{"1000:1000", "", "uid:gid"},
		{"app:staff", "", "user:group"},
		{"_svc", "", "a leading underscore (system accounts)"},
		{"a b", `must be "user", "uid", "user:group" or "uid:gid"`, "a space"},
		{"", "must be", "empty (the config checks it only when set)"},
		{":", "must be", "no user"},
		{"a:", "must be", "an empty group"},
		{"a:b:c", "must be", "three parts"},
		{"-x", "must be", "a leading dash looks like an option"},
	}},
	{"NetworkName", NetworkName, []tc{
		{"bridge", "", "a name"},
		{"heph-net-1a2b3c4d", "", "heph's own"},
		{strings.Repeat("f", 64), "", "an ID"},
		{"", "is empty", "no network"},
		{"  ", "is empty", "blanks only"},
		{"a\x00", "must not contain NUL", "NUL"},
	}},
	{"Args (one argument)", func(a string) error { return Args([]string{"sh", a}) }, []tc{
		{"-c", "", "an option"},
		{"", "", "an empty argument is an argument"},
		{"echo 'a b'", "", "spaces and quotes are passed as they are"},
		{"héllo\n", "", "any UTF-8, new lines"},
		{"a\x00b", "an argument contains NUL", "NUL would cut the argument short"},
	}},
}

func TestRules(t *testing.T) {
	for _, r := range ruleCases {
		t.Run(r.rule, func(t *testing.T) {
			require.GreaterOrEqual(t, len(r.cases), 5, "a table, not a sample")
			for _, c := range r.cases {
				err := r.check(c.in)
				if c.want == "" {
					require.NoError(t, err, "%q: %s", c.in, c.reason)
					continue
				}
				require.Error(t, err, "%q: %s", c.in, c.reason)
				msg := err.Error()
				require.Contains(t, msg, c.want, "%q: %s", c.in, c.reason)
				require.NotContains(t, msg, "heph:", "a reason, for the caller to prefix")
				require.True(t, unicode.IsLower([]rune(msg)[0]), "a reason follows the field's name: %q", msg)
				require.NotContains(t, msg, r.rule, "the field or option is named by the caller, not the rule")
			}
		})
	}
}

func TestArgs(t *testing.T) {
	require.NoError(t, Args(nil), "no command: the image's own")
	require.NoError(t, Args([]string{}))
	require.ErrorContains(t, Args([]string{"ok", "b\x00"}), "an argument contains NUL", "any argument, not only the first")
}

func TestServiceFromImage(t *testing.T) {
	cases := []struct{ image, want, reason string }{
		{"postgres", "postgres", "the repository's name"},
		{"postgres:16", "postgres", "without the tag"},
		{"docker.io/library/redis:7", "redis", "the last path element"},
		{"127.0.0.1:5000/team/app:dev", "app", "a registry's port is not a tag"},
		{"localhost:5000/app", "app", "a registry with a port, no tag"},
		{"heph-build/testapp:abc123", "testapp", "heph's built images"},
		{"ghcr.io/org/my_app@" + digest, "my-app", "without the digest; _ is not allowed in a host name"},
		{"app:1@" + digest, "app", "tag and digest"},
		{"localhost/Weird..Name", "weird-name", "an invalid reference still gives a name: lower-cased, one - for a run of others"},
		{"UPPER:1", "upper", "an invalid reference: the tag is still cut"},
		{"1password/cli", "cli", "digits are fine"},
		{"x/123", "123", "a name of digits is a valid host name label"},
		{"a__b--c", "a-b-c", "every run of characters not allowed becomes one -"},
		{"_app_", "app", "no leading or trailing -"},
		{"", "svc", "nothing left: a fixed name"},
		{"___", "svc", "nothing left of it"},
		{strings.Repeat("ab", 30), strings.Repeat("ab", 20), "cut to 40 characters: room for heph's suffix in a 63-character name"},
		{strings.Repeat("a", 39) + "_bc", strings.Repeat("a", 39), "no trailing - where the cut falls"},
	}
	for _, c := range cases {
		got := ServiceFromImage(c.image)
		require.Equal(t, c.want, got, "%q: %s", c.image, c.reason)
		require.NoError(t, Service(got), "%q gives a valid service name", c.image)
	}
}
