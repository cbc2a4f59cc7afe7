package sessions

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRemovalCutShortMidCall: the end comes while a removal call waits on
// the daemon (a loaded machine): the error names what is left and the end,
// not "remove container: context deadline exceeded" as a failure of ours
// (TestRemovalInProgressToTheEnd failed so under load).
func TestRemovalCutShortMidCall(t *testing.T) {
	d := newDaemon(t)
	d.container("s1", "db", "")
	d.Hook = func(ctx context.Context, call string, _ any) error {
		if call == "ContainerRemove" {
			<-ctx.Done() // the daemon does not answer before the end
			return ctx.Err()
		}
		return nil
	}
	p := fast
	p.MaxElapsed = 200 * time.Millisecond
	_, _, err := Removal{API: d, Sessions: []string{"s1"}, Policy: p}.Run(context.Background())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "still there: container db")
	require.NotContains(t, err.Error(), "remove container", "the end is no failure of ours")
}
