// Package wait holds the readiness strategies heph runs before it hands a
// container to a test.
//
// A Strategy waits, against a small Target interface, until a container is
// ready (a port accepts connections, a log line appears, an HTTP endpoint
// answers, …). Strategies are small immutable values: one value can be shared
// by any number of parallel tests. This package never imports heph.
package wait

import "context"

// Strategy decides when a container is ready. Wait blocks until it is, or
// returns an error explaining why it is not; it must return promptly when
// ctx is done. Implementations must be safe for concurrent use.
type Strategy interface {
	Wait(ctx context.Context, target Target) error
}

// Target is what a Strategy can observe of a container. heph's container
// handle satisfies it; tests of strategies use a fake.
type Target interface{}
