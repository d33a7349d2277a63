-- wrk script: POST /v1/decision with the token in $TOKEN, counting answers
-- that are not 200 + allow, so a fast error is never mistaken for speed.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"token":"' .. os.getenv("TOKEN") ..
  '","action":"' .. (os.getenv("ACTION") or "orders:approve") ..
  '","resource":{"type":"order","id":"42"}}'

local bad = 0
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"allow":true', 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  io.write(string.format("answers other than 200 allow: %d\n", bad))
  io.write(string.format("latency p50 %.0f us, p99 %.0f us\n",
    latency:percentile(50), latency:percentile(99)))
end
