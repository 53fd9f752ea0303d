#!/usr/bin/env bash
# Every test of the project, in one release build (the node binary the process tests start is the
# one cargo builds for them). Called by `make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bsmr-target}"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== RocksDB must stay out of the dependency graph"
if cargo tree -i librocksdb-sys --workspace >/dev/null 2>&1; then
  echo "librocksdb-sys is in the dependency graph: keep default-features = false on sc-cli/sc-service" >&2
  exit 1
fi

echo "== clippy -D warnings on the protocol crates (the whole workspace: make lint)"
cargo clippy -p bsmr-consensus-core -p bsmr-sim --all-targets -- -D warnings

# `cargo test` builds the binaries of packages that own integration tests, not the ones those
# tests start from other packages (aura-grandpa-node has no tests of its own): build every binary
# first. Same package selection as `make build`, so both share one feature set and one build.
echo "== cargo build --release --workspace --bins (every binary the tests start)"
cargo build --release --workspace --bins

echo "== cargo test --release --workspace"
cargo test --release --workspace --no-fail-fast

# Feature builds of their own (never unified into the workspace's, so `make run` stays one build):
# the pallet's benchmarks run as tests (a keystore signs the proofs), and try-runtime checks a
# live dev chain's state (runtime/tests/try_runtime.rs starts the bsmr-node built above). Native
# code only, so no wasm is built for this feature set.
echo "== runtime benchmarks as tests, and try-runtime over a live dev chain's state"
SKIP_WASM_BUILD=1 cargo test --release -p pallet-bsmr-membership -p bsmr-runtime \
  --features pallet-bsmr-membership/runtime-benchmarks,bsmr-runtime/try-runtime --no-fail-fast

echo "== zombienet networks and @polkadot/api checks (native provider)"
bash scripts/zombienet.sh "$CARGO_TARGET_DIR/release/bsmr-node"
