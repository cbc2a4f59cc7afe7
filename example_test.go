package heph_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/heph-go/heph"
)

// The Orchestrator is the layer below the test builder: explicit calls, no
// testing.T, everything removed by Teardown.
func ExampleOrchestrator() {
	ctx := context.Background()
	o, err := heph.NewOrchestrator()
	if errors.Is(err, heph.ErrDockerUnavailable) {
		log.Fatal(err) // names every place it looked and what to do
	}
	defer o.Close()
	defer o.Teardown(ctx)

	net, err := o.CreateNetwork(ctx, heph.NetworkConfig{})
	if err != nil {
		log.Fatal(err)
	}
	id, err := o.CreateContainer(ctx, heph.ContainerConfig{
		Image:        "redis:7",
		Service:      "cache",
		ExposedPorts: []string{"6379/tcp"},
		Networks:     []string{net.Name},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := o.StartContainer(ctx, id); err != nil {
		log.Fatal(err)
	}
	info, err := o.InspectContainer(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	p := info.Ports["6379/tcp"][0]
	fmt.Printf("redis at %s:%d\n", p.HostIP, p.HostPort)
}

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

func ExampleServiceFromImage() {
	fmt.Println(heph.ServiceFromImage("docker.io/library/postgres:16"))
	fmt.Println(heph.ServiceFromImage("127.0.0.1:5000/team/billing_api:dev"))
	// Output:
	// postgres
	// billing-api
}

func ExampleNormalizePort() {
	p, _ := heph.NormalizePort("8080")
	fmt.Println(p)
	_, err := heph.NormalizePort("8080/xyz")
	fmt.Println(err)
	// Output:
	// 8080/tcp
	// heph: invalid configuration: port "8080/xyz": protocol "xyz" is not tcp, udp or sctp
}
