//go:build integration

package orchestrator

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"

	"github.com/heph-go/heph"
	"github.com/heph-go/heph/internal/testenv"
	"github.com/heph-go/heph/wait"
)

// The Orchestrator is the layer below the test builder: explicit calls, no
// testing.T, everything removed by Teardown.
func ExampleOrchestrator() {
	ctx := context.Background()
	o, err := heph.NewOrchestrator() // finds the daemon as the docker CLI does
	if err != nil {
		log.Fatal(err) // names every place it looked and what to do
	}
	defer o.Close()
	defer o.Teardown(context.WithoutCancel(ctx)) // every container, then the networks

	image, err := testenv.BuildImage() // your image here, e.g. "myorg/api:dev"
	if err != nil {
		log.Fatal(err)
	}
	net, err := o.CreateNetwork(ctx, heph.NetworkConfig{})
	if err != nil {
		log.Fatal(err)
	}
	api, err := o.CreateContainer(ctx, heph.ContainerConfig{
		Image:        image,
		Service:      "api",
		Cmd:          []string{"-http", ":8080"},
		ExposedPorts: []string{"8080/tcp"},
		Networks:     []string{net.Name()},
		WaitStrategy: wait.ForHTTP("/healthz"), // what Start waits for
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := api.Start(ctx); err != nil { // created above, started and ready here
		log.Fatal(err)
	}
	resp, err := http.Get("http://" + api.Endpoint("8080/tcp") + "/hostname")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%s", body)
	// Output: api
}
