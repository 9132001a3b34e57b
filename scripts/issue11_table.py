"""Issue 11's comparison table from scripts/bench-issue11.sh's JSON lines:
``python scripts/issue11_table.py TAG`` prints markdown rows, CoCanvas vs Hocuspocus, each cell the
runs' values in order (rounds separated by " · ") and the ratio of their medians."""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

Pick = Callable[[dict[str, Any]], float | None]


def load(path: Path) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        name = (d.get("label") or "").split("/")[-1]
        rows[name].append(d)
    return rows


def g(d: dict[str, Any], *path: str) -> float | None:
    cur: Any = d
    for p in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur if isinstance(cur, (int, float)) else None


def cell(runs: list[dict[str, Any]], pick: Pick) -> tuple[str, float | None]:
    vals = [v for v in (pick(r) for r in runs) if v is not None]
    if not vals:
        return "—", None
    return " · ".join(f"{v:.3g}" for v in vals), statistics.median(vals)


ROWS: list[tuple[str, str, Pick, str]] = [
    ("fanout C=20 p50 ms", "fanout-c20", lambda d: g(d, "latency_ms", "p50"), "lower"),
    ("fanout C=20 p99 ms", "fanout-c20", lambda d: g(d, "latency_ms", "p99"), "lower"),
    ("fanout C=100 p50 ms", "fanout-c100", lambda d: g(d, "latency_ms", "p50"), "lower"),
    ("fanout C=100 p99 ms", "fanout-c100", lambda d: g(d, "latency_ms", "p99"), "lower"),
    ("awareness C=50 p50 ms", "awareness-c50", lambda d: g(d, "latency_ms", "p50"), "lower"),
    ("awareness C=50 p99 ms", "awareness-c50", lambda d: g(d, "latency_ms", "p99"), "lower"),
    (
        "awareness C=50 server CPU %",
        "awareness-c50",
        lambda d: g(d, "server", "cpu_pct_total"),
        "lower",
    ),
    (
        "join 5,000 notes: synced p50 ms",
        "join-n5000-k20-seq",
        lambda d: g(d, "time_to_synced_ms", "p50"),
        "lower",
    ),
    (
        "join 5,000 notes: bytes",
        "join-n5000-k20-seq",
        lambda d: g(d, "bytes_received", "p50"),
        "lower",
    ),
    ("1,000 connections KB each", "conns-c1000", lambda d: g(d, "server_rss_kb_per_conn"), "lower"),
]
for rate in (500, 1000, 2000, 3000):
    ROWS.append(
        (
            f"one canvas, {rate}/s offered: delivered/s",
            f"write1-r{rate}",
            lambda d: g(d, "delivered_per_s_in_load"),
            "higher",
        )
    )
    ROWS.append(
        (
            f"one canvas, {rate}/s offered: p50 ms",
            f"write1-r{rate}",
            lambda d: g(d, "latency_ms", "p50"),
            "lower",
        )
    )
for rate in (10, 25, 50):
    ROWS.append(
        (
            f"100 canvases, {rate * 100}/s offered: delivered/s",
            f"write100-r{rate}",
            lambda d: g(d, "delivered_per_s_in_load"),
            "higher",
        )
    )
    ROWS.append(
        (
            f"100 canvases, {rate * 100}/s offered: p50 ms",
            f"write100-r{rate}",
            lambda d: g(d, "latency_ms", "p50"),
            "lower",
        )
    )
ROWS += [
    ("1,000 live canvases × 4: p50 ms", "live1000", lambda d: g(d, "latency_ms", "p50"), "lower"),
    ("1,000 live canvases × 4: p99 ms", "live1000", lambda d: g(d, "latency_ms", "p99"), "lower"),
    (
        "1,000 live canvases × 4: server CPU %",
        "live1000",
        lambda d: g(d, "server_load", "cpu_pct_total"),
        "lower",
    ),
    (
        "5,000 idle connections KB each",
        "idle5000",
        lambda d: g(d, "server_rss_kb_per_conn"),
        "lower",
    ),
    (
        "10,000 idle connections KB each",
        "idle10000",
        lambda d: g(d, "server_rss_kb_per_conn"),
        "lower",
    ),
    (
        "100,000-update history: all received s",
        "hist100k",
        lambda d: g(d, "all_received_s"),
        "lower",
    ),
    ("100,000-update history: doc bytes", "hist100k", lambda d: g(d, "doc_update_bytes"), "lower"),
    ("two nodes fanout C=20 p50 ms", "fanout-c20", lambda d: g(d, "latency_ms", "p50"), "lower2"),
    ("two nodes fanout C=20 p99 ms", "fanout-c20", lambda d: g(d, "latency_ms", "p99"), "lower2"),
    (
        "two nodes awareness C=50 p50 ms",
        "awareness-c50",
        lambda d: g(d, "latency_ms", "p50"),
        "lower2",
    ),
]


def main() -> None:
    tag = sys.argv[1]
    res = Path("results")
    mine = load(res / f"{tag}-mine.jsonl") | load(res / f"{tag}-mine-scale.jsonl")
    hocus = load(res / f"{tag}-hocus.jsonl") | load(res / f"{tag}-hocus-scale.jsonl")
    mine2, hocus2 = load(res / f"{tag}-mine-2node.jsonl"), load(res / f"{tag}-hocus-2node.jsonl")
    print("| row | CoCanvas | Hocuspocus | ratio |")
    print("|---|---|---|---|")
    for title, name, pick, better in ROWS:
        m, h = (mine2, hocus2) if better == "lower2" else (mine, hocus)
        mc, mv = cell(m.get(name, []), pick)
        hc, hv = cell(h.get(name, []), pick)
        ratio = f"{mv / hv:.2f}" if mv is not None and hv else "—"
        print(f"| {title} | {mc} | {hc} | {ratio} |")
    for d in load(res / f"{tag}-mine-scale.jsonl").get("coldjoin") or []:
        joins = d.get("joins") or []
        print(f"\ncold join after restart: {json.dumps(joins)[:400]}; store {d.get('store_kb')} KB")


if __name__ == "__main__":
    main()
