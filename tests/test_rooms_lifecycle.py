"""Rooms load once, unload when idle, and leave nothing behind."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from server.broker.memory import MemoryBroker
from server.canvas import templates
from server.room import Room
from server.rooms import Rooms
from server.store.base import CanvasRecord
from server.store.sqlite import SQLiteStore


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def test_opening_and_closing_2000_canvases_leaves_memory_flat(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    await store.start()
    broker = MemoryBroker()
    await broker.start()
    rooms = Rooms(store, broker, idle_seconds=0)
    update = templates.initial_update("t", "business-model", [], False, 0.0)
    ids = [f"c{i}" for i in range(2000)]
    for cid in ids:
        await store.create_canvas(CanvasRecord(cid, "t", "business-model", 0.0), update)

    async def cycle(batch: list[str]) -> None:
        for cid in batch:
            room = await rooms.acquire(cid)
            assert "key-partners" in room.doc.get("blocks", type=__import__("pycrdt").Map)
            rooms.release(room)
        while len(rooms) or rooms._unloading:
            await asyncio.sleep(0.01)

    try:
        await cycle(ids[:500])  # warm-up: allocator pools, SQLite page cache
        gc.collect()
        base = rss_kb()
        await cycle(ids[500:])
        gc.collect()
        grown = rss_kb() - base
        live_rooms = [o for o in gc.get_objects() if isinstance(o, Room)]
        print(
            f"\nRSS after 500 canvases {base} KB; after 1500 more: {grown:+} KB; live rooms {len(live_rooms)}"
        )
        assert rooms.loads == 2000
        assert len(rooms) == 0
        assert live_rooms == []  # every room, its doc and its subscriptions were released
        # A leaked room keeps its doc (several KB): 1500 of them would be well past this bound.
        assert grown < 6_000, f"memory grew by {grown} KB over 1500 canvases"
    finally:
        await broker.close()
        await store.close()


async def test_idle_room_unloads_and_reloads_with_its_content(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    await store.start()
    broker = MemoryBroker()
    await broker.start()
    rooms = Rooms(store, broker, idle_seconds=0.05)
    await store.create_canvas(
        CanvasRecord("c", "t", "business-model", 0.0),
        templates.initial_update("t", "business-model", [], False, 0.0),
    )
    try:
        room = await rooms.acquire("c")
        first = room.doc.get_update()
        rooms.release(room)
        await asyncio.sleep(0.3)
        assert rooms.get_loaded("c") is None
        again = await rooms.acquire("c")
        assert again is not room
        assert again.doc.get_update() == first or len(again.doc.get_update()) > 0
        rooms.release(again)
    finally:
        await rooms.close_all()
        await broker.close()
        await store.close()
