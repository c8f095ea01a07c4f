# insertfn: run `make help` for the targets.
GO       ?= go
BIN      := bin
EXAMPLES := $(patsubst examples/%/,%,$(sort $(dir $(wildcard examples/*/main.go))))
# Examples in C (main.c) and AssemblyScript (index.ts); see their rules.
C_EXAMPLES  := $(patsubst examples/%/,%,$(sort $(dir $(wildcard examples/*/main.c))))
AS_EXAMPLES := $(patsubst examples/%/,%,$(sort $(dir $(wildcard examples/*/index.ts))))
C_WASM   := $(C_EXAMPLES:%=$(BIN)/examples/%.wasm)
AS_WASM  := $(AS_EXAMPLES:%=$(BIN)/examples/%.wasm)
WASM     := $(EXAMPLES:%=$(BIN)/examples/%.wasm) $(C_WASM) $(AS_WASM)
GOFILES  := $(shell find . -name '*.go' -not -path './bin/*' -not -path '*/node_modules/*')
# The browser test's bundle: Segment's analytics.js and consent wrapper from
# npm (pinned with checksums by package-lock.json), bundled by esbuild.
BROWSER  := internal/testkit/browsertest
NPM      ?= npm
# The JavaScript engine of JS functions: QuickJS-ng compiled to wasm by
# emscripten, from npm (pinned with its checksum by package-lock.json), copied
# into the directory package runtime/internal/quickjs embeds.
JSENGINE := runtime/internal/quickjs/engine
JSENGINE_WASM := $(JSENGINE)/dist/emscripten-module.wasm

.PHONY: all build build-notice examples browser-bundle js-engine test vet bench bench-peers bench-stages run clean help

all: build examples

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: $(BIN)/insertfn ## build the insertfn binary into bin/

# The version insertfn version prints: the git revision and its date, when
# the tree is a git checkout (Go's own VCS stamping may be off: GOFLAGS).
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null)$(shell git log -1 --format=' (%cs)' 2>/dev/null)

# The binary embeds the JavaScript engine that JavaScript functions run in:
# js-engine fetches it first (without npm it says so and the binary is built
# without it; its JavaScript functions then fail to load with an error that
# names make js-engine). Order-only, since js-engine always runs; a fetched
# engine newer than the binary rebuilds it.
$(BIN)/insertfn: $(GOFILES) go.mod go.sum $(wildcard $(JSENGINE_WASM)) | js-engine
	$(GO) build -ldflags "-X 'main.version=$(VERSION)'" -o $@ ./cmd/insertfn

examples: $(WASM) ## build every example function into bin/examples/NAME.wasm

# `insertfn build` runs the one recipe (internal/wasmbuild/recipe) that the
# tests use too, with the go command on PATH. The binary is an order-only
# prerequisite: it is built when missing or stale, but a new binary alone
# does not rebuild every example; a change to the recipe does.
$(BIN)/examples/%.wasm: examples/%/*.go $(wildcard sdk/*.go sdk/abi/*.go) internal/wasmbuild/recipe/recipe.go | $(BIN)/insertfn
	@mkdir -p $(dir $@)
	$(BIN)/insertfn build examples/$* -o $@

# C examples: clang for wasm32-wasi with wasi-libc, as a WASI reactor, and
# the header sdk/c/insertfn.h (docs/abi.md). The toolchain is checked by
# linking an empty reactor; without it the example is not built and its test
# skips (it fails where INSERTFN_REQUIRE_TOOLCHAINS=1, as in CI).
CLANG    ?= clang-14
C_TOOLCHAIN := clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32
C_FLAGS  := --target=wasm32-wasi -O2 -mexec-model=reactor -Wl,--strip-all -Wall -Wextra -Werror -I sdk/c

$(C_WASM): $(BIN)/examples/%.wasm: examples/%/main.c sdk/c/insertfn.h
	@if ! echo 'int x;' | $(CLANG) --target=wasm32-wasi -mexec-model=reactor -x c - -o /dev/null 2>/dev/null; then \
		msg="$(CLANG) cannot build for wasm32-wasi: apt-get install -y $(C_TOOLCHAIN)"; \
		if [ "$$INSERTFN_REQUIRE_TOOLCHAINS" = 1 ]; then echo "$$msg"; exit 1; fi; \
		echo "$$msg (without it $@ is not built and its test skips)"; exit 0; \
	fi; \
	mkdir -p $(dir $@) && echo "$(CLANG) $(C_FLAGS) -o $@ $<" && $(CLANG) $(C_FLAGS) -o $@ $<

# AssemblyScript examples: asc from sdk/assemblyscript (npm ci of its
# package-lock.json), with the library's abort, since the host offers no
# "env" module. Without npm the example is not built and its test skips
# (it fails where INSERTFN_REQUIRE_TOOLCHAINS=1).
ASDK     := sdk/assemblyscript
AS_FLAGS := -O3 --runtime incremental --use abort=$(ASDK)/index/abort

HAVE_NPM := $(shell command -v $(NPM) 2>/dev/null)

$(AS_WASM): $(BIN)/examples/%.wasm: examples/%/index.ts $(ASDK)/index.ts $(if $(HAVE_NPM),$(ASDK)/node_modules/.package-lock.json)
	@if [ -z "$(HAVE_NPM)" ]; then \
		msg="npm is missing: apt-get install -y nodejs npm (the AssemblyScript compiler comes from npm)"; \
		if [ "$$INSERTFN_REQUIRE_TOOLCHAINS" = 1 ]; then echo "$$msg"; exit 1; fi; \
		echo "$$msg (without it $@ is not built and its test skips)"; exit 0; \
	fi; \
	mkdir -p $(dir $@) && echo "asc $< $(AS_FLAGS) -o $@" && $(ASDK)/node_modules/.bin/asc $< $(AS_FLAGS) -o $@

$(ASDK)/node_modules/.package-lock.json: $(ASDK)/package.json $(ASDK)/package-lock.json
	cd $(ASDK) && $(NPM) ci --ignore-scripts --no-audit --no-fund
	@touch $@

# Without npm the browser test skips (it fails where INSERTFN_REQUIRE_CHROMIUM=1, as in CI).
browser-bundle: ## fetch the browser test's npm packages (npm ci) and bundle them into bin/browsertest/
	@if command -v $(NPM) >/dev/null; then $(MAKE) --no-print-directory $(BIN)/browsertest/bundle.js; \
	elif [ "$$INSERTFN_REQUIRE_CHROMIUM" = 1 ]; then echo "npm is missing: apt-get install -y nodejs npm"; exit 1; \
	else echo "npm is missing: the browser test will be skipped (apt-get install -y nodejs npm to run it)"; fi

# npm ci installs exactly package-lock.json, checking every package's
# checksum, and writes node_modules/.package-lock.json last. Install
# scripts are not run: esbuild's binary comes in its platform package.
$(BROWSER)/node_modules/.package-lock.json: $(BROWSER)/package.json $(BROWSER)/package-lock.json
	cd $(BROWSER) && $(NPM) ci --ignore-scripts --no-audit --no-fund
	@touch $@

# The FQL oracle test (internal/pipeline/fql/oracle_test.go) compares package
# fql's answers with those of Segment's own evaluator, @segment/tsub, run in
# node and fetched from npm (pinned with checksums by package-lock.json).
# Without npm the test skips (it fails where INSERTFN_REQUIRE_NODE=1, as in CI).
FQLORACLE := internal/pipeline/fql/oracle

.PHONY: fql-oracle
fql-oracle: ## fetch the FQL oracle test's npm package, @segment/tsub (npm ci)
	@if command -v $(NPM) >/dev/null; then $(MAKE) --no-print-directory $(FQLORACLE)/node_modules/.package-lock.json; \
	elif [ "$$INSERTFN_REQUIRE_NODE" = 1 ]; then echo "npm is missing: apt-get install -y nodejs npm (the FQL oracle test runs @segment/tsub in node)"; exit 1; \
	else echo "npm is missing: the FQL oracle test will be skipped (apt-get install -y nodejs npm to run it)"; fi

$(FQLORACLE)/node_modules/.package-lock.json: $(FQLORACLE)/package.json $(FQLORACLE)/package-lock.json
	cd $(FQLORACLE) && $(NPM) ci --ignore-scripts --no-audit --no-fund
	@touch $@

# Without npm the engine's tests skip (they fail where INSERTFN_REQUIRE_NODE=1, as in CI).
js-engine: ## fetch the JavaScript engine (npm ci) into runtime/internal/quickjs/engine/dist/
	@if command -v $(NPM) >/dev/null; then $(MAKE) --no-print-directory $(JSENGINE_WASM); \
	elif [ "$$INSERTFN_REQUIRE_NODE" = 1 ]; then echo "npm is missing: apt-get install -y nodejs npm (the JavaScript engine comes from npm)"; exit 1; \
	else echo "npm is missing: the JavaScript engine's tests will be skipped (apt-get install -y nodejs npm to run them)"; fi

# A build without the engine compiles, but its JavaScript functions fail to
# load (an error that names make js-engine).
$(JSENGINE_WASM): $(JSENGINE)/package.json $(JSENGINE)/package-lock.json
	@cd $(JSENGINE) && $(NPM) ci --ignore-scripts --no-audit --no-fund || { \
		echo "npm ci failed in $(JSENGINE): is the npm registry ($$($(NPM) config get registry)) reachable from here?"; \
		echo "The JavaScript engine comes from it; without it, go build still builds insertfn, whose JavaScript functions then fail to load."; exit 1; }
	cp $(JSENGINE)/node_modules/@jitl/quickjs-ng-wasmfile-release-sync/dist/emscripten-module.cjs $(JSENGINE)/dist/
	cp $(JSENGINE)/node_modules/@jitl/quickjs-ng-wasmfile-release-sync/dist/emscripten-module.wasm $(JSENGINE)/dist/

$(BIN)/browsertest/bundle.js: $(BROWSER)/entry.js $(BROWSER)/node_modules/.package-lock.json
	@mkdir -p $(dir $@)
	cd $(BROWSER) && ./node_modules/.bin/esbuild entry.js --bundle --format=iife --platform=browser \
		--target=chrome100 --log-level=warning --outfile=$(abspath $@)

vet: ## gofmt, go vet (both modules), and the SDK and examples compile for wasm
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	cd sdk && $(GO) vet ./... && GOOS=wasip1 GOARCH=wasm $(GO) build ./...
	GOOS=wasip1 GOARCH=wasm $(GO) build -o /dev/null ./examples/...

# The first go test run also fills the shared wazero compilation cache, so the
# -race run (where compiling a Go guest is ~20x slower) mostly loads from it.
test: vet js-engine examples browser-bundle fql-oracle ## vet, build the examples and the browser bundle, run every test (plain, then -race)
	cd sdk && $(GO) test -race ./...
	$(GO) test ./...
	$(GO) test -race ./...

bench: ## run the Go benchmarks (sandbox vs native, empty call, consent store, whole server)
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./bench/

bench-stages: build examples ## where the server's CPU goes per delivered event, by stage, in its own process, and the ratio to a fasthttp+gjson ceiling (bench/stages)
	$(GO) run ./bench/stages -insertfn $(BIN)/insertfn -wasm $(BIN)/examples/consent-match.wasm

bench-peers: $(C_WASM) $(AS_WASM) | js-engine ## consent-match as insertfn wasm (Go, C, AssemblyScript) and JavaScript (fast and fetch paths) vs native Go, Extism and Node.js, one table (bench/peers)
	cd bench/peers && $(GO) run ./cmd/peers -guests $(abspath $(BIN))/examples

# The sample records are imported with --replace, so that every run starts
# the quickstart from them, whatever it changed before.
run: build-notice build examples ## run the server on embedded defaults (data in ./data), with sample consent records
	$(BIN)/insertfn consent import --replace cmd/insertfn/testdata/consent.ndjson --data data
	$(BIN)/insertfn serve --data data

# A first build takes minutes without a word from go build: say so first,
# when something is out of date (make -q answers that without building).
build-notice:
	@$(MAKE) -q --no-print-directory build examples || \
		echo "building bin/insertfn and the example functions (the first build takes a few minutes)..."

clean: ## remove bin/, the fetched JavaScript engine and the npm packages make fetched
	rm -rf $(BIN) $(BROWSER)/node_modules $(ASDK)/node_modules $(FQLORACLE)/node_modules $(JSENGINE)/node_modules $(JSENGINE)/dist/emscripten-module.*
