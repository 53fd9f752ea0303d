#!/usr/bin/env bash
# Regenerate the runtime's weights on this machine with frame-benchmarking: build bsmr-node with
# `--features runtime-benchmarks`, run every pallet's benchmarks against the dev runtime and
# write runtime/src/weights/<pallet>.rs. STEPS and REPEAT override the sampling (50 and 20).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bsmr-target}"
# The benchmark CLI's own test runtime (frame-storage-access-test-runtime, for parachains'
# `benchmark storage --validate-block`) is reachable only through a feature, so the wasm builder's
# `cargo metadata` cannot find it and its build fails: skip that one wasm.
export SKIP_FRAME_STORAGE_ACCESS_TEST_RUNTIME_WASM_BUILD=1
STEPS="${STEPS:-50}"
REPEAT="${REPEAT:-20}"

cargo build --release -p bsmr-node --features runtime-benchmarks
node="$CARGO_TARGET_DIR/release/bsmr-node"

for pallet in frame_system pallet_balances pallet_timestamp pallet_sudo pallet_bsmr_membership; do
  echo "== $pallet"
  "$node" benchmark pallet --chain dev --pallet "$pallet" --extrinsic '*' \
    --steps "$STEPS" --repeat "$REPEAT" --wasm-execution compiled \
    --header scripts/weights-header.txt --output "runtime/src/weights/$pallet.rs"
done

# The benchmark build wrote its wasm (with the benchmarking API) where the normal build reads
# its own: make the next normal build rebuild the runtime's wasm.
touch runtime/build.rs
