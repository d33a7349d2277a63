#!/usr/bin/env bash
# A Warden fleet as production runs it, on this machine: a three-node NATS
# JetStream cluster (nats-server of go.mod's version, routes between the
# nodes, every client authenticated by an nkey) and three warden replicas
# connected to it with a multi-URL events.nats_url, the stream and the
# policy bucket kept on 3 nodes. It prints how to reach everything, then
# waits; Ctrl-C stops it all. Kill a node (kill -9 <pid>) or a replica and
# watch /v1/replicas, or run the automated version of that:
#   go test -run TestClusterFailover -v ./cmd/warden/
#
#   testdata/cluster/run.sh               # base ports 14222 (NATS), 18481 (warden)
#   NATS_PORT=24222 WARDEN_PORT=28481 testdata/cluster/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

work=$(mktemp -d)
bin=$work/bin
mkdir -p "$bin"
go build -o "$bin/warden" ./cmd/warden
go build -o "$bin/nats-server" github.com/nats-io/nats-server/v2
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT INT TERM

nats_port=${NATS_PORT:-14222}
warden_port=${WARDEN_PORT:-18481}
# The replicas' user and the publishers' user (events only): nkeys made for
# this run, as warden's own embedded server makes its users.
pub=$(go run ./testdata/cluster/nkey "$work/replica.nk")
publisher=$(go run ./testdata/cluster/nkey "$work/publisher.nk")

urls=()
for i in 0 1 2; do
  urls+=("nats://127.0.0.1:$((nats_port + i))")
done
for i in 0 1 2; do
  routes=()
  for j in 0 1 2; do
    [ "$j" = "$i" ] || routes+=("nats-route://route:route-secret@127.0.0.1:$((nats_port + 100 + j))")
  done
  cat >"$work/n$i.conf" <<CONF
server_name: n$i
listen: 127.0.0.1:$((nats_port + i))
jetstream { store_dir: "$work/store$i" }
authorization { users = [
  { nkey: $pub }
  { nkey: $publisher, permissions: { publish: { allow: ["warden.events.>"] }, subscribe: { allow: ["_INBOX.>"] } } }
] }
cluster {
  name: warden
  listen: 127.0.0.1:$((nats_port + 100 + i))
  authorization { user: route, password: route-secret }
  routes = [ $(IFS=,; echo "${routes[*]}") ]
}
CONF
  "$bin/nats-server" -c "$work/n$i.conf" 2>"$work/n$i.log" &
  pids+=($!)
done

nats_url=$(IFS=,; echo "${urls[*]}")
mkdir -p "$work/dev"
for i in 1 2 3; do
  "$bin/warden" serve --data-dir "$work/dev" --listen "127.0.0.1:$((warden_port + i - 1))" \
    --events-nats-url "$nats_url" --events-nkey-seed-file "$work/replica.nk" \
    --events-stream-replicas 3 --events-replica-id "w$i" 2>"$work/w$i.log" &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 900); do
    curl -sf "http://127.0.0.1:$((warden_port + i - 1))/readyz" >/dev/null && break
    sleep 0.1
  done
done

admin=$("$bin/warden" token --data-dir "$work/dev" --sub admin --roles warden-admin --ttl 15m)
cat <<INFO
NATS cluster:  $nats_url  (nodes' pids ${pids[0]} ${pids[1]} ${pids[2]}, logs $work/n*.log)
Replicas:      http://127.0.0.1:$warden_port .. $((warden_port + 2))  (pids ${pids[3]} ${pids[4]} ${pids[5]}, logs $work/w*.log)
Admin token:   export ADMIN=$admin
Fleet:         curl -s -H "Authorization: Bearer \$ADMIN" http://127.0.0.1:$warden_port/v1/replicas
Publish:       $bin/warden event roles_changed --subject alice --server http://127.0.0.1:$warden_port --token \$ADMIN
From nats.js:  (cd testdata/publisher-js && npm ci && NKEY_SEED_FILE=$work/publisher.nk node stream.mjs $nats_url)
               publishes an event every 20 ms, one JSON line per acknowledgement or error, until Ctrl-C
Ctrl-C stops everything.
INFO
wait
