//go:build integration

package heph_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/heph-go/heph/internal/testenv/faultproxy"
)

// TestCreatesThatOutliveTheirContextAgainstTheDaemon goes through a proxy that
// holds back the daemon's answer to creates past the caller's deadline, or
// cuts the connection and makes the daemon create only later: the daemon
// makes the network, the container and its named volume all the same, and
// heph removes them; Teardown waits for that, and nothing of the session is
// left.
func TestCreatesThatOutliveTheirContextAgainstTheDaemon(t *testing.T) {
	// Not parallel: the watchdog would talk to the proxy, which goes away
	// with the test, so the reaper is off while it runs.
	t.Setenv(heph.EnvReaper, "off")
	image := testenv.Image(t)
	for _, tc := range []struct {
		name  string
		fault faultproxy.Fault
	}{
		{"AnswerLate", faultproxy.AnswerLate},
		{"CutThenCreate", faultproxy.CutThenForward},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The answer comes (or the create is made) 2 s after the
			// request, well after the caller's deadline of 300 ms.
			p := faultproxy.New(t)
			creates := p.Add(&faultproxy.Rule{Method: "POST", Path: `^/(containers|networks)/create$`, Fault: tc.fault, Delay: 2 * time.Second})
			o, err := heph.NewOrchestrator(heph.Daemon{Host: p.Host})
			require.NoError(t, err)
			defer o.Close()

			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err = o.CreateNetwork(ctx, heph.NetworkConfig{})
			require.Error(t, err, "the caller hears no answer in time")
			ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err = o.CreateContainer(ctx, heph.ContainerConfig{Image: image, Service: "late",
				Mounts: []heph.Mount{{Type: heph.MountVolume, Source: "heph-late-" + o.Session()[:8], Target: "/data"}}})
			require.Error(t, err, "the caller hears no answer in time")
			if tc.fault == faultproxy.AnswerLate {
				require.ErrorIs(t, err, context.DeadlineExceeded)
			}

			start := time.Now()
			tctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			require.NoError(t, o.Teardown(tctx))
			t.Logf("%s: Teardown waited %s for the late creates to be removed", tc.name, time.Since(start).Round(time.Millisecond))
			require.Eventually(t, func() bool { return creates.Answered() == 2 }, time.Minute, 10*time.Millisecond, "the daemon did get both creates")

			requireNothingOf(t, o.Session())
		})
	}
}
