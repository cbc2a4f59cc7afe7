package wait_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/heph-go/heph/wait"
	"github.com/heph-go/heph/wait/waittest"
)

// Strategies compose; their String is what errors name.
func Example() {
	s := wait.All(
		wait.ForListeningPort("5432"),
		wait.ForLog("database system is ready to accept connections").WithOccurrence(2),
		wait.Any(
			wait.ForHTTP("/healthz").WithPort("8080"),
			wait.WithTimeout(5*time.Second, wait.ForExec("pg_isready", "-U", "app")),
		),
	)
	fmt.Println(s)
	fmt.Println(wait.Validate(s))
	// Output:
	// All(ForListeningPort(5432/tcp), ForLog("database system is ready to accept connections").WithOccurrence(2), Any(ForHTTP(GET /healthz on 8080/tcp), WithTimeout(5s, ForExec("pg_isready", "-U", "app"))))
	// <nil>
}

// Bad arguments never panic: they are reported by Validate (heph calls it
// when the container starts, before any Docker call), and by Wait and Run.
func ExampleValidate() {
	for _, s := range []wait.Strategy{
		wait.ForLogRegexp(`ready (`),
		wait.ForListeningPort("http"),
		wait.ForHTTP("healthz").WithMethod("GE T"),
		wait.All(wait.ForLog("ok"), nil),
	} {
		err := wait.Validate(s)
		fmt.Println(errors.Is(err, wait.ErrInvalid), err)
	}
	// Output:
	// true wait: invalid strategy ForLogRegexp("ready ("): bad regexp: error parsing regexp: missing closing ): `ready (`
	// true wait: invalid strategy ForListeningPort("http"): bad port "http": want a number from 1 to 65535, optionally followed by /tcp, /udp or /sctp
	// true wait: invalid strategy ForHTTP(GE T healthz): path "healthz" does not start with "/"
	// invalid method "GE T"
	// true wait: invalid strategy All(ForLog("ok"), <nil>): strategy 2 (<nil>): nil strategy
}

// ForLog against a fake container that logs over time.
func ExampleForLog() {
	tg := waittest.New()
	go func() {
		tg.Log("starting", "ready to accept connections", "warming up")
		tg.Log("ready to accept connections")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := wait.ForLog("ready to accept").WithOccurrence(2).Wait(ctx, tg)
	fmt.Println(err)
	// Output:
	// <nil>
}

// ForLog fails as soon as the log ends, saying how far it got.
func ExampleForLog_logEnds() {
	tg := waittest.New()
	tg.Log("ready", "shutting down")
	tg.EndLog()
	err := wait.ForLogRegexp(`^ready$`).WithOccurrence(2).Wait(context.Background(), tg)
	fmt.Println(err)
	// Output:
	// log ended after 1 of 2 matching lines
}

// Run fails at once when the container exits while a strategy waits, with
// its exit code, state and last log lines.
func ExampleRun() {
	tg := waittest.New()
	tg.Log("starting", "panic: open /etc/app.yaml: no such file or directory")
	tg.Exit(2)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := wait.Run(ctx, wait.ForListeningPort("8080"), tg)

	var we *wait.Error
	if errors.As(err, &we) {
		fmt.Println(we.Strategy)
		fmt.Println(errors.Is(err, wait.ErrExited), we.State.ExitCode)
		fmt.Println(we.LogTail)
	}
	// The message starts with the strategy and why it ended; the time
	// varies.
	first, rest, _ := strings.Cut(err.Error(), "\n")
	fmt.Println(strings.HasPrefix(first, "wait: ForListeningPort(8080/tcp): container exited with code 2 after "))
	fmt.Println(rest)
	// Output:
	// ForListeningPort(8080/tcp)
	// true 2
	// [starting panic: open /etc/app.yaml: no such file or directory]
	// true
	//   state: exited, exit code 2
	//   last 2 log lines:
	//     starting
	//     panic: open /etc/app.yaml: no such file or directory
}

// ForFunc calls its function once; WithRetry polls it with backoff until it
// returns nil, or an error wrapped with Permanent.
func ExampleFuncStrategy_WithRetry() {
	tg := waittest.New()
	attempts := 0
	s := wait.ForFunc(func(ctx context.Context, t wait.Target) error {
		attempts++
		if attempts < 3 {
			return errors.New("not yet") // try again
		}
		if _, err := t.MappedPort(ctx, "5432"); err != nil {
			return wait.Permanent(err) // give up now
		}
		return nil
	}).WithRetry()
	err := s.Wait(context.Background(), tg)
	fmt.Println(attempts, err)
	// Output:
	// 3 waittest: port 5432/tcp is not published
}

// ForExit waits for a one-shot container; another exit code fails at once.
func ExampleForExit() {
	tg := waittest.New()
	go tg.Exit(1)
	err := wait.Run(context.Background(), wait.ForExit(), tg)
	first, _, _ := strings.Cut(err.Error(), "\n")
	fmt.Println(strings.HasSuffix(first, ": container exited with code 1, want 0"))
	// Output:
	// true
}

// Any is ready when one of its strategies is; WithTimeout bounds one of
// them.
func ExampleAny() {
	tg := waittest.New()
	tg.SetHealth("starting")
	go tg.SetHealth("healthy")
	s := wait.Any(wait.WithTimeout(time.Second, wait.ForLog("ready")), wait.ForHealthCheck())
	fmt.Println(wait.Run(context.Background(), s, tg))
	// Output:
	// <nil>
}
