//go:build integration

// Package twoservices shows two containers of one test talking to each other
// by service name on the test's private network.
package twoservices

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/heph-go/heph/wait"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestFrontendCallsBackendByName(t *testing.T) {
	t.Parallel()
	image := testenv.Image(t) // your images here

	// Both start concurrently on the test's network.
	services := heph.StartAll(t,
		heph.NewContainer(image).WithName("backend").WithCmd("-http", ":8080").
			WithWaitStrategy(wait.ForLog("testapp: listening http")),
		heph.NewContainer(image).WithName("frontend").WithCmd("-http", ":8080").
			WithExposedPorts("8080").WithWaitStrategy(wait.ForListeningPort("8080")),
	)
	frontend := services[1]

	// The frontend fetches http://backend:8080/hostname: "backend" is the
	// backend's hostname and its alias on the test's network.
	q := url.Values{"url": {"http://backend:8080/hostname"}}
	resp, err := http.Get("http://" + frontend.Endpoint("8080") + "/fetch?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "backend" {
		t.Fatalf("frontend → backend: %s %q", resp.Status, body)
	}
}
