#!/usr/bin/env bash
# Replica benchmark: `bridge bench` at concurrency 32 against SQLite
# (sync: full), one PostgreSQL replica, and two PostgreSQL replicas with the
# load split across them, alternating, in one run; then latency at a steady
# 1,000 events/s against one replica: the ack, and the end to end to a file
# sink. PostgreSQL runs on the same machine, so nothing is pinned: the
# bridge, the load and the database share the cores. Prints acks/s, p50 and
# p99 for each, and the CPU time (user + system) the bridge processes and
# the database spent per event.
#   scripts/bench-replicas.sh [ROUNDS] [EVENTS]
# Needs a PostgreSQL server that BRIDGE_BENCH_POSTGRES (a URL, default
# postgres://postgres@127.0.0.1:5432/test?sslmode=disable) may create
# databases on.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
events=${2:-20000}
admin=${BRIDGE_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
db=bridge_bench_$$
pgurl=$(echo "$admin" | sed -E "s#/[^/?]+(\?|$)#/$db\1#")
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
go build -o "$work/bridge" ./cmd/bridge

sources='sources:
  - {name: sa, vendor: secureagentics, secret: bench-secret}'
printf 'server: {listen: "127.0.0.1:18191"}\nstore: {path: data/bridge.db, sync: full}\n%s\n' "$sources" > "$work/sqlite.yaml"
for port in 18192 18193; do
  printf 'server: {listen: "127.0.0.1:%s"}\nstore: {postgres: "%s"}\n%s\n' "$port" "$pgurl" "$sources" > "$work/pg-$port.yaml"
done
printf 'server: {listen: "127.0.0.1:18194"}\nstore: {postgres: "%s"}\n%s\nsinks:\n  - {name: archive, type: file, path: out/events.jsonl}\nrules:\n  - {name: all, when: "true", actions: [{sink: archive}]}\n' "$pgurl" "$sources" > "$work/pg-file.yaml"

load() { "$work/bridge" bench --url "$1" --vendor secureagentics --secret bench-secret "${@:2}"; }
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
pgpids() { pgrep -d' ' -u postgres postgres || true; }
wait_up() { for _ in $(seq 200); do curl -fs "$1" >/dev/null 2>&1 && return; sleep 0.05; done; echo "not up: $1" >&2; exit 1; }
fresh_db() {
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  psql -q "$admin" -c "CREATE DATABASE $db" >/dev/null
}
# measure "LABEL" "BRIDGE_PIDS" URL...: posts $events split over the URLs
# (32 in flight in all) and prints acks/s, p50/p99 (of the first URL's
# load) and CPU µs per event of the bridges and of the database.
measure() {
  local label=$1 pids=$2; shift 2
  local n=$((events / $#)) c=$((32 / $#)) t0 d0 t1 d1 start end out=()
  t0=$(ticks $pids); d0=$(ticks $(pgpids))
  start=$(date +%s.%N)
  local i=0
  for u in "$@"; do load "$u" -n "$n" --concurrency "$c" > "$work/load-$i.txt" & i=$((i + 1)); done
  wait $(jobs -p | tail -n "$#")
  end=$(date +%s.%N)
  t1=$(ticks $pids); d1=$(ticks $(pgpids))
  local acked lat
  acked=$(cat "$work"/load-*.txt | awk '/ acked \(/ {s += $6} END {print s}')
  lat=$(awk '/^latency/ {print $3, $5}' "$work/load-0.txt" | tr -d ',')
  rm -f "$work"/load-*.txt
  local hz; hz=$(getconf CLK_TCK)
  printf '%-22s %8.0f acks/s  p50/p99 %-18s  bridge %4d µs/event  postgres %4d µs/event\n' "$label" \
    "$(echo "$acked / ($end - $start)" | bc -l)" "$lat" \
    $(( (t1 - t0) * 1000000 / hz / events )) $(( (d1 - d0) * 1000000 / hz / events ))
}
echo "cores: $(nproc); $events events per measure, concurrency 32"
cd "$work"
for r in $(seq "$rounds"); do
  echo "round $r"
  rm -rf data
  ./bridge serve -c sqlite.yaml 2>/dev/null & s=$!
  wait_up http://127.0.0.1:18191/readyz
  measure "sqlite sync: full" "$s" http://127.0.0.1:18191/webhooks/sa
  kill $s; wait $s 2>/dev/null || true

  fresh_db
  ./bridge serve -c pg-18192.yaml 2>/dev/null & a=$!
  wait_up http://127.0.0.1:18192/readyz
  measure "postgres, 1 replica" "$a" http://127.0.0.1:18192/webhooks/sa
  kill $a; wait $a 2>/dev/null || true

  fresh_db
  ./bridge serve -c pg-18192.yaml 2>/dev/null & a=$!
  ./bridge serve -c pg-18193.yaml 2>/dev/null & b=$!
  wait_up http://127.0.0.1:18192/readyz; wait_up http://127.0.0.1:18193/readyz
  measure "postgres, 2 replicas" "$a $b" http://127.0.0.1:18192/webhooks/sa http://127.0.0.1:18193/webhooks/sa
  kill $a $b; wait $a $b 2>/dev/null || true
done

echo "steady 1,000 events/s, one postgres replica"
fresh_db
./bridge serve -c pg-18192.yaml 2>/dev/null & a=$!
wait_up http://127.0.0.1:18192/readyz
load http://127.0.0.1:18192/webhooks/sa -n 10000 --rate 1000 --concurrency 64 | sed 's/^/  ack: /'
kill $a; wait $a 2>/dev/null || true
fresh_db
rm -rf out; mkdir -p out; : > out/events.jsonl
./bridge serve -c pg-file.yaml 2>/dev/null & f=$!
wait_up http://127.0.0.1:18194/readyz
load http://127.0.0.1:18194/webhooks/sa -n 10000 --rate 1000 --concurrency 64 --watch-file out/events.jsonl | sed 's/^/  file sink: /'
kill $f; wait $f 2>/dev/null || true
