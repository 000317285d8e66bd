# FoodFast: the two commands a newcomer needs are `make run` and `make test`.
# Everything else here is a step of those two.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
VENV := .local/venv
PYTHON := $(VENV)/bin/python
# The Go code generators of the stubs (gen/go), pinned.
PROTOC_GEN_GO := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
FOODFAST_GRPC_ADDR ?= 127.0.0.1:50051

.PHONY: help run test services stop migrate build build-release tools web stubs lint lint-proto lint-chart lint-stubs proto-baseline \
        test-tools test-web test-rust test-interop bench-orders bench-ingest bench-tracking bench-gateway bench-dispatch \
        bench-ghz

help:
	@echo "make run    start PostgreSQL, Redis and Cassandra, build, migrate and serve FoodFast"
	@echo "make test   the same set-up, then every test (what CI runs)"
	@echo "make stop   stop the development services"

## The two commands ##########################################################

run: services build-release web
	FOODFAST_GRPC_ADDR=$(FOODFAST_GRPC_ADDR) scripts/run.sh

test: services tools lint lint-chart lint-stubs test-tools test-web test-rust test-interop

## Steps #####################################################################

services:
	scripts/services.sh start

stop:
	scripts/services.sh stop

build:
	$(CARGO) build --workspace --all-targets --locked

build-release:
	$(CARGO) build --release --locked -p foodfast-server -p foodfast-payment-sandbox -p foodfast-gateway -p foodfast-loadgen

migrate: build
	target/debug/foodfast migrate

# Developer tools from their registries: buf, esbuild, jsdom, TypeScript and
# protoc-gen-es (npm); the Python gRPC client used as an outside client in the
# interop test, grpcio-tools, and moto's S3-compatible server that stands in for
# Amazon S3 in the object store's test (PyPI); protoc-gen-go and
# protoc-gen-go-grpc (the Go module proxy, into .local/bin).
tools: node_modules/.package-lock.json $(VENV)/.installed .local/bin/protoc-gen-go .local/bin/protoc-gen-go-grpc

.local/bin/protoc-gen-go: Makefile
	GOBIN=$(CURDIR)/.local/bin go install $(PROTOC_GEN_GO)

.local/bin/protoc-gen-go-grpc: Makefile
	GOBIN=$(CURDIR)/.local/bin go install $(PROTOC_GEN_GO_GRPC)

# The Go, TypeScript and Python stubs in gen/, from proto/ (commit the result).
stubs: tools
	PYTHON=$(PYTHON) scripts/stubs.sh

# gen/ matches proto/, and the stubs and their example clients compile.
lint-stubs: tools
	PYTHON=$(PYTHON) scripts/stubs.sh check
	cd gen/go && go vet ./...
	cd tests/stubs/go && go vet ./...
	npx --no-install tsc -p tests/stubs/ts/tsconfig.json

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

# The browser pages: web/src bundled with esbuild into web/dist, which the
# gateway serves (FOODFAST_GATEWAY_WEB_DIR).
web: node_modules/.package-lock.json
	node web/build.mjs

# The pages' own logic (reopening streams), under node --test.
test-web: web
	node --test web/test/*.test.mjs

# With the Python stubs of gen/python installed as a package, as a service would.
$(VENV)/.installed: tests/interop/requirements.txt gen/python/pyproject.toml $(wildcard gen/python/foodfast/v1/*.py)
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check ./gen/python
	rm -rf gen/python/build gen/python/*.egg-info
	touch $@

lint: lint-proto
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# The contract builds, follows the lint rules, and breaks nothing its clients
# (the stubs in every language) were built against: no field renumbered,
# renamed or retyped, no RPC or message removed since the baseline.
lint-proto: node_modules/.package-lock.json
	npx --no-install buf lint
	npx --no-install buf build -o /dev/null
	npx --no-install buf breaking --against proto/foodfast-v1.baseline.binpb

# Records the contract as released: later changes are checked against it.
proto-baseline: node_modules/.package-lock.json
	npx --no-install buf build -o proto/foodfast-v1.baseline.binpb

# The Helm chart (helm/foodfast): helm lint --strict, helm template and
# kubeconform -strict, with the default and the production-like values. Pinned
# helm and kubeconform are built from the Go module proxy into .local/bin.
lint-chart:
	scripts/chart-check.sh

# The CockroachDB parser check's own tests (the Rust tests run it on our SQL).
test-tools:
	go -C tools/crdbcheck vet ./...
	go -C tools/crdbcheck test ./...

test-rust: build web
	$(CARGO) test --workspace --locked

# A client that is not part of the project (Python grpcio) checks health
# and lists every service through reflection, against `foodfast serve`.
test-interop: build $(VENV)/.installed
	target/debug/foodfast migrate
	$(PYTHON) -m pytest -q tests/interop

## Benchmarks ################################################################

# Order placement (issue 3): CreateOrder at a fixed rate against a server in
# the benchmark's own process, next to a bare INSERT on the same database.
# Results and how to read them: BENCHMARKS.md.
BENCH_ORDERS_ARGS ?= --rate 200 --duration 20s
bench-orders: services
	$(CARGO) build --release -p foodfast-loadgen
	target/release/foodfast-loadgen orders $(BENCH_ORDERS_ARGS)

# Driver location ingest (issue 4): in one process, at one fixed ping rate and
# concurrency, a bare tonic bidi echo, FoodFast's Connect path on Redis and
# Cassandra, and the location writer's two prepared INSERTs bare; then the same
# three as fast as they go (closed loop). Results: BENCHMARKS.md.
BENCH_INGEST_ARGS ?= --rate 5000 --duration 6s --warmup 2s --concurrency 100
BENCH_INGEST_MAX_ARGS ?= --rate 0 --duration 5s --warmup 1s --concurrency 100
bench-ingest: services
	$(CARGO) build --release -p foodfast-loadgen
	target/release/foodfast-loadgen ingest $(BENCH_INGEST_ARGS)
	target/release/foodfast-loadgen ingest $(BENCH_INGEST_MAX_ARGS)

# Order tracking (issue 5): in one process, D drivers pinging on Connect
# streams while S TrackOrder streams watch the orders they carry: ping ->
# screen latency, delivered updates/s and RSS per 1,000 streams, next to a bare
# tonic relay of the same load. Setup places one order per stream through the
# API (over a minute for 10,000). Results: BENCHMARKS.md.
BENCH_TRACKING_ARGS ?= --drivers 2000 --streams 10000 --ping-interval 200ms --duration 20s
bench-tracking: services
	$(CARGO) build --release -p foodfast-loadgen
	target/release/foodfast-loadgen tracking $(BENCH_TRACKING_ARGS)

# REST gateway (issue 6): in one process, the server and the gateway in front
# of it; one order read as fast as C callers go (closed loop), directly over
# gRPC (one HTTP/2 channel) and as GET /api/v1/orders/{id} through the gateway
# (HTTP/1.1 keep-alive, bearer token): requests/s, p50/p99/p999 and their
# ratios. Results: BENCHMARKS.md.
BENCH_GATEWAY_ARGS ?= --concurrency 32 --duration 10s --warmup 2s
bench-gateway: services
	$(CARGO) build --release -p foodfast-loadgen
	target/release/foodfast-loadgen gateway $(BENCH_GATEWAY_ARGS)

# Dispatch (issue 8): in one process, drivers on Connect streams around a
# generated city; orders confirmed at a fixed rate, each timed from the
# restaurant's accept call to the offer on a driver's stream, next to the
# accept call alone; then greedy against batch (Hungarian) totals on one
# generated assignment problem. Results: BENCHMARKS.md.
BENCH_DISPATCH_ARGS ?= --drivers 200 --restaurants 20 --orders 300 --rate 10
bench-dispatch: services
	$(CARGO) build --release -p foodfast-loadgen
	target/release/foodfast-loadgen dispatch $(BENCH_DISPATCH_ARGS)

# ghz (issue 9): an outside load tool over server reflection against a real
# `foodfast serve` on loopback (stores of its own on the services), one run per
# config in ghz/: unary SearchNearby, GetOrder, CreateOrder; server-stream
# TrackOrder; client-stream UploadImage; bidi DriverService/Connect. About
# 10 s each, whole calls timed
# (a stream from start to end). Reports: target/ghz/<name>.json and .html.
# ghz is installed from the Go module proxy. Results: BENCHMARKS.md.
# BENCH_GHZ_ARGS: config names and/or `-- ghz flags`, e.g. `get_order -- -z 30s`.
BENCH_GHZ_ARGS ?=
bench-ghz: services $(VENV)/.installed
	$(CARGO) build --release --locked -p foodfast-server -p foodfast-payment-sandbox
	scripts/bench-ghz.sh $(BENCH_GHZ_ARGS)
