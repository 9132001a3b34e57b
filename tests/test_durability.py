"""The canvas survives restarts, kill -9 and shutdowns: the store is written before broadcast."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx

from tests.support import ServerProcess, YClient


async def test_restart_keeps_every_canvas_intact(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    canvases = [
        server.create_canvas(title=f"c{i}", template=t)
        for i, t in enumerate(["business-model", "value-proposition", "partner-co-creation"])
    ]
    views: dict[str, dict[str, str]] = {}
    for i, canvas in enumerate(canvases):
        c = await YClient(server.ws, canvas["id"], canvas["facilitator_token"]).connect()
        for j in range(30):
            c.add_note(f"n{j}", f"canvas {i} note {j}")
        with c.doc.transaction():
            c.notes["n0"]["text"].insert(0, "edited ")
            del c.notes["n1"]
        await asyncio.sleep(0.2)
        views[canvas["id"]] = c.note_texts()
        await c.close()
    server.stop()

    again = ServerProcess(tmp_path / "data", port=server.port).start()
    try:
        listed = httpx.get(again.http + "/api/canvases").json()
        assert {c["id"] for c in listed} == {c["id"] for c in canvases}
        for canvas in canvases:
            c = await YClient(again.ws, canvas["id"], canvas["facilitator_token"]).connect()
            assert c.note_texts() == views[canvas["id"]]
            assert c.note_texts()["n0"].startswith("edited ")
            assert len(c.doc.get("blocks", type=__import__("pycrdt").Map)) > 0
            await c.close()
    finally:
        again.stop()


async def test_kill9_loses_nothing_any_other_client_received(tmp_path: Path) -> None:
    """Every update another client saw before the kill is present after restart."""
    server = ServerProcess(tmp_path / "data").start()
    canvas = server.create_canvas()
    writers = [
        await YClient(server.ws, canvas["id"], canvas["facilitator_token"], f"w{i}").connect()
        for i in range(3)
    ]
    observer = await YClient(
        server.ws, canvas["id"], canvas["facilitator_token"], "observer"
    ).connect()

    async def write(c: YClient, prefix: str) -> None:
        i = 0
        with contextlib.suppress(Exception):
            while not c.closed.is_set():
                c.add_note(f"{prefix}-{i}", f"{prefix} {i}")
                i += 1
                await asyncio.sleep(0.002)

    tasks = [asyncio.create_task(write(w, w.name)) for w in writers]
    await observer.wait_for(lambda: len(observer.notes) >= 150, timeout=20)
    server.kill()  # SIGKILL, mid-write
    await asyncio.wait_for(observer.closed.wait(), 5)
    seen = set(observer.notes.keys())
    for t in tasks:
        t.cancel()
    assert len(seen) >= 150

    again = ServerProcess(tmp_path / "data", port=server.port).start()
    try:
        fresh = await YClient(
            again.ws, canvas["id"], canvas["facilitator_token"], "fresh"
        ).connect()
        missing = seen - set(fresh.notes.keys())
        assert not missing, (
            f"{len(missing)} updates seen by another client were lost: {sorted(missing)[:5]}"
        )
        await fresh.close()
    finally:
        again.stop()
        for w in writers:
            with contextlib.suppress(Exception):
                await w.close()


async def test_graceful_shutdown_closes_sockets_with_1012_and_keeps_edits(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    canvas = server.create_canvas()
    c = await YClient(server.ws, canvas["id"], canvas["facilitator_token"]).connect()
    for j in range(20):
        c.add_note(f"n{j}", "x")
    await asyncio.sleep(0.2)
    # uvicorn re-raises SIGTERM after a graceful shutdown, so the exit status names the signal.
    assert server.stop() in (0, -15)
    assert "stopped" in server.log()
    await asyncio.wait_for(c.closed.wait(), 5)
    assert c.close_code == 1012
    again = ServerProcess(tmp_path / "data", port=server.port).start()
    try:
        d = await YClient(again.ws, canvas["id"], canvas["facilitator_token"]).connect()
        assert len(d.notes) == 20
        await d.close()
    finally:
        again.stop()
