# Every command the project runs lives here; CI (.ci/run) calls these targets.

GO          ?= go
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
PKGS        ?= ./...
# The whole suite (unit + integration) must finish well inside CI's 90 minutes.
TEST_TIMEOUT ?= 30m

.PHONY: all test unit integration examples bench bench-shared lint fmt vet staticcheck tidy-check ci

all: lint test

## test: unit and integration tests against the real Docker daemon, with -race.
test:
	$(GO) test -race -tags integration -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

## unit: unit tests only; needs no Docker.
unit:
	$(GO) test -race -count=1 $(PKGS)

## examples: run the example tests a user would copy (needs Docker).
examples:
	$(GO) test -race -tags integration -count=1 -v ./examples/... -run 'Test|Example'

## bench: benchmarks, heph against the raw SDK calls in the same run (needs Docker).
bench:
	$(GO) test -tags integration -run '^$$' -bench . -benchtime 20x -timeout $(TEST_TIMEOUT) $(PKGS)

## bench-shared: a suite of test packages that all need one service, with
## go test ./..., shared (ContainerRequest.Shared) and not, in one run
## (needs Docker; see internal/sharedbench).
bench-shared:
	$(GO) run ./internal/sharedbench -packages 6 -rounds 2

## lint: formatting, vet (with and without the integration tag), staticcheck, go mod tidy.
lint: fmt vet staticcheck tidy-check

fmt:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags integration $(PKGS)

staticcheck:
	$(STATICCHECK) $(PKGS)
	$(STATICCHECK) -tags integration $(PKGS)

tidy-check:
	@cp go.mod /tmp/heph-go.mod.bak; cp go.sum /tmp/heph-go.sum.bak; \
	$(GO) mod tidy; \
	if ! cmp -s go.mod /tmp/heph-go.mod.bak || ! cmp -s go.sum /tmp/heph-go.sum.bak; then \
		echo "go mod tidy changes go.mod/go.sum: run it and commit"; \
		cp /tmp/heph-go.mod.bak go.mod; cp /tmp/heph-go.sum.bak go.sum; exit 1; fi

## ci: what .ci/run runs once Docker is up.
ci: lint test
