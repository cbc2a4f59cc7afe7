package heph

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// Sentinel errors. Every error heph returns wraps the underlying cause, so
// these match with errors.Is through any amount of context, and the Docker
// SDK's own error classes (cerrdefs.IsNotFound, IsConflict, …) still match too.
var (
	// ErrDockerUnavailable means no Docker daemon answered. The error that
	// wraps it names every place heph looked and what to do about it.
	ErrDockerUnavailable = errors.New("heph: Docker daemon unavailable")

	// ErrImageNotFound means an image is neither present locally nor
	// available from its registry.
	ErrImageNotFound = errors.New("heph: image not found")

	// ErrContainerNotFound means the daemon has no container with that ID or
	// name (it may have been removed already).
	ErrContainerNotFound = errors.New("heph: container not found")

	// ErrNetworkNotFound means the daemon has no network with that ID or name.
	ErrNetworkNotFound = errors.New("heph: network not found")

	// ErrInvalidConfig means a configuration was refused before any Docker
	// call was made. The wrapping error names the field and the value.
	ErrInvalidConfig = errors.New("heph: invalid configuration")

	// ErrNetworkPoolExhausted means the daemon has no address pool left for
	// a new bridge network (its default pools hold about 30).
	ErrNetworkPoolExhausted = errors.New("heph: Docker network address pools exhausted")

	// ErrNotManaged means an operation that only applies to resources created
	// by this Orchestrator was asked of one it did not create.
	ErrNotManaged = errors.New("heph: not managed by this orchestrator")
)

// opError wraps an error from a Docker call with the operation and its
// subject, and with a heph sentinel when the cause belongs to one of its
// classes. Both the sentinel and the original cause match with errors.Is.
type opError struct {
	op       string // "start container"
	subject  string // "heph-db-1a2b3c4d"
	sentinel error  // may be nil
	err      error
}

func (e *opError) Error() string {
	if e.subject == "" {
		return fmt.Sprintf("heph: %s: %v", e.op, e.err)
	}
	return fmt.Sprintf("heph: %s %q: %v", e.op, e.subject, e.err)
}

// Unwrap returns the cause and, when set, the sentinel, so errors.Is and
// errors.As see both.
func (e *opError) Unwrap() []error {
	if e.sentinel == nil {
		return []error{e.err}
	}
	return []error{e.err, e.sentinel}
}

// wrap decorates a Docker error with the operation and subject. notFound is the
// sentinel to attach when the daemon says the subject does not exist.
func wrap(op, subject string, err error, notFound error) error {
	if err == nil {
		return nil
	}
	var sentinel error
	switch {
	case notFound != nil && cerrdefs.IsNotFound(err):
		sentinel = notFound
	case isConnectionFailure(err):
		sentinel = ErrDockerUnavailable
	}
	return &opError{op: op, subject: subject, sentinel: sentinel, err: err}
}

// invalid builds an ErrInvalidConfig error naming the field and the value.
func invalid(field string, value any, reason string) error {
	return fmt.Errorf("%w: %s %s: %s", ErrInvalidConfig, field, quote(value), reason)
}

func quote(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	default:
		return fmt.Sprintf("%v", v)
	}
}

// isConnectionFailure reports whether err means the daemon could not be
// reached at all.
func isConnectionFailure(err error) bool {
	return client.IsErrConnectionFailed(err) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}

// isPoolExhausted reports whether a NetworkCreate failed because no address
// pool is left.
func isPoolExhausted(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "non-overlapping IPv4 address pool") || strings.Contains(msg, "could not find an available")
}

// isNotFound reports whether err says a container or network is gone.
func isNotFound(err error) bool {
	return errors.Is(err, ErrContainerNotFound) || errors.Is(err, ErrNetworkNotFound)
}
