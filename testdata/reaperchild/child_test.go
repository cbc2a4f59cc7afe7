//go:build integration

// Package reaperchild_test is the child program of heph's reaper tests
// (see internal/reaperchild). It lives under testdata so that go test ./...
// does not run it: only the reaper tests build and start it.
package reaperchild_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/reaperchild"
	"github.com/heph-go/heph/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// TestChild is the child program of the reaper tests; see the package doc.
func TestChild(t *testing.T) {
	mode := os.Getenv(reaperchild.EnvMode)
	if mode == "" {
		t.Fatal("the child program of the reaper tests: they build and start it with " + reaperchild.EnvMode + " set")
	}
	ctx := context.Background()
	o, err := heph.NewOrchestrator()
	if err != nil {
		t.Fatal(err)
	}
	image := testenv.Image(t)
	teardown := func() {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := o.Teardown(ctx); err != nil {
			t.Error(err)
		}
	}
	start := func(cfg heph.ContainerConfig) {
		t.Helper()
		cfg.Image = image
		c, err := o.CreateContainer(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	announce := func() {
		fmt.Printf("session %s\n", o.Session())
		wd := reaperchild.Watchdogs(os.Getpid())
		switch len(wd) {
		case 0:
			fmt.Println("watchdog 0")
		case 1:
			fmt.Printf("watchdog %d\n", wd[0])
		default:
			t.Fatalf("%d watchdogs: %v", len(wd), wd)
		}
		fmt.Println("ready")
	}

	if mode == "late-create" {
		// A network create whose answer comes after the caller gave up
		// (the test holds the daemon's answer back), then an exit at
		// once: no teardown, no reclaim — only the watchdog is left to
		// remove what the daemon made.
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := o.CreateNetwork(cctx, heph.NetworkConfig{})
		cancel()
		fmt.Printf("create network: %v\n", err)
		announce()
		os.Exit(0)
	}
	if mode == "hold-one" {
		c, err := o.CreateContainer(ctx, heph.ContainerConfig{Image: image, Service: "held"})
		if err != nil {
			t.Fatal(err)
		}
		_ = c
		announce()
		_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it (or kills us)
		teardown()
		return
	}
	if mode == "pass" {
		start(heph.ContainerConfig{Service: "pass", Cmd: []string{"-http", ":8080"}, ExposedPorts: []string{"8080"}})
		announce()
		teardown()
		return
	}

	net, err := o.CreateNetwork(ctx, heph.NetworkConfig{}) // waits while other tests hold every address pool
	if err != nil {
		t.Fatal(err)
	}
	start(heph.ContainerConfig{Service: "web", Cmd: []string{"-http", ":8080"}, ExposedPorts: []string{"8080"}, Networks: []string{net.Name()}})
	start(heph.ContainerConfig{Service: "stubborn", Cmd: []string{"-ignore-sigterm", "-http", ":8080"}, Networks: []string{net.Name()}})
	start(heph.ContainerConfig{Service: "data", Cmd: []string{"-write", "/data/x=1"}, Networks: []string{net.Name()},
		Mounts: []heph.Mount{{Type: heph.MountVolume, Source: "heph-reapvol-" + o.Session()[:8], Target: "/data"}}})
	announce()

	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it (or kills us)
	switch mode {
	case "hold":
		teardown()
	case "fatal":
		t.Fatal("failing on purpose, without teardown")
	case "panic":
		panic("panicking on purpose, without teardown")
	default:
		t.Fatalf("unknown mode %q", mode)
	}
}
