# bsmr: the two commands that set everything up on a fresh machine.
#   make run   - install what is missing, build, start a local 4-validator network, print endpoints
#   make test  - install what is missing, run every test
#
# Build artefacts live outside the clone so warm runs are incremental.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/bsmr-target
NODE := $(CARGO_TARGET_DIR)/release/bsmr-node

.PHONY: run test setup build dev lint fmt clean-chain help

help:
	@echo "make run    build and start a local 4-validator network (Alice, Bob, Charlie, Dave)"
	@echo "make dev    build and start a single --dev validator"
	@echo "make test   run every test (unit, simulator, real node processes)"
	@echo "make lint   cargo fmt --check and clippy -D warnings"

setup:
	@bash scripts/setup.sh

# Every binary of the workspace, with the same feature set `cargo test --workspace` resolves, so
# `make run` after `make test` (and the reverse) rebuilds nothing.
build: setup
	cargo build --release --workspace --bins

run: build
	@bash scripts/local-network.sh "$(NODE)"

dev: build
	"$(NODE)" --dev --tmp --rpc-cors all

test: setup
	@bash scripts/test.sh

lint: setup
	cargo fmt --all -- --check
	SKIP_WASM_BUILD=1 cargo clippy --workspace --all-targets -- -D warnings

clean-chain:
	rm -rf "$${BSMR_DATA:-$(HOME)/.local/share/bsmr}/local"
