package redact

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSecretKey(t *testing.T) {
	for _, tc := range []struct {
		key    string
		secret bool
		reason string
	}{
		{"POSTGRES_PASSWORD", true, ""},
		{"PGPASSWORD", true, "PASSWORD inside a word"},
		{"mysql_root_password", true, "any case"},
		{"DB_PASSWD", true, ""},
		{"REDIS_PASS", true, "PASS as a word"},
		{"MYSQL_PWD", true, "PWD as a word"},
		{"PWD", false, "the working directory"},
		{"OLDPWD", false, "the previous working directory"},
		{"JWT_SECRET", true, ""},
		{"clientSecret", true, "camelCase"},
		{"GITHUB_TOKEN", true, ""},
		{"ACCESS_TOKEN_FILE", true, "over-redacting a path is harmless"},
		{"API_KEY", true, "KEY as a word"},
		{"APIKEY", true, "a word ending in KEY"},
		{"apiKey", true, "camelCase"},
		{"AWS_ACCESS_KEY_ID", true, ""},
		{"AWS_SECRET_ACCESS_KEY", true, ""},
		{"SSH_PRIVATE_KEY", true, ""},
		{"MINIO_ROOT_USER", false, ""},
		{"KEYBOARD_LAYOUT", false, "KEY only starts the word"},
		{"CASSANDRA_KEYSPACE", false, "KEY only starts the word"},
		{"KEYS", false, ""},
		{"GOOGLE_APPLICATION_CREDENTIALS", true, ""},
		{"BASIC_AUTH", true, ""},
		{"HTTP_AUTHORIZATION", true, ""},
		{"AUTHOR", false, "not an AUTH word"},
		{"PASSPORT_ID", false, "PASS only starts the word"},
		{"PATH", false, ""},
		{"HOME", false, ""},
		{"POSTGRES_USER", false, ""},
		{"POSTGRES_DB", false, ""},
		{"", false, ""},
		{"password", true, "a flag's name"},
		{"api-key", true, "a flag's name"},
	} {
		require.Equal(t, tc.secret, SecretKey(tc.key), "%s: %s", tc.key, tc.reason)
	}
}

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		{[]string{"mysql", "-uroot", "-psecret", "-e", "select 1"}, []string{"mysql", "-uroot", "-p[redacted]", "-e", "select 1"}},
		{[]string{"mysql", "-p", "db"}, []string{"mysql", "-p", "db"}},
		{[]string{"app", "--password=hunter2"}, []string{"app", "--password=[redacted]"}},
		{[]string{"app", "--password", "hunter2", "--user", "me"}, []string{"app", "--password", "[redacted]", "--user", "me"}},
		{[]string{"app", "-token", "abc", "-v"}, []string{"app", "-token", "[redacted]", "-v"}},
		{[]string{"app", "--token", "--password", "x"}, []string{"app", "--token", "[redacted]", "[redacted]"}},
		{[]string{"app", "--api-key=k"}, []string{"app", "--api-key=[redacted]"}},
		{[]string{"env", "PGPASSWORD=hunter2", "psql", "-h", "db"}, []string{"env", "PGPASSWORD=[redacted]", "psql", "-h", "db"}},
		{[]string{"docker", "run", "--env=DB_PASSWORD=x", "-e", "DB_TOKEN=y", "img"}, []string{"docker", "run", "--env=DB_PASSWORD=[redacted]", "-e", "DB_TOKEN=[redacted]", "img"}},
		{[]string{"psql", "postgres://app:hunter2@db:5432/app"}, []string{"psql", "postgres://app:[redacted]@db:5432/app"}},
		{[]string{"sh", "-c", "PGPASSWORD=hunter2 psql -h db && mysql -psecret"}, []string{"sh", "-c", "PGPASSWORD=[redacted] psql -h db && mysql -p[redacted]"}},
		{[]string{"pg_isready", "-U", "app", "-h", "localhost"}, []string{"pg_isready", "-U", "app", "-h", "localhost"}},
		{[]string{"KEYBOARD=us", "PWD=/x"}, []string{"KEYBOARD=us", "PWD=/x"}},
		{[]string{"--password"}, []string{"--password"}},
		{[]string{}, []string{}},
		{nil, nil},
	} {
		require.Equal(t, tc.want, Args(tc.in), "%q", tc.in)
	}
	in := []string{"-psecret"}
	_ = Args(in)
	require.Equal(t, []string{"-psecret"}, in, "a copy: the caller's slice is not changed")
}

func TestString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"nothing secret here", "nothing secret here"},
		{`exec "mysql -uroot -psecret" failed`, `exec "mysql -uroot -p[redacted]" failed`},
		{"  POSTGRES_PASSWORD=x\tPOSTGRES_USER=app\n", "  POSTGRES_PASSWORD=[redacted]\tPOSTGRES_USER=app\n"},
		{"login --password 'two words' ok", "login --password [redacted]  ok"},
		{`login --password "two words" ok`, `login --password [redacted]  ok`},
		{`ForExec("mysql", "-psecret") failed`, `ForExec("mysql", "-p[redacted]") failed`},
		{`ForExec("mysql", "-psecret", "ping")`, `ForExec("mysql", "-p[redacted]", "ping")`},
		{`ForExec("mysql", "-p[redacted]", "ping")`, `ForExec("mysql", "-p[redacted]", "ping")`},
		{"login --password 'one' ok", "login --password [redacted] ok"},
		{"dial tcp://me:pw@host:2376 and https://host/path", "dial tcp://me:[redacted]@host:2376 and https://host/path"},
		{"DSN=mysql://root:pw@tcp(db:3306)/app", "DSN=mysql://root:[redacted]@tcp(db:3306)/app"},
		{"Password: hunter2 accepted", "Password: [redacted] accepted"},
		{"heph.session=abc label heph.managed=true", "heph.session=abc label heph.managed=true"},
		{"unix:///var/run/docker.sock", "unix:///var/run/docker.sock"},
		{"run fewer tests at once (go test -parallel 2, -p 1)", "run fewer tests at once (go test -parallel 2, -p 1)"},
		{"-pS3cret before any MySQL program is named", "-pS3cret before any MySQL program is named"},
		{"+ /usr/bin/mysqladmin -h db -pS3cret ping", "+ /usr/bin/mysqladmin -h db -p[redacted] ping"},
		{`WithEnv("POSTGRES_PASSWORD"): the value must not contain NUL`, `WithEnv("POSTGRES_PASSWORD"): the value must not contain NUL`},
	} {
		require.Equal(t, tc.want, String(tc.in), "%q", tc.in)
	}
}

func TestSecrets(t *testing.T) {
	s := EnvSecrets(map[string]string{
		"POSTGRES_PASSWORD": "hunter2",
		"API_TOKEN":         "hunter2-longer",
		"SHORT_SECRET":      "abc", // shorter than MinKnown: not searched for
		"POSTGRES_USER":     "postgresuser",
	})
	require.Equal(t, "connect as postgresuser with [redacted] (and [redacted]) abc",
		s.String("connect as postgresuser with hunter2 (and hunter2-longer) abc"),
		"known values anywhere, the longest first; a value of a key that is not secret stays")
	require.Equal(t, "x PGPASSWORD=[redacted]", s.String("x PGPASSWORD=abc"), "the rule still applies")
	require.Equal(t, "hunter2", Secrets{}.String("hunter2"), "the zero value knows no value")

	cause := fmt.Errorf("open hunter2: %w", fs.ErrNotExist)
	err := s.Error(cause)
	require.EqualError(t, err, "open [redacted]: file does not exist")
	require.ErrorIs(t, err, fs.ErrNotExist, "the chain is kept")
	require.Same(t, cause, errors.Unwrap(err))
	require.NoError(t, s.Error(nil))
}

func TestArgSecrets(t *testing.T) {
	s := ArgSecrets([]string{"mysql", "-pS3cret-1", "--password", "S3cret-2", "--token=S3cret-3", "sh", "-c", "PGPASSWORD=S3cret-4 psql; mysql -pS3cret-5", "-pab", "postgres://u:S3cret-6@db/x"})
	require.Equal(t, "[redacted] [redacted] [redacted] [redacted] [redacted] ab [redacted]",
		s.String("S3cret-1 S3cret-2 S3cret-3 S3cret-4 S3cret-5 ab S3cret-6"),
		"each masked value is known; one shorter than MinKnown is not searched for")
	require.Equal(t, "hello", ArgSecrets([]string{"echo", "hello"}).String("hello"))
	both := Known("value-one").And(Known("value-two", "abc"))
	require.Equal(t, "[redacted] [redacted] abc", both.String("value-one value-two abc"))
}

func TestStringIsIdempotent(t *testing.T) {
	in := "mysql -psecret --password x --token --password y 'z' PGPASSWORD=a https://u:p@h Password: q --password 'a b c' d"
	once := String(in)
	require.Equal(t, "mysql -p[redacted] --password [redacted] --token [redacted] [redacted] 'z' PGPASSWORD=[redacted] https://u:[redacted]@h Password: [redacted] --password [redacted]   d", once)
	require.Equal(t, once, String(once), "what is masked stays as it is")
}
