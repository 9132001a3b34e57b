"""One line of a bench.js JSON result, for the bench scripts."""

import json
import sys

d = json.loads(sys.stdin.read())
name = sys.argv[1]
lat = d.get("latency_ms") or {}
srv = d.get("server", {})
extra = ""
for key in ("time_to_payload_ms", "time_to_synced_ms", "time_to_all_notes_ms"):
    if key in d:
        extra += f" {key} p50/p99 {d[key].get('p50')}/{d[key].get('p99')}"
if "server_rss_kb_per_conn" in d:
    extra = f" KB/conn {d['server_rss_kb_per_conn']} connect {d.get('connect', {}).get('ok')}"
print(
    name,
    "p50/p95/p99/max",
    lat.get("p50"),
    lat.get("p95"),
    lat.get("p99"),
    lat.get("max"),
    "delivered",
    d.get("delivered_ratio"),
    "srvCPU",
    srv.get("cpu_pct_total"),
    "harnessCPU",
    d.get("harness", {}).get("cpu_pct"),
    extra,
)
