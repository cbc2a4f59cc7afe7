# Every command the project runs lives here; CI (.ci/run) calls these targets.

GO          ?= go
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
PKGS        ?= ./...
# The whole suite (unit + integration) must finish well inside CI's 90 minutes.
TEST_TIMEOUT ?= 30m
# Child programs of the tests, which ./... leaves out (vetted, not run).
TESTDATA_PKGS = ./testdata/scale ./testdata/reaperchild ./testdata/childtests

.PHONY: all test test-engines test-podman test-ssh test-tls test-api-floor stress unit integration examples bench bench-scale bench-shared fuzz mutate lint fmt vet staticcheck tidy-check ci

all: lint test

## test: unit and integration tests against the real Docker daemon, with -race.
test:
	$(GO) test -race -tags integration -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

## test-engines: the representative integration part (ENGINE_RUN in the
## packages ENGINE_PKGS: builder, per-test network reached by service name,
## every wait strategy, exec, copy, logs, teardown, the watchdog after
## SIGKILL, heph doctor) against each engine endpoint internal/rig starts:
## Podman's Docker API (test-podman), the local daemon over ssh:// through a
## local sshd (test-ssh), over tcp+TLS with client certificates (test-tls),
## and with DOCKER_API_VERSION=1.40 (test-api-floor). Needs podman,
## openssh-server and the docker CLI; .ci/run installs them. Left out:
## TestIntegrationNotReadyBeforeListening, a latency benchmark whose
## budgets (median readiness <= 60 ms) are for a local socket.
ENGINE_PKGS ?= . ./wait ./cmd/heph ./internal/rig
ENGINE_RUN  ?= ^(TestLifecycleAgainstTheDaemon|TestContainersReachEachOtherByServiceName|TestTestsEachOnTheirOwnNetwork|TestCopyADirectoryInAndOut|TestExecAndLogs|TestStartFailureReportsExitAndLogs|TestGracefulStopTimeoutForAContainerIgnoringSIGTERM|TestTeardownLeavesNothing|TestFromGoPackage|TestWatchdogReaper|TestIntegration(ExitFailsFast|For.*|Compose|SharedStrategy)|TestDoctorAgainstTheDaemon|TestEngine.*)$$
ENGINE_TEST  = $(GO) test -race -tags integration -count=1 -timeout 20m -run '$(ENGINE_RUN)' $(ENGINE_PKGS)
RIG          = $(GO) run ./internal/rig/cmd

test-engines: test-podman test-ssh test-tls test-api-floor

test-podman:
	$(RIG) podman -- $(ENGINE_TEST)

test-ssh:
	$(RIG) ssh -- $(ENGINE_TEST)

test-tls:
	$(RIG) tls -- $(ENGINE_TEST)

test-api-floor:
	$(RIG) api-floor -- $(ENGINE_TEST)

## stress: the tests that take much of the daemon (dozens of networks and
## containers at once, every default address pool), alone: one package at a
## time, after `make test`, never beside other packages' tests (those that
## exhaust the pools also lock them across processes).
stress:
	$(GO) test -race -tags 'integration stress' -count=1 -p 1 -run '^TestStress' -timeout $(TEST_TIMEOUT) $(PKGS)

## unit: unit tests only; needs no Docker.
unit:
	$(GO) test -race -count=1 $(PKGS)

## examples: run the example tests a user would copy (needs Docker).
examples:
	$(GO) test -race -tags integration -count=1 -v ./examples/... -run 'Test|Example'

## bench: benchmarks, heph against the raw SDK calls in the same run (needs Docker).
bench:
	$(GO) test -tags integration -run '^$$' -bench . -benchtime 20x -timeout $(TEST_TIMEOUT) $(PKGS)

## bench-scale: N processes × M parallel tests on one daemon, each test with
## its own network and 2 containers, against the same on the default bridge
## (needs Docker; prints a table; see internal/scalebench).
SCALE_PROCS ?= 4,8
SCALE_TESTS ?= 25
bench-scale:
	$(GO) run ./internal/scalebench -procs $(SCALE_PROCS) -tests $(SCALE_TESTS)

## fuzz: every fuzz target of the module (each func Fuzz* in a _test.go
## file), FUZZTIME each, from its committed seed corpus (testdata/fuzz).
## FUZZTIME is a count of executions, not a duration: with a duration, Go
## 1.26's fuzz coordinator can report "context deadline exceeded" as a
## failure when the time ends while a worker is busy (golang/go#75804, fixed
## in Go 1.27; it failed CI once on internal/registryauth). 20000 executions
## take 0.5-100 s per target here (3-5 minutes for all, by the load).
## New inputs are barely minimized (FUZZMINIMIZE): go test's default, up to
## 60 s per new input, would leave a short run almost no time to fuzz.
## A long run: make fuzz FUZZTIME=5m.
FUZZTIME ?= 20000x
FUZZMINIMIZE ?= 10x
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do \
		dir=./$$(dirname $${f#./}); \
		for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "fuzz $$name ($$dir) for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $$dir; \
		done; \
	done

## bench-shared: a suite of test packages that all need one service, with
## go test ./..., shared (ContainerRequest.Shared) and not, in one run
## (needs Docker; see internal/sharedbench).
bench-shared:
	$(GO) run ./internal/sharedbench -packages 6 -rounds 2

## mutate: mutation testing (github.com/go-gremlins/gremlins, pinned) of the
## unit-tested packages, one package at a time (each mutant runs the
## package's unit tests): port parsing, config validation, archives, the
## wait strategies, the watchdog protocol, session liveness. Prints, per
## package, killed / lived / not covered and the efficacy (killed / covered);
## fails when one is below MUTATE_EFFICACY %. Not run by CI: it takes long
## (see DEVELOPERS.md). One package: make mutate MUTATE_PKGS=./internal/port
GREMLINS        ?= $(GO) run github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0
MUTATE_PKGS     ?= ./internal/port ./internal/rules ./internal/archive ./internal/watchdog ./internal/sessions ./wait
MUTATE_WORKERS  ?= 1
MUTATE_EFFICACY ?= 80
# A mutant's timeout is this coefficient times the coverage run's time. A
# mutant run includes compiling the package and its tests: a mutant that
# loops for ever is told from a slow compile on a loaded machine only with
# a generous coefficient (the default times out most); GOFLAGS=-count=1
# keeps the coverage run from being a cached result of a few ms.
MUTATE_TIMEOUT_COEFF ?= 20
# Files left out (regexps on the path): wait's test fake (waittest) and, of
# internal/sessions, all but the liveness judgement (identity.go,
# process_unix.go): its removal (sessions.go, shared.go) is tested against
# the daemon by the integration tests.
MUTATE_EXCLUDE ?= waittest/ sessions\.go shared\.go
mutate:
	@set -e; for p in $(MUTATE_PKGS); do \
		echo "mutate $$p"; \
		GOFLAGS=-count=1 $(GREMLINS) unleash --workers $(MUTATE_WORKERS) --test-cpu 1 --timeout-coefficient $(MUTATE_TIMEOUT_COEFF) --threshold-efficacy $(MUTATE_EFFICACY) $(foreach e,$(MUTATE_EXCLUDE),-E '$(e)') $$p; \
	done

## lint: formatting, vet (with and without the integration tag), staticcheck, go mod tidy.
lint: fmt vet staticcheck tidy-check

fmt:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags integration $(PKGS)
	$(GO) vet -tags 'integration stress' $(PKGS) $(TESTDATA_PKGS)

staticcheck:
	$(STATICCHECK) $(PKGS)
	$(STATICCHECK) -tags integration $(PKGS)
	$(STATICCHECK) -tags 'integration stress' $(PKGS) $(TESTDATA_PKGS)

tidy-check:
	@cp go.mod /tmp/heph-go.mod.bak; cp go.sum /tmp/heph-go.sum.bak; \
	$(GO) mod tidy; \
	if ! cmp -s go.mod /tmp/heph-go.mod.bak || ! cmp -s go.sum /tmp/heph-go.sum.bak; then \
		echo "go mod tidy changes go.mod/go.sum: run it and commit"; \
		cp /tmp/heph-go.mod.bak go.mod; cp /tmp/heph-go.sum.bak go.sum; exit 1; fi

## ci: what .ci/run runs once Docker is up.
ci: lint test stress fuzz
