package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/heph-go/heph/internal/envflag"
)

// requireTimeout bounds Require's search for a daemon.
const requireTimeout = 20 * time.Second

// InCI reports whether the environment variable CI says this runs in CI:
// set, and not one of envflag's false words (CI=false is a developer's way
// to say no).
func InCI(getenv func(string) string) bool {
	if getenv == nil {
		return false
	}
	v := getenv("CI")
	return v != "" && !envflag.IsOff(v)
}

// Require looks for a daemon as heph's Orchestrator does (Connect). When
// one answers it returns "". Otherwise it returns the discovery report —
// every endpoint tried, where it came from and what it said, and what to
// do — and whether the test should fail (in CI) rather than skip.
func Require(ctx context.Context, env Env) (report string, fail bool) {
	ctx, cancel := context.WithTimeout(ctx, requireTimeout)
	defer cancel()
	api, ep, err := Connect(ctx, env)
	if err == nil {
		_ = api.Close()
		_ = ep
		return "", false
	}
	if InCI(env.Getenv) {
		return fmt.Sprintf("this test needs a Docker daemon, and CI is set, so it fails rather than skips: %v", err), true
	}
	return fmt.Sprintf("skipped: this test needs a Docker daemon (set CI=1 to fail instead): %v", err), false
}
