//go:build integration

// Package httpservice shows the most common heph test: start the service
// under test in a container and talk to it over HTTP through Endpoint.
package httpservice

import (
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/heph-go/heph/wait"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestHealthEndpoint(t *testing.T) {
	t.Parallel()
	api := heph.NewContainer(testenv.Image(t)). // your image here, e.g. "myorg/api:dev"
							WithCmd("-http", ":8080").
							WithEnv("APP_ENV", "test").
							WithExposedPorts("8080/tcp").
							WithWaitStrategy(wait.ForHTTP("/healthz").WithPort("8080")).
							Start(t) // removed when the test ends

	resp, err := http.Get("http://" + api.Endpoint("8080/tcp") + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "healthy" {
		t.Fatalf("GET /healthz = %s %q, want 200 healthy", resp.Status, body)
	}
}

func TestConfigurationReachesTheService(t *testing.T) {
	t.Parallel()
	api := heph.NewContainer(testenv.Image(t)).
		WithCmd("-http", ":8080").
		WithEnv("APP_ENV", "staging").
		WithExposedPorts("8080").
		WithWaitStrategy(wait.ForListeningPort("8080")).
		Start(t)

	resp, err := http.Get("http://" + api.Endpoint("8080") + "/env")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "APP_ENV=staging") {
		t.Fatalf("the service did not see APP_ENV: %s", body)
	}
}
