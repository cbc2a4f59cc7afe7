//go:build integration

package heph_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAFailingChildTestPrintsNoSecret runs a real test that fails with
// secrets in its container's env (printed by the container, streamed with
// HEPH_LOGS and described at teardown), its log, and its wait's command
// line, and greps everything go test printed.
func TestAFailingChildTestPrintsNoSecret(t *testing.T) {
	t.Parallel()
	out := childTest(t, "TestChildPrintsNoSecret", []string{"HEPH_LOGS=1"})
	for _, secret := range []string{"Child-Db-Pw-1234", "Child-Token-5678", "Child-Cmd-Pw-9012"} {
		require.NotContains(t, out, secret, "the output:\n%s", out)
	}
	require.Contains(t, out, "DB_PASSWORD=[redacted]", "the container printed its env: masked (the output:\n%s)", out)
	require.Contains(t, out, "connecting with [redacted]", "a known value is masked anywhere")
	require.Contains(t, out, `ForExec("mysqladmin", "-uroot", "-p[redacted]", "ping")`, "the wait's command line is masked")
}
