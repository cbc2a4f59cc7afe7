package heph

import (
	"errors"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/errs"
)

// Sentinel errors. Every error heph returns wraps the underlying cause, so
// these match with errors.Is through any amount of context, and the Docker
// SDK's own error classes still match too.
var (
	// ErrDockerUnavailable means no Docker daemon answered. The error that
	// wraps it names every place heph looked and what to do about it.
	ErrDockerUnavailable = errs.DockerUnavailable

	// ErrImageNotFound means an image is neither present locally nor
	// available from its registry.
	ErrImageNotFound = errs.ImageNotFound

	// ErrContainerNotFound means the daemon has no container with that ID or
	// name (it may have been removed already).
	ErrContainerNotFound = errs.ContainerNotFound

	// ErrNetworkNotFound means the daemon has no network with that ID or name.
	ErrNetworkNotFound = errs.NetworkNotFound

	// ErrInvalidConfig means a configuration was refused before any Docker
	// call was made. The wrapping error names the field (or the option, or
	// the environment variable) and the value.
	ErrInvalidConfig = errs.InvalidConfig

	// ErrNetworkPoolExhausted means the daemon had no address pool left for
	// a new bridge network for as long as heph could wait.
	ErrNetworkPoolExhausted = errs.NetworkPoolExhausted

	// ErrWatchdog means the watchdog process that removes a session's
	// resources when its process dies could not be started (or did not
	// answer), so heph refused to create a resource that could leak. The
	// wrapping error says why and where the watchdog's log is; HEPH_REAPER=off
	// runs without it.
	ErrWatchdog = errs.Watchdog

	// ErrRegistryAuth means a registry refused a pull: it rejected the
	// credentials heph sent, or wanted credentials and got none. The
	// wrapping error names the registry and the image, and says whether
	// credentials were sent and where they came from (DOCKER_AUTH_CONFIG,
	// the config file, a credential helper) — never their value. Such a
	// failure never matches ErrImageNotFound.
	ErrRegistryAuth = errs.RegistryAuth
)

// wrap decorates a Docker error with the operation and subject; notFound is
// the sentinel to add when the daemon says the subject does not exist.
func wrap(op, subject string, err, notFound error) error {
	return engine.Op(op, subject, err, notFound)
}

// invalid refuses a value of a field before any Docker call.
func invalid(field string, value any, reason string) error {
	return errs.Invalid(field, value, reason)
}

// isNotFound reports whether err says a container or network is gone.
func isNotFound(err error) bool {
	return errors.Is(err, ErrContainerNotFound) || errors.Is(err, ErrNetworkNotFound) || errors.Is(err, engine.ErrNotFound)
}
