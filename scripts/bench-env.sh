# Sourced by every bench script once it has set OUT: where the harness and the anchors are, and
# the server settings a benchmark needs. One place, so the scripts cannot drift apart.
# shellcheck shell=bash
BENCH=${BENCH:-/tmp/bench}
ANCHORS=${ANCHORS:-/tmp/anchors}
mkdir -p "$(dirname "$OUT")"
if [ ! -d "$BENCH/node_modules" ]; then
  rm -rf "$BENCH" && cp -r "$here/../shared/bench" "$BENCH" && (cd "$BENCH" && npm ci --no-audit --no-fund >/dev/null)
fi
# every node of a run must share the secret (multi-node runs start several)
export COCANVAS_SECRET=${COCANVAS_SECRET:-9dfc58486d77d62101f7ce7610af004e3440087b7c0d9f2d56dc68c99fbad0b4}
# the harness runs every client from 127.0.0.1: per-address limits would throttle it
export COCANVAS_RATE_MESSAGES_PER_S=${COCANVAS_RATE_MESSAGES_PER_S:-100000}
export COCANVAS_RATE_CONNECTIONS_PER_S=${COCANVAS_RATE_CONNECTIONS_PER_S:-100000}
export COCANVAS_MAX_CONNECTIONS_PER_CANVAS=${COCANVAS_MAX_CONNECTIONS_PER_CANVAS:-5000}
# the harness connects every client with one token
export COCANVAS_MAX_CONNECTIONS_PER_IDENTITY=${COCANVAS_MAX_CONNECTIONS_PER_IDENTITY:-4999}
export COCANVAS_LOG_LEVEL=${COCANVAS_LOG_LEVEL:-warning}
