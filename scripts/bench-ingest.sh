#!/usr/bin/env bash
# Ingest benchmark: `bridge bench` against `bridge serve` (sync: full, every
# ack durable) and against a bare net/http handler, alternating, in one run.
# The server is pinned to CPU 0 and the load to CPU 1 (taskset), so each has
# one core. Prints acks/s and latency for each, then the ratios.
#   scripts/bench-ingest.sh [ROUNDS] [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
events=${2:-20000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/bridge" ./cmd/bridge
go build -o "$work/bare" ./scripts/bare
cat > "$work/ingest.yaml" <<YAML
server: {listen: "127.0.0.1:18181"}
store: {path: data/bridge.db, sync: full}
sources:
  - {name: sa, vendor: secureagentics, secret: bench-secret}
YAML
cat > "$work/file.yaml" <<YAML
server: {listen: "127.0.0.1:18182"}
store: {path: data-file/bridge.db, sync: full}
sources:
  - {name: sa, vendor: secureagentics, secret: bench-secret}
sinks:
  - {name: archive, type: file, path: out/events.jsonl}
rules:
  - {name: all, when: 'true', actions: [{sink: archive}]}
YAML
load() { taskset -c 1 "$work/bridge" bench --url "$1" --vendor secureagentics --secret bench-secret "${@:2}"; }
rate() { awk '/ acked \(/ {gsub(/\(/,"",$8); print $8}'; }
wait_up() { for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return; sleep 0.05; done; }
echo "cores: $(nproc)"
for r in $(seq "$rounds"); do
  taskset -c 0 "$work/bare" 127.0.0.1:18180 & bare=$!
  wait_up http://127.0.0.1:18180/
  b=$(load http://127.0.0.1:18180/webhooks/sa -n "$events" --concurrency 32 | tee /dev/stderr | rate)
  kill $bare; wait $bare 2>/dev/null || true
  rm -rf "$work/data"
  taskset -c 0 "$work/bridge" serve -c "$work/ingest.yaml" 2>/dev/null & br=$!
  wait_up http://127.0.0.1:18181/readyz
  i=$(load http://127.0.0.1:18181/webhooks/sa -n "$events" --concurrency 32 | tee /dev/stderr | rate)
  kill $br; wait $br 2>/dev/null || true
  rm -rf "$work/data-file" "$work/out"
  taskset -c 0 "$work/bridge" serve -c "$work/file.yaml" 2>/dev/null & bf=$!
  wait_up http://127.0.0.1:18182/readyz
  f=$(load http://127.0.0.1:18182/webhooks/sa -n "$events" --concurrency 32 | tee /dev/stderr | rate)
  kill $bf; wait $bf 2>/dev/null || true
  echo "round $r: bare $b/s, bridge ingest $i/s (ratio $(echo "scale=2; $i/$b" | bc)), bridge + file sink $f/s (ratio $(echo "scale=2; $f/$b" | bc))"
done
