//go:build integration

package daemon

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestConnectReal connects to the daemon of this machine as NewOrchestrator
// does. It fails, never skips, when no daemon answers.
func TestConnectReal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	cli, ep, err := Connect(ctx, OSEnv())
	require.NoError(t, err, "integration tests need a running Docker daemon")
	defer func() { require.NoError(t, cli.Close()) }()

	v, err := cli.Version(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, v.APIVersion, "the daemon reports its API version")

	got := cli.APIVersion()
	require.NotEmpty(t, got, "the API version is negotiated")
	if ep.APIVersion == "" {
		require.LessOrEqual(t, versionNumber(t, got), versionNumber(t, v.APIVersion), "negotiated down to the daemon's")
	} else {
		require.Equal(t, ep.APIVersion, got, "DOCKER_API_VERSION fixes the version")
	}
	t.Logf("connected to %s (%s): daemon API %s, client API %s", ep.Host, ep.Source, v.APIVersion, got)
}

func versionNumber(t *testing.T, v string) float64 {
	t.Helper()
	n, err := ParseAPIVersion(v)
	require.NoError(t, err)
	var major, minor int
	_, err = fmt.Sscanf(n, "%d.%d", &major, &minor)
	require.NoError(t, err)
	return float64(major)*1000 + float64(minor)
}
