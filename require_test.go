package heph_test

import (
	"path/filepath"
	"testing"

	"github.com/heph-go/heph"
	"github.com/stretchr/testify/require"
)

// requireRecorder is a testing.TB whose Skip and Fatal are recorded, not obeyed.
type requireRecorder struct {
	testing.TB
	skipped, failed string
}

func (r *requireRecorder) Helper()               {}
func (r *requireRecorder) Skip(args ...any)      { r.skipped = args[0].(string) }
func (r *requireRecorder) Fatal(args ...any)     { r.failed = args[0].(string) }
func (r *requireRecorder) Skipf(string, ...any)  { panic("Skipf") }
func (r *requireRecorder) Fatalf(string, ...any) { panic("Fatalf") }

func TestRequireDockerSkipsOrFails(t *testing.T) {
	none := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	t.Setenv("DOCKER_HOST", none)

	t.Setenv("CI", "")
	r := &requireRecorder{TB: t}
	heph.RequireDocker(r)
	require.Empty(t, r.failed)
	require.Contains(t, r.skipped, "skipped: this test needs a Docker daemon")
	require.Contains(t, r.skipped, none+" (DOCKER_HOST)")

	t.Setenv("CI", "true")
	r = &requireRecorder{TB: t}
	heph.RequireDocker(r)
	require.Empty(t, r.skipped)
	require.Contains(t, r.failed, "CI is set, so it fails rather than skips")
	require.Contains(t, r.failed, none+" (DOCKER_HOST)")

	t.Setenv("DOCKER_HOST", "bogus://x")
	r = &requireRecorder{TB: t}
	require.NotPanics(t, func() { heph.RequireDocker(r) })
	require.Contains(t, r.failed, `unsupported scheme "bogus"`)
}
