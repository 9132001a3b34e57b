"""Healing by state-vector diff: a node that missed another node's updates catches up from the
store and sends its sessions exactly what changed — a missed delete included, which adds no
clock to any state vector."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from pycrdt import Map, Text

from server.session import Identity
from tests.adversary import Client, json_of
from tests.inproc import canvas_rooms

FAC = Identity("u_fac", "Fran", "", "facilitator")


async def until(client: Client, condition: Callable[[], bool]) -> None:
    """Let the brokers deliver and the client handle what it was sent, until ``condition``."""
    for _ in range(500):
        await client.pump()
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 5 s")


async def test_a_missed_delete_is_healed_and_sent_to_local_sessions(tmp_path: Path) -> None:
    async with canvas_rooms(tmp_path, protect=False, nodes=2) as [room_a, room_b]:
        writer = Client("writer", FAC, 7001, room_a)
        reader = Client("reader", FAC, 7002, room_b)
        await writer.connect()
        await reader.connect()
        await writer.send_update(
            writer.local(
                lambda d: d.get("notes", type=Map).__setitem__(
                    "n1", Map({"block": "gains", "text": Text("soon gone")})
                )
            )
        )
        await until(reader, lambda: "n1" in reader.doc.get("notes", type=Map))
        # Node a's next publish is lost: node b never hears of the delete.
        room_a.broker.drop_next_publishes(1)
        await writer.send_update(writer.local(lambda d: d.get("notes", type=Map).pop("n1")))
        # A marker after it that does arrive: once it is in, the delete would have been too.
        await writer.send_update(
            writer.local(lambda d: d.get("meta", type=Map).__setitem__("title", "after"))
        )
        await until(reader, lambda: reader.doc.get("meta", type=Map).get("title") == "after")
        # The marker's sequence number shows node b a gap: it heals from the store, and its
        # session is sent the delete (no state vector moved for it).
        await until(reader, lambda: "n1" not in reader.doc.get("notes", type=Map))
        assert "n1" not in room_b.doc.get("notes", type=Map)
        assert json_of(reader.doc) == json_of(room_a.doc)
