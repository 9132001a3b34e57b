#!/usr/bin/env bash
# Runs ../shared/bench scenarios against a fresh CoCanvas node per run (as run-anchors.sh does for
# the anchors): start, warm up, measure, stop. Usage:
#   scripts/bench.sh [LABEL] [scenario regex]      env: BENCH=/tmp/bench, PORT=8100, extra COCANVAS_* vars
# Prints one summary line per run and appends the JSON lines to results/<LABEL>.jsonl.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
PORT=${PORT:-8100}
LABEL=${1:-cocanvas}
ONLY=${2:-.}
OUT=${OUT:-$here/results/$LABEL.jsonl}
source "$here/scripts/bench-env.sh"

source "$here/scripts/bench-runs.sh"
for run in "${runs[@]}"; do
  name=${run%%|*}; args=${run#*|}
  [[ "$name" =~ $ONLY ]] || continue
  data=$(mktemp -d)
  "$here/.venv/bin/cocanvas" serve --port "$PORT" --data-dir "$data" > "$data/log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  common="--provider y-websocket --url ws://127.0.0.1:$PORT/ws --create http://127.0.0.1:$PORT/api/canvases --pid $pid"
  (cd "$BENCH" && node bench.js fanout $common --clients 10 --writers 2 --rate 10 --duration 3 >/dev/null 2>&1)
  (cd "$BENCH" && node bench.js $args $common --label "$LABEL/$name" --out "$OUT" 2>/dev/null) | python3 "$here/scripts/summary_line.py" "$name"
  kill "$pid" 2>/dev/null; for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; kill -9 "$pid" 2>/dev/null
  [ -n "${KEEP_LOGS:-}" ] && cp "$data/log" "$(dirname "$OUT")/$LABEL-$name.log"; rm -rf "$data"
done
