#!/usr/bin/env bash
# Nodes that add up (issue 11, item 5): per-node CPU as CoCanvas nodes are added at a fixed load
# per node. Each node gets 10 clients and 2 writers at 10 notes/s.
#   scripts/bench-nodes.sh LABEL BROKER MODE N
#     BROKER: redis (one redis-server) | cluster (three primaries, redis-cli --cluster create)
#     MODE:   spread (one canvas, clients round-robin over all N nodes: every node hears every
#             write) | sticky (one canvas per node, as nginx's hash by canvas id routes them)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
LABEL=${1:-nodes}; BROKER=${2:-redis}; MODE=${3:-spread}; N=${4:-2}
DURATION=${DURATION:-8}
OUT=${OUT:-$here/results/$LABEL.jsonl}
source "$here/scripts/bench-env.sh"
PG=postgresql://postgres@127.0.0.1:5432/test
rdir=$(mktemp -d)
rpids=()
if [ "$BROKER" = cluster ]; then
  ports=(7101 7102 7103)
  for p in "${ports[@]}"; do
    mkdir -p "$rdir/$p"
    redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 1000 --save '' --appendonly no --dir "$rdir/$p" --daemonize yes >/dev/null
  done
  sleep 0.3
  redis-cli --cluster create 127.0.0.1:7101 127.0.0.1:7102 127.0.0.1:7103 --cluster-yes >/dev/null
  for _ in $(seq 100); do
    ok=1; for p in "${ports[@]}"; do redis-cli -p "$p" cluster info | grep -q cluster_state:ok || ok=0; done
    [ $ok = 1 ] && break; sleep 0.1
  done
  for p in "${ports[@]}"; do rpids+=("$(redis-cli -p "$p" info server | awk -F: '/process_id/{print $2}' | tr -d '\r')"); done
  RURL=redis+cluster://127.0.0.1:7101,127.0.0.1:7102
else
  ports=(6393)
  redis-server --port 6393 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes >/dev/null
  sleep 0.3
  rpids+=("$(redis-cli -p 6393 info server | awk -F: '/process_id/{print $2}' | tr -d '\r')")
  RURL=redis://127.0.0.1:6393/0
fi
schema=b_$RANDOM$RANDOM
psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE SCHEMA $schema" >/dev/null
store="$PG?options=-csearch_path%3D$schema"
pids=(); urls=(); benches=()
for i in $(seq 1 "$N"); do
  port=$((8300 + i)); d="$rdir/node$i"; mkdir -p "$d"
  COCANVAS_STORE_URL=$store COCANVAS_REDIS_URL=$RURL COCANVAS_NODE_ID=n$i \
    "$here/.venv/bin/cocanvas" serve --port $port --data-dir "$d" > "$d/log" 2>&1 & pids+=($!)
  urls+=("ws://127.0.0.1:$port/ws")
done
for i in $(seq 1 "$N"); do
  for _ in $(seq 150); do curl -sf "http://127.0.0.1:$((8300 + i))/readyz" >/dev/null && break; sleep 0.1; done
done
pidargs=""; for p in "${pids[@]}" "${rpids[@]}"; do pidargs="$pidargs --pid $p"; done
meta="broker=$BROKER&mode=$MODE&nodes=$N"
if [ "$MODE" = spread ]; then
  urlarg=$(IFS=,; echo "${urls[*]}")
  common="--provider y-websocket --url $urlarg --create http://127.0.0.1:8301/api/canvases $pidargs"
  (cd "$BENCH" && node bench.js fanout $common --clients 10 --writers 2 --rate 10 --duration 2 >/dev/null 2>&1)
  (cd "$BENCH" && node bench.js fanout $common --clients $((10 * N)) --writers $((2 * N)) --rate 10 \
    --duration "$DURATION" --label "$LABEL/$BROKER-$MODE-$N" --meta "$meta" --out "$OUT" >/dev/null 2>&1)
else
  for i in $(seq 1 "$N"); do
    common="--provider y-websocket --url ${urls[$((i - 1))]} --create http://127.0.0.1:$((8300 + i))/api/canvases $pidargs"
    (cd "$BENCH" && node bench.js fanout $common --clients 10 --writers 2 --rate 10 --duration 2 >/dev/null 2>&1)
  done
  for i in $(seq 1 "$N"); do
    common="--provider y-websocket --url ${urls[$((i - 1))]} --create http://127.0.0.1:$((8300 + i))/api/canvases $pidargs"
    (cd "$BENCH" && node bench.js fanout $common --clients 10 --writers 2 --rate 10 \
      --duration "$DURATION" --label "$LABEL/$BROKER-$MODE-$N/$i" --meta "$meta&canvas=$i" --out "$OUT" >/dev/null 2>&1) &
    benches+=($!)
  done
  wait "${benches[@]}"
fi
kill "${pids[@]}" 2>/dev/null; sleep 1; kill -9 "${pids[@]}" 2>/dev/null
for p in "${ports[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1; done
psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1
rm -rf "$rdir"
