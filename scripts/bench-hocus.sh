#!/usr/bin/env bash
# The Hocuspocus anchor under the same procedure as scripts/bench.sh (fresh server per run,
# warm-up, measure), so both can be interleaved in one session. Needs ../shared/bench/anchors/install.sh.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
PORT=${PORT:-1235}
LABEL=${1:-hocuspocus}
ONLY=${2:-.}
OUT=${OUT:-$here/results/$LABEL.jsonl}
source "$here/scripts/bench-env.sh"
source "$here/scripts/bench-runs.sh"
for run in "${runs[@]}"; do
  name=${run%%|*}; args=${run#*|}
  [[ "$name" =~ $ONLY ]] || continue
  pid=$(ANCHORS=$ANCHORS sh "$ANCHORS/start-hocus.sh" "$PORT")
  sleep 1.5
  common="--provider hocuspocus --url ws://127.0.0.1:$PORT --pid $pid"
  (cd "$BENCH" && node bench.js fanout $common --clients 10 --writers 2 --rate 10 --duration 3 >/dev/null 2>&1)
  (cd "$BENCH" && node bench.js $args $common --label "$LABEL/$name" --out "$OUT" 2>/dev/null) | python3 "$here/scripts/summary_line.py" "$name"
  kill "$pid" 2>/dev/null; sleep 0.5; kill -9 "$pid" 2>/dev/null
done
