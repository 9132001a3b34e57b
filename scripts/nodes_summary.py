"""Per-node CPU of scripts/bench-nodes.sh runs: one line per run (sticky runs: summed over the
concurrent canvases' windows, which overlap, so node CPU is the mean of what each saw)."""

import json
import sys
from collections import defaultdict

runs: dict[str, list[dict]] = defaultdict(list)
for line in open(sys.argv[1]):
    d = json.loads(line)
    parts = d["label"].split("/")
    runs["/".join(parts[:2])].append(d)
for label, ds in runs.items():
    per = [p["cpu_pct"] for p in ds[0]["server"]["per_pid"]]
    if len(ds) > 1:
        per = [
            round(sum(d["server"]["per_pid"][i]["cpu_pct"] for d in ds) / len(ds), 1)
            for i in range(len(per))
        ]
    lat = [d["latency_ms"] for d in ds]
    p50 = max(x["p50"] for x in lat)
    p99 = max(x["p99"] for x in lat)
    ratio = min(d["delivered_ratio"] for d in ds)
    conv = all(d["convergence"]["converged"] for d in ds)
    print(f"{label}: cpu per pid {per} p50 {p50} p99 {p99} delivered {ratio} converged {conv}")
