#!/usr/bin/env bash
# Idempotent machine set-up for bsmr: installs only what is missing.
# Called by `make run` and `make test`; safe to run any number of times.
set -euo pipefail

log() { printf '[setup] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Debian packages needed to build a Substrate node (protoc for litep2p/sc-network,
# clang for some -sys crates, pkg-config/libssl for openssl-src fallbacks, iproute2 and unshare
# for the bench's WAN emulation in network namespaces, prometheus for the metrics test).
need_apt=()
for bin_pkg in protoc:protobuf-compiler clang:clang make:make pkg-config:pkg-config curl:curl ip:iproute2 \
  unshare:util-linux prometheus:prometheus; do
  bin=${bin_pkg%%:*}; pkg=${bin_pkg##*:}
  command -v "$bin" >/dev/null 2>&1 || need_apt+=("$pkg")
done
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing apt packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Rust toolchain pieces for the WASM runtime (substrate-wasm-builder uses wasm32v1-none).
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup first (https://rustup.rs)" >&2
  exit 1
fi
if ! rustup target list --installed | grep -qx wasm32v1-none; then
  log "adding rustup target wasm32v1-none"
  rustup target add wasm32v1-none
fi
if ! rustup component list --installed | grep -q '^rust-src'; then
  log "adding rustup component rust-src"
  rustup component add rust-src
fi

# Node.js and npm are needed by the JavaScript client tests (polkadot.js, zombienet).
if ! command -v npm >/dev/null 2>&1; then
  log "installing nodejs and npm"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi

log "ok"
