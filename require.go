package heph

import (
	"context"
	"testing"

	"github.com/heph-go/heph/internal/daemon"
)

// RequireDocker skips the test when no Docker daemon answers, or fails it
// when the environment variable CI is set (any value but 0, false, no or
// off): CI must not pass by skipping. The message is heph's discovery
// report: every endpoint tried (DOCKER_HOST, the docker context, the
// rootless and default sockets), where it came from, what it said, and
// what to do. With a daemon it returns at once and does nothing else.
// It never panics.
//
// Call it first in a test (or in TestMain's tests) that needs Docker; heph's
// other helpers fail the test without a daemon.
func RequireDocker(t testing.TB) {
	t.Helper()
	report, fail := daemon.Require(context.Background(), daemon.OSEnv())
	switch {
	case report == "":
	case fail:
		t.Fatal(report)
	default:
		t.Skip(report)
	}
}
