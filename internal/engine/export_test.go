package engine

import (
	"testing"
	"time"
)

// SetExecGrace shortens execGrace for one test, and restores it when the
// test ends. The test must not be parallel (execGrace is read by every
// Exec).
func SetExecGrace(t testing.TB, d time.Duration) {
	old := execGrace
	execGrace = d
	t.Cleanup(func() { execGrace = old })
}

// DemuxCopy is demuxCopy, for the tests of package engine_test.
var DemuxCopy = demuxCopy

// HasLabels is hasLabels, for the tests of package engine_test.
var HasLabels = hasLabels

// HealthSubscription is healthSubscription, for the tests of package engine_test.
var HealthSubscription = healthSubscription
