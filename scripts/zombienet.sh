#!/usr/bin/env bash
# Run the zombienet tests (zombienet/*.zndsl) against the release bsmr-node, native provider.
# The npm packages come from zombienet/package-lock.json (npm ci, only when missing).
#
# usage: scripts/zombienet.sh [path/to/bsmr-node] [test.zndsl ...]
set -euo pipefail
cd "$(dirname "$0")/.."
NODE=${1:-${CARGO_TARGET_DIR:-$HOME/.cache/bsmr-target}/release/bsmr-node}
shift || true
TESTS=("$@")
[ ${#TESTS[@]} -gt 0 ] || TESTS=(zombienet/bsmr-4.zndsl zombienet/bsmr-4-full.zndsl)
[ -x "$NODE" ] || { echo "bsmr-node not found at $NODE: run 'make build' first" >&2; exit 1; }

bash scripts/npm-install.sh

work=$(mktemp -d /tmp/bsmr-zombienet.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$NODE" build-spec --chain local --raw --disable-default-bootnode > "$work/bsmr-local-raw.json" 2>/dev/null
export BSMR_NODE="$NODE" BSMR_SPEC="$work/bsmr-local-raw.json"

status=0
for t in "${TESTS[@]}"; do
  echo "== zombienet: $t"
  if ! (cd zombienet && ./node_modules/.bin/zombienet -p native -l text -d "$work/$(basename "$t" .zndsl)" test "$(basename "$t")"); then
    echo "zombienet test $t FAILED (logs in the node dirs above)" >&2
    status=1
  fi
done
exit $status
