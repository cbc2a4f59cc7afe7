package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// podmanHealthDefault is the interval of a health check that sets none
// (Docker's and Podman's default).
const podmanHealthDefault = 30 * time.Second

// healthSubscription returns the container a subscription to its
// health_status events is for.
func healthSubscription(f Filter) (string, bool) {
	if len(f["container"]) != 1 {
		return "", false
	}
	for _, e := range f["event"] {
		if e == "health_status" {
			return f["container"][0], true
		}
	}
	return "", false
}

// podmanHealth drives the container's health check when the daemon is
// Podman, and reports each status it learns to emit, as a health_status
// event would. Podman (4.x) sends no health_status event on its Docker API,
// and runs health checks from systemd timers: where there is no systemd (in
// a container, on most CI machines) they never run and the container stays
// "starting". Every interval heph looks at the container's health log: when
// a check ran since the last look (a timer works), it reports that status;
// else it runs the check itself (GET /libpod/containers/{id}/healthcheck,
// which records the result as a timer would) and reports its status.
func (c *Client) podmanHealth(ctx context.Context, id string, emit func(status string) bool) {
	res, err := c.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil || res.Container.Config == nil || res.Container.Config.Healthcheck == nil {
		return
	}
	hc := res.Container.Config.Healthcheck
	if len(hc.Test) == 0 || hc.Test[0] == "NONE" {
		return
	}
	interval := hc.Interval
	if interval <= 0 {
		interval = podmanHealthDefault
	}
	first := interval
	if hc.StartInterval > 0 && hc.StartInterval < first {
		first = hc.StartInterval
	}
	hcl := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return c.cli.Dialer()(ctx) },
	}}
	defer hcl.CloseIdleConnections()
	logged := healthLogLen(res.Container.State)
	tick := time.NewTimer(first)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		res, err := c.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil || res.Container.State == nil || !res.Container.State.Running {
			return
		}
		var status string
		if n := healthLogLen(res.Container.State); n > logged && res.Container.State.Health != nil {
			logged, status = n, string(res.Container.State.Health.Status)
		} else if status, err = c.runPodmanHealth(ctx, hcl, id); err != nil {
			return
		}
		if status != "" && !emit(status) {
			return
		}
		tick.Reset(interval)
	}
}

func healthLogLen(st *container.State) int {
	if st == nil || st.Health == nil {
		return 0
	}
	return len(st.Health.Log)
}

// runPodmanHealth runs the health check once and returns its status.
func (c *Client) runPodmanHealth(ctx context.Context, hcl *http.Client, id string) (string, error) {
	u := fmt.Sprintf("http://podman/v4.0.0/libpod/containers/%s/healthcheck", url.PathEscape(id))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := hcl.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return "", fmt.Errorf("libpod healthcheck: %s", resp.Status)
	}
	var out struct{ Status string }
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return "", err
	}
	return out.Status, nil
}
