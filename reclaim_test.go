package heph

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
	"github.com/heph-go/heph/internal/reclaim"
)

// lateCreate makes the fake daemon carry out call only after the caller
// gave up (the test closes gaveUp once the create returned; entered is
// closed when the call reached the daemon, for the caller to give up then,
// not after a time that a loaded machine may need just to get there): answered
// reports the create's success to heph; otherwise the daemon makes the
// object and heph hears only ctx's error, as when the response is lost
// (after delay, the daemon making it after heph's first look).
func lateCreate(f *enginetest.Fake, call string, answered bool, delay time.Duration) (entered, gaveUp chan struct{}) {
	entered, gaveUp = make(chan struct{}), make(chan struct{})
	var inHook atomic.Bool
	var once sync.Once
	f.Hook = func(ctx context.Context, c string, arg any) error {
		if c != call || inHook.Load() {
			return nil
		}
		once.Do(func() { close(entered) })
		<-gaveUp
		if answered {
			return nil // the daemon goes on, and answers the detached request
		}
		make := func() {
			inHook.Store(true)
			defer inHook.Store(false)
			switch spec := arg.(type) {
			case engine.ContainerSpec:
				_, _ = f.ContainerCreate(context.Background(), spec)
			case engine.NetworkSpec:
				_, _ = f.NetworkCreate(context.Background(), spec)
			}
		}
		if delay == 0 {
			make()
		} else {
			time.AfterFunc(delay, make)
		}
		return context.DeadlineExceeded // the request was cut; heph never hears the ID
	}
	return entered, gaveUp
}

// cancelWhenEntered returns a context that ends once entered is closed.
func cancelWhenEntered(t *testing.T, entered chan struct{}) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		<-entered
		cancel()
	}()
	return ctx
}

func TestCreatesThatOutliveTheirContextLeaveNothing(t *testing.T) {
	for _, c := range []struct {
		name     string
		call     string
		answered bool
		delay    time.Duration
	}{
		{"ContainerAnsweredLate", "ContainerCreate", true, 0},
		{"ContainerMadeButUnanswered", "ContainerCreate", false, 0},
		{"ContainerMadeAfterTheFirstLook", "ContainerCreate", false, 300 * time.Millisecond},
		{"NetworkAnsweredLate", "NetworkCreate", true, 0},
		{"NetworkMadeButUnanswered", "NetworkCreate", false, 0},
		{"NetworkMadeAfterTheFirstLook", "NetworkCreate", false, 300 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, f := netTestOrchestrator(t, "", false)
			entered, gaveUp := lateCreate(f, c.call, c.answered, c.delay)
			ctx := cancelWhenEntered(t, entered)
			var err error
			if c.call == "ContainerCreate" {
				_, err = o.CreateContainer(ctx, ContainerConfig{Image: "app:1", Service: "db",
					Mounts: []Mount{{Type: MountVolume, Source: "heph-test-data", Target: "/data"}}})
			} else {
				_, err = o.CreateNetwork(ctx, NetworkConfig{})
			}
			require.ErrorIs(t, err, context.Canceled)
			close(gaveUp)

			require.NoError(t, o.Teardown(context.Background()), "Teardown waits for the reclaim, which succeeds")
			containers, networks, volumes := f.Counts()
			require.Zero(t, containers)
			require.Equal(t, 1, networks, "the default bridge only")
			require.Zero(t, volumes, "the volume the create made for the mount is the session's, and removed")
			remove := map[string]string{"ContainerCreate": "ContainerRemove", "NetworkCreate": "NetworkRemove"}[c.call]
			require.Equal(t, 1, f.CallCount(remove), "the late object was removed")
		})
	}
}

func TestALateRefusalLeavesNothingToReclaim(t *testing.T) {
	o, f := netTestOrchestrator(t, "", false)
	gaveUp := make(chan struct{})
	f.Hook = func(_ context.Context, call string, _ any) error {
		if call == "ContainerCreate" {
			<-gaveUp
			return enginetest.Conflict("Conflict. The container name is already in use")
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := o.CreateContainer(ctx, ContainerConfig{Image: "app:1"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(gaveUp)
	require.NoError(t, o.Teardown(context.Background()))
	require.Zero(t, f.CallCount("ContainerList"), "the daemon answered: no need to look")
	require.Zero(t, f.CallCount("ContainerRemove"))
}

func TestTeardownReportsAReclaimThatFails(t *testing.T) {
	o, f := netTestOrchestrator(t, "", false)
	defer func(d time.Duration) { reclaim.Look = d }(reclaim.Look)
	reclaim.Look = 300 * time.Millisecond
	refused := enginetest.Conflict("network has active endpoints")
	entered, gaveUp := lateCreate(f, "NetworkCreate", true, 0)
	late := f.Hook
	f.Hook = func(ctx context.Context, call string, arg any) error {
		if call == "NetworkRemove" {
			return refused
		}
		return late(ctx, call, arg)
	}
	_, err := o.CreateNetwork(cancelWhenEntered(t, entered), NetworkConfig{})
	require.ErrorIs(t, err, context.Canceled)
	close(gaveUp)

	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = o.Teardown(short)
	require.ErrorContains(t, err, "wait for the removal of what creates made after their callers gave up", "Teardown waits only as long as its context")
	require.ErrorIs(t, err, context.DeadlineExceeded)

	err = o.Teardown(context.Background())
	require.ErrorContains(t, err, `heph: remove network "heph-net-`)
	require.ErrorContains(t, err, `", created after its caller gave up: `)
	require.ErrorIs(t, err, refused)
	require.NoError(t, o.Teardown(context.Background()), "reported once")
}

func TestACreateCutOffWithoutAnAnswerIsFollowedUp(t *testing.T) {
	o, f := netTestOrchestrator(t, "", false)
	var inHook atomic.Bool
	f.Hook = func(_ context.Context, call string, arg any) error {
		if call != "ContainerCreate" || inHook.Load() {
			return nil
		}
		// The connection breaks at once; the daemon makes the container a
		// moment later, after heph's first look.
		time.AfterFunc(200*time.Millisecond, func() {
			inHook.Store(true)
			defer inHook.Store(false)
			_, _ = f.ContainerCreate(context.Background(), arg.(engine.ContainerSpec))
		})
		return io.ErrUnexpectedEOF
	}
	_, err := o.CreateContainer(context.Background(), ContainerConfig{Image: "app:1"})
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.NoError(t, o.Teardown(context.Background()))
	containers, _, _ := f.Counts()
	require.Zero(t, containers)
	require.Equal(t, 1, f.CallCount("ContainerRemove"))
	require.GreaterOrEqual(t, f.CallCount("ContainerList"), 2, "it looked again after the first look found nothing")
}
