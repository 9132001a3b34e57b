"""Fit links, value-exchange arrows and overlap marks, one rule a row, in-process (as
tests/test_policy_table.py): a real Room with its PolicyGate over a real SQLite store; the
participants are pycrdt documents synced with the room the way y-websocket clients are.

Each row is what a hostile or careless partner can send with a stock Yjs client: valid
encodings with a forbidden meaning. After every row the room, the store and every participant's
own document hold the same canvas, and it is the one the rules allow.
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


def root(doc: Doc, name: str) -> Map:
    return doc.get(name, type=Map)


def note(block: str, text: str, org: str = "", **extra: Any) -> Map:
    return Map({"block": block, "text": Text(text), "org": org, "x": 0.1, "y": 0.1, **extra})


def link(frm: str, to: str, **extra: Any) -> Map:
    return Map({"from": frm, "to": to, "strength": "nice-to-have", **extra})


def arrow(to: str, kind: str, note: str = "", **extra: Any) -> Map:
    return Map({"to": to, "kind": kind, "note": note, **extra})


def put(name: str, key: str, value: Any) -> Callable[[Doc], None]:
    return lambda d: root(d, name).__setitem__(key, value)


def drop(name: str, key: str) -> Callable[[Doc], None]:
    return lambda d: root(d, name).pop(key)


def edit(name: str, key: str, field: str, value: Any) -> Callable[[Doc], None]:
    return lambda d: root(d, name)[key].__setitem__(field, value)


def both(*changes: Callable[[Doc], None]) -> Callable[[Doc], None]:
    def run(d: Doc) -> None:
        for c in changes:
            c(d)

    return run


@dataclass
class Row:
    name: str
    who: str
    act: Callable[[Doc], None]
    refused: str | None  # a fragment of the reason the sender is told; None: accepted
    expect: Callable[[dict[str, Any]], bool]  # on the canvas JSON afterwards


def links(c: dict[str, Any]) -> dict[str, Any]:
    return c["links"]  # type: ignore[no-any-return]


ROWS = [
    # -- links --------------------------------------------------------------------------------
    Row(
        "editor links its reliever to a pain, claiming another org, author and kind: stamped",
        "ann",
        put("links", "n1", link("ar", "p2", org="beta", author="u_bob", kind="creates")),
        None,
        lambda c: (
            {k: links(c)["n1"][k] for k in ("org", "author", "author_name", "kind")}
            == {"org": "alpha", "author": "u_ann", "author_name": "Ann", "kind": "relieves"}
        ),
    ),
    Row(
        "editor links another organization's note (notes protected)",
        "bob",
        put("links", "n1", link("ar", "p2")),
        "a link starts at one of your organization's notes",
        lambda c: "n1" not in links(c),
    ),
    Row(
        "link to a note that does not exist",
        "ann",
        put("links", "n1", link("ar", "ghost")),
        "both ends of a link must be notes",
        lambda c: "n1" not in links(c),
    ),
    Row(
        "link between blocks that do not fit (a pain reliever to a job)",
        "ann",
        put("links", "n1", link("ar", "j1")),
        "a link goes from an offer to what it addresses",
        lambda c: "n1" not in links(c),
    ),
    Row(
        "link the wrong way round (from a pain to a reliever)",
        "ann",
        put("links", "n1", link("p2", "ar")),
        "not from pains to relievers",
        lambda c: "n1" not in links(c),
    ),
    Row(
        "link into a locked block",
        "ann",
        put("links", "n1", link("ag", "g1")),
        "is locked",
        lambda c: "n1" not in links(c),
    ),
    Row(
        "viewer links",
        "vic",
        put("links", "n1", link("br", "p2")),
        "viewers cannot change the canvas",
        lambda c: "n1" not in links(c),
    ),
    Row(
        "the same two notes linked twice",
        "ann",
        put("links", "n1", link("ar", "p1")),
        "already linked",
        lambda c: "n1" not in links(c) and "L0" in links(c),
    ),
    Row(
        "a strength that is not one",
        "ann",
        put("links", "n1", link("ar", "p2", strength="vital!!")),
        "strength is one of essential, nice-to-have",
        lambda c: links(c)["n1"]["strength"] == "nice-to-have",
    ),
    Row(
        "a note and a link from it in one update",
        "ann",
        both(
            put("notes", "ar2", note("alpha:pain-relievers", "Warm seats", org="alpha")),
            put("links", "n1", link("ar2", "p2", strength="essential")),
        ),
        None,
        lambda c: links(c)["n1"]["to"] == "p2" and links(c)["n1"]["kind"] == "relieves",
    ),
    Row(
        "a refused note and a link from it in one update: both go",
        "ann",
        both(
            put("notes", "x1", note("nowhere", "lost")),
            put("links", "n1", link("x1", "p2")),
        ),
        "both ends of a link must be notes",
        lambda c: "n1" not in links(c) and "x1" not in c["notes"],
    ),
    Row(
        "editor strengthens its own link",
        "ann",
        edit("links", "L0", "strength", "essential"),
        None,
        lambda c: links(c)["L0"]["strength"] == "essential",
    ),
    Row(
        "editor changes another organization's link",
        "bob",
        edit("links", "L0", "strength", "essential"),
        "this link belongs to another organization",
        lambda c: links(c)["L0"]["strength"] == "nice-to-have",
    ),
    Row(
        "editor deletes another organization's link",
        "bob",
        drop("links", "L0"),
        "this link belongs to another organization",
        lambda c: links(c)["L0"]["from"] == "ar",
    ),
    Row(
        "editor re-points its link to another pain",
        "ann",
        edit("links", "L0", "to", "p2"),
        "a link's ends do not change",
        lambda c: links(c)["L0"]["to"] == "p1",
    ),
    Row(
        "editor re-files its link under another organization",
        "ann",
        edit("links", "L0", "org", "beta"),
        None,
        lambda c: links(c)["L0"]["org"] == "alpha",
    ),
    Row(
        "editor deletes its own link",
        "ann",
        drop("links", "L0"),
        None,
        lambda c: "L0" not in links(c),
    ),
    Row(
        "editor deletes its linked note: the link goes with it",
        "ann",
        drop("notes", "ar"),
        None,
        lambda c: "ar" not in c["notes"] and "L0" not in links(c),
    ),
    Row(
        "facilitator deletes the linked pain: the partner's link goes with it",
        "fac",
        drop("notes", "p1"),
        None,
        lambda c: "p1" not in c["notes"] and "L0" not in links(c),
    ),
    Row(
        "a refused deletion of a linked note keeps the link",
        "bob",
        drop("notes", "ar"),
        "belongs to another organization",
        lambda c: "ar" in c["notes"] and links(c)["L0"]["to"] == "p1",
    ),
    Row(
        "editor moves its linked reliever among gain creators: the link no longer fits, goes",
        "ann",
        edit("notes", "ar", "block", "alpha:gain-creators"),
        None,
        lambda c: c["notes"]["ar"]["block"] == "alpha:gain-creators" and "L0" not in links(c),
    ),
    Row(
        "facilitator links a partner's notes",
        "fac",
        put("links", "n1", link("br", "p2", org="beta")),
        None,
        lambda c: (links(c)["n1"]["org"], links(c)["n1"]["author"]) == ("beta", "u_fac"),
    ),
    # -- value exchange -----------------------------------------------------------------------
    Row(
        "editor's arrow claims another organization as its start: stamped with its own",
        "ann",
        put("exchange", "x1", arrow("customer", "service", from_org="beta")),
        None,
        lambda c: (
            (c["exchange"]["x1"]["from_org"], c["exchange"]["x1"]["author"]) == ("alpha", "u_ann")
        ),
    ),
    Row(
        "an arrow of a kind the exchange does not have",
        "ann",
        put("exchange", "x1", arrow("beta", "bribe")),
        "kind is one of product",
        lambda c: "x1" not in c["exchange"],
    ),
    Row(
        "an arrow to nobody on the canvas",
        "ann",
        put("exchange", "x1", arrow("gamma", "data")),
        "ends at one of the canvas's organizations",
        lambda c: "x1" not in c["exchange"],
    ),
    Row(
        "an arrow to itself",
        "ann",
        put("exchange", "x1", arrow("alpha", "data")),
        "goes to another organization",
        lambda c: "x1" not in c["exchange"],
    ),
    Row(
        "editor edits another organization's arrow",
        "bob",
        edit("exchange", "X0", "note", "we get paid instead"),
        "this arrow belongs to another organization",
        lambda c: c["exchange"]["X0"]["note"] == "alpha pays beta per ride",
    ),
    Row(
        "editor deletes another organization's arrow",
        "bob",
        drop("exchange", "X0"),
        "this arrow belongs to another organization",
        lambda c: "X0" in c["exchange"],
    ),
    Row(
        "editor turns its arrow into another organization's",
        "ann",
        edit("exchange", "X0", "from_org", "beta"),
        None,
        lambda c: c["exchange"]["X0"]["from_org"] == "alpha",
    ),
    Row(
        "editor edits its own arrow",
        "ann",
        edit("exchange", "X0", "note", "alpha pays beta per trip"),
        None,
        lambda c: c["exchange"]["X0"]["note"] == "alpha pays beta per trip",
    ),
    Row(
        "viewer adds an arrow",
        "vic",
        put("exchange", "x1", arrow("customer", "data")),
        "viewers cannot change the canvas",
        lambda c: "x1" not in c["exchange"],
    ),
    Row(
        "facilitator draws an arrow for a partner",
        "fac",
        put("exchange", "x1", arrow("alpha", "referral", from_org="beta")),
        None,
        lambda c: c["exchange"]["x1"]["from_org"] == "beta",
    ),
    # -- overlap marks and key partners -------------------------------------------------------
    Row(
        "editor marks an overlap",
        "ann",
        put("overlaps", "p1", "complement"),
        "only facilitators change overlaps",
        lambda c: c["overlaps"] == {},
    ),
    Row(
        "facilitator marks an overlap",
        "fac",
        put("overlaps", "p1", "competition"),
        None,
        lambda c: c["overlaps"] == {"p1": "competition"},
    ),
    Row(
        "a note names an organization the canvas does not have as its partner",
        "ann",
        edit("notes", "ar", "partner_org", "acme"),
        "partner_org names one of the canvas's organizations",
        lambda c: "partner_org" not in c["notes"]["ar"],
    ),
    Row(
        "a note names one of the canvas's organizations as its partner",
        "ann",
        edit("notes", "ar", "partner_org", "beta"),
        None,
        lambda c: c["notes"]["ar"]["partner_org"] == "beta",
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

        async def step(who: str, change: Callable[[Doc], None]) -> list[str]:
            actor = people[who]
            before = len(actor.denials)
            await actor.send_update(actor.local(change))
            for c in people.values():
                await c.pump()
            return actor.denials[before:]

        setup: list[tuple[str, Callable[[Doc], None]]] = [
            ("fac", put("notes", "p1", note("pains", "Waiting in the cold"))),
            ("fac", put("notes", "p2", note("pains", "Missed connections"))),
            ("fac", put("notes", "j1", note("customer-jobs", "Get to work"))),
            ("fac", put("notes", "g1", note("gains", "Arrive relaxed"))),
            ("fac", edit("blocks", "gains", "locked_by", "u_fac")),
            ("ann", put("notes", "ar", note("alpha:pain-relievers", "Heated shelters"))),
            ("ann", put("notes", "ag", note("alpha:gain-creators", "Quiet coaches"))),
            ("bob", put("notes", "br", note("beta:pain-relievers", "Live arrival times"))),
            ("ann", put("links", "L0", link("ar", "p1"))),
            ("ann", put("exchange", "X0", arrow("beta", "money", "alpha pays beta per ride"))),
        ]
        for who, change in setup:
            assert await step(who, change) == [], f"setup step by {who} refused"
        told = await step(row.who, row.act)
        if row.refused is None:
            assert told == [], f"{row.name}: refused with {told}"
        else:
            assert any(row.refused in t for t in told), f"{row.name}: told {told}"
        canvas = json_of(room.doc)
        assert row.expect(canvas), f"{row.name}: canvas is {canvas['links']} {canvas['exchange']}"
        stored = await store.load("c")
        assert stored is not None and doc_json(stored.parts()) == canvas
        for c in people.values():
            assert c.json() == canvas, f"{c.name}'s document did not converge"
            assert not c.closes, f"{c.name} was closed: {c.closes}"


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_fit_rule(row: Row, tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(_run(tmp_path, row))


# -- a race across two nodes --------------------------------------------------------------------


async def _until(ok: Callable[[], bool], clients: list[Client], within: float = 5.0) -> None:
    """Let the nodes exchange what they publish, and every client read it, until ``ok``."""
    deadline = asyncio.get_running_loop().time() + within
    while not ok():
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.005)
        for c in clients:
            await c.pump()


async def _race(tmp: Path) -> None:
    async with canvas_rooms(tmp, orgs=("Alpha", "Beta"), nodes=2) as [node0, node1]:
        fac = Client("fac", FAC, 1001, node1)
        ann = Client("ann", ANN, 1002, node0)
        bob = Client("bob", BOB, 1003, node0)
        clients = [fac, ann, bob]
        for c in clients:
            await c.connect()
        await fac.send_update(fac.local(put("notes", "p1", note("pains", "Cold"))))
        await ann.send_update(
            ann.local(put("notes", "ar", note("alpha:pain-relievers", "Shelter")))
        )
        await _until(lambda: "ar" in ann.json()["notes"] and "p1" in ann.json()["notes"], clients)
        await _until(lambda: "ar" in fac.json()["notes"], clients)

        # Both nodes admit at once: node 1 the deletion of the pain, node 0 Ann's link to it.
        deletion = fac.local(drop("notes", "p1"))
        linking = ann.local(put("links", "L", link("ar", "p1")))
        await asyncio.gather(fac.send_update(deletion), ann.send_update(linking))
        # Whichever node notices first removes the link: it goes for everyone, and from the store.
        rooms = [node0, node1]
        await _until(
            lambda: (
                all("p1" not in json_of(r.doc)["notes"] for r in rooms)
                and all(json_of(r.doc)["links"] == {} for r in rooms)
                and all(c.json()["links"] == {} for c in clients)
            ),
            clients,
        )
        stored = await node0.store.load("c")
        assert stored is not None and doc_json(stored.parts())["links"] == {}
        assert ann.denials == [] and all(not c.closes for c in clients)


def test_a_link_racing_its_notes_deletion_on_another_node_goes(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    loop.run_until_complete(_race(tmp_path))
