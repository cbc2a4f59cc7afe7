package wait_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/wait"
	"github.com/heph-go/heph/wait/waittest"
)

// TestForExecPrintsNoSecret: a password on the command line is masked in
// the strategy's name and in the output its error quotes (issue #9: a
// ForExec error printed `mysql -psecret`).
func TestForExecPrintsNoSecret(t *testing.T) {
	t.Parallel()
	const pw = "Hunter2-Secret"
	s := wait.ForExec("mysqladmin", "-uroot", "-p"+pw, "--password="+pw, "ping")
	require.Equal(t, `ForExec("mysqladmin", "-uroot", "-p[redacted]", "--password=[redacted]", "ping")`, s.String())

	tg := waittest.New()
	tg.SetExec(func(context.Context, []string) (wait.ExecResult, error) {
		return wait.ExecResult{ExitCode: 1, Stdout: []byte("using " + pw), Stderr: []byte("access denied for root (using password " + pw + ")")}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := wait.Run(ctx, s, tg)
	require.Error(t, err)
	require.NotContains(t, err.Error(), pw)
	require.Contains(t, err.Error(), `stderr: "access denied for root (using password [redacted])"`, "the output is quoted, the command's own secret masked")
}
