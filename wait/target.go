package wait

import (
	"context"
	"io"
	"time"
)

// Strategy decides when a container is ready. Wait blocks until it is, or
// returns an error explaining why it is not; it must return promptly when
// ctx is done. Implementations must be immutable and safe for concurrent use:
// one value may serve many parallel tests.
type Strategy interface {
	Wait(ctx context.Context, target Target) error
}

// Target is what a Strategy can observe of one container. heph's container
// handle provides it; tests of strategies use a fake (package waittest).
// Every method returns promptly when ctx is done. Its methods may be called
// concurrently (Any runs strategies in parallel, and Run watches WaitExit
// while a strategy waits).
type Target interface {
	// Host returns the host where the container's published ports are
	// reached, ready to dial ("127.0.0.1" for a local daemon).
	Host(ctx context.Context) (string, error)
	// MappedPort returns the host port a container port ("8080/tcp") is
	// published on. It fails when the port is not published.
	MappedPort(ctx context.Context, port string) (int, error)
	// Logs returns the container's output, stdout and stderr demultiplexed
	// into one stream in the order written. With Follow the stream stays
	// open, delivering new output, until the container stops or ctx ends.
	Logs(ctx context.Context, opts LogOptions) (io.ReadCloser, error)
	// Exec runs cmd in the container and waits for it to finish.
	Exec(ctx context.Context, cmd []string) (ExecResult, error)
	// State returns the container's current state.
	State(ctx context.Context) (State, error)
	// WaitExit blocks until the container is not running (event-driven)
	// and returns its final state; it returns at once for a container that
	// has already stopped.
	WaitExit(ctx context.Context) (State, error)
	// HealthEvents delivers the container's health status ("starting",
	// "healthy", "unhealthy") each time Docker reports a new one, until ctx
	// ends; the channel is closed then.
	HealthEvents(ctx context.Context) (<-chan string, error)
}

// LogOptions selects the output Target.Logs returns.
type LogOptions struct {
	// Follow keeps the stream open for new output.
	Follow bool
	// Tail limits the output to the last Tail lines; 0 means all.
	Tail int
}

// ExecResult is the outcome of Target.Exec.
type ExecResult struct {
	// ExitCode is the command's exit code.
	ExitCode int
	// Stdout and Stderr are what the command wrote.
	Stdout, Stderr []byte
}

// State is a container's state as a Strategy sees it.
type State struct {
	// Status is Docker's state: "created", "running", "paused",
	// "restarting", "removing", "exited", "dead" or "unknown".
	Status string
	// Running is true while the container's process runs.
	Running bool
	// ExitCode is the exit code once it has exited.
	ExitCode int
	// OOMKilled reports that the kernel killed it for memory.
	OOMKilled bool
	// Error is the daemon's error for the last start, if any.
	Error string
	// Health is "" without a HEALTHCHECK, else "starting", "healthy" or
	// "unhealthy"; HealthLog holds the output of the last checks, oldest
	// first.
	Health    string
	HealthLog []string
	// Ports maps each published container port ("8080/tcp") to its host
	// port.
	Ports map[string]int
	// IPs are the container's own addresses on its networks. The host can
	// often dial them directly (a local Linux daemon), which reaches the app
	// itself rather than Docker's port proxy.
	IPs []string
	// StartedAt and FinishedAt are zero when unknown.
	StartedAt, FinishedAt time.Time
}
