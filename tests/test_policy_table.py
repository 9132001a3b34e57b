"""The partner rules, one row each, in-process: a real Room with its PolicyGate over a real SQLite
store and the memory broker; participants are pycrdt documents synced with the room exactly as
y-websocket clients are (tests/adversary.py). The doors (tokens, sockets) keep their real-socket
tests; the rules need no server process.

Every row: who acts, what they do locally, whether the server refuses it (and why, in the words
the sender is told), and what the canvas holds afterwards, in the room, in the store, and in the
actor's own document (which the correction must converge).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map, Text

from server.session import Identity
from tests.adversary import Client, doc_json, json_of
from tests.inproc import canvas_rooms

FAC = Identity("u_fac", "Fran", "", "facilitator")
ANN = Identity("u_ann", "Ann", "alpha", "editor")
BOB = Identity("u_bob", "Bob", "beta", "editor")
VIC = Identity("u_vic", "Vic", "beta", "viewer")
PEOPLE = {"fac": (FAC, 1001), "ann": (ANN, 1002), "bob": (BOB, 1003), "vic": (VIC, 1004)}


def notes(doc: Doc) -> Map:
    return doc.get("notes", type=Map)


def note(block: str, text: str, org: str = "", **extra: Any) -> Map:
    return Map({"block": block, "text": Text(text), "org": org, "x": 0.1, "y": 0.1, **extra})


def set_text(doc: Doc, nid: str, text: str) -> None:
    t = notes(doc)[nid]["text"]
    del t[0 : len(str(t).encode())]
    t.insert(0, text)


@dataclass
class Row:
    name: str
    who: str
    act: Callable[[Doc], None]
    refused: str | None  # a fragment of the reason the sender is told; None: accepted
    expect: Callable[[dict[str, Any]], bool]  # on the canvas JSON afterwards


def field(nid: str, key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda c: c["notes"].get(nid, {}).get(key)


ROWS = [
    Row(
        "viewer types in a note",
        "vic",
        lambda d: set_text(d, "f1", "defaced"),
        "viewers cannot change the canvas",
        lambda c: c["notes"]["f1"]["text"] == "facilitator's",
    ),
    Row(
        "viewer adds a note",
        "vic",
        lambda d: notes(d).__setitem__("v1", note("gains", "viewer's")),
        "viewers cannot change the canvas",
        lambda c: "v1" not in c["notes"],
    ),
    Row(
        "viewer deletes a note",
        "vic",
        lambda d: notes(d).pop("f1"),
        "viewers cannot change the canvas",
        lambda c: c["notes"]["f1"]["text"] == "facilitator's",
    ),
    Row(
        "editor edits another organization's note",
        "bob",
        lambda d: set_text(d, "a1", "Bob was here"),
        "belongs to another organization",
        lambda c: c["notes"]["a1"]["text"] == "Ann's",
    ),
    Row(
        "editor moves another organization's note",
        "bob",
        lambda d: notes(d)["a1"].__setitem__("x", 0.9),
        "belongs to another organization",
        lambda c: c["notes"]["a1"]["x"] == 0.1,
    ),
    Row(
        "editor deletes another organization's note",
        "bob",
        lambda d: notes(d).pop("a1"),
        "belongs to another organization",
        lambda c: c["notes"]["a1"]["text"] == "Ann's",
    ),
    Row(
        "editor edits their own organization's note",
        "ann",
        lambda d: set_text(d, "a1", "Ann's, better"),
        None,
        lambda c: c["notes"]["a1"]["text"] == "Ann's, better",
    ),
    Row(
        "editor deletes the facilitator's note",
        "ann",
        lambda d: notes(d).pop("f1"),
        "belongs to another organization",
        lambda c: "f1" in c["notes"],
    ),
    Row(
        "editor re-files its note under another organization",
        "ann",
        lambda d: notes(d)["a1"].__setitem__("org", "beta"),
        "follow from who created it",
        lambda c: c["notes"]["a1"]["org"] == "alpha",
    ),
    Row(
        "editor's new note claims another organization: attributed to its own, nothing rewritten",
        "ann",
        lambda d: notes(d).__setitem__("a2", note("gains", "new", org="beta", author="u_bob")),
        None,
        lambda c: (c["notes"]["a2"]["org"], c["notes"]["a2"]["author"]) == ("alpha", "u_ann"),
    ),
    Row(
        "editor votes for themselves",
        "ann",
        lambda d: notes(d)["f1"]["votes"].__setitem__("u_ann", 1),
        None,
        lambda c: c["notes"]["f1"]["votes"] == {"u_ann": 1},
    ),
    Row(
        "editor votes for someone else",
        "ann",
        lambda d: notes(d)["f1"]["votes"].__setitem__("u_bob", 3),
        "your own vote",
        lambda c: c["notes"]["f1"]["votes"] == {},
    ),
    Row(
        "editor's new note carries others' votes",
        "ann",
        lambda d: notes(d).__setitem__(
            "a3", note("gains", "ballot", votes=Map({"u_ann": 1, "u_bob": 9}))
        ),
        "your own vote",
        lambda c: c["notes"]["a3"]["votes"] == {"u_ann": 1},
    ),
    Row(
        "editor adds a note to a locked block",
        "ann",
        lambda d: notes(d).__setitem__("a4", note("pains", "late")),
        "is locked",
        lambda c: "a4" not in c["notes"],
    ),
    Row(
        "editor moves its note into a locked block",
        "ann",
        lambda d: notes(d)["a1"].__setitem__("block", "pains"),
        "is locked",
        lambda c: c["notes"]["a1"]["block"] == "gains",
    ),
    Row(
        "editor edits a note in a locked block",
        "ann",
        lambda d: set_text(d, "p1", "changed"),
        "is locked",
        lambda c: c["notes"]["p1"]["text"] == "locked in",
    ),
    Row(
        "editor adds a note to a block that does not exist",
        "ann",
        lambda d: notes(d).__setitem__("a5", note("nowhere", "lost")),
        "no block nowhere",
        lambda c: "a5" not in c["notes"],
    ),
    Row(
        "editor renames the canvas",
        "ann",
        lambda d: d.get("meta", type=Map).__setitem__("title", "Ann's canvas"),
        "only facilitators change meta",
        lambda c: c["meta"]["title"] == "Partners",
    ),
    Row(
        "editor turns note protection off",
        "ann",
        lambda d: d.get("meta", type=Map).__setitem__("protect_notes", False),
        "only facilitators change meta",
        lambda c: c["meta"]["protect_notes"] is True,
    ),
    Row(
        "editor unlocks a block",
        "ann",
        lambda d: d.get("blocks", type=Map)["pains"].__setitem__("locked_by", ""),
        "only facilitators change blocks",
        lambda c: c["blocks"]["pains"]["locked_by"] == "u_fac",
    ),
    Row(
        "editor renames an organization",
        "bob",
        lambda d: d.get("orgs", type=Map)["alpha"].__setitem__("name", "Losers"),
        "only facilitators change orgs",
        lambda c: c["orgs"]["alpha"]["name"] == "Alpha",
    ),
    Row(
        "facilitator edits a partner's note",
        "fac",
        lambda d: set_text(d, "a1", "edited by Fran"),
        None,
        lambda c: c["notes"]["a1"]["text"] == "edited by Fran",
    ),
    Row(
        "facilitator files a note under a partner",
        "fac",
        lambda d: notes(d).__setitem__("f2", note("gains", "for Alpha", org="alpha")),
        None,
        lambda c: c["notes"]["f2"]["org"] == "alpha",
    ),
    Row(
        "facilitator unlocks a block",
        "fac",
        lambda d: d.get("blocks", type=Map)["pains"].__setitem__("locked_by", ""),
        None,
        lambda c: c["blocks"]["pains"]["locked_by"] == "",
    ),
]


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


async def _run(tmp: Path, row: Row) -> None:
    async with canvas_rooms(tmp, orgs=("Alpha", "Beta"), title="Partners") as [room]:
        store = room.store
        people = {k: Client(k, ident, cid, room) for k, (ident, cid) in PEOPLE.items()}
        for c in people.values():
            await c.connect()

        async def step(who: str, change: Callable[[Doc], None]) -> None:
            await people[who].send_update(people[who].local(change))
            for c in people.values():
                await c.pump()

        await step(
            "fac",
            lambda d: notes(d).__setitem__(
                "f1", note("customer-jobs", "facilitator's", votes=Map())
            ),
        )
        await step("fac", lambda d: notes(d).__setitem__("p1", note("pains", "locked in")))
        await step(
            "fac", lambda d: d.get("blocks", type=Map)["pains"].__setitem__("locked_by", "u_fac")
        )
        await step("ann", lambda d: notes(d).__setitem__("a1", note("gains", "Ann's", org="alpha")))
        actor = people[row.who]
        before = len(actor.denials)
        await step(row.who, row.act)
        told = actor.denials[before:]
        if row.refused is None:
            assert told == [], f"{row.name}: refused with {told}"
        else:
            assert any(row.refused in t for t in told), f"{row.name}: told {told}"
        canvas = json_of(room.doc)
        assert row.expect(canvas), f"{row.name}: canvas is {canvas['notes']}"
        stored = await store.load("c")
        assert stored is not None and doc_json(stored.parts()) == canvas
        for c in people.values():
            assert c.json() == canvas, f"{c.name}'s document did not converge"
            assert not c.closes, f"{c.name} was closed: {c.closes}"


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_rule(row: Row, tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(_run(tmp_path, row))
