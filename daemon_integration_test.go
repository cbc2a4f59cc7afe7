//go:build integration

package heph

import (
	"context"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"
	"github.com/stretchr/testify/require"
)

// TestConnectDaemonReal connects to the daemon of this machine as
// NewOrchestrator does. It fails, never skips, when no daemon answers.
func TestConnectDaemonReal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	cli, ep, err := connectDaemon(ctx, osDaemonEnv())
	require.NoError(t, err, "integration tests need a running Docker daemon")
	defer func() { require.NoError(t, cli.Close()) }()

	ping, err := cli.Ping(ctx, client.PingOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, ping.APIVersion, "the daemon reports its API version")

	got := cli.ClientVersion()
	require.NotEmpty(t, got, "the API version is negotiated")
	if ep.APIVersion == "" {
		// Negotiated: the daemon's version, capped by what the SDK speaks.
		want := ping.APIVersion
		if versions.LessThan(client.MaxAPIVersion, want) {
			want = client.MaxAPIVersion
		}
		require.Equal(t, want, got)
	} else {
		require.Equal(t, ep.APIVersion, got, "DOCKER_API_VERSION fixes the version")
	}
	t.Logf("connected to %s (%s): daemon API %s, client API %s", ep.Host, ep.Source, ping.APIVersion, got)
}
