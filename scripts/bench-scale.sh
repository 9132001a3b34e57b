#!/usr/bin/env bash
# The scale rows of issue 11 (../shared/bench/scale.mjs, hist.mjs, coldjoin.mjs) against a fresh server per
# run, CoCanvas (SERVER=cocanvas, defaults: SQLite, fsync, policy on) or Hocuspocus (SERVER=hocus), so both
# can be alternated in the same minutes. Usage:
#   SERVER=cocanvas|hocus scripts/bench-scale.sh LABEL [row regex]      env: BENCH=/tmp/bench, PORT
# Appends JSON lines to results/<LABEL>.jsonl and prints one summary line per run.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
SERVER=${SERVER:-cocanvas}
LABEL=${1:-scale}
ONLY=${2:-.}
OUT=${OUT:-$here/results/$LABEL.jsonl}
source "$here/scripts/bench-env.sh"
# 10,000 clients: as many descriptors as the hard limit allows
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# label|scale.mjs arguments ("hist" and "coldjoin" rows are special)
rows=(
  "write1-r500|--docs 1 --per-doc 6 --writers-per-doc 4 --rate 500 --duration 5 --hold-ms 500"
  "write1-r1000|--docs 1 --per-doc 6 --writers-per-doc 4 --rate 1000 --duration 5 --hold-ms 500"
  "write1-r2000|--docs 1 --per-doc 6 --writers-per-doc 4 --rate 2000 --duration 5 --hold-ms 500"
  "write1-r3000|--docs 1 --per-doc 6 --writers-per-doc 4 --rate 3000 --duration 5 --hold-ms 500"
  "write100-r10|--docs 100 --per-doc 2 --writers-per-doc 1 --rate 10 --duration 5 --hold-ms 500"
  "write100-r25|--docs 100 --per-doc 2 --writers-per-doc 1 --rate 25 --duration 5 --hold-ms 500"
  "write100-r50|--docs 100 --per-doc 2 --writers-per-doc 1 --rate 50 --duration 5 --hold-ms 500"
  "live1000|--docs 1000 --per-doc 4 --writers-per-doc 1 --rate 1 --duration 10 --hold-ms 1000"
  "idle5000|--docs 50 --per-doc 100 --rate 0 --hold-ms 3000"
  "idle10000|--docs 100 --per-doc 100 --rate 0 --hold-ms 3000"
  "idle10000x10|--docs 1000 --per-doc 10 --rate 0 --hold-ms 3000 --max-seconds 300"
  "hist100k|hist"
)
start() {  # prints the pid; sets url/create/provider
  if [ "$SERVER" = hocus ]; then
    port=${PORT:-1235}
    pid=$(ANCHORS=$ANCHORS sh "$ANCHORS/start-hocus.sh" "$port")
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    url="ws://127.0.0.1:$port"; create=""; provider=hocuspocus
  else
    port=${PORT:-8100}
    data=$(mktemp -d)
    "$here/.venv/bin/cocanvas" serve --port "$port" --data-dir "$data" > "$data/log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
    url="ws://127.0.0.1:$port/ws"; create="--create http://127.0.0.1:$port/api/canvases"; provider=y-websocket
  fi
}
stop() {
  kill "$pid" 2>/dev/null; for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
}
summary() {
  python3 -c '
import json,sys
name=sys.argv[1]
for line in sys.stdin:
    try: d=json.loads(line)
    except ValueError: continue
    keep={k:d.get(k) for k in ("sent_per_s","delivered_ratio","delivered_per_s_in_load","connected","server_rss_kb_per_conn","error") if k in d}
    load=d.get("server_load") or d.get("server_hold") or {}
    keep["srv_cpu"]=load.get("cpu_pct_total")
    lat=d.get("latency_ms") or {}
    print(name, "p50/p99", lat.get("p50"), lat.get("p99"), json.dumps(keep)[:300], "aborted" if d.get("aborted") else "")
' "$1"
}
for row in "${rows[@]}"; do
  name=${row%%|*}; args=${row#*|}
  [[ "$name" =~ $ONLY ]] || continue
  start
  (cd "$BENCH" && node bench.js fanout --provider $provider --url $url $create --clients 10 --writers 2 --rate 10 --duration 3 >/dev/null 2>&1)
  if [ "$args" = hist ]; then
    # Hocuspocus has no create endpoint: hist.mjs then needs a room name of its own.
    room_arg=$create; [ "$SERVER" = hocus ] && room_arg="--room hist-$RANDOM$RANDOM"
    line=$(cd "$BENCH" && node hist.mjs --provider $provider --url $url $room_arg --writers 20 --updates 100000 --rate 900 --label "$LABEL/$name" 2>/dev/null | tail -1)
    echo "$line" >> "$OUT"; echo "$line" | summary "$name"
    room=$(echo "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("room",""))')
    token=$(echo "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); print((d.get("params") or {}).get("token","") or d.get("token",""))')
    if [ "$SERVER" = hocus ]; then
      echo "$name: Hocuspocus persists nothing: no cold join after a restart" ; stop; continue
    fi
    store_kb=$(du -sk "$data" | cut -f1)
    kill "$pid"; wait "$pid" 2>/dev/null
    "$here/.venv/bin/cocanvas" serve --port "$port" --data-dir "$data" >> "$data/log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
    line=$(cd "$BENCH" && node coldjoin.mjs --provider $provider --url $url --room "$room" --token "$token" --n 5 --label "$LABEL/coldjoin" 2>/dev/null | tail -1)
    line=$(echo "$line" | python3 -c "import json,sys; d=json.load(sys.stdin); d['store_kb']=$store_kb; print(json.dumps(d))")
    echo "$line" >> "$OUT"; echo "coldjoin $line" | cut -c1-400
  else
    (cd "$BENCH" && node scale.mjs --provider $provider --url $url $create $args --pid "$pid" --label "$LABEL/$name" --out "$OUT" 2>/dev/null) | summary "$name"
  fi
  stop
  [ "$SERVER" = cocanvas ] && { [ -n "${KEEP_LOGS:-}" ] && cp "$data/log" "$(dirname "$OUT")/$LABEL-$name.log"; rm -rf "$data"; }
done
