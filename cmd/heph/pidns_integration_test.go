//go:build integration && linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/labels"
	"github.com/heph-go/heph/internal/reaperchild"
	"github.com/heph-go/heph/internal/testenv"
)

// TestPruneNeverRemovesALiveSessionOfAnotherPidNamespace runs a heph
// process in a pid namespace of its own on this host (unshare --pid, as a
// test in a container with --network host and this host's name, or a pod's
// sidecar, would be), with a pid that no process has out here. Its session
// carries this host's name and boot, and its namespace: heph ps says
// "unknown", heph prune --stale leaves it, and prune --session refuses it
// without --force. (The old judgement, by host name alone, found no process
// with that pid here and called the session stale: prune removed a live
// run.)
func TestPruneNeverRemovesALiveSessionOfAnotherPidNamespace(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("this test runs a process in a pid namespace of its own with util-linux's unshare: %v", err)
	}
	bin := hephBinary(t)
	child := reaperchild.Build(t)
	pid := freePid(t)
	wrap := []string{"unshare", "--pid", "--fork", "--kill-child", "--mount-proc"}
	if os.Geteuid() != 0 {
		wrap = append(wrap, "--user", "--map-root-user") // a pid namespace needs privilege: that of a user namespace
	}
	wrap = append(wrap, "--", "sh", "-c", fmt.Sprintf(`echo %d > /proc/sys/kernel/ns_last_pid && "$@"`, pid-1), "sh")
	c := reaperchild.StartIn(t, wrap, child, "hold-one", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	docker := testenv.Docker(t)

	// What the process in the namespace wrote on its container.
	f := make(client.Filters).Add("label", heph.LabelSession+"="+c.Session)
	cs, err := docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	require.NoError(t, err)
	require.Len(t, cs.Items, 1, c.Output())
	l := cs.Items[0].Labels
	host, _ := os.Hostname()
	ourNS, err := os.Readlink("/proc/self/ns/pid")
	require.NoError(t, err)
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(pid), l[heph.LabelPID], "its pid in its own namespace")
	require.Equal(t, host, l[heph.LabelHost], "the same host name")
	require.Equal(t, strings.TrimSpace(string(boot)), l[labels.Boot], "the same boot")
	require.Regexp(t, `^pid:\[\d+\]$`, l[labels.PIDNS])
	require.NotEqual(t, ourNS, l[labels.PIDNS], "another pid namespace")
	require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "no process has its pid out here: a judge by host and pid alone says gone")

	session := func(js string) (sessionView, bool) {
		var r struct{ Sessions []sessionView }
		require.NoError(t, json.Unmarshal([]byte(js), &r), js)
		for _, s := range r.Sessions {
			if s.Session == c.Session {
				return s, true
			}
		}
		return sessionView{}, false
	}
	status, out, errOut := hephCmd(t, bin, nil, "ps", "--json")
	require.Equal(t, 0, status, errOut)
	s, ok := session(out)
	require.True(t, ok, out)
	require.Equal(t, "unknown", s.Process, "its process cannot be judged from here")

	// --session keeps the removal to this test's session on a shared
	// daemon; --stale must still find it not stale.
	status, out, errOut = hephCmd(t, bin, nil, "prune", "--stale", "--session", c.Session, "--json")
	require.Equal(t, 0, status, "stdout: %s\nstderr: %s", out, errOut)
	_, removed := session(out)
	require.False(t, removed, "prune --stale did not remove it:\n%s", out)

	status, out, errOut = hephCmd(t, bin, nil, "prune", "--session", c.Session)
	require.Equal(t, exitFail, status, "a named session left in place fails: stdout: %s\nstderr: %s", out, errOut)
	require.Contains(t, errOut, "not removed: its process cannot be judged from here: it was made in another pid namespace")
	require.Contains(t, errOut, "--force removes it anyway")
	left, err := reaperchild.Resources(ctx, docker, c.Session)
	require.NoError(t, err)
	require.Len(t, left, 1, "the live session's container is still there")

	// The process ends its run: its own teardown removes its container.
	require.NoError(t, c.Release())
	_, err = c.Wait(t, time.Minute)
	require.NoError(t, err, c.Output())
	left, err = reaperchild.Resources(ctx, docker, c.Session)
	require.NoError(t, err)
	require.Empty(t, left)
}

// TestPruneForceRemovesASessionItCannotJudge: with --force, prune removes a
// named session whatever its process (here one of another pid namespace,
// made by the test with that session's labels).
func TestPruneForceRemovesASessionItCannotJudge(t *testing.T) {
	t.Parallel()
	bin := hephBinary(t)
	docker := testenv.Docker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	host, _ := os.Hostname()
	session := fmt.Sprintf("forced-%d-%d", os.Getpid(), time.Now().UnixNano())
	res, err := docker.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: "heph-forced-" + strconv.FormatInt(time.Now().UnixNano()%1e8, 16),
		Config: &container.Config{Image: testenv.Image(t), Labels: map[string]string{
			heph.LabelManaged: "true", heph.LabelSession: session, heph.LabelPID: "1",
			heph.LabelHost: host, labels.PIDNS: "pid:[1]", labels.Boot: "another-boot",
		}},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = docker.ContainerRemove(context.Background(), res.ID, client.ContainerRemoveOptions{Force: true})
	})

	status, _, errOut := hephCmd(t, bin, nil, "prune", "--session", session)
	require.Equal(t, exitFail, status)
	require.Contains(t, errOut, "it was made during another boot of this machine")
	status, out, errOut := hephCmd(t, bin, nil, "prune", "--session", session, "--force")
	require.Equal(t, 0, status, "stdout: %s\nstderr: %s", out, errOut)
	require.Contains(t, out, "removed: 1 container, 0 networks, 0 volumes of 1 session")
	left, err := reaperchild.Resources(ctx, docker, session)
	require.NoError(t, err)
	require.Empty(t, left)
}

// freePid returns a pid that no process has in this pid namespace, far
// ahead of the next one the kernel will hand out.
func freePid(t *testing.T) int {
	t.Helper()
	read := func(path string) int {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		require.NoError(t, err)
		return n
	}
	last, max := read("/proc/sys/kernel/ns_last_pid"), read("/proc/sys/kernel/pid_max")
	for i := 0; i < max; i++ {
		pid := 1000 + (last+max/2+i)%(max-1000)
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
			return pid
		}
	}
	t.Fatal("no free pid")
	return 0
}
