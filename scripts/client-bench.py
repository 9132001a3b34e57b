#!/usr/bin/env python3
"""Web client benchmark (not a test, not timed in CI): what one remote edit costs the browser.

A real server, Debian's Chromium through Playwright, a canvas with 200 notes from three
organizations, 20 fit links between them (``--links``: Key Partners -> Key Resources, drawn
over the board), 30 live cursors (real y-websocket clients sending awareness) and one remote
text edit every 100 ms. Measured in the page while the edits run:

* frame time: requestAnimationFrame deltas (p50 / p95 / max), and, from Chromium's performance
  trace (``browser.start_tracing``), the renderer main thread's task durations (p95, > 16 ms);
* DOM nodes touched per remote edit: distinct nodes in MutationObserver records on the board,
  outside the cursor layer (cursors move on their own), divided by the number of edits;
* Chromium's own counters (CDP ``Performance.getMetrics``): style recalcs, layouts and their
  durations, script time, per edit.

    .venv/bin/python scripts/client-bench.py                       # the client in client/dist
    .venv/bin/python scripts/client-bench.py --dist /tmp/old/dist --label "main at 7977086"

Results go to stdout (and ``--json FILE``); docs/performance.md ("Web client") keeps them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pycrdt import Map, Text  # noqa: E402

from server.auth import Tokens, load_or_create_secret, new_user_id  # noqa: E402
from server.session import Identity  # noqa: E402
from tests.support import ServerProcess, YClient  # noqa: E402

SECRET = "3f9c1e7a5b2d4086e1c3a5b7d9f0e2c4a6b8d0f1e3c5a7b9d1f3e5c7a9b1d3f5"
BLOCKS = [
    "key-partners",
    "key-activities",
    "key-resources",
    "value-propositions",
    "customer-relationships",
    "channels",
    "customer-segments",
    "cost-structure",
    "revenue-streams",
]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

PAGE_PROBE = """() => {
  const b = { frames: [], touched: 0, batches: 0 };
  window.__bench = b;
  let last = performance.now();
  const tick = (t) => { b.frames.push(t - last); last = t; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  const inCursors = (n) => { const e = n.nodeType === 1 ? n : n.parentElement; return !!e && !!e.closest('.cursor-layer'); };
  new MutationObserver((recs) => {
    const seen = new Set();
    for (const r of recs) {
      if (inCursors(r.target)) continue;
      seen.add(r.target);
      r.addedNodes.forEach((n) => seen.add(n));
      r.removedNodes.forEach((n) => seen.add(n));
    }
    b.touched += seen.size;
    b.batches += 1;
  }).observe(document.getElementById('board'), { subtree: true, attributes: true, childList: true, characterData: true });
  b.reset = () => { b.frames.length = 0; b.touched = 0; b.batches = 0; last = performance.now(); };
}"""


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def main_thread_tasks(trace: bytes) -> list[float]:
    """Durations (ms) of top-level tasks on the renderer main thread, from a Chromium trace."""
    events = json.loads(trace).get("traceEvents", [])
    main: set[tuple[int, int]] = set()
    for e in events:
        if e.get("name") == "thread_name" and e.get("args", {}).get("name") == "CrRendererMain":
            main.add((e["pid"], e["tid"]))
    return [
        e["dur"] / 1000
        for e in events
        if e.get("name") in ("ThreadControllerImpl::RunTask", "RunTask")
        and e.get("ph") == "X"
        and (e.get("pid"), e.get("tid")) in main
        and "dur" in e
    ]


async def run(dist: Path, edits: int, cursors: int, notes: int, links: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    tmp = Path(tempfile.mkdtemp(prefix="client-bench-"))
    server = ServerProcess(
        tmp / "data", env={"COCANVAS_CLIENT_DIR": str(dist), "COCANVAS_SECRET": SECRET}
    ).start()
    clients: list[YClient] = []
    try:
        data = server.create_canvas(
            "Bench", "business-model", orgs=[{"name": n} for n in ("Acme", "Beta", "Gamma")]
        )
        cid = data["id"]
        orgs = [o["id"] for o in data["orgs"]]
        tokens = Tokens(load_or_create_secret(SECRET, server.data_dir))

        def token(name: str, org: str, role: str = "editor") -> str:
            return tokens.issue(
                cid, Identity(new_user_id(), name, org, role), 3600, now=time.time()
            )

        rnd = random.Random(7)
        seeder = await YClient(server.ws, cid, data["facilitator_token"]).connect()
        clients.append(seeder)
        with seeder.doc.transaction():
            for i in range(notes):
                org = orgs[i % 3]
                seeder.notes[f"n{i}"] = Map(
                    {
                        "block": BLOCKS[i % len(BLOCKS)],
                        "text": Text(f"idea {i} " + "word " * rnd.randint(0, 12)),
                        "org": org,
                        "author": f"u{i % 7}",
                        "author_name": f"Person {i % 7}",
                        "color": "#2f6fdb",
                        "x": rnd.random(),
                        "y": rnd.random(),
                        "created_at": 1_700_000_000_000 + i,
                    }
                )
        # Fit links (canvas/fit.py), once the notes they join exist: a key partner (i % 9 == 0)
        # provides the key resource two notes on (i % 9 == 2), so edits reach their ends too.
        pairs = [(f"n{k * 9}", f"n{k * 9 + 2}", orgs[(k * 9) % 3]) for k in range(notes // 9)]
        with seeder.doc.transaction():
            links_root = seeder.doc.get("links", type=Map)
            for k, (a, b, org) in enumerate(pairs[:links]):
                links_root[f"l{k}"] = Map(
                    {
                        "from": a,
                        "to": b,
                        "kind": "provides",
                        "strength": "essential" if k % 2 else "nice-to-have",
                        "org": org,
                        "author": "u0",
                        "author_name": "Person 0",
                        "created_at": 1_700_000_000 + k,
                    }
                )
        links = min(links, len(pairs))

        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            ctx = await browser.new_context(viewport={"width": 1600, "height": 1000})
            tok = token("Watcher", orgs[0])
            await ctx.add_init_script(
                f"window.localStorage.setItem('cocanvas:token:{cid}', {tok!r})"
            )
            page = await ctx.new_page()
            await page.goto(f"{server.http}/c/{cid}")
            await page.wait_for_function(
                f"document.querySelectorAll('.note').length >= {notes}", timeout=30_000
            )
            await page.wait_for_selector('#connection-status[data-state="connected"]')
            if links:
                await page.wait_for_function(
                    f"document.querySelectorAll('svg.fit-overlay line.fit-line').length >= {links}",
                    timeout=30_000,
                )

            for k in range(cursors):
                c = await YClient(
                    server.ws, cid, token(f"Cursor {k}", orgs[k % 3]), f"c{k}"
                ).connect()
                clients.append(c)
            editor = await YClient(server.ws, cid, token("Editor", orgs[1])).connect()
            clients.append(editor)
            stop = asyncio.Event()

            async def wander(c: YClient, k: int) -> None:
                r = random.Random(k)
                block = BLOCKS[k % len(BLOCKS)]
                while not stop.is_set():
                    if c.closed.is_set():
                        return
                    await c.set_awareness(
                        {
                            "user": {"id": "", "name": f"Cursor {k}", "org": orgs[k % 3]},
                            "cursor": {"block": block, "x": r.random(), "y": r.random()},
                            "editing": None,
                        }
                    )
                    await asyncio.sleep(0.3 + r.random() * 0.1)

            movers = [
                asyncio.create_task(wander(c, k)) for k, c in enumerate(clients[1 : cursors + 1])
            ]
            await page.wait_for_function(
                f"document.querySelectorAll('.remote-cursor').length >= {cursors}", timeout=30_000
            )
            await page.evaluate(PAGE_PROBE)
            cdp = await ctx.new_cdp_session(page)
            await cdp.send("Performance.enable")
            await asyncio.sleep(1.0)  # warm-up with cursors moving
            before = {
                m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]
            }
            await browser.start_tracing(page=page, categories=["toplevel", "devtools.timeline"])
            await page.evaluate("window.__bench.reset()")
            target = f"n{((edits - 1) * 37) % notes}"  # the last note edited
            t0 = time.perf_counter()
            for i in range(edits):
                # One remote edit: a character typed into one note (a different note each time).
                nid = f"n{(i * 37) % notes}"
                with editor.doc.transaction():
                    t = editor.notes[nid]["text"]
                    t.insert(len(str(t)), "x")
                await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.1 - time.perf_counter()))
            await page.wait_for_function(
                f"""() => {{ const t = document.querySelector('.note[data-note-id="{target}"] textarea');
                      return t && t.value.endsWith('x') }}""",
                timeout=10_000,
            )
            await asyncio.sleep(0.3)
            trace = await browser.stop_tracing()
            result = await page.evaluate(
                "({frames: window.__bench.frames, touched: window.__bench.touched, batches: window.__bench.batches})"
            )
            after = {
                m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]
            }
            stop.set()
            for m in movers:
                m.cancel()
            await asyncio.gather(*movers, return_exceptions=True)
            await browser.close()

        frames = [f for f in result["frames"] if f > 0]
        tasks = main_thread_tasks(trace)

        def per_edit(name: str, scale: float = 1.0) -> float:
            return round((after.get(name, 0) - before.get(name, 0)) * scale / edits, 3)

        return {
            "notes": notes,
            "links": links,
            "cursors": cursors,
            "edits": edits,
            "frame_ms_p50": round(pct(frames, 50), 2),
            "frame_ms_p95": round(pct(frames, 95), 2),
            "frame_ms_max": round(max(frames, default=0), 2),
            "frames": len(frames),
            "main_task_ms_p95": round(pct(tasks, 95), 2),
            "main_tasks_over_16ms": sum(1 for t in tasks if t > 16),
            "dom_nodes_touched_per_edit": round(result["touched"] / edits, 1),
            "style_recalcs_per_edit": per_edit("RecalcStyleCount"),
            "layouts_per_edit": per_edit("LayoutCount"),
            "layout_ms_per_edit": per_edit("LayoutDuration", 1000),
            "style_ms_per_edit": per_edit("RecalcStyleDuration", 1000),
            "script_ms_per_edit": per_edit("ScriptDuration", 1000),
            "mean_frame_ms": round(statistics.fmean(frames), 2) if frames else 0,
        }
    finally:
        for c in clients:
            try:
                await c.close()
            except Exception:  # noqa: BLE001 - best effort at the end of a benchmark
                pass
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dist", type=Path, default=ROOT / "client" / "dist")
    ap.add_argument("--label", default="this branch")
    ap.add_argument("--edits", type=int, default=100)
    ap.add_argument("--cursors", type=int, default=30)
    ap.add_argument("--notes", type=int, default=200)
    ap.add_argument("--links", type=int, default=20)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out = {
        "label": args.label,
        **asyncio.run(run(args.dist, args.edits, args.cursors, args.notes, args.links)),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
