#!/usr/bin/env bash
# AuthZEN's evaluation against the decision API on the same load: one Warden
# (GOMAXPROCS=1, CPU 0) asked the same question (alice, a manager, approving
# order 42, her token verified) by wrk on CPU 1, alternating the two routes
# ROUNDS times so that drift on a shared machine falls on both.
#   testdata/load/authzen.sh                                   # 3 rounds of 6 s, 16 connections
#   ROUNDS=5 testdata/load/authzen.sh --policies-decision-cache 0
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 1; }
tmp=$(mktemp -d)
go build -o "$tmp/warden" ./cmd/warden
port=${PORT:-18480}
GOMAXPROCS=1 taskset -c 0 "$tmp/warden" serve --data-dir "$tmp/data" --listen "127.0.0.1:$port" "$@" 2>"$tmp/warden.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
export TOKEN
TOKEN=$("$tmp/warden" token --data-dir "$tmp/data" --sub alice --roles manager)
for round in $(seq "${ROUNDS:-3}"); do
  for route in decision authzen; do
    path=/v1/decision
    [ $route = authzen ] && path=/access/v1/evaluation
    printf 'round %s %-9s ' "$round" "$route"
    AUTHZEN=$([ $route = authzen ] && echo 1 || echo 0) taskset -c 1 wrk -t1 -c"${CONNECTIONS:-16}" \
      -d"${DURATION:-6s}" -s testdata/load/decision.lua "http://127.0.0.1:$port$path" |
      awk '/Requests\/sec/ {rps=$2} /answers other/ {bad=$NF} END {printf "%s/s  not allowed: %s\n", rps, bad}'
  done
done
