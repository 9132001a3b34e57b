#!/usr/bin/env bash
# Issue 8 (validating every update): what the structural validation costs honest traffic, and what
# hostile frames cost everyone else. Usage:
#   scripts/bench-hostile.sh fanout  [ROUNDS]   the fan-out rows, interleaved per row: before, after, Hocuspocus
#   scripts/bench-hostile.sh profile            py-spy over one fanout C=100 run of this tree (needs py-spy in .venv)
#   scripts/bench-hostile.sh hostile [ROUNDS]   fanout C=20 while a viewer sends hostile frames (none, a, b, c), before and after
#   scripts/bench-hostile.sh stall              the server's time per hostile frame, attacker alone (round trip of one frame)
# env: BEFORE=/tmp/cc-before (a worktree of a50cd22 with its own .venv), AFTER (default: this tree; pin it to a
#      worktree of one commit with its own .venv when others commit meanwhile), BENCH=/tmp/bench, ANCHORS=/tmp/anchors,
#      KEEP_LOGS=1 to keep the server logs in results/. Results: results/issue8-*.jsonl, logs results/issue8-*.log.
# The hostile scenario keeps the per-connection message and byte rates at their defaults (200 msg/s,
# 4 MiB/s, burst 2 s); everything runs from one machine, so the per-address connection rate is
# lifted and the attacker connects from 127.0.0.2 (its own per-address message bucket).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
BEFORE=${BEFORE:-/tmp/cc-before}
AFTER=${AFTER:-$here}
BENCH=${BENCH:-/tmp/bench}
ANCHORS=${ANCHORS:-/tmp/anchors}
MODE=${1:-fanout}
ROUNDS=${2:-2}
RES=$here/results
mkdir -p "$RES"
if [ ! -d "$BENCH/node_modules" ]; then
  rm -rf "$BENCH" && cp -r "$here/../shared/bench" "$BENCH" && (cd "$BENCH" && npm ci --no-audit --no-fund >/dev/null)
fi
COCANVAS_SECRET=${COCANVAS_SECRET:-$(python3 -c 'import secrets; print(secrets.token_hex(32))')}
export COCANVAS_SECRET
source "$here/scripts/bench-runs.sh"
stamp() { date -u +%H:%M:%S; }

if [ "$MODE" = fanout ]; then
  rows="fanout-c20 fanout-c100 awareness-c50 join-n5000-k20-seq"
  for round in $(seq "${FIRST_ROUND:-1}" "$ROUNDS"); do
    for row in $rows; do
      echo "# round $round $row $(stamp)"
      OUT=$RES/issue8-before.jsonl PORT=8101 bash "$BEFORE/scripts/bench.sh" "before-r$round" "^$row\$"
      OUT=$RES/issue8-after.jsonl PORT=8102 bash "$AFTER/scripts/bench.sh" "after-r$round" "^$row\$"
      OUT=$RES/issue8-hocus.jsonl PORT=1235 bash "$here/scripts/bench-hocus.sh" "hocus-r$round" "^$row\$"
    done
  done
  exit 0
fi

# -- one server of a tree, fresh data dir ---------------------------------------------------------
start_server() { # tree port logfile [env...]
  local tree=$1 port=$2 logf=$3; shift 3
  data=$(mktemp -d)
  env "$@" COCANVAS_LOG_LEVEL=${COCANVAS_LOG_LEVEL:-info} "$tree/.venv/bin/cocanvas" serve --port "$port" --data-dir "$data" > "$logf" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
}
stop_server() {
  kill "$pid" 2>/dev/null; for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; kill -9 "$pid" 2>/dev/null
  rm -rf "$data"
}

if [ "$MODE" = profile ]; then
  logf=$RES/issue8-profile.log
  start_server "$AFTER" 8103 "$logf" COCANVAS_RATE_MESSAGES_PER_S=100000 COCANVAS_RATE_CONNECTIONS_PER_S=100000 \
    COCANVAS_MAX_CONNECTIONS_PER_CANVAS=5000 COCANVAS_MAX_CONNECTIONS_PER_IDENTITY=4999 COCANVAS_LOG_LEVEL=warning
  common="--provider y-websocket --url ws://127.0.0.1:8103/ws --create http://127.0.0.1:8103/api/canvases --pid $pid"
  (cd "$BENCH" && node bench.js fanout $common --clients 10 --writers 2 --rate 10 --duration 3 >/dev/null 2>&1)
  "$here/.venv/bin/py-spy" record --nonblocking -r 250 -f raw -o "$RES/issue8-profile.folded" --pid "$pid" -d 14 >/dev/null 2>&1 &
  spy=$!
  sleep 1
  (cd "$BENCH" && node bench.js fanout --clients 100 --writers 5 --rate 20 --duration 10 $common --label profile/fanout-c100 \
    --out "$RES/issue8-profile.jsonl" 2>/dev/null) | python3 "$here/scripts/summary_line.py" fanout-c100-profiled
  wait "$spy"
  stop_server
  python3 "$here/scripts/hostile_frames.py" profile "$RES/issue8-profile.folded"
  exit 0
fi

# -- hostile frames ---------------------------------------------------------------------------------
# defaults a deployment has, except the per-address connection rate (and the per-participant cap: the
# harness connects all 20 honest clients with the facilitator's token)
hostile_env=(COCANVAS_RATE_CONNECTIONS_PER_S=100000 COCANVAS_MAX_CONNECTIONS_PER_IDENTITY=999)
run_hostile() { # tree label attack round
  local tree=$1 label=$2 attack=$3 round=$4 port=8104
  local logf=$RES/issue8-hostile-$label-$attack-r$round.log
  start_server "$tree" $port "$logf" "${hostile_env[@]}"
  # canvas with one organization, a viewer invite redeemed: the attacker's token
  read -r canvas ftoken vtoken < <(python3 "$here/scripts/hostile_frames.py" setup "http://127.0.0.1:$port")
  # warm-up on a canvas of its own (its notes must not be in the measured one)
  (cd "$BENCH" && node bench.js fanout --clients 10 --writers 2 --rate 10 --duration 3 --provider y-websocket \
    --url ws://127.0.0.1:$port/ws --create http://127.0.0.1:$port/api/canvases >/dev/null 2>&1)
  # the honest clients connect first; the attacker starts 2.5 s later and covers the 10 s of load
  local atk=""
  if [ "$attack" != none ]; then
    (sleep 2.5; exec "$here/.venv/bin/python" "$here/scripts/hostile_frames.py" attack "ws://127.0.0.1:$port/ws/$canvas" "$vtoken" "$attack" \
      --seconds 11 --out "$RES/issue8-attacker.jsonl" --label "$label/$attack/r$round") &
    atk=$!
  fi
  (cd "$BENCH" && node bench.js fanout --clients 20 --writers 5 --rate 20 --duration 10 --provider y-websocket \
    --url ws://127.0.0.1:$port/ws --room "$canvas" --params "token=$ftoken" --pid "$pid" --max-seconds 60 \
    --label "$label/$attack/r$round" --meta "attack=$attack&tree=$label&round=$round" --out "$RES/issue8-hostile.jsonl" 2>/dev/null) \
    | python3 "$here/scripts/summary_line.py" "$label/$attack/r$round"
  [ -n "$atk" ] && wait "$atk"
  stop_server
  echo "  log: refused $(grep -c 'refused' "$logf") Traceback $(grep -c Traceback "$logf") ERROR $(grep -c ERROR "$logf")"
}

if [ "$MODE" = hostile ]; then
  ATTACKS=${ATTACKS:-none a b c}
  for round in $(seq "${FIRST_ROUND:-1}" "$ROUNDS"); do
    for attack in $ATTACKS; do
      echo "# round $round attack $attack $(stamp)"
      run_hostile "$BEFORE" before "$attack" "$round"
      run_hostile "$AFTER" after "$attack" "$round"
    done
  done
  exit 0
fi

if [ "$MODE" = stall ]; then
  for tree in before after; do
    dir=$AFTER; [ $tree = before ] && dir=$BEFORE
    for attack in a b c; do
      logf=$RES/issue8-stall-$tree-$attack.log
      start_server "$dir" 8105 "$logf" "${hostile_env[@]}"
      read -r canvas ftoken vtoken < <(python3 "$here/scripts/hostile_frames.py" setup "http://127.0.0.1:8105")
      "$here/.venv/bin/python" "$here/scripts/hostile_frames.py" attack "ws://127.0.0.1:8105/ws/$canvas" "$vtoken" "$attack" \
        --frames "${FRAMES:-20}" --gap 0.3 --out "$RES/issue8-stall.jsonl" --label "stall/$tree/$attack"
      stop_server
    done
  done
  exit 0
fi
echo "unknown mode $MODE" >&2; exit 2
