package heph_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/heph-go/heph"
)

// Invalid options are refused before any Docker call — here before an
// Orchestrator is even needed — naming the option and the value.
func ExampleContainerRequest_Run_invalid() {
	_, err := heph.NewContainer("redis:7").WithExposedPorts("6379/xyz").Run(context.Background(), nil)
	fmt.Println(errors.Is(err, heph.ErrInvalidConfig))
	fmt.Println(err)
	// Output:
	// true
	// heph: invalid configuration: WithExposedPorts("6379/xyz"): protocol "xyz" is not tcp, udp or sctp
}

// A request is an immutable value: a template that tests branch.
func ExampleNewContainer() {
	redis := heph.NewContainer("docker.io/library/redis:7").WithExposedPorts("6379/tcp")
	cache := redis.WithName("cache").WithEnv("REDIS_ARGS", "--save ''")
	// In a test: c := cache.Start(t); addr := c.Endpoint("6379/tcp")
	fmt.Println(redis)
	fmt.Println(cache)
	// Output:
	// docker.io/library/redis:7 (service "redis")
	// docker.io/library/redis:7 (service "cache")
}

// Bad input never panics and is never half-applied: every bad option is
// reported at Start (or Run), before any Docker call.
func ExampleContainerRequest_WithEnv() {
	_, err := heph.NewContainer("postgres:16").
		WithEnv("POSTGRES_PASSWORD", "s3cret\x00").
		WithName("Bad_Name").
		Run(context.Background(), nil)
	fmt.Println(err)
	// Output:
	// heph: invalid configuration: WithEnv("POSTGRES_PASSWORD"): the value must not contain NUL
	// heph: invalid configuration: WithName("Bad_Name"): is not a valid host name: use 1-63 lower-case letters, digits and '-', not starting or ending with '-'
}
