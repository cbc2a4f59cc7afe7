// Package heph runs real Docker containers for Go integration tests.
//
// A test asks for a container with a fluent builder; heph pulls the image if
// it is missing, creates the container with a "heph-" name on a network
// private to the test (its hostname is its service name), waits until it is
// really ready, hands back its address, and removes everything when the test
// ends — even when the test process dies.
//
//	func TestAPI(t *testing.T) {
//		api := heph.NewContainer("myorg/api:dev").
//			WithExposedPorts("8080/tcp").
//			WithWaitStrategy(wait.ForHTTP("/healthz")).
//			Start(t) // t.Fatalf on failure; removed when t ends
//		resp, err := http.Get("http://" + api.Endpoint("8080/tcp") + "/healthz")
//		…
//	}
//
// # Layers
//
// [ContainerRequest] (NewContainer, With…, Start, StartAll, Run) is the
// test-facing builder. Requests are immutable values: one can be a template
// shared by parallel tests. [ContainerRequest.Start] registers the test's
// cleanup before any Docker call, puts the container on the test's own
// network ([TestNetwork]), and fails the test with everything known about a
// container that did not become ready. [ContainerRequest.Run] does the same
// without a testing.T, for TestMain.
//
// Package wait holds the readiness strategies (ForListeningPort, ForHTTP,
// ForLog, ForHealthCheck, ForExec, ForExit, …).
//
// [Orchestrator] is the layer below: explicit lifecycle primitives
// (CreateContainer, CreateNetwork, InspectContainer, ListContainers,
// RemoveContainer, PullImage, BuildImage, Teardown) that take a context,
// return wrapped errors, and track what they created so
// [Orchestrator.Teardown] can remove it. They hand out the same [Container]
// and [Network] handles the builder does.
//
// # Safety net
//
// Every container, network and volume carries the labels heph.managed,
// heph.session, heph.pid, heph.host and heph.created (and heph.test under
// Start). Before a process makes its first resource, heph starts a watchdog:
// the running binary re-executed, needing no image (see [EnvReaper]). When
// the process ends in any way — normal exit, panic, go test -timeout,
// Ctrl-C, SIGKILL — the watchdog removes that process's sessions.
// HEPH_REAPER=off disables it; the heph command (cmd/heph) lists and prunes
// what is left.
//
// # Errors
//
// Nothing panics for an environment failure. Errors name the operation and
// its subject and match heph's sentinels with errors.Is
// ([ErrDockerUnavailable], [ErrImageNotFound], [ErrContainerNotFound],
// [ErrInvalidConfig], …) as well as the Docker SDK's error classes. Invalid
// input is refused before any Docker call, naming the field or option and
// the value.
package heph
