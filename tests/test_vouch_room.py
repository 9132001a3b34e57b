"""The room's side of vouching, in-process (a real Room, PolicyGate, SQLite store, memory broker):
what an honest reconnecting tab may send out of order, and what one session may cost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pycrdt import Doc, Map, Text, merge_updates

from server import closecodes, protocol
from server import yupdate as y
from server.room import MAX_HELD_UPDATES, Room
from server.session import REFUSAL_BURST, Identity
from tests.adversary import Client, doc_json, json_of
from tests.inproc import canvas_rooms
from tests.yenc import S, encode

FAC = Identity("u_fac", "Fran", "", "facilitator")
ANN = Identity("u_ann", "Ann", "alpha", "editor")
VIC = Identity("u_vic", "Vic", "alpha", "viewer")


@pytest.fixture
async def room(tmp_path: Path) -> AsyncIterator[Room]:
    async with canvas_rooms(tmp_path) as [r]:
        yield r


def _updates_of(doc: Doc, changes: list) -> list[bytes]:
    out: list[bytes] = []
    sub = doc.observe(lambda e: out.append(e.update))
    try:
        for change in changes:
            with doc.transaction():
                change()
    finally:
        doc.unobserve(sub)
    return out


async def test_a_tab_that_types_before_its_step_2_is_held_then_applied(room: Room) -> None:
    ann = Client("ann", ANN, 5001, room)
    fac = Client("fac", FAC, 5002, room)
    await ann.connect()
    await fac.connect()
    await ann.send_update(
        ann.local(
            lambda d: d.get("notes", type=Map).__setitem__(
                "a1", Map({"block": "gains", "text": Text("")})
            )
        )
    )
    await fac.pump()
    # Offline: Ann types ten characters, one transaction each; then, back online, one more.
    text = ann.doc.get("notes", type=Map)["a1"]["text"]
    offline = _updates_of(ann.doc, [lambda i=i: text.insert(i, "abcdefghij"[i]) for i in range(10)])
    fresh = _updates_of(ann.doc, [lambda: text.insert(10, "!")])
    # The fresh keystroke arrives first (the socket opened, the step 2 is still to come)...
    await ann.send(protocol.sync_update(fresh[0]))
    assert not ann.closes
    assert str(room.doc.get("notes", type=Map)["a1"]["text"]) == ""  # held, not applied
    # ...then the step 2 with the offline edits: both are in, in order, and everyone has them.
    await ann.send(protocol.sync_step2(merge_updates(*offline)))
    assert not ann.closes
    await fac.pump()
    assert str(room.doc.get("notes", type=Map)["a1"]["text"]) == "abcdefghij!"
    assert str(fac.doc.get("notes", type=Map)["a1"]["text"]) == "abcdefghij!"
    stored = await room.store.load("c")
    assert stored is not None and doc_json(stored.parts()) == json_of(room.doc)


async def test_updates_waiting_for_clocks_that_never_come_are_bounded(room: Room) -> None:
    ann = Client("ann", ANN, 5003, room)
    await ann.connect()
    await ann.send_update(
        ann.local(lambda d: d.get("notes", type=Map).__setitem__("a1", Map({"block": "gains"})))
    )
    gap = 1_000
    for k in range(MAX_HELD_UPDATES + 1):
        frame = protocol.sync_update(
            encode([S(5003, gap + k, ("any", ["x"]), parent="notes", sub=f"k{k}")])
        )
        await ann.send(frame)
        if ann.closes:
            break
    assert ann.closes and ann.closes[0][0] == closecodes.POLICY_VIOLATION
    assert "never arrived" in ann.closes[0][1]
    assert not any(s.client == 5003 and s.clock >= gap for s in _structs(room))


async def test_a_viewer_that_keeps_writing_is_closed_once_its_refusals_run_out(room: Room) -> None:
    vic = Client("vic", VIC, 5004, room)
    await vic.connect()
    meta = vic.doc.get("meta", type=Map)
    for i in range(int(REFUSAL_BURST) + 50):
        await vic.send_update(vic.local(lambda i=i: meta.__setitem__("title", f"mine {i}")))
        await vic.pump()
        if vic.closes:
            break
    assert vic.closes == [(closecodes.POLICY_VIOLATION, "too many refused changes")]
    assert room.doc.get("meta", type=Map)["title"] == "P"


async def test_a_viewer_frame_of_many_notes_is_refused_before_any_work(room: Room) -> None:
    vic = Client("vic", VIC, 5005, room)
    await vic.connect()
    frame = encode([S(5005, k, ("type", y.MAP), parent="notes", sub=f"v{k}") for k in range(100)])
    await vic.send(protocol.sync_update(frame))
    assert vic.closes and vic.closes[0][0] == closecodes.POLICY_VIOLATION
    assert "too many map entries" in vic.closes[0][1]
    assert not set(room.doc.get("notes", type=Map).keys())


def _structs(room: Room) -> list[y.Struct]:
    return y.read_update(room.doc.get_update()).structs
