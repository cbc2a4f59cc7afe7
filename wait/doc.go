// Package wait holds the readiness strategies heph runs before it hands a
// container to a test.
//
// A Strategy waits, against a small Target interface, until a container is
// ready (a port accepts connections, a log line appears, an HTTP endpoint
// answers, …). Strategies are small immutable values: every With… method
// returns a modified copy, nothing changes while waiting, and one value can
// be shared by any number of parallel tests. A strategy is built by its
// For… function: a zero value (LogStrategy{}, HTTPStrategy{}, …) is invalid,
// and Validate, Run and its Wait say so (ErrInvalid). This package never
// imports heph (only heph's leaf packages internal/port, internal/retry and
// internal/redact, which masks secrets of a ForExec command line and of the
// output an error quotes); package waittest has a fake Target for unit
// tests.
//
// # Strategies
//
//	ForListeningPort("5432")   the port is published and the app accepts connections on it.
//	                           Needs nothing in the image (FROM scratch, distroless) and is not
//	                           fooled by Docker's port proxy. The default choice for TCP servers.
//	ForHTTP("/healthz")        an HTTP(S) request answers 2xx (or WithStatus, WithResponseMatcher).
//	                           For apps with a health endpoint: ready means "serving", not "bound".
//	ForLog("ready")            a log line contains the text (ForLogRegexp: matches), WithOccurrence
//	ForLogRegexp(`^ok$`)       times. For apps that announce readiness, or restart once while
//	                           initialising (WithOccurrence(2)). Reads the log once: linear cost.
//	ForHealthCheck()           the image's HEALTHCHECK reports healthy. Event-driven. For images
//	                           that define a meaningful health check.
//	ForExec("pg_isready")      a command run in the container exits 0 (WithExitCode,
//	                           WithOutputMatcher). Needs the command in the image.
//	ForExit()                  a one-shot container (migration, seeder) exited with code 0
//	                           (WithExitCode).
//	ForFunc(f)                 your own check, called once; WithRetry polls it.
//	All(s1, s2, …)             each in turn, under one deadline.
//	Any(s1, s2, …)             the first that is ready; the others are cancelled.
//	WithTimeout(d, s)          s, given at most d (the only per-strategy timeout).
//
// # Waiting and errors
//
// Polling strategies retry with exponential backoff from 2 ms, growing 1.5×
// to at most 15 ms for cheap probes on the host (a connect, an HTTP
// request) and 250 ms for probes that cost the daemon (exec, inspect);
// logs, exits and health changes are followed as events. The context
// bounds every wait: a strategy has no timeout of its own (see WithTimeout).
// A strategy distinguishes "not ready yet" (keep trying) from "cannot
// succeed" (give up at once: a certificate error, a missing HEALTHCHECK, a
// log that ended, a wrong exit code; Permanent in ForFunc).
//
// Run is what heph calls at start. It validates the strategy, fails at once
// if the container exits while the strategy waits (unless it waits for the
// exit), and returns an *Error that names the strategy, how long it waited,
// why it ended and the last reason the container was not ready, followed
// by the container's state and its last 20 log lines:
//
//	wait: ForHTTP(GET /healthz on 8080/tcp): timed out after 30s: last error: GET http://127.0.0.1:32771/healthz: status 503 (body: "starting")
//	  state: running, health starting
//	  last 20 log lines:
//	    …
//
// errors.Is(err, context.DeadlineExceeded) holds for a timeout and
// errors.Is(err, ErrExited) when the container stopped. Strategies built
// with bad arguments (a bad regexp or port, an occurrence below 1, a nil
// strategy, …) never panic: Validate, Wait and Run report them with an
// error wrapping ErrInvalid.
package wait
