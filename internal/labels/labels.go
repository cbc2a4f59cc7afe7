// Package labels names the labels heph puts on everything it creates, for
// every layer that writes or reads them (package heph re-exports them).
package labels

// Label keys. The "heph." prefix is reserved for these.
const (
	Prefix  = "heph."
	Managed = "heph.managed" // "true"
	Session = "heph.session" // the Orchestrator's session id
	Service = "heph.service" // a container's service name
	Test    = "heph.test"    // the test that made it
	PID     = "heph.pid"     // the process that made it
	Host    = "heph.host"    // that process's host name
	// PIDNS is that process's pid namespace ("pid:[4026531836]"), so a
	// process is judged alive or dead only where its pid means the same
	// process.
	PIDNS = "heph.pidns"
	// Boot is the boot id of that process's machine: a pid from an earlier
	// boot is not the same process.
	Boot    = "heph.boot"
	Created = "heph.created" // RFC 3339, UTC
	// Shared marks a shared container (and a volume the daemon created for
	// it): its value is the content key of the request, 64 hex digits. A
	// shared container has no heph.session and no heph.pid: no session's
	// teardown or watchdog removes it, the last holder's idle time does.
	Shared = "heph.shared"
	// Build marks an image heph built (FromDockerfile, FromGoPackage,
	// Orchestrator.BuildImage); its value is the content hash the image's
	// tag heph-build/<name>:<hash> starts with.
	Build = "heph.build"
	// BuildSource says what an image was built from: the context directory
	// or the Go package.
	BuildSource = "heph.build.source"
	// Run is the test run of heph's own tests that made it: the value of
	// EnvRun in the environment of the process that made it, set by
	// internal/testenv and inherited by the test's child processes, so
	// that the run's leak check sees what they made too.
	Run = "heph.run"
)

// EnvRun names the variable that carries the test run's id to Run (heph's
// own tests only; unset, there is no heph.run label).
const EnvRun = "HEPH_TEST_RUN"
