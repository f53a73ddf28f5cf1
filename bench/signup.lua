-- wrk script for bench/signup.py: the same script drives both endpoints, so both pay the same client-side cost.
--
--   wrk ... -s bench/signup.lua http://127.0.0.1:PORT -- health
--   wrk ... -s bench/signup.lua http://127.0.0.1:PORT -- subscribe PREFIX COOKIE CSRF STARTED CONSENT_VERSION
--
-- "subscribe" posts the signup form with the given session cookie and hidden fields, and a new address per request:
-- PREFIX-<thread>-<n>@example.org. done() prints one line, "BENCH_RESULT {json}", that bench/signup.py reads.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local function urlencode(value)
  return (string.gsub(value, "[^%w%-%._~]", function(ch)
    return string.format("%%%02X", string.byte(ch))
  end))
end

function init(args)
  mode = args[1]
  issued = 0
  statuses = {}
  if mode == "subscribe" then
    prefix = args[2]
    headers = {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Cookie"] = args[3],
    }
    fixed = "csrf_token=" .. urlencode(args[4]) .. "&started=" .. urlencode(args[5])
      .. "&consent_version=" .. urlencode(args[6]) .. "&lists=newsletter&name=&website="
  elseif mode ~= "health" then
    error("mode must be health or subscribe, not " .. tostring(mode))
  end
end

function request()
  issued = issued + 1
  if mode == "health" then
    return wrk.format("GET", "/healthz")
  end
  local email = prefix .. "-" .. tid .. "-" .. issued .. "@example.org"
  return wrk.format("POST", "/subscribe", headers, fixed .. "&email=" .. urlencode(email))
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total_issued = 0
  local merged = {}
  for _, thread in ipairs(threads) do
    total_issued = total_issued + (thread:get("issued") or 0)
    for status, count in pairs(thread:get("statuses") or {}) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(merged) do
    table.insert(parts, string.format('"%d": %d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "issued": %d, "p50_us": %d, "p99_us": %d, '
      .. '"mean_us": %.1f, "max_us": %d, "statuses": {%s}, "socket_errors": '
      .. '{"connect": %d, "read": %d, "write": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, total_issued, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, table.concat(parts, ", "), e.connect, e.read, e.write, e.timeout
  ))
end
