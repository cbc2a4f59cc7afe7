package testenv

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/moby/moby/client"
)

// Registry starts an in-memory OCI registry on 127.0.0.1 for the test and
// returns its host:port. The daemon pushes to and pulls from loopback
// registries over plain HTTP without configuration.
func Registry(t testing.TB) string {
	t.Helper()
	return serve(t, registry.New(registry.Logger(log.New(io.Discard, "", 0))))
}

// StallingRegistry starts a registry on 127.0.0.1 that answers the version
// check and then never answers a manifest request (until the test ends), to
// test pull timeouts. It returns its host:port.
func StallingRegistry(t testing.TB) string {
	t.Helper()
	stop := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
			w.WriteHeader(http.StatusOK)
			return
		}
		select { // hold the request until the client gives up or the test ends
		case <-r.Context().Done():
		case <-stop:
		}
	})
	addr := serve(t, h)
	t.Cleanup(func() { close(stop) })
	return addr
}

func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for a registry: %v", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
	})
	return ln.Addr().String()
}

// Push tags the local image src as ref and pushes ref through the daemon,
// reading the push stream to its end. It fails the test on any error.
func Push(t testing.TB, c *client.Client, src, ref string) {
	t.Helper()
	// Daemons before API 1.?? insist on an X-Registry-Auth header: "{}" in base64.
	PushAuth(t, c, src, ref, "e30=")
}

// PushAuth is Push with the X-Registry-Auth value auth (see Auth).
func PushAuth(t testing.TB, c *client.Client, src, ref, auth string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.ImageTag(ctx, client.ImageTagOptions{Source: src, Target: ref}); err != nil {
		t.Fatalf("tag %s as %s: %v", src, ref, err)
	}
	resp, err := c.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: auth})
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	defer resp.Close()
	if err := resp.Wait(ctx); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// RemoveImage removes a local image reference, failing the test on any error
// but "no such image".
func RemoveImage(t testing.TB, c *client.Client, ref string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true}); err != nil && !strings.Contains(strings.ToLower(err.Error()), "no such image") {
		t.Fatalf("remove image %s: %v", ref, err)
	}
}
