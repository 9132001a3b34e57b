"""One canvas in a real Room, in-process: PolicyGate, a SQLite store in a temp dir, the memory
broker — the parts a rule or the message path needs, without a server process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from server.broker.memory import MemoryBroker, MemoryHub
from server.canvas import templates
from server.policy import PolicyGate
from server.room import Room
from server.rooms import Rooms
from server.store.base import CanvasRecord
from server.store.sqlite import SQLiteStore


@contextlib.asynccontextmanager
async def canvas_rooms(
    tmp_path: Path,
    *,
    orgs: tuple[str, ...] = ("Alpha",),
    title: str = "P",
    protect: bool = True,
    nodes: int = 1,
) -> AsyncIterator[list[Room]]:
    """A partner co-creation canvas "c", loaded on ``nodes`` nodes sharing one store."""
    store = SQLiteStore(tmp_path / "db.sqlite", fsync=False)
    await store.start()
    hub = MemoryHub()
    brokers = [MemoryBroker(f"node-{i}", hub) for i in range(nodes)]
    for b in brokers:
        await b.start()
    initial = templates.initial_update(
        title, "partner-co-creation", templates.make_orgs([(o, None) for o in orgs]), protect, 1.0
    )
    await store.create_canvas(
        CanvasRecord("c", title, "partner-co-creation", 1.0, {"protect_notes": protect}), initial
    )
    all_rooms = [
        Rooms(store, b, gate_factory=PolicyGate, room_options={"awareness_tick_s": 0})
        for b in brokers
    ]
    try:
        yield [await r.acquire("c") for r in all_rooms]
    finally:
        for r in all_rooms:
            await r.close_all()
        for b in brokers:
            await b.close()
        await store.close()
