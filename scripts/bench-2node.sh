#!/usr/bin/env bash
# Two CoCanvas nodes sharing one Redis and one PostgreSQL, clients alternating between them
# (issue 3's rows), or with HOCUS=1 the two-node Hocuspocus + Redis anchor, same procedure.
#   scripts/bench-2node.sh LABEL [scenario regex]
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
LABEL=${1:-cocanvas-2node}
ONLY=${2:-.}
OUT=${OUT:-$here/results/$LABEL.jsonl}
RPORT=${RPORT:-6391}
source "$here/scripts/bench-env.sh"
PG=postgresql://postgres@127.0.0.1:5432/test
source "$here/scripts/bench-runs.sh"
runs=("${runs[@]:0:4}")  # issue 3 measures the first four rows across two nodes
for run in "${runs[@]}"; do
  name=${run%%|*}; args=${run#*|}
  [[ "$name" =~ $ONLY ]] || continue
  redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes >/dev/null
  sleep 0.3
  rpid=$(redis-cli -p "$RPORT" info server | awk -F: '/process_id/{print $2}' | tr -d '\r')
  if [ -n "${HOCUS:-}" ]; then
    p1=$(ANCHORS=$ANCHORS sh "$ANCHORS/start-hocus.sh" 1241 "$RPORT" node-a)
    p2=$(ANCHORS=$ANCHORS sh "$ANCHORS/start-hocus.sh" 1242 "$RPORT" node-b)
    sleep 1.5
    common="--provider hocuspocus --url ws://127.0.0.1:1241 --url ws://127.0.0.1:1242 --pid $p1 --pid $p2 --pid $rpid"
  else
    schema=b_$RANDOM$RANDOM
    psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE SCHEMA $schema" >/dev/null
    store="$PG?options=-csearch_path%3D$schema"
    d1=$(mktemp -d); d2=$(mktemp -d)
    COCANVAS_STORE_URL=$store COCANVAS_REDIS_URL=redis://127.0.0.1:$RPORT/0 COCANVAS_NODE_ID=a \
      "$here/.venv/bin/cocanvas" serve --port 8201 --data-dir "$d1" > "$d1/log" 2>&1 & p1=$!
    COCANVAS_STORE_URL=$store COCANVAS_REDIS_URL=redis://127.0.0.1:$RPORT/0 COCANVAS_NODE_ID=b \
      "$here/.venv/bin/cocanvas" serve --port 8202 --data-dir "$d2" > "$d2/log" 2>&1 & p2=$!
    for _ in $(seq 100); do curl -sf http://127.0.0.1:8202/readyz >/dev/null && curl -sf http://127.0.0.1:8201/readyz >/dev/null && break; sleep 0.1; done
    common="--provider y-websocket --url ws://127.0.0.1:8201/ws --url ws://127.0.0.1:8202/ws --create http://127.0.0.1:8201/api/canvases --pid $p1 --pid $p2 --pid $rpid"
  fi
  (cd "$BENCH" && node bench.js fanout $common --clients 10 --writers 2 --rate 10 --duration 3 >/dev/null 2>&1)
  (cd "$BENCH" && node bench.js $args $common --label "$LABEL/$name" --out "$OUT" 2>/dev/null) | python3 "$here/scripts/summary_line.py" "$name"
  kill "$p1" "$p2" 2>/dev/null; sleep 1; kill -9 "$p1" "$p2" 2>/dev/null
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1
  if [ -z "${HOCUS:-}" ]; then
    psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1
    rm -rf "$d1" "$d2"
  fi
done
