//go:build integration

// Package orchestrator shows heph's lower layer: an Orchestrator driven
// explicitly, without the test builder — for tools, TestMain set-ups, or
// tests that need full control over each step.
package orchestrator

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// TestTwoServicesByHand creates a network, an API and a client container that
// calls the API by its service name, then tears everything down.
func TestTwoServicesByHand(t *testing.T) {
	ctx := context.Background()
	o, err := heph.NewOrchestrator()
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	defer func() {
		if err := o.Teardown(context.WithoutCancel(ctx)); err != nil {
			t.Error(err)
		}
	}()

	image := testenv.Image(t)                              // your image here, e.g. "myorg/api:latest"
	net, err := o.CreateNetwork(ctx, heph.NetworkConfig{}) // retries while Docker's address pools are all in use
	if err != nil {
		t.Fatal(err)
	}
	var client *heph.Container
	for _, svc := range []heph.ContainerConfig{
		{Image: image, Service: "api", Cmd: []string{"-http", ":8080"}, Networks: []string{net.Name()}},
		{Image: image, Service: "client", Cmd: []string{"-http", ":8080"}, ExposedPorts: []string{"8080"}, Networks: []string{net.Name()}},
	} {
		c, err := o.CreateContainer(ctx, svc) // created, not started
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		client = c
	}
	clientAddr := client.Endpoint("8080/tcp") // 127.0.0.1:<port>, where this machine reaches it
	t.Logf("client is %s at %s", client.Name(), clientAddr)

	// The client container fetches http://api:8080/hostname on the private network.
	body := getWithRetry(t, "http://"+clientAddr+"/fetch?url=http://api:8080/hostname")
	if body != "api\n" && body != "api" {
		t.Fatalf("client reached %q, want the api service", body)
	}
}

func getWithRetry(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var body []byte
	err := backoff.Retry(func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if body, err = io.ReadAll(resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", resp.Status, body)
		}
		return nil
	}, backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithInitialInterval(5*time.Millisecond), backoff.WithMaxInterval(250*time.Millisecond)), ctx))
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
