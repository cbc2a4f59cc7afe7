package heph

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/wait"
)

// Secrets a failing run must never print (issue #9): values passed with
// WithEnv under secret-looking keys, and a -p<value> argument.
const (
	rootPassword = "Sup3r-Secret-Root-Pw"
	apiToken     = "tok-0a1b2c3d4e5f"
	awsKey       = "AKIA-EXAMPLE-KEY-42"
	cmdPassword  = "Cmd-Line-Pw-9"
)

var allSecrets = []string{rootPassword, apiToken, awsKey, cmdPassword}

// requireNoSecret fails when any message shows one of the secrets, and
// when no message shows the mask: the messages did quote what was masked.
func requireNoSecret(t *testing.T, messages []string) {
	t.Helper()
	all := strings.Join(messages, "\n")
	for _, s := range allSecrets {
		require.NotContains(t, all, s, "no message shows a secret; the messages:\n%s", all)
	}
	require.Contains(t, all, "[redacted]", "the messages quoted what was masked:\n%s", all)
}

// secretRequest is a container whose env holds secrets, whose output
// quotes them (a chatty entrypoint), and whose wait (unless without) runs a
// MySQL client with its password on the command line — and never succeeds.
func secretRequest(h *harness, without ...bool) ContainerRequest {
	h.f.Hook = func(_ context.Context, call string, arg any) error {
		if call == "ContainerStart" {
			id := arg.(string)
			h.f.WriteLog(id, "starting with MYSQL_ROOT_PASSWORD="+rootPassword+"\n"+
				"+ exec mysqld --password "+rootPassword+"\n"+
				"token is "+apiToken+" and key "+awsKey+"\n"+
				"connect to mysql://root:"+rootPassword+"@localhost:3306/app\n")
		}
		return nil
	}
	h.f.ExecFunc = func(_ string, cmd []string) (engine.ExecResult, error) {
		return engine.ExecResult{ExitCode: 1, Stderr: []byte("mysqladmin: connect failed for root with password " + rootPassword)}, nil
	}
	r := NewContainer("mysql:8").WithName("db").
		WithEnv("MYSQL_ROOT_PASSWORD", rootPassword).
		WithEnv("API_TOKEN", apiToken).
		WithEnv("AWS_SECRET_ACCESS_KEY", awsKey).
		WithEnv("MYSQL_DATABASE", "app").
		WithStartupTimeout(300 * time.Millisecond)
	if len(without) > 0 {
		return r
	}
	return r.WithWaitStrategy(wait.ForExec("mysqladmin", "-uroot", "-p"+cmdPassword, "ping"))
}

func TestAFailingStartPrintsNoSecret(t *testing.T) {
	h := newHarness(t)
	t.Setenv(EnvLogs, "1") // the container's output is streamed into the test's log too
	h.ft.run(func(t testing.TB) {
		secretRequest(h).Start(t)
	})
	require.NotEmpty(t, h.ft.fatal, "the start failed")
	require.Contains(t, h.ft.fatal, `ForExec("mysqladmin", "-uroot", "-p[redacted]", "ping")`, "the strategy is named, its password masked")
	require.Contains(t, h.ft.allLogs(), "MYSQL_ROOT_PASSWORD=[redacted]", "the streamed and the described output are masked")
	requireNoSecret(t, append(append([]string{h.ft.fatal}, h.ft.errors...), h.ft.logs...))
}

func TestAFailingRunAndExecPrintNoSecret(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	_, err := secretRequest(h).Run(ctx, h.o)
	require.Error(t, err)
	var we *wait.Error
	require.True(t, errors.As(err, &we), "the chain is kept under the mask")
	messages := []string{err.Error()}

	// A container that starts, then an Exec that cannot run.
	h.f.ExecFunc = nil
	c, err := secretRequest(h, true).Run(ctx, h.o)
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Terminate(ctx)) }()
	_, err = c.Exec(ctx, "", "-p"+cmdPassword)
	require.ErrorIs(t, err, ErrInvalidConfig)
	messages = append(messages, err.Error())
	h.f.Hook = func(_ context.Context, call string, _ any) error {
		if call == "Exec" {
			return errors.New(`OCI runtime exec failed: exec: "mysql -p` + cmdPassword + `": executable file not found`)
		}
		return nil
	}
	_, err = c.Exec(ctx, "mysql -p"+cmdPassword)
	require.Error(t, err)
	messages = append(messages, err.Error(), c.describe(ctx, 50))
	requireNoSecret(t, messages)
}

func TestAFailedTestsTeardownPrintsNoSecret(t *testing.T) {
	h := newHarness(t)
	h.ft.run(func(t testing.TB) {
		c := secretRequest(h, true).Start(t)
		if _, err := c.Exec(context.Background(), "mysqladmin", "-p"+cmdPassword, "status"); err == nil {
			t.Errorf("the test fails: its container's state and log are described")
		}
	})
	require.Empty(t, h.ft.fatal)
	require.Contains(t, h.ft.allLogs(), "MYSQL_ROOT_PASSWORD=[redacted]", "the failed test's container was described")
	requireNoSecret(t, append(h.ft.errors, h.ft.logs...))
}
