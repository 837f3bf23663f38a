-- wrk entry script: `wrk -s bench/wrk/scenario.lua URL -- QUESTIONS KEY MODE [BATCH [OFFSET [THREADS [MODEL]]]]`.
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local q = require("questions")

setup = q.setup
init = q.init
request = q.request

-- No `response` callback: wrk counts non-2xx responses itself, and a callback would copy every response's
-- headers and body into Lua, costing the client CPU that the server on the same cores needs.

-- Machine-readable summary on the last line, parsed by bench/run.py.
done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  local socket = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,"non2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max, non2xx, socket))
end
