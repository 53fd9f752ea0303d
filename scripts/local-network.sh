#!/usr/bin/env bash
# Start a local network of 4 validators (Alice, Bob, Charlie, Dave) on loopback, each with its own
# base path (embedded ParityDb), print their RPC endpoints, and stop them all on Ctrl-C.
#
# usage: scripts/local-network.sh [path/to/bsmr-node]
# env:   BSMR_DATA (default ~/.local/share/bsmr)  where chains and logs live
#        BSMR_RPC_BASE (default 9944)              Alice's RPC port; Bob +1, Charlie +2, Dave +3
#        BSMR_P2P_BASE (default 30333)             likewise for p2p
#        BSMR_PROM_BASE (default 9615)             likewise for Prometheus
set -euo pipefail

NODE=${1:-${CARGO_TARGET_DIR:-$HOME/.cache/bsmr-target}/release/bsmr-node}
DATA=${BSMR_DATA:-$HOME/.local/share/bsmr}/local
RPC_BASE=${BSMR_RPC_BASE:-9944}
P2P_BASE=${BSMR_P2P_BASE:-30333}
PROM_BASE=${BSMR_PROM_BASE:-9615}
NAMES=(alice bob charlie dave)

[ -x "$NODE" ] || { echo "bsmr-node not found at $NODE: run 'make build' first" >&2; exit 1; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for i in "${!NAMES[@]}"; do
  for port in $((RPC_BASE + i)) $((P2P_BASE + i)) $((PROM_BASE + i)); do
    if port_busy "$port"; then
      echo "port $port is already in use (another network running?): stop it or set BSMR_RPC_BASE/BSMR_P2P_BASE/BSMR_PROM_BASE" >&2
      exit 1
    fi
  done
done

mkdir -p "$DATA"
pids=()
stop() {
  echo; echo "stopping the network..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

# Fixed node keys so that every node knows Alice's peer id as its boot node.
for i in "${!NAMES[@]}"; do
  key_file="$DATA/${NAMES[$i]}.node-key"
  [ -f "$key_file" ] || printf '%064x' $((i + 1)) > "$key_file"
done
alice_peer=$("$NODE" key inspect-node-key --file "$DATA/alice.node-key")
bootnode="/ip4/127.0.0.1/tcp/$P2P_BASE/p2p/$alice_peer"

for i in "${!NAMES[@]}"; do
  name=${NAMES[$i]}
  args=(--chain local --"$name" --validator
        --base-path "$DATA/$name" --node-key-file "$DATA/$name.node-key"
        --port $((P2P_BASE + i)) --rpc-port $((RPC_BASE + i)) --prometheus-port $((PROM_BASE + i))
        --rpc-cors all --no-mdns --no-telemetry --name "$name")
  [ "$i" -eq 0 ] || args+=(--bootnodes "$bootnode")
  "$NODE" "${args[@]}" > "$DATA/$name.log" 2>&1 &
  pids+=($!)
done

echo "waiting for the nodes' RPC..."
for i in "${!NAMES[@]}"; do
  for _ in $(seq 1 120); do
    if curl -s -H 'Content-Type: application/json' \
        -d '{"id":1,"jsonrpc":"2.0","method":"system_health","params":[]}' \
        "http://127.0.0.1:$((RPC_BASE + i))" | grep -q result; then
      break
    fi
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "${NAMES[$i]} exited; its log ($DATA/${NAMES[$i]}.log) ends with:" >&2
      tail -20 "$DATA/${NAMES[$i]}.log" >&2
      exit 1
    fi
    sleep 1
  done
done

cat <<MSG

bsmr local network is up: 4 validators on loopback (chain 'local', data in $DATA)

  node      RPC (HTTP + WebSocket)     p2p     Prometheus   log
MSG
for i in "${!NAMES[@]}"; do
  printf '  %-8s  ws://127.0.0.1:%-12s %-7s %-12s %s\n' "${NAMES[$i]}" "$((RPC_BASE + i))" \
    "$((P2P_BASE + i))" "$((PROM_BASE + i))" "$DATA/${NAMES[$i]}.log"
done
cat <<MSG

RPC endpoint: ws://127.0.0.1:$RPC_BASE
polkadot.js apps: open https://polkadot.js.org/apps/?rpc=ws%3A%2F%2F127.0.0.1%3A$RPC_BASE
  or, in any apps build, Settings > custom endpoint ws://127.0.0.1:$RPC_BASE ("Development >
  Local Node" is port 9944 only). bsmr_* RPC: Developer > JavaScript, see README.

Press Ctrl-C to stop the network.
MSG
wait -n "${pids[@]}" || true
echo "a node exited; see the logs above" >&2
