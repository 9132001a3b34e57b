"""Pipelined durability (server/pipeline.py) in a real Room on a real SQLite file: a sender's
frames are read while earlier ones commit, nobody else sees any of them before they are
durable, and they are released in the order the room applied them.

The store is stalled the way a slow disk or a backup would stall it: another connection holds
the database's write lock, so the writer thread's COMMIT waits (busy_timeout).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from pycrdt import Doc, Map, Text

from server import protocol
from server.session import Identity
from tests.adversary import Client, RecordingSession, doc_json, json_of
from tests.inproc import canvas_rooms

FAC = Identity("u_fac", "Fran", "", "facilitator")
ANN = Identity("u_ann", "Ann", "alpha", "editor")

N = 40


def _hold_write_lock(db: Path) -> tuple[threading.Event, threading.Event, threading.Thread]:
    """Another connection takes the database's write lock until ``release`` is set: every
    COMMIT waits meanwhile (``locked`` says it is held)."""
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        conn = sqlite3.connect(db, timeout=30)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(60)
        conn.rollback()
        conn.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    return locked, release, holder


def _note_ids_in_order(frames: list[bytes]) -> list[str]:
    """The note ids each update frame adds, in the order the frames arrived."""
    seen: list[str] = []
    doc: Doc = Doc()
    notes = doc.get("notes", type=Map)
    for frame in frames:
        message = protocol.decode(frame)
        if message.kind is not protocol.Kind.SYNC_UPDATE:
            continue
        before = set(notes.keys())
        doc.apply_update(message.payload)
        seen.extend(sorted(set(notes.keys()) - before))
    return seen


async def test_frames_are_read_while_the_store_commits_and_released_only_once_durable(
    tmp_path: Path,
) -> None:
    async with canvas_rooms(tmp_path) as [room]:
        ann = Client("ann", ANN, 7001, room)
        fac = Client("fac", FAC, 7002, room)
        await ann.connect()
        await fac.connect()
        await fac.pump()
        fac.session.inbox.clear()

        # Another connection takes the write lock: every COMMIT now waits for it.
        locked, release, holder = _hold_write_lock(tmp_path / "db.sqlite")
        try:
            assert locked.wait(10)
            frames = []
            for i in range(N):
                update = ann.local(
                    lambda d, i=i: d.get("notes", type=Map).__setitem__(
                        f"n{i:03}", Map({"block": "gains", "text": Text(f"idea {i}")})
                    )
                )
                assert update is not None
                frames.append(protocol.sync_update(update))
            # Every frame is taken (validated, applied) although none can commit: before the
            # pipeline the first one waited here for its COMMIT, and the second was never read.
            for frame in frames:
                await asyncio.wait_for(room.receive(ann.session, frame), 20)
            assert len(room.doc.get("notes", type=Map)) >= N
            # N notes, and ahead of them who ann's client id is (its ``ids`` entry, written
            # by the room before it applied the id's first structs).
            assert len(room.pipeline) == N + 1
            # Nobody else has seen any of it: it is not durable.
            assert _note_ids_in_order(fac.session.inbox) == []
            assert not ann.closes
        finally:
            release.set()
            await asyncio.to_thread(holder.join)
        ann.session.inbox.clear()
        await asyncio.wait_for(room.pipeline.drained(), 30)
        # Now durable, and released in the order the room applied them: the ids entry first.
        assert _note_ids_in_order(fac.session.inbox) == [f"n{i:03}" for i in range(N)]
        # Released together (one commit), the batch still skips its sender: ann gets the
        # server's ids entry for her client id, none of her own notes back.
        assert _note_ids_in_order(ann.session.inbox) == []
        assert any(protocol.decode(f).kind is protocol.Kind.SYNC_UPDATE for f in ann.session.inbox)
        first: Doc = Doc()
        first.apply_update(protocol.decode(fac.session.inbox[0]).payload)
        assert str(7001) in first.get("ids", type=Map) and not first.get("notes", type=Map)
        await fac.pump()
        assert json_of(fac.doc) == json_of(room.doc)
        stored = await room.store.load("c")
        assert stored is not None and doc_json(stored.parts()) == json_of(room.doc)


async def test_a_late_joiner_is_never_served_what_is_not_durable(tmp_path: Path) -> None:
    """Sync step 2 waits for the barrier: a joiner during a stalled commit gets the notes only
    once they are durable, and then all of them."""
    async with canvas_rooms(tmp_path) as [room]:
        ann = Client("ann", ANN, 7003, room)
        await ann.connect()
        locked, release, holder = _hold_write_lock(tmp_path / "db.sqlite")
        try:
            assert locked.wait(10)
            update = ann.local(
                lambda d: d.get("notes", type=Map).__setitem__(
                    "late", Map({"block": "gains", "text": Text("not durable yet")})
                )
            )
            assert update is not None
            await room.receive(ann.session, protocol.sync_update(update))
            joiner = RecordingSession(FAC)
            await room.join(joiner)
            step1 = asyncio.ensure_future(room.receive(joiner, protocol.sync_step1(b"\x00")))
            # Wait (a condition, by yielding) until its sync step 1 is parked on the barrier.
            for _ in range(10_000):
                if room.durable._waiters:
                    break
                await asyncio.sleep(0)
            assert room.durable._waiters and not step1.done()
            assert not [f for f in joiner.inbox if f[:2] == b"\x00\x01"]  # no sync step 2 yet
        finally:
            release.set()
            await asyncio.to_thread(holder.join)
        await asyncio.wait_for(step1, 30)
        step2 = [protocol.decode(f) for f in joiner.inbox if f[:2] == b"\x00\x01"]
        assert len(step2) == 1
        doc: Doc = Doc()
        doc.apply_update(step2[0].payload)
        assert "late" in doc.get("notes", type=Map)


async def test_a_flood_of_large_frames_waits_for_the_store_instead_of_piling_up(
    tmp_path: Path,
) -> None:
    """A hostile sender cannot make the room hold unbounded undurable bytes: once
    MAX_IN_FLIGHT_BYTES are in flight, its next frame is not taken until the oldest are released,
    and nobody sees any of it before it is durable."""
    from server.pipeline import MAX_IN_FLIGHT_BYTES

    async with canvas_rooms(tmp_path) as [room]:
        ann = Client("ann", ANN, 7005, room)
        fac = Client("fac", FAC, 7006, room)
        await ann.connect()
        await fac.connect()
        await fac.pump()
        fac.session.inbox.clear()
        big = "x" * (1 << 20)
        frames = []
        for i in range(12):  # 12 MiB offered against an 8 MiB bound
            update = ann.local(
                lambda d, i=i: d.get("notes", type=Map).__setitem__(
                    f"big{i:02}", Map({"block": "gains", "text": Text(big)})
                )
            )
            assert update is not None
            frames.append(protocol.sync_update(update))
        locked, release, holder = _hold_write_lock(tmp_path / "db.sqlite")
        taken = 0
        blocked: asyncio.Future[None] | None = None
        try:
            assert locked.wait(10)
            for frame in frames:
                blocked = asyncio.ensure_future(room.receive(ann.session, frame))
                # Taken at once while under the bound; past it, parked on the pipeline.
                for _ in range(1_000):
                    if blocked.done() or room.pipeline._space is not None:
                        break
                    await asyncio.sleep(0)
                if not blocked.done():
                    break
                blocked.result()
                taken += 1
            assert blocked is not None and not blocked.done()  # the sender is held back
            assert taken < len(frames)
            assert room.pipeline._bytes <= MAX_IN_FLIGHT_BYTES + len(frames[0])
            assert _note_ids_in_order(fac.session.inbox) == []  # nothing before durable
        finally:
            release.set()
            await asyncio.to_thread(holder.join)
        await asyncio.wait_for(blocked, 30)
        for frame in frames[taken + 1 :]:
            await room.receive(ann.session, frame)
        await asyncio.wait_for(room.pipeline.drained(), 30)
        assert _note_ids_in_order(fac.session.inbox) == [f"big{i:02}" for i in range(12)]
        assert not ann.closes


BOB = Identity("u_bob", "Bob", "beta", "editor")


async def test_a_partners_refused_edits_inside_one_released_batch_change_nothing_and_heal_him(
    tmp_path: Path,
) -> None:
    """One commit releases honest notes and a hostile partner's edits of another partner's
    note together: the others receive only what stands, the partner receives his corrections
    in order, and the canvas equals the one without him."""
    async with canvas_rooms(tmp_path, orgs=("Alpha", "Beta")) as [room]:
        ann = Client("ann", ANN, 7101, room)
        bob = Client("bob", BOB, 7102, room)
        fac = Client("fac", FAC, 7103, room)
        for c in (ann, bob, fac):
            await c.connect()
        made = ann.local(
            lambda d: d.get("notes", type=Map).__setitem__(
                "a1", Map({"block": "gains", "text": Text("ann's idea"), "x": 0.1, "y": 0.1})
            )
        )
        await ann.send_update(made)
        for c in (ann, bob, fac):
            await c.pump()
        assert "a1" in bob.doc.get("notes", type=Map)

        locked, release, holder = _hold_write_lock(tmp_path / "db.sqlite")
        try:
            assert locked.wait(10)
            for i in range(6):
                honest = ann.local(
                    lambda d, i=i: d.get("notes", type=Map).__setitem__(
                        f"n{i}", Map({"block": "gains", "text": Text(f"idea {i}")})
                    )
                )
                assert honest is not None
                await room.receive(ann.session, protocol.sync_update(honest))

                def hostile(d: Doc, i: int = i) -> None:
                    note = d.get("notes", type=Map)["a1"]
                    note["text"].insert(0, f"bob was here {i} ")
                    note["x"] = 0.9

                attack = bob.local(hostile)
                assert attack is not None
                await room.receive(bob.session, protocol.sync_update(attack))
        finally:
            release.set()
            await asyncio.to_thread(holder.join)
        await asyncio.wait_for(room.pipeline.drained(), 30)
        assert _note_ids_in_order(fac.session.inbox) == [f"n{i}" for i in range(6)]
        for c in (ann, bob, fac):
            await c.pump()
        notes = room.doc.get("notes", type=Map)
        assert str(notes["a1"]["text"]) == "ann's idea" and notes["a1"]["x"] == 0.1
        assert json_of(fac.doc) == json_of(room.doc)
        assert json_of(ann.doc) == json_of(room.doc)
        assert json_of(bob.doc) == json_of(room.doc)  # his corrections reached him
        assert {f"n{i}" for i in range(6)} <= set(fac.doc.get("notes", type=Map).keys())
        stored = await room.store.load("c")
        assert stored is not None and doc_json(stored.parts()) == json_of(room.doc)
