-- wrk script for scripts/bench-ingest.sh: posts pre-signed unique webhook
-- events, written ahead of time by scripts/wrkevents, so the load signs
-- nothing and every event is new to the bridge.
--
--   wrk -t T -c C -d D -s scripts/wrk-post.lua URL -- EVENTS
--
-- Thread k posts the events of the file EVENTS.k (wrkevents -files T), in
-- turn; each request is formatted once, at init. A thread that runs out
-- starts its file again: those requests are duplicates to the bridge, and
-- done() counts them, so a run that needed more events says so.
-- done() prints one line for the script to read:
--   wrk-post: REQUESTS requests, ERRORS errors, REPEATED repeated, RATE acked/s, p50 P50 p99 P99

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

local reqs = {}
events, posted = 0, 0 -- globals, for done() to read through thread:get

function init(args)
  local path = args[1] .. "." .. id
  local f = assert(io.open(path, "r"))
  local header = f:read("*l")
  for line in f:lines() do
    local sp = line:find(" ", 1, true)
    events = events + 1
    reqs[events] = wrk.format("POST", nil,
      {["Content-Type"] = "application/json", [header] = line:sub(1, sp - 1)},
      line:sub(sp + 1))
  end
  f:close()
  assert(events > 0, path .. " has no events")
end

function request()
  posted = posted + 1
  return reqs[(posted - 1) % events + 1]
end

function done(summary, latency, requests)
  local rep = 0
  for _, t in ipairs(threads) do
    rep = rep + math.max(0, t:get("posted") - t:get("events"))
  end
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  local acked = summary.requests - e.status
  io.write(string.format("wrk-post: %d requests, %d errors, %d repeated, %.0f acked/s, p50 %.2fms p99 %.2fms\n",
    summary.requests, errors, rep, acked / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
