// Package childtests holds tests that heph's own integration tests run as a
// subprocess `go test` to watch a failing test from outside. They fail on
// purpose and are not part of `go test ./...` (testdata is skipped).
package childtests

import (
	"os"
	"testing"
	"time"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/wait"
)

func image(t *testing.T) string {
	img := os.Getenv("HEPH_TESTAPP_IMAGE")
	if img == "" {
		t.Fatal("HEPH_TESTAPP_IMAGE is not set: run these tests through heph's integration tests")
	}
	return img
}

func TestChildFails(t *testing.T) {
	heph.NewContainer(image(t)).WithName("web").WithCmd("-http", ":8080", "-log", "web says hello").
		WithWaitStrategy(wait.ForLog("web says hello")).Start(t)
	heph.NewContainer(image(t)).WithName("worker").WithCmd("-exit", "0").
		WithWaitStrategy(wait.ForExit()).Start(t)
	t.Fatal("the child test fails here")
}

func TestChildExits(t *testing.T) {
	heph.NewContainer(image(t)).WithName("app").WithCmd("-log", "config file missing", "-exit", "3", "-exit-after", "200ms").
		WithExposedPorts("8080").WithWaitStrategy(wait.ForListeningPort("8080")).Start(t)
	t.Error("Start returned although the container exited")
}

func TestChildLogsThenFails(t *testing.T) {
	c := heph.NewContainer(image(t)).WithName("chatty").WithCmd("-log", "line one", "-log", "line two", "-log-after", "ready").
		WithWaitStrategy(wait.ForLog("ready")).Start(t)
	_ = c
	t.Fatal("fail so that go test prints the log")
}

// TestChildLogsToTestThenFails is TestChildLogsThenFails with the request's
// WithLogsToTest instead of HEPH_LOGS.
func TestChildLogsToTestThenFails(t *testing.T) {
	heph.NewContainer(image(t)).WithName("chatty").WithCmd("-log", "line one", "-log", "line two", "-log-after", "ready").
		WithWaitStrategy(wait.ForLog("ready")).WithLogsToTest().Start(t)
	t.Fatal("fail so that go test prints the log")
}

func TestChildNoDocker(t *testing.T) {
	heph.NewContainer("redis:7").Start(t)
	t.Error("Start returned without Docker")
}

// TestChildPrintsNoSecret fails with secrets everywhere: in the env (printed
// by the container), in its log, on the wait's command line. heph's
// integration test greps the whole output for them.
func TestChildPrintsNoSecret(t *testing.T) {
	heph.NewContainer(image(t)).WithName("vault").
		WithEnv("DB_PASSWORD", "Child-Db-Pw-1234").WithEnv("API_TOKEN", "Child-Token-5678").
		WithCmd("-print-env", "-log", "connecting with Child-Db-Pw-1234", "-http", ":8080").
		WithStartupTimeout(20 * time.Second).
		WithWaitStrategy(wait.ForExec("mysqladmin", "-uroot", "-pChild-Cmd-Pw-9012", "ping")).Start(t)
	t.Error("Start returned although its wait cannot succeed")
}
