#!/usr/bin/env bash
# Load test of POST /v1/decision with wrk (Debian package "wrk").
# Warden runs on one core (GOMAXPROCS=1, pinned to CPU 0); wrk runs on the
# other, so the figure is decisions per second per core, comparable with
# "opa run --server" measured the same way.
#   testdata/load/run.sh            # 20 s, 32 connections
#   DURATION=60s CONNECTIONS=64 testdata/load/run.sh
#   testdata/load/run.sh --policies-decision-cache 0   # flags go to warden serve
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 1; }

bin=$(mktemp -d)/warden
go build -o "$bin" ./cmd/warden
dir=$(mktemp -d)
port=${PORT:-18480}
GOMAXPROCS=1 taskset -c 0 "$bin" serve --data-dir "$dir" --listen "127.0.0.1:$port" "$@" 2>"$dir/warden.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir" "$(dirname "$bin")"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
TOKEN=$("$bin" token --data-dir "$dir" --sub alice --roles manager) \
  taskset -c 1 wrk -t1 -c"${CONNECTIONS:-32}" -d"${DURATION:-20s}" \
  -s testdata/load/decision.lua "http://127.0.0.1:$port/v1/decision"
