package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/heph-go/heph/internal/daemon"
	"github.com/heph-go/heph/internal/shared"
)

// sharedGrace is how long past its idle time a shared container may still be
// there before the leak check calls it left behind: its last holder's
// watchdog removes it a few milliseconds after, on a busy machine a few
// seconds.
const sharedGrace = time.Minute

// SharedLeftovers ends this process's leases of shared containers and
// removes at once each one no other live process holds — the idle time is
// for the next package of a `go test ./...`, and a leak check cannot wait
// for it — then reports, for this machine, every shared container whose
// holders are gone and whose idle time ended more than a minute ago: one
// that expiry failed to remove, whichever run left it. nil when there is
// none.
func SharedLeftovers(ctx context.Context) error {
	leases := shared.Process.Leases()
	store, err := shared.OpenExisting()
	if err != nil {
		return err
	}
	if store == nil {
		return nil // no shared container was ever taken here
	}
	api, _, err := daemon.Connect(ctx, daemon.OSEnv())
	if err != nil {
		return fmt.Errorf("look for shared leftovers: %w", err)
	}
	defer api.Close()
	host, _ := os.Hostname()
	var errs []error
	for _, l := range leases {
		shared.Process.Release(l.Store, l.Key)
		if _, err := (shared.Expiry{API: api, Store: l.Store, Host: host}).Expire(ctx, l.Key, shared.Unheld); err != nil {
			errs = append(errs, err)
		}
	}
	infos, err := shared.List(ctx, api, store, host)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	var left []string
	now := time.Now()
	for _, in := range infos {
		if in.Local && len(in.Holders) == 0 && !in.Keep && !in.Until.IsZero() && now.Sub(in.Until) > sharedGrace {
			left = append(left, fmt.Sprintf("shared container %s (key %s, %s): no holder since %s, idle time ended %s ago",
				in.Name, in.Key[:12], in.State, in.IdleSince.Format(time.RFC3339), now.Sub(in.Until).Round(time.Second)))
		}
	}
	if len(left) > 0 {
		errs = append(errs, errors.New("the daemon still holds shared containers past their idle time:\n  "+strings.Join(left, "\n  ")))
	}
	return errors.Join(errs...)
}

// Fetch GETs url once (within 10 s) and returns the body of a 200 answer,
// without surrounding space; any other answer is an error.
func Fetch(url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return strings.TrimSpace(string(b)), err
}
