#!/usr/bin/env bash
# The Hocuspocus anchor under the same procedure as scripts/bench.sh (fresh server per run,
# warm-up, measure), so both can be interleaved in one session. Needs ../shared/bench/anchors/install.sh.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH:-/tmp/bench}
ANCHORS=${ANCHORS:-/tmp/anchors}
PORT=${PORT:-1235}
LABEL=${1:-hocuspocus}
ONLY=${2:-.}
OUT=${OUT:-$here/results/$LABEL.jsonl}
mkdir -p "$(dirname "$OUT")"
runs=(
  "fanout-c20|fanout --clients 20 --writers 5 --rate 20 --duration 10"
  "fanout-c100|fanout --clients 100 --writers 5 --rate 20 --duration 10"
  "awareness-c50|awareness --clients 50 --hz 10 --duration 10"
  "join-n5000-k20-seq|join --notes 5000 --joiners 20"
  "conns-c1000|conns --clients 1000 --hold-ms 3000"
)
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
