-- wrk script: POST a decision for the token in $TOKEN, counting answers that
-- are not 200 + allow, so a fast error is never mistaken for speed.
-- WRAP_INPUT=1 sends OPA's shape ({"input": {...}}) and expects
-- {"result":true}; AUTHZEN=1 sends the same question as an AuthZEN
-- evaluation (the token in subject.properties.token) and expects
-- "decision":true; otherwise Warden's /v1/decision shape and "allow":true.
local check = '{"token":"' .. os.getenv("TOKEN") ..
  '","action":"' .. (os.getenv("ACTION") or "orders:approve") ..
  '","resource":{"type":"order","id":"42"}}'
local want = '"allow":true'
if os.getenv("WRAP_INPUT") == "1" then
  check = '{"input":' .. check .. '}'
  want = '"result":true'
elseif os.getenv("AUTHZEN") == "1" then
  check = '{"subject":{"type":"user","id":"' .. (os.getenv("SUB") or "alice") ..
    '","properties":{"token":"' .. os.getenv("TOKEN") .. '"}},"action":{"name":"' ..
    (os.getenv("ACTION") or "orders:approve") .. '"},"resource":{"type":"order","id":"42"}}'
  want = '"decision":true'
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = check

-- Each wrk thread runs its own Lua state; done() runs in yet another, so
-- the count is collected from the threads with thread:get.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

bad = 0
function response(status, headers, body)
  if status ~= 200 or not string.find(body, want, 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("bad")
  end
  io.write(string.format("answers other than 200 allow: %d\n", total))
  io.write(string.format("latency p50 %.0f us, p99 %.0f us\n",
    latency:percentile(50), latency:percentile(99)))
end
