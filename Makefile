# skiff — `make help` lists the targets.

SHELL        := /usr/bin/env bash
.SHELLFLAGS  := -euo pipefail -c
.DEFAULT_GOAL := help

GO           ?= go
BIN          := bin/skiff
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT       ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE         ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS      := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

DEV_DIR      ?= $(HOME)/.skiff/dev
DEV_API_ADDR ?= 127.0.0.1:6443

STATICCHECK  ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME     ?= 60s

.PHONY: help
help: ## List the targets
	@echo "Usage: make TARGET"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/skiff (static, version stamped)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/skiff

.PHONY: deps
deps: ## Install what the tests need, if missing (test/deps.sh)
	./test/deps.sh

.PHONY: test
# Fuzz runs are counted (-fuzztime=Nx), not timed: Go 1.26's coordinator
# can fail a timed run with "context deadline exceeded" on a busy machine
# (go.dev/issue/75804, fixed in Go 1.27) without any failing input.
test: deps ## deps, go vet, all tests, a short fuzz run; every step runs, then a summary
	@start=$$(date +%s); failed=""; \
	step() { local name=$$1; shift; echo "==> $$name"; "$$@" || failed="$$failed [$$name]"; }; \
	step "go vet" $(GO) vet ./...; \
	step "go test" $(GO) test -count=1 -timeout 15m ./...; \
	step "linearizability x3" $(GO) test -count=3 -timeout 10m -run TestLinearizableAcrossLeaderKill ./test/e2e/raft; \
	step "fuzz FuzzDecode 40000x" $(GO) test -run '^$$' -fuzz='^FuzzDecode$$' -fuzztime=40000x ./api; \
	step "fuzz FuzzDecodeAs 20000x" $(GO) test -run '^$$' -fuzz='^FuzzDecodeAs$$' -fuzztime=20000x ./api; \
	step "fuzz FuzzDecodeCommand 30000x" $(GO) test -run '^$$' -fuzz='^FuzzDecodeCommand$$' -fuzztime=30000x ./controlplane/store; \
	step "fuzz FuzzParseJoinToken 40000x" $(GO) test -run '^$$' -fuzz='^FuzzParseJoinToken$$' -fuzztime=40000x ./api; \
	step "fuzz FuzzHandler 25000x" $(GO) test -run '^$$' -fuzz='^FuzzHandler$$' -fuzztime=25000x ./controlplane/apiserver; \
	took=$$(( $$(date +%s) - start )); \
	if [ -n "$$failed" ]; then echo "==> make test: FAILED$$failed (in $${took}s)"; exit 1; fi; \
	echo "==> make test: all passed (vet, tests, fuzz) in $${took}s"

.PHONY: lint
lint: ## go vet + staticcheck
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

.PHONY: run
run: build images ## Build and run a one-node dev cluster (skiff dev: control plane + node agent on containerd; as root)
	@if [ "$$(id -u)" -ne 0 ]; then echo "make run: the dev cluster's node runs containers, pod networks and cgroups: run it as root" >&2; exit 1; fi
	@./test/deps.sh
	@echo "==> starting skiff dev (data in $(DEV_DIR), API on $(DEV_API_ADDR), the echo image imported); it prints a tour when ready"
	@echo "    stop with Ctrl-C; state survives restarts (make clean-dev wipes it)"
	$(BIN) dev --data-dir $(DEV_DIR) --api-addr $(DEV_API_ADDR) --import-image bin/images/echo.tar

.PHONY: images
images: ## Build the example image bin/images/echo.tar (localhost/skiff/echo:latest) from Go sources, no Docker
	$(GO) run ./cmd/mkimage -out bin/images/echo.tar -name localhost/skiff/echo:latest

.PHONY: bench
bench: ## Run the benchmark programs (bench/run.sh)
	@if [ -x bench/run.sh ]; then ./bench/run.sh; else echo "no benchmarks yet (bench/run.sh missing)"; fi

.PHONY: generate
generate: ## Regenerate the eBPF objects in bpf/ (bpf2go with clang-14; commit the result)
	@command -v clang-14 >/dev/null 2>&1 || ./test/deps.sh
	$(GO) generate ./bpf/...

.PHONY: fuzz
fuzz: ## Longer fuzz runs (FUZZTIME=60s each)
	$(GO) test -run '^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz='^FuzzDecodeAs$$' -fuzztime=$(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz='^FuzzDecodeCommand$$' -fuzztime=$(FUZZTIME) ./controlplane/store
	$(GO) test -run '^$$' -fuzz='^FuzzParseJoinToken$$' -fuzztime=$(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz='^FuzzHandler$$' -fuzztime=$(FUZZTIME) ./controlplane/apiserver

.PHONY: clean
clean: ## Remove build output
	rm -rf bin/

.PHONY: clean-dev
clean-dev: ## Remove the dev cluster's data (DEV_DIR)
	rm -rf $(DEV_DIR)
