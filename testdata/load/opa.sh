#!/usr/bin/env bash
# The baseline for testdata/load/run.sh: "opa run --server" (the OPA version
# in go.mod) answering the same decision — verify the development token in
# Rego with OPA's JWT cache on, then RBAC — on one core, under the same wrk
# load and script.
#   testdata/load/opa.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 1; }

tmp=$(mktemp -d)
go build -o "$tmp/opa" github.com/open-policy-agent/opa   # a tool of go.mod
go build -o "$tmp/warden" ./cmd/warden
TOKEN=$("$tmp/warden" token --data-dir "$tmp/data" --sub alice --roles manager)
# data.json: the shipped role table plus the development issuer's public key
# as a JWKS string, which io.jwt.decode_verify takes as "cert".
python3 - "$tmp" <<'PY'
import json, sys
tmp = sys.argv[1]
roles = json.load(open("policies/data.json"))
jwk = json.load(open(tmp + "/data/dev-issuer.pub.jwk"))
roles["jwks"] = json.dumps({"keys": [jwk]})
json.dump(roles, open(tmp + "/data.json", "w"))
PY
port=${PORT:-18490}
GOMAXPROCS=1 taskset -c 0 "$tmp/opa" run --server --addr "127.0.0.1:$port" \
  --config-file testdata/load/opa.yaml testdata/load/opa.rego "$tmp/data.json" 2>"$tmp/opa.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/v1/data/opabench/allow" -H 'Content-Type: application/json' \
  -d '{"input":{"token":"'"$TOKEN"'","action":"orders:approve"}}' | grep -q '"result":true' \
  || { echo "OPA does not allow the manager token; the comparison would be void" >&2; exit 1; }
TOKEN=$TOKEN WRAP_INPUT=1 taskset -c 1 wrk -t1 -c"${CONNECTIONS:-32}" -d"${DURATION:-20s}" \
  -s testdata/load/decision.lua "http://127.0.0.1:$port/v1/data/opabench/allow"
