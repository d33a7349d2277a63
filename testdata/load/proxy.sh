#!/usr/bin/env bash
# The proxies' overhead, end to end: one Warden (GOMAXPROCS=1, pinned to
# CPU 0, its gRPC service on) asked the same question (alice approving order
# 42) on CPU 1, one after the other in one run: the decision API and forward
# auth by wrk (the decision API's load tool), then the decision API and
# Envoy's gRPC service by testdata/load/proxy (wrk speaks no gRPC), so each
# proxy surface is compared with the decision API through the same tool.
#   testdata/load/proxy.sh                  # 10 s a phase, 16 callers
#   DURATION=20s CONNECTIONS=32 testdata/load/proxy.sh --policies-decision-cache 0
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
go build -o "$tmp/warden" ./cmd/warden
go build -o "$tmp/load" ./testdata/load/proxy
port=${PORT:-18480}
gport=${GRPC_PORT:-19191}
GOMAXPROCS=1 taskset -c 0 "$tmp/warden" serve --data-dir "$tmp/data" --listen "127.0.0.1:$port" \
  --proxy-grpc-listen "127.0.0.1:$gport" "$@" 2>"$tmp/warden.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
export TOKEN
TOKEN=$("$tmp/warden" token --data-dir "$tmp/data" --sub alice --roles manager)
for script in decision forward; do
  echo "--- wrk: $script"
  taskset -c 1 wrk -t1 -c"${CONNECTIONS:-16}" -d"${DURATION:-10s}" -s "testdata/load/$script.lua" \
    "http://127.0.0.1:$port/v1/$( [ $script = decision ] && echo decision || echo forward-auth )" |
    grep -E "Requests/sec|answers|latency p50"
done
echo "--- testdata/load/proxy: decision API and Envoy gRPC"
taskset -c 1 "$tmp/load" -http "http://127.0.0.1:$port" -grpc "127.0.0.1:$gport" \
  -c "${CONNECTIONS:-16}" -d "${DURATION:-10s}" -phases decision,grpc
