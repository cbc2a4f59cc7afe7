//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package turns

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// envChild makes the test binary a child that joins the line in the
// directory it names, prints "turn" when its turn comes, and holds it until
// its stdin closes (or it is killed).
const envChild = "HEPH_TURNS_TEST_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(envChild); dir != "" {
		os.Exit(child(dir))
	}
	if os.Getenv(envWorker) != "" {
		os.Exit(worker())
	}
	os.Exit(m.Run())
}

func child(dir string) int {
	l, err := OpenDir(dir)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	t, err := l.Join(context.Background(), 1)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("turn")
	_, _ = io.Copy(io.Discard, os.Stdin)
	t.Done()
	return 0
}

func newLine(t *testing.T) *Line {
	t.Helper()
	l, err := OpenDir(filepath.Join(t.TempDir(), "line"))
	require.NoError(t, err)
	return l
}

func TestTurnsComeInTheOrderOfJoining(t *testing.T) {
	l := newLine(t)
	first, err := l.Join(context.Background(), 1)
	require.NoError(t, err)
	require.Equal(t, 1, l.Len())

	const n = 6
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range n {
		// Join one after the other (each is in line before the next starts).
		before := l.Len()
		wg.Add(1)
		go func() {
			defer wg.Done()
			turn, err := l.Join(context.Background(), 1)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			turn.Done()
		}()
		require.Eventually(t, func() bool { return l.Len() == before+1 }, 10*time.Second, time.Millisecond, "waiter %d is in line", i)
	}
	mu.Lock()
	require.Empty(t, order, "no one's turn comes while the first holds it")
	mu.Unlock()
	first.Done()
	first.Done() // idempotent
	wg.Wait()
	require.Equal(t, []int{0, 1, 2, 3, 4, 5}, order)
	require.Zero(t, l.Len())
	require.False(t, l.Busy())
}

func TestJoinGivesUpWithItsContext(t *testing.T) {
	l := newLine(t)
	first, err := l.Join(context.Background(), 1)
	require.NoError(t, err)
	defer first.Done()
	require.True(t, l.Busy())

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = l.Join(ctx, 1)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, 1, l.Len(), "the waiter that gave up left the line")
	entries, err := os.ReadDir(l.dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "and left no file")
}

func TestADeadWaitersEntryIsPassedOverAndRemoved(t *testing.T) {
	l := newLine(t)
	// Entries no process holds: one in line, one a waiter died making.
	stale := filepath.Join(l.dir, "0000000000000000001-0000001-00000000")
	require.NoError(t, os.WriteFile(stale, nil, 0o600))
	tmp := filepath.Join(l.dir, ".new-0000000000000000002-0000001-00000000")
	require.NoError(t, os.WriteFile(tmp, nil, 0o600))
	old := time.Now().Add(-time.Hour)
	require.NoError(t, os.Chtimes(tmp, old, old))

	require.False(t, l.Busy(), "a dead waiter does not make the line busy")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	turn, err := l.Join(ctx, 1)
	require.NoError(t, err, "a dead waiter ahead does not hold the line")
	turn.Done()
	for _, p := range []string{stale, tmp} {
		_, err := os.Stat(p)
		require.ErrorIs(t, err, os.ErrNotExist, "%s is removed", filepath.Base(p))
	}
}

// TestAcrossProcesses: a child process holds the turn; this process waits
// for it; when the child is killed (no Done), the kernel drops its lock and
// the turn passes here.
func TestAcrossProcesses(t *testing.T) {
	l := newLine(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+l.dir)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "turn\n", line)
	require.True(t, l.Busy(), "the child's turn shows in this process")

	got := make(chan error, 1)
	go func() {
		turn, err := l.Join(context.Background(), 1)
		if err == nil {
			turn.Done()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("the turn came while the child held it: %v", err)
	case <-time.After(200 * time.Millisecond): // a fraction of a second of polling shows the wait
	}
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the turn did not pass on after the child died")
	}
}

func TestOpenDirRefusesADirectoryOthersMayWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "open")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.Chmod(dir, 0o777))
	_, err := OpenDir(dir)
	require.ErrorContains(t, err, "others may write to it")

	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = OpenDir(file)
	require.Error(t, err)
}

func TestDir(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	require.Equal(t, "/run/user/1000/heph", Dir())
	t.Setenv("XDG_RUNTIME_DIR", "relative")
	require.Equal(t, filepath.Join(os.TempDir(), fmt.Sprintf("heph-%d", os.Getuid())), Dir(), "a relative runtime dir is ignored")
	t.Setenv("XDG_RUNTIME_DIR", "")
	require.Equal(t, filepath.Join(os.TempDir(), fmt.Sprintf("heph-%d", os.Getuid())), Dir())
}
