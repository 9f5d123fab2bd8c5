#!/usr/bin/env bash
# Ingest benchmark: `bridge bench` against `bridge serve` (sync: full, every
# ack durable), against a bare net/http handler, and against flushfloor (bare
# plus a group-committed append and fdatasync: the floor under any durable
# ack on this disk), alternating, in one run.
# The server is pinned to CPU 0 and the load to CPU 1 (taskset), so each has
# one core. Prints acks/s and latency for each, then the ratios and the
# CPU time (user + system) each server spent per event: the ratios move
# with the machine's noise, the CPU per event much less.
#   scripts/bench-ingest.sh [ROUNDS] [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
events=${2:-20000}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/bridge" ./cmd/bridge
go build -o "$work/bare" ./scripts/bare
go build -o "$work/flushfloor" ./scripts/flushfloor
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
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run PID URL: the load against URL; prints acks/s and the CPU µs per event
# PID spent meanwhile.
run() {
  local t0 t1 r
  t0=$(ticks "$1")
  r=$(load "$2" -n "$events" --concurrency 32 | tee /dev/stderr | rate)
  t1=$(ticks "$1")
  echo "$r $(( (t1 - t0) * 1000000 / $(getconf CLK_TCK) / events ))"
}
wait_up() { for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return; sleep 0.05; done; }
echo "cores: $(nproc)"
for r in $(seq "$rounds"); do
  taskset -c 0 "$work/bare" 127.0.0.1:18180 & bare=$!
  wait_up http://127.0.0.1:18180/
  read -r b bc < <(run $bare http://127.0.0.1:18180/webhooks/sa)
  kill $bare; wait $bare 2>/dev/null || true
  taskset -c 0 "$work/flushfloor" 127.0.0.1:18183 "$work/floor" & fl=$!
  wait_up http://127.0.0.1:18183/
  read -r d dc < <(run $fl http://127.0.0.1:18183/webhooks/sa)
  kill $fl; wait $fl 2>/dev/null || true
  rm -rf "$work/data"
  taskset -c 0 "$work/bridge" serve -c "$work/ingest.yaml" 2>/dev/null & br=$!
  wait_up http://127.0.0.1:18181/readyz
  read -r i ic < <(run $br http://127.0.0.1:18181/webhooks/sa)
  kill $br; wait $br 2>/dev/null || true
  rm -rf "$work/data-file" "$work/out"
  taskset -c 0 "$work/bridge" serve -c "$work/file.yaml" 2>/dev/null & bf=$!
  wait_up http://127.0.0.1:18182/readyz
  read -r f fc < <(run $bf http://127.0.0.1:18182/webhooks/sa)
  kill $bf; wait $bf 2>/dev/null || true
  echo "round $r: bare $b/s (${bc} µs CPU/event), flushfloor $d/s (ratio $(echo "scale=2; $d/$b" | bc), ${dc} µs), bridge ingest $i/s (ratio $(echo "scale=2; $i/$b" | bc), ${ic} µs), bridge + file sink $f/s (ratio $(echo "scale=2; $f/$b" | bc), ${fc} µs)"
done
