package heph

import (
	"context"
	"strings"

	"github.com/moby/moby/client"
)

// DaemonInfo describes the Docker daemon an Orchestrator talks to, for
// diagnostics such as `heph doctor`.
type DaemonInfo struct {
	// Host is the daemon's address in DOCKER_HOST form
	// (unix:///var/run/docker.sock, tcp://host:2376).
	Host string
	// Source says how the daemon was found: "DOCKER_HOST",
	// `context "remote" (DOCKER_CONTEXT)`, `context "remote" (~/.docker/config.json)`,
	// "rootless socket ($XDG_RUNTIME_DIR/docker.sock)", "default socket", or
	// "WithDockerClient".
	Source string
	// Product is the server's platform name ("Docker Engine - Community");
	// Version its version ("20.10.24").
	Product, Version string
	// APIVersion is the API version heph speaks to it (negotiated, or fixed by
	// DOCKER_API_VERSION); MaxAPIVersion and MinAPIVersion are the range the
	// daemon supports.
	APIVersion, MaxAPIVersion, MinAPIVersion string
	// OS and Arch are the daemon's platform ("linux", "amd64"): images for
	// its containers must be built for them.
	OS, Arch string
	// Rootless reports that the daemon runs without root (its security
	// options include name=rootless).
	Rootless bool
	// SecurityOptions are the daemon's security options as it reports them
	// ("name=seccomp,profile=default", "name=rootless", …).
	SecurityOptions []string
	// Name is the daemon's host name.
	Name string
}

// Daemon asks the daemon o talks to for its version and system information.
// It fails when either call fails; the error names the call and matches
// ErrDockerUnavailable when the daemon cannot be reached.
func (o *Orchestrator) Daemon(ctx context.Context) (DaemonInfo, error) {
	d := DaemonInfo{Host: o.endpoint.Host, Source: o.endpoint.Source}
	if c, ok := o.api.(interface{ ClientVersion() string }); ok {
		d.APIVersion = c.ClientVersion()
	}
	v, err := o.api.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return d, wrap("ask the daemon its version", o.endpoint.Host, err, nil)
	}
	d.Product, d.Version = v.Platform.Name, v.Version
	d.MaxAPIVersion, d.MinAPIVersion = v.APIVersion, v.MinAPIVersion
	d.OS, d.Arch = v.Os, v.Arch
	info, err := o.api.Info(ctx, client.InfoOptions{})
	if err != nil {
		return d, wrap("ask the daemon for its system information", o.endpoint.Host, err, nil)
	}
	d.Name = info.Info.Name
	d.SecurityOptions = info.Info.SecurityOptions
	for _, opt := range info.Info.SecurityOptions {
		for _, kv := range strings.Split(opt, ",") {
			if kv == "name=rootless" {
				d.Rootless = true
			}
		}
	}
	if d.OS == "" {
		d.OS = info.Info.OSType
	}
	return d, nil
}
