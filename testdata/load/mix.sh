#!/usr/bin/env bash
# Issue 14's realistic mix, side by side in one run (docs/performance.md):
# Warden, OPA (opa run --server, the OPA of go.mod, verifying the same RS256
# tokens with its io_jwt cache) and a bare Gin handler (the floor), each on
# one core (GOMAXPROCS=1, CPU 0) with the load generator on the other.
#   testdata/load/mix.sh                 # 10 s a phase, 16 connections
#   DURATION=20s CONNECTIONS=32 testdata/load/mix.sh
#   ROUNDS=3 DURATION=6s testdata/load/mix.sh   # each phase three times, alternated
#   USERS=20000 ROUNDS=2 testdata/load/mix.sh   # more users (1,000 by default): round 1 cold, 2 warm
# Phases: the agreement check (Warden and OPA must give the same decision
# and reasons on 2,000 requests), then for each server the mix and one
# request repeated; then, open loop, Warden at half its saturating mix rate
# for the p99, the bare handler at the same rate (the generator's and the
# machine's share of the latency), OPA and the bare handler each at half of
# its own saturating rate, and Warden at OPA's; then Warden on both cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
pids=()
wpid=
trap 'kill "${pids[@]}" $wpid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
go build -o "$tmp/warden" ./cmd/warden
go build -o "$tmp/opa" github.com/open-policy-agent/opa   # a tool of go.mod
go build -o "$tmp/bare" ./testdata/load/bare
go build -o "$tmp/mix" ./testdata/load/mix
d=${DURATION:-10s}
c=${CONNECTIONS:-16}
wport=18481 oport=18491 bport=18499 jwks=127.0.0.1:18470

taskset -c 1 "$tmp/mix" issuer -dir "$tmp" -listen "$jwks" -users "${USERS:-1000}" & pids+=($!)
for _ in $(seq 3000); do [ -s "$tmp/jwks.json" ] && break; sleep 0.1; done # minting takes ~1.5 ms a token

cat > "$tmp/warden.yaml" <<YAML
data_dir: $tmp/warden-data
tokens:
  issuers:
    - issuer: https://idp.mix.test/
      audiences: [orders-api]
      jwks_url: http://$jwks/jwks.json
      algorithms: [RS256]
YAML
start_warden() { # $1: GOMAXPROCS, $2: CPUs
  GOMAXPROCS=$1 taskset -c "$2" "$tmp/warden" serve --config "$tmp/warden.yaml" --listen "127.0.0.1:$wport" 2>"$tmp/warden.log" &
  wpid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$wport/readyz" >/dev/null && return; sleep 0.1; done
  echo "Warden did not start:"; cat "$tmp/warden.log"; exit 1
}
start_warden 1 0

python3 - "$tmp" <<'PY'
import json, sys
tmp = sys.argv[1]
data = json.load(open("policies/data.json"))
data.update(jwks=open(tmp + "/jwks.json").read(), issuer="https://idp.mix.test/", audience="orders-api")
json.dump(data, open(tmp + "/opa-data.json", "w"))
PY
GOMAXPROCS=1 taskset -c 0 "$tmp/opa" run --server --addr "127.0.0.1:$oport" --log-level error \
  --config-file testdata/load/opa.yaml testdata/load/mix.rego "$tmp/opa-data.json" 2>"$tmp/opa.log" & pids+=($!)
GOMAXPROCS=1 taskset -c 0 "$tmp/bare" & pids+=($!)  # listens on 127.0.0.1:18499
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$oport/health" >/dev/null && break; sleep 0.1; done

W=http://127.0.0.1:$wport/v1/decision
O=http://127.0.0.1:$oport/v1/data/mixbench/decision
B=http://127.0.0.1:$bport/v1/decision
taskset -c 1 "$tmp/mix" check -dir "$tmp" -warden "$W" -opa "$O" -n 2000

load() { taskset -c 1 "$tmp/mix" load -dir "$tmp" -c "$c" -d "$d" "$@"; }
for round in $(seq "${ROUNDS:-1}"); do # rounds alternate the servers, so a slow spell of the machine shows as a spread
  load -url "$W" -label "warden mix" | tee -a "$tmp/warden-mix"
  load -url "$O" -shape opa -label "opa mix" | tee -a "$tmp/opa-mix"
  load -url "$B" -label "bare mix" | tee -a "$tmp/bare-mix"
  load -url "$W" -repeat -label "warden repeated"
  load -url "$O" -shape opa -repeat -label "opa repeated"
  load -url "$B" -repeat -label "bare repeated"
done
half() { awk 'NR == 1 {printf "%d", $3/2}' "$tmp/$1-mix"; } # half of the first round's rate
wh=$(half warden) oh=$(half opa) bh=$(half bare)
for round in $(seq "${ROUNDS:-1}"); do
  load -url "$W" -rate "$wh" -c 64 -label "warden mix at $wh/s"
  load -url "$B" -rate "$wh" -c 64 -label "bare mix at $wh/s" # the generator's and the machine's share of the latency
  load -url "$O" -shape opa -rate "$oh" -c 64 -label "opa mix at $oh/s"
  load -url "$B" -rate "$bh" -c 64 -label "bare mix at $bh/s"
  load -url "$W" -rate "$oh" -c 64 -label "warden mix at $oh/s"
done
kill "$wpid"; wait "$wpid" 2>/dev/null || true
start_warden 2 0,1
load -url "$W" -label "warden mix, 2 cores (shared)"
