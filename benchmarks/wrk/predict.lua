-- wrk script: POST /predict for one random known customer per request, then a JSON summary.
--
-- Environment (read by every wrk thread and by done()):
--   WRK_IDS_FILE  known customer ids, one per line (required)
--   WRK_API_KEY   the client API key, sent as "Authorization: Bearer ..." (optional)
--   WRK_FIELD     the body's id field (default customer_id)
--   WRK_SEED      random seed (default: the clock); each thread adds its own number
--   WRK_SUMMARY   where done() writes its JSON summary (required)
--
-- Latencies in the summary are milliseconds; wrk measures them in microseconds.

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("number", counter)
   table.insert(threads, thread)
end

local function read_ids(path)
   local ids = {}
   local file = assert(io.open(path, "r"), "cannot read WRK_IDS_FILE " .. tostring(path))
   for line in file:lines() do
      if line:match("^%d+$") then
         ids[#ids + 1] = line
      end
   end
   file:close()
   assert(#ids > 0, "no ids in " .. path)
   return ids
end

function init(args)
   ids = read_ids(os.getenv("WRK_IDS_FILE"))
   field = os.getenv("WRK_FIELD") or "customer_id"
   local seed = tonumber(os.getenv("WRK_SEED") or "") or os.time()
   math.randomseed(seed + (number or 0))
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   local key = os.getenv("WRK_API_KEY")
   if key and key ~= "" then
      wrk.headers["Authorization"] = "Bearer " .. key
   end
   -- Per thread, fetched by done(): every status seen, and how many were not 2xx.
   statuses = {}
   non_2xx = 0
end

function request()
   local body = '{"' .. field .. '": ' .. ids[math.random(#ids)] .. '}'
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   local code = tostring(status)
   statuses[code] = (statuses[code] or 0) + 1
   if status < 200 or status > 299 then
      non_2xx = non_2xx + 1
   end
end

local function ms(microseconds)
   return string.format("%.3f", microseconds / 1000)
end

function done(summary, latency, requests)
   local merged, bad = {}, 0
   for _, thread in ipairs(threads) do
      bad = bad + (thread:get("non_2xx") or 0)
      for code, n in pairs(thread:get("statuses") or {}) do
         merged[code] = (merged[code] or 0) + n
      end
   end
   local codes = {}
   for code, n in pairs(merged) do
      codes[#codes + 1] = string.format('"%s": %d', code, n)
   end
   local seconds = summary.duration / 1e6
   local e = summary.errors
   local parts = {
      string.format('"requests": %d', summary.requests),
      string.format('"duration_s": %.6f', seconds),
      string.format('"rps": %.3f', seconds > 0 and summary.requests / seconds or 0),
      string.format('"bytes": %d', summary.bytes),
      string.format('"threads": %d', #threads),
      '"latency_ms": {'
         .. '"p50": ' .. ms(latency:percentile(50))
         .. ', "p90": ' .. ms(latency:percentile(90))
         .. ', "p99": ' .. ms(latency:percentile(99))
         .. ', "max": ' .. ms(latency.max)
         .. ', "mean": ' .. ms(latency.mean)
         .. ', "stdev": ' .. ms(latency.stdev)
         .. '}',
      string.format(
         '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d, '
            .. '"non_2xx": %d}',
         e.connect, e.read, e.write, e.timeout, e.status, bad
      ),
      '"statuses": {' .. table.concat(codes, ", ") .. '}',
   }
   local path = assert(os.getenv("WRK_SUMMARY"), "WRK_SUMMARY is not set")
   local file = assert(io.open(path, "w"))
   file:write("{" .. table.concat(parts, ", ") .. "}\n")
   file:close()
end
