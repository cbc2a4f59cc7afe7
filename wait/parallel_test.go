package wait_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/wait"
	"github.com/heph-go/heph/wait/waittest"
)

// TestSharedStrategy runs one strategy value in 50 parallel waits (run it
// with -race): strategies hold no state of their own while waiting.
func TestSharedStrategy(t *testing.T) {
	t.Parallel()
	const n = 50
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("UP")) })
	app := listen(t, hold)
	_, httpPort := splitPort(t, srv.Listener.Addr().String())

	shared := wait.All(
		wait.ForLog("ready").WithOccurrence(2),
		wait.ForLogRegexp(`^listening on \d+$`),
		wait.ForListeningPort(itoa(app)),
		wait.ForHTTP("/healthz").WithPort("8080").WithHeader("X-Test", "1").
			WithResponseMatcher(func(b []byte) bool { return string(b) == "UP" }),
		wait.ForHealthCheck(),
		wait.ForExec("check").WithOutputMatcher(func(b []byte) bool { return string(b) == "ok" }),
		wait.Any(wait.ForLog("never"), wait.ForLog("ready")),
		wait.WithTimeout(10*time.Second, wait.ForFunc(func(ctx context.Context, tg wait.Target) error {
			_, err := tg.Host(ctx)
			return err
		}).WithRetry()),
	)
	require.NoError(t, wait.Validate(shared))

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tg := waittest.New()
			tg.SetIPs("127.0.0.1")
			tg.Publish(itoa(app), app)
			tg.Publish("8080", httpPort)
			tg.SetExec(func(context.Context, []string) (wait.ExecResult, error) {
				return wait.ExecResult{Stdout: []byte("ok")}, nil
			})
			go func() {
				tg.Log("starting", "ready", fmt.Sprintf("listening on %d", i))
				tg.SetHealth("healthy")
				tg.Log("ready")
			}()
			errs[i] = wait.Run(withTimeout(t, 20*time.Second), shared, tg)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "wait %d", i)
	}
}

// TestSharedTarget: one fake target serves 50 parallel waits.
func TestSharedTarget(t *testing.T) {
	t.Parallel()
	tg := waittest.New()
	tg.SetHealth("starting")
	s := wait.Any(wait.ForLog("ready"), wait.ForHealthCheck())
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = wait.Run(withTimeout(t, 10*time.Second), s, tg)
		}()
	}
	after(t, 20*time.Millisecond, func() { tg.SetHealth("healthy") })
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
}

func splitPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], atoi(t, addr[i+1:])
		}
	}
	t.Fatalf("no port in %q", addr)
	return "", 0
}
