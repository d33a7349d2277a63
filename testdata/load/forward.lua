-- wrk script: ask forward auth (GET /v1/forward-auth) as nginx does for
-- POST /orders/42/approve with the token in $TOKEN, counting answers that
-- are not 200, so a fast error is never mistaken for speed. With
-- REQUEST_IDS=1 each request carries its own X-Request-Id, as behind a real
-- proxy (Envoy, or nginx with proxy_set_header X-Request-Id $request_id).
wrk.method = "GET"
wrk.headers["X-Original-Method"] = "POST"
wrk.headers["X-Original-Uri"] = "/orders/42/approve"
wrk.headers["X-Original-Host"] = "api.example.com"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")

if os.getenv("REQUEST_IDS") == "1" then
  local n = 0
  function request()
    n = n + 1
    wrk.headers["X-Request-Id"] = "req-" .. n
    return wrk.format()
  end
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

bad = 0
function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("bad")
  end
  io.write(string.format("answers other than 200: %d\n", total))
  io.write(string.format("latency p50 %.0f us, p99 %.0f us\n",
    latency:percentile(50), latency:percentile(99)))
end
