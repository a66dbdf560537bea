# The README's two commands: `make demo` and `make test`.
GO ?= go
FUZZTIME ?= 5s

.PHONY: all build setup demo test unit fuzz bench vet fmt-check chaos

all: build

build:
	$(GO) build -o bin/sluice ./cmd/sluice

setup:
	bash scripts/setup.sh

demo: setup
	$(GO) run ./cmd/sluice demo

# Everything CI runs: formatting, vet, the whole suite with the race
# detector against real MariaDB servers, then a short run of every fuzz target.
test: setup fmt-check vet
	$(GO) test -race -count=1 -timeout 20m ./...
	bash scripts/fuzz.sh $(FUZZTIME)

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

fuzz:
	bash scripts/fuzz.sh 60s

# The failover fault tests alone, with 100 primary kills instead of CI's 20.
chaos: setup
	SLUICE_CHAOS_REPS=100 $(GO) test -race -count=1 -timeout 60m -v \
		-run 'TestSemiSync|TestKilledPrimaryFailsOver|TestFrozenPrimary|TestRestartAfterFailover|TestTransactionOpenOnFrozen|TestSwitchover|TestLaggingCandidate|TestHooksSee|TestSecondLoss|TestExternalFailover' ./e2e

bench: setup
	$(GO) test -run '^$$' -bench . -benchmem ./internal/sqlscan/ ./internal/wire/
	$(GO) test -run '^$$' -bench BenchmarkSessionRoundTrip -benchmem ./e2e/
	bash bench/sysbench-compare.sh
