#!/usr/bin/env bash
# Ingest benchmark, in one run and alternating, with two load tools:
# `bridge bench` and wrk (the Debian package; scripts/wrk-post.lua posts
# pre-signed unique events written by scripts/wrkevents), so the figures do
# not depend on our own load tool. Against each:
#   bare        a bare net/http handler (scripts/bare): the ceiling
#   flushfloor  bare plus a group-committed append and fdatasync
#               (scripts/flushfloor): the floor under any durable ack on
#               this disk
#   normal      `bridge serve`, store sync: normal
#   full        `bridge serve`, store sync: full (every ack durable)
#   normal+file, full+file
#               the same with a rule sending every event to a file sink
# Each server gets a fresh store for each load. The server is pinned to CPU
# 0 and the load to CPU 1 (taskset), so each has one core; both tools keep
# 32 requests in flight. Prints acks/s and the CPU time (user + system) the
# server spent per acknowledged event, for each server and tool, then the
# ratios the targets are set in: normal to bare, full to flushfloor, +file
# to the same sync without it (and, for +file, how many of the acked
# events the sink had written when the load stopped). The ratios move with
# the machine's noise; the CPU per event much less.
#   scripts/bench-ingest.sh [ROUNDS] [EVENTS] [SECONDS]
# EVENTS is `bridge bench`'s -n; SECONDS is each wrk run's length. wrk
# posts from a file of WRK_EVENTS (default 400000) events, enough for
# about 50,000 acks/s for SECONDS=6; it says how many it had to repeat
# (duplicates to the bridge), which should be 0 for the bridge's runs.
# BRIDGE=path/to/bridge benchmarks that binary instead of building one
# (to compare two builds in one run). WRK_RANDOM_IDS=1 gives wrk's events
# ids in no order, as vendors' UUIDs are (bridge bench numbers them in
# turn): the store's (source, id) index then costs what it does in
# production. TOOLS="wrk" (or "bench") runs one load tool only.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
events=${2:-20000}
secs=${3:-6}
wrk_events=${WRK_EVENTS:-400000}
command -v wrk >/dev/null || { echo "bench-ingest: wrk is missing (apt-get install -y wrk)" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
if [ -n "${BRIDGE:-}" ]; then
  cp "$BRIDGE" "$work/bridge"
else
  go build -o "$work/bridge" ./cmd/bridge
fi
go build -o "$work/bare" ./scripts/bare
go build -o "$work/flushfloor" ./scripts/flushfloor
go build -o "$work/wrkevents" ./scripts/wrkevents
"$work/wrkevents" -secret bench-secret -n "$wrk_events" -files 1 ${WRK_RANDOM_IDS:+-random-ids} "$work/events"

# config NAME SYNC FILE: a serve config on port 18181, store and sink under
# $work/NAME.
config() {
  cat > "$work/$1.yaml" <<YAML
server: {listen: "127.0.0.1:18181"}
store: {path: $1-data/bridge.db, sync: $2}
sources:
  - {name: sa, vendor: secureagentics, secret: bench-secret}
YAML
  if [ "$3" = file ]; then
    cat >> "$work/$1.yaml" <<YAML
sinks:
  - {name: archive, type: file, path: $1-out/events.jsonl}
rules:
  - {name: all, when: 'true', actions: [{sink: archive}]}
YAML
  fi
}
config normal normal -
config full full -
config normal+file normal file
config full+file full file

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_up() { for _ in $(seq 200); do curl -fs "$1" >/dev/null 2>&1 && return; sleep 0.05; done; }
# start SERVER: starts it on CPU 0; sets pid and url.
start() {
  case $1 in
  bare)
    taskset -c 0 "$work/bare" 127.0.0.1:18180 & pid=$!
    wait_up http://127.0.0.1:18180/; url=http://127.0.0.1:18180/webhooks/sa ;;
  flushfloor)
    taskset -c 0 "$work/flushfloor" 127.0.0.1:18180 "$work/floor" & pid=$!
    wait_up http://127.0.0.1:18180/; url=http://127.0.0.1:18180/webhooks/sa ;;
  *)
    rm -rf "$work/$1-data" "$work/$1-out"
    taskset -c 0 "$work/bridge" serve -c "$work/$1.yaml" 2>"$work/serve.log" & pid=$!
    wait_up http://127.0.0.1:18181/readyz; url=http://127.0.0.1:18181/webhooks/sa ;;
  esac
}
# load TOOL SERVER: prints "ACKS_PER_S CPU_US_PER_EVENT DELIVERED_PCT"
# (DELIVERED_PCT: of the acked events, the share in the file sink's file
# when the load ended; - without one). The tool's own output goes to stderr.
load() {
  local t0 t1 out acked rate lines
  start "$2"
  t0=$(ticks "$pid")
  if [ "$1" = bench ]; then
    out=$(taskset -c 1 "$work/bridge" bench --url "$url" --vendor secureagentics --secret bench-secret -n "$events" --concurrency 32)
    echo "$out" >&2
    acked=$(echo "$out" | awk '/ acked \(/ {print $6}')
    rate=$(echo "$out" | awk '/ acked \(/ {gsub(/\(/,"",$8); printf "%.0f", $8}')
  else
    out=$(taskset -c 1 wrk -t1 -c32 -d"${secs}s" -s scripts/wrk-post.lua "$url" -- "$work/events")
    echo "$out" >&2
    # wrk-post: REQUESTS requests, ERRORS errors, REPEATED repeated, RATE acked/s, ...
    acked=$(echo "$out" | awk '/^wrk-post:/ {print $2 - $4}')
    rate=$(echo "$out" | awk '/^wrk-post:/ {print $8}')
    if [ "$2" != bare ] && [ "$2" != flushfloor ]; then
      echo "$out" | awk '/^wrk-post:/ && $6 > 0 {print "bench-ingest: wrk repeated " $6 " events (duplicates): raise WRK_EVENTS" > "/dev/stderr"}'
    fi
  fi
  t1=$(ticks "$pid")
  if [ "${acked:-0}" -le 0 ]; then
    echo "bench-ingest: $2 acknowledged nothing under $1" >&2
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "0 0 -"
    return
  fi
  lines=-
  if [ -f "$work/$2-out/events.jsonl" ]; then
    lines=$(( $(wc -l < "$work/$2-out/events.jsonl") * 100 / acked ))%
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$rate $(( (t1 - t0) * 1000000 / $(getconf CLK_TCK) / acked )) $lines"
}
ratio() { echo "scale=2; $1 / $2" | bc; }

echo "cores: $(nproc); server on CPU 0, load on CPU 1; 32 connections"
servers="bare flushfloor normal full normal+file full+file"
for r in $(seq "$rounds"); do
  for tool in ${TOOLS:-bench wrk}; do
    declare -A rate cpu deliv
    for s in $servers; do
      read -r rate[$s] cpu[$s] deliv[$s] < <(load "$tool" "$s")
    done
    line="round $r $tool:"
    for s in $servers; do line+=" $s ${rate[$s]}/s ${cpu[$s]}µs;"; done
    echo "$line"
    echo "round $r $tool ratios: normal/bare $(ratio "${rate[normal]}" "${rate[bare]}")," \
      "full/flushfloor $(ratio "${rate[full]}" "${rate[flushfloor]}")," \
      "normal+file/normal $(ratio "${rate[normal+file]}" "${rate[normal]}") (in the file: ${deliv[normal+file]})," \
      "full+file/full $(ratio "${rate[full+file]}" "${rate[full]}") (in the file: ${deliv[full+file]})"
    unset rate cpu deliv
  done
done
