//go:build integration

package testenv

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/labels"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// envLeakChild makes TestLeakingChild, run as a child process, leak.
const envLeakChild = "HEPH_TESTENV_LEAK_CHILD"

// TestLeakingChild is the child process of TestLeftoversSeeChildProcesses:
// it creates a network and exits without a teardown, its watchdog off (as
// when the watchdog fails). Run directly, it does nothing.
func TestLeakingChild(t *testing.T) {
	if os.Getenv(envLeakChild) == "" {
		return
	}
	o, err := heph.NewOrchestrator()
	require.NoError(t, err)
	n, err := o.CreateNetwork(context.Background(), heph.NetworkConfig{})
	require.NoError(t, err)
	os.Stdout.WriteString("leaked network " + n.Name() + "\n")
	o.Close()
	os.Exit(0) // no teardown
}

// TestLeftoversSeeChildProcesses: what a child process of the run leaves is
// a leftover of this run, though its heph.pid is the child's.
func TestLeftoversSeeChildProcesses(t *testing.T) {
	require.NotEmpty(t, runID, "this process started a run")
	require.Equal(t, runID, os.Getenv(labels.EnvRun))
	require.NoError(t, Leftovers(context.Background(), os.Getpid()), "nothing left before the child runs")

	cmd := exec.Command(os.Args[0], "-test.run=^TestLeakingChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envLeakChild+"=1", heph.EnvReaper+"=off")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	_, name, ok := strings.Cut(string(out), "leaked network ")
	require.True(t, ok, "%s", out)
	name = strings.Fields(name)[0]

	raw := Docker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Cleanup(func() { // ours: made by this test's child
		_, _ = raw.NetworkRemove(context.Background(), name, client.NetworkRemoveOptions{})
	})
	nw, err := raw.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	require.NoError(t, err)
	require.NotEqual(t, os.Getpid(), nw.Network.Labels[heph.LabelPID], "made by the child")
	require.Equal(t, runID, nw.Network.Labels[labels.Run], "labelled with this run")

	err = Leftovers(ctx, os.Getpid())
	require.Error(t, err, "the child's leak is seen")
	require.Contains(t, err.Error(), "network "+name)

	_, err = raw.NetworkRemove(ctx, name, client.NetworkRemoveOptions{})
	require.NoError(t, err)
	require.NoError(t, Leftovers(ctx, os.Getpid()))
}
