#!/usr/bin/env bash
# Install the JavaScript client packages (zombienet CLI, @polkadot/api, polkadot-api,
# @substrate/api-sidecar) from the lockfile,
# only when they are missing or the lockfile changed. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../zombienet"
stamp=node_modules/.bsmr-lock-stamp
if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then
  exit 0
fi
echo "[setup] installing npm packages (zombienet, @polkadot/api, polkadot-api, api-sidecar) from package-lock.json"
npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"
