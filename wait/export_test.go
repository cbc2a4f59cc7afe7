package wait

import (
	"context"
	"net"
	"time"
)

// Test-only knobs of PortStrategy, for the tests in package wait_test.

// WithDirectTimeout sets the connect timeout of the direct path.
func (s PortStrategy) WithDirectTimeout(d time.Duration) PortStrategy {
	s.directTimeout = d
	return s
}

// WithReadWindow sets the read window of the proxy path.
func (s PortStrategy) WithReadWindow(d time.Duration) PortStrategy {
	s.readWindow = d
	return s
}

// WithDialer replaces the dialer.
func (s PortStrategy) WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) PortStrategy {
	s.dial = dial
	return s
}

// MaxRegexpLine is maxRegexpLine.
const MaxRegexpLine = maxRegexpLine

// LogBufferSize is logBufferSize.
const LogBufferSize = logBufferSize
