"""The workshop's rules in-process, differentially: a real Room with its PolicyGate over SQLite
and the memory broker; participants are pycrdt documents synced as y-websocket clients are
(tests/adversary.py). Each hostile change is crafted as a client would send it (a valid update
with hostile meaning); a refused one must leave the canvas exactly as it was without it — in
the room, in the store and in every participant's document."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map, Text

from server.session import Identity
from server.workshop import stage
from tests.adversary import Client, decode_sv, doc_json, json_of
from tests.inproc import canvas_rooms

FAC = Identity("u_fac", "Fran", "", "facilitator")
ANN = Identity("u_ann", "Ann", "alpha", "editor")
BOB = Identity("u_bob", "Bob", "beta", "editor")
VIC = Identity("u_vic", "Vic", "beta", "viewer")
PEOPLE = {"fac": (FAC, 2001), "ann": (ANN, 2002), "bob": (BOB, 2003), "vic": (VIC, 2004)}


def comments(doc: Doc) -> Map:
    return doc.get("comments", type=Map)


def comment(note: str, text: str, **extra: Any) -> Map:
    return Map({"note": note, "text": text, **extra})


@dataclass
class Row:
    name: str
    who: str
    act: Callable[[Doc], None]
    refused: str | None  # fragment of what the sender is told; None: accepted
    expect: Callable[[dict[str, Any], dict[str, Any]], bool] | None = None  # (after, before)


def unchanged(after: dict[str, Any], before: dict[str, Any]) -> bool:
    return after == before


ROWS = [
    Row(
        "a forged author and organization are stamped from the token",
        "ann",
        lambda d: comments(d).__setitem__(
            "c9", comment("n1", "mine", author="u_bob", author_name="Bob", org="beta")
        ),
        None,
        lambda a, b: (
            a["comments"]["c9"]["author"] == "u_ann"
            and a["comments"]["c9"]["org"] == "alpha"
            and a["comments"]["c9"]["author_name"] == "Ann"
        ),
    ),
    Row(
        "another partner replaces a comment with a copy that names its author",
        "bob",
        lambda d: comments(d).__setitem__(
            "c1", comment("n1", "why not", author="u_ann", author_name="Ann", org="alpha")
        ),
        "only its author or a facilitator",
    ),
    Row(
        "a comment dated long ago is dated now",
        "ann",
        lambda d: comments(d).__setitem__("c9", comment("n1", "old news", created_at=1)),
        None,
        lambda a, b: a["comments"]["c9"]["created_at"] > b["comments"]["c1"]["created_at"] - 1,
    ),
    Row(
        "another partner rewrites a comment",
        "bob",
        lambda d: comments(d)["c1"].__setitem__("text", "Ann says the opposite"),
        "only its author edits",
    ),
    Row("another partner deletes a comment", "bob", lambda d: comments(d).pop("c1"), "author"),
    Row(
        "the author moves a comment to another note",
        "ann",
        lambda d: comments(d)["c1"].__setitem__("note", "n2"),
        "fixed",
    ),
    Row(
        "the author re-attributes a comment",
        "ann",
        lambda d: comments(d)["c1"].__setitem__("org", "beta"),
        "fixed",
    ),
    Row(
        "a viewer comments without permission",
        "vic",
        lambda d: comments(d).__setitem__("v1", comment("n1", "hi")),
        "viewers may comment",
    ),
    Row(
        "a reply to a comment on another note",
        "bob",
        lambda d: comments(d).__setitem__("c8", comment("n2", "re", parent="c1")),
        "same note",
    ),
    Row(
        "a comment on a note that does not exist",
        "bob",
        lambda d: comments(d).__setitem__("c8", comment("ghost", "boo")),
        "existing note",
    ),
    Row(
        "a comment whose text is not a string",
        "bob",
        lambda d: comments(d).__setitem__("c8", Map({"note": "n1", "text": 5})),
        "characters",
    ),
    Row(
        "an editor forges a summons",
        "ann",
        lambda d: d.get("stage", type=Map).__setitem__("gather", {"seq": 9, "x": 1, "y": 1}),
        "server only",
    ),
    Row(
        "a facilitator's socket freezes through the document",
        "fac",
        lambda d: d.get("stage", type=Map).__setitem__("frozen", True),
        "server only",
    ),
    Row(
        "an editor forges a round's tally",
        "ann",
        lambda d: d.get("rounds", type=Map).__setitem__(
            "r1", Map({"status": "closed", "tally": {"ranking": []}})
        ),
        "server only",
    ),
    Row(
        "an editor starts a timer",
        "bob",
        lambda d: d.get("timers", type=Map).__setitem__("t", Map({"state": "running"})),
        "server only",
    ),
    Row(
        "deleting a note deletes its comments",
        "ann",
        lambda d: d.get("notes", type=Map).pop("n1"),
        None,
        lambda a, b: "n1" not in a["notes"] and a.get("comments", {}) == {},
    ),
    Row(
        "anyone who may comment resolves",
        "bob",
        lambda d: comments(d)["c1"].__setitem__("resolved", True),
        None,
        lambda a, b: a["comments"]["c1"]["resolved"] is True,
    ),
]


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


async def _setup(room: Any) -> dict[str, Client]:
    people = {k: Client(k, ident, cid, room) for k, (ident, cid) in PEOPLE.items()}
    for c in people.values():
        await c.connect()
    return people


async def _step(people: dict[str, Client], who: str, change: Callable[[Doc], None]) -> None:
    await people[who].send_update(people[who].local(change))
    for _ in range(3):
        for c in people.values():
            await c.pump()


def _note(text: str, org: str) -> Map:
    return Map({"block": "customer-jobs", "text": Text(text), "org": org, "x": 0.1, "y": 0.1})


async def _ann_notes_n1(people: dict[str, Client]) -> None:
    await _step(
        people,
        "ann",
        lambda d: d.get("notes", type=Map).__setitem__("n1", _note("Ann's", "alpha")),
    )


async def _run(tmp: Path, row: Row) -> None:
    async with canvas_rooms(tmp, orgs=("Alpha", "Beta"), title="Partners") as [room]:
        people = await _setup(room)
        await _ann_notes_n1(people)
        await _step(
            people, "fac", lambda d: d.get("notes", type=Map).__setitem__("n2", _note("Fran's", ""))
        )
        await _step(
            people, "ann", lambda d: comments(d).__setitem__("c1", comment("n1", "why not"))
        )
        before = json_of(room.doc)
        assert before["comments"]["c1"]["author"] == "u_ann"
        actor = people[row.who]
        seen = len(actor.denials)
        await _step(people, row.who, row.act)
        told = actor.denials[seen:]
        after = json_of(room.doc)
        if row.refused is None:
            assert told == [], f"{row.name}: refused with {told}"
        else:
            assert any(row.refused in t for t in told), f"{row.name}: told {told}"
        check = row.expect or unchanged
        assert check(after, before), f"{row.name}: {after.get('comments')} / {after.get('stage')}"
        stored = await room.store.load("c")
        assert stored is not None and doc_json(stored.parts()) == after
        for c in people.values():
            assert c.json() == after, f"{c.name}'s document did not converge"
            assert not c.closes, f"{c.name} was closed: {c.closes}"


async def _honest_comment(tmp: Path) -> None:
    async with canvas_rooms(tmp, orgs=("Alpha", "Beta"), title="Partners") as [room]:
        people = await _setup(room)
        await _ann_notes_n1(people)
        server_clock = room.doc.get_state()
        at = int(time.time() * 1000)
        honest = comment("n1", "why not", resolved=False, created_at=at)
        await _step(people, "ann", lambda d: comments(d).__setitem__("c1", honest))
        # The server wrote nothing: no correction transaction, no stamps in the update.
        assert room.doc.get_state() != server_clock
        mine = decode_sv(room.doc.get_state()).get(room.doc.client_id)
        assert mine == decode_sv(server_clock).get(room.doc.client_id)
        raw = comments(room.doc)["c1"].to_py()
        assert raw == {"note": "n1", "text": "why not", "resolved": False, "created_at": at}
        after = json_of(room.doc)["comments"]["c1"]
        assert (after["author"], after["author_name"], after["org"]) == ("u_ann", "Ann", "alpha")
        for c in people.values():
            assert c.json()["comments"]["c1"] == after


def test_an_honest_comment_is_attributed_without_a_correction(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    loop.run_until_complete(_honest_comment(tmp_path))


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_workshop_rule(row: Row, tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(_run(tmp_path, row))


async def _frozen(tmp: Path) -> None:
    async with canvas_rooms(tmp, orgs=("Alpha", "Beta"), title="Partners") as [room]:
        people = await _setup(room)
        await room.apply_server_change(lambda d: stage.set_frozen(d, True, FAC, 1))
        for c in people.values():
            await c.pump()
        before = json_of(room.doc)
        stored_before = await room.store.log_stats("c")
        for who in ("ann", "fac"):
            seen = len(people[who].denials)
            await _step(
                people,
                who,
                lambda d, who=who: d.get("notes", type=Map).__setitem__(
                    f"x-{who}", _note("no", "")
                ),
            )
            assert any("frozen" in t for t in people[who].denials[seen:])
        # Refused before it was applied: not in the room, not stored, nobody else got a byte.
        assert json_of(room.doc) == before
        assert await room.store.log_stats("c") == stored_before
        assert people["bob"].json() == before
        # After the unfreeze the next update of a client that ignored the freeze brings its
        # refused edit along (asked for with a sync step 1), judged as a new change.
        await room.apply_server_change(lambda d: stage.set_frozen(d, False, FAC, 2))
        for c in people.values():
            await c.pump()
        await _step(
            people, "ann", lambda d: d.get("notes", type=Map).__setitem__("y", _note("thawed", ""))
        )
        after = json_of(room.doc)
        assert {"x-ann", "y"} <= set(after["notes"]) and after["notes"]["x-ann"]["org"] == "alpha"
        assert "x-fac" not in after["notes"]  # the facilitator's tab sent nothing since
        await _step(people, "fac", lambda d: d.get("meta", type=Map).__setitem__("title", "P2"))
        after = json_of(room.doc)
        assert {"x-ann", "x-fac", "y"} <= set(after["notes"])
        for c in people.values():
            assert c.json() == after, c.name


def test_frozen_refuses_before_apply_and_thaws_cleanly(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    loop.run_until_complete(_frozen(tmp_path))
