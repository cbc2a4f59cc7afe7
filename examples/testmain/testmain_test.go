//go:build integration

// Package testmain shows one container shared by every test of a package:
// TestMain starts it with Run before the tests and removes it with
// Terminate after them.
package testmain

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/heph-go/heph/wait"
)

// shared is the container every test of the package uses.
var shared *heph.Container

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(testenv.Check(code)) // heph's own leak check; yours: os.Exit(code)
}

func run(m *testing.M) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o, err := heph.DefaultOrchestrator()
	if err != nil {
		return 0, err
	}
	image, err := testenv.BuildImage() // your image here, e.g. "postgres:16"
	if err != nil {
		return 0, err
	}
	shared, err = heph.NewContainer(image).WithName("shared").
		WithCmd("-http", ":8080").
		WithExposedPorts("8080").
		WithWaitStrategy(wait.ForHTTP("/healthz").WithPort("8080")).
		Run(ctx, o)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err := shared.Terminate(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	return m.Run(), nil
}

func get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + shared.Endpoint("8080") + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	return strings.TrimSpace(string(b))
}

func TestFirstUser(t *testing.T) {
	t.Parallel()
	if got := get(t, "/hostname"); got != "shared" {
		t.Fatalf("hostname %q", got)
	}
}

func TestSecondUser(t *testing.T) {
	t.Parallel()
	if got := get(t, "/"); got != "ok" {
		t.Fatalf("GET / = %q", got)
	}
}
