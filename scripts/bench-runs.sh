# The benchmark rows of issue 2 (sourced by the bench scripts): "label|bench.js arguments".
# shellcheck shell=bash
runs=(
  "fanout-c20|fanout --clients 20 --writers 5 --rate 20 --duration 10"
  "fanout-c100|fanout --clients 100 --writers 5 --rate 20 --duration 10"
  "awareness-c50|awareness --clients 50 --hz 10 --duration 10"
  "join-n5000-k20-seq|join --notes 5000 --joiners 20"
  "conns-c1000|conns --clients 1000 --hold-ms 3000"
)
