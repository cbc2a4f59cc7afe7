// Package wait holds the readiness strategies heph runs before it hands a
// container to a test.
//
// A Strategy waits, against a small Target interface, until a container is
// ready (a port accepts connections, a log line appears, an HTTP endpoint
// answers, …). Strategies are small immutable values: one value can be shared
// by any number of parallel tests. This package never imports heph.
package wait
