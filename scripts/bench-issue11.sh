#!/usr/bin/env bash
# Every row of issue 11's table, CoCanvas and Hocuspocus alternated in the same minutes:
#   scripts/bench-issue11.sh TAG        -> results/TAG-{mine,hocus}[-scale|-2node].jsonl, log on stdout
# ROUNDS (default 2) rounds of the bench.js rows, SCALE_ROUNDS (default 1) of the scale rows, then the
# 100,000-update history (+ cold join after a restart, CoCanvas only: Hocuspocus keeps nothing) and two
# nodes (one Redis; CoCanvas on PostgreSQL). Needs /tmp/bench and /tmp/anchors (see docs/performance.md).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
TAG=${1:-issue11}
R=${ROUNDS:-2}; S=${SCALE_ROUNDS:-1}
cd "$here"
for r in $(seq "$R"); do
  echo "## round $r bench.js rows $(date -u +%T)"
  OUT=$here/results/$TAG-mine.jsonl scripts/bench.sh "mine-r$r" | sed 's/^/mine  /'
  OUT=$here/results/$TAG-hocus.jsonl scripts/bench-hocus.sh "hocus-r$r" | sed 's/^/hocus /'
done
for r in $(seq "$S"); do
  echo "## round $r scale rows $(date -u +%T)"
  for row in write1- write100- live1000 idle5000 idle10000; do
    OUT=$here/results/$TAG-mine-scale.jsonl SERVER=cocanvas scripts/bench-scale.sh "mine-r$r" "^$row" | sed 's/^/mine  /'
    OUT=$here/results/$TAG-hocus-scale.jsonl SERVER=hocus scripts/bench-scale.sh "hocus-r$r" "^$row" | sed 's/^/hocus /'
  done
done
echo "## history $(date -u +%T)"
OUT=$here/results/$TAG-mine-scale.jsonl SERVER=cocanvas scripts/bench-scale.sh mine hist | sed 's/^/mine  /'
OUT=$here/results/$TAG-hocus-scale.jsonl SERVER=hocus scripts/bench-scale.sh hocus hist | sed 's/^/hocus /'
echo "## two nodes $(date -u +%T)"
OUT=$here/results/$TAG-mine-2node.jsonl scripts/bench-2node.sh mine-2node 'fanout-c20|awareness' | sed 's/^/mine  /'
OUT=$here/results/$TAG-hocus-2node.jsonl HOCUS=1 scripts/bench-2node.sh hocus-2node 'fanout-c20|awareness' | sed 's/^/hocus /'
echo "## 1, 2, 3 nodes at a fixed load per node (one Redis) $(date -u +%T)"
for n in 1 2 3; do OUT=$here/results/$TAG-nodes.jsonl scripts/bench-nodes.sh nodes redis spread "$n" | sed "s/^/mine  n=$n /"; done
echo "## done $(date -u +%T)"
