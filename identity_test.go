package heph

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/labels"
)

// Every resource carries where its heph.pid means its process: the host,
// the pid namespace and the boot (issue #9: heph prune judged a pid by the
// host name alone).
func TestResourcesCarryTheProcessIdentity(t *testing.T) {
	o, _ := newTestOrchestrator()
	c, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "app"})
	require.NoError(t, err)
	info, err := c.Inspect(context.Background())
	require.NoError(t, err)
	host, _ := os.Hostname()
	require.Equal(t, strconv.Itoa(os.Getpid()), info.Labels[LabelPID])
	require.Equal(t, host, info.Labels[LabelHost])
	if runtime.GOOS == "linux" {
		ns, err := os.Readlink("/proc/self/ns/pid")
		require.NoError(t, err)
		require.Equal(t, ns, info.Labels[labels.PIDNS])
		boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
		require.NoError(t, err)
		require.Equal(t, string(boot[:36]), info.Labels[labels.Boot])
	}
}
