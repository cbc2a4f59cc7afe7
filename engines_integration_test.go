//go:build integration

package heph_test

import (
	"testing"

	"github.com/heph-go/heph"
	"github.com/stretchr/testify/require"
)

// TestEngineRequireDocker: with a daemon (every endpoint of make
// test-engines), RequireDocker lets the test run.
func TestEngineRequireDocker(t *testing.T) {
	t.Parallel()
	r := &requireRecorder{TB: t}
	heph.RequireDocker(r)
	require.Empty(t, r.skipped)
	require.Empty(t, r.failed)
}
