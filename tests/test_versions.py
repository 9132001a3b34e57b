"""Named versions in-process: the diff by organization of scripted changes made through the
real policy path by three partners, and restore in place (participants converge, nothing is
lost, other nodes follow). A real Room with its PolicyGate over a real SQLite store and the
memory broker (tests/inproc.py); participants are pycrdt documents synced as y-websocket
clients are (tests/adversary.py). The HTTP doors and real sockets: tests/test_versions_http.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map, Text

from server import versions
from server.canvas.export import doc_to_json
from server.session import Identity
from server.store.base import SERVER_OWNER, Participant
from tests.adversary import Client, doc_json
from tests.inproc import canvas_rooms

FAC = Identity("u_fac", "Fran", "", "facilitator")
ANN = Identity("u_ann", "Ann", "alpha", "editor")
BOB = Identity("u_bob", "Bob", "beta", "editor")
GIL = Identity("u_gil", "Gil", "gamma", "editor")
PEOPLE = {"fac": (FAC, 2001), "ann": (ANN, 2002), "bob": (BOB, 2003), "gil": (GIL, 2004)}
WHO = versions.Who("u_fac", "Fran", "")


def note(block: str, text: str, x: float = 0.1, y: float = 0.1) -> Map:
    return Map({"block": block, "text": Text(text), "x": x, "y": y, "votes": Map()})


def notes(doc: Doc) -> Map:
    return doc.get("notes", type=Map)


class People:
    def __init__(self, room: Any) -> None:
        self.room = room
        self.by = {k: Client(k, ident, cid, room) for k, (ident, cid) in PEOPLE.items()}

    async def connect(self) -> None:
        for c in self.by.values():
            await c.connect()

    async def act(self, who: str, change: Any) -> None:
        c = self.by[who]
        before = len(c.denials)
        await c.send_update(c.local(change))
        await self.pump()
        assert c.denials[before:] == [], f"{who} was refused: {c.denials[before:]}"

    async def pump(self) -> None:
        while any([await c.pump() for c in self.by.values()]):
            pass

    def converged(self) -> dict[str, Any]:
        canvas = doc_to_json(self.room.doc)
        for c in self.by.values():
            assert doc_to_json(c.doc) == canvas, f"{c.name} did not converge"
        return canvas


async def until(condition: Callable[[], bool], client: Client, turns: int = 1000) -> None:
    """Let the event loop deliver (the memory broker hands messages over in tasks) until the
    condition holds; fails after ``turns`` loop turns, not after some time."""
    for _ in range(turns):
        await client.pump()
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def retext(doc: Doc, nid: str, text: str) -> None:
    t = notes(doc)[nid]["text"]
    del t[0 : len(str(t).encode())]
    t.insert(0, text)


async def first_round(p: People) -> None:
    await p.act(
        "ann", lambda d: notes(d).__setitem__("a1", note("customer-jobs", "charge at night"))
    )
    await p.act("bob", lambda d: notes(d).__setitem__("b1", note("pains", "broken chargers")))
    await p.act("gil", lambda d: notes(d).__setitem__("g1", note("gains", "one card")))
    await p.act("gil", lambda d: notes(d).__setitem__("g2", note("gains", "cheap roaming")))


async def test_the_diff_lists_exactly_the_scripted_changes_under_each_organization(
    tmp_path: Path,
) -> None:
    async with canvas_rooms(tmp_path, orgs=("Alpha", "Beta", "Gamma")) as [room]:
        store = room.store
        for ident in (ANN, BOB, GIL):
            await store.add_participant(
                Participant(ident.user_id, "c", ident.name, ident.org_id, "editor", None, 1.0)
            )
        p = People(room)
        await p.connect()
        await first_round(p)
        v1 = await versions.save(store, room, "after round 1", WHO)

        # Round 2, one kind of change per partner, plus votes across partners.
        await p.act(
            "ann", lambda d: notes(d).__setitem__("a2", note("alpha:products-services", "app"))
        )
        await p.act("ann", lambda d: retext(d, "a1", "charge at night, cheaply"))
        await p.act("bob", lambda d: notes(d)["b1"].__setitem__("block", "customer-jobs"))
        await p.act("gil", lambda d: notes(d)["g2"].__setitem__("x", 0.8))
        await p.act("gil", lambda d: notes(d).pop("g1"))
        await p.act("bob", lambda d: notes(d)["a1"]["votes"].__setitem__("u_bob", 1))
        v2 = await versions.save(store, room, "after round 2", WHO)
        await p.act("ann", lambda d: notes(d).__setitem__("a3", note("gains", "after v2")))

        out = await versions.compare(store, room, v1.id, v2.id)
        by_org = {g["org"]: g for g in out["orgs"]}
        assert set(by_org) == {"alpha", "beta", "gamma"}
        a, b, g = by_org["alpha"], by_org["beta"], by_org["gamma"]
        assert [n["id"] for n in a["added"]] == ["a2"] and a["added"][0]["text"] == "app"
        assert [(e["id"], e["before"], e["after"], e["fields"]) for e in a["edited"]] == [
            ("a1", "charge at night", "charge at night, cheaply", ["text"])
        ]
        assert a["removed"] == a["moved"] == a["votes"] == []
        assert [(m["id"], m["from"]["block"], m["to"]["block"]) for m in b["moved"]] == [
            ("b1", "pains", "customer-jobs")
        ]
        # Bob's vote on Alpha's note is Beta's change (the voter's organization).
        assert [(v["id"], v["voter"], v["before"], v["after"]) for v in b["votes"]] == [
            ("a1", "u_bob", None, 1)
        ]
        assert b["added"] == b["removed"] == b["edited"] == []
        assert [n["id"] for n in g["removed"]] == ["g1"]
        assert [(m["id"], m["from"]["x"], m["to"]["x"]) for m in g["moved"]] == [("g2", 0.1, 0.8)]
        assert g["added"] == g["edited"] == g["votes"] == []
        assert out["totals"] == {
            "added": 1,
            "removed": 1,
            "edited": 1,
            "moved": 2,
            "votes": 1,
            "links_added": 0,
            "links_removed": 0,
            "comments_added": 0,
            "comments_resolved": 0,
        }
        # And from v2 to now: only what came after it.
        now = await versions.compare(store, room, v2.id, None)
        assert [(g["org"], [n["id"] for n in g["added"]]) for g in now["orgs"]] == [
            ("alpha", ["a3"])
        ]


async def test_restore_in_place_converges_everyone_and_loses_nothing(tmp_path: Path) -> None:
    async with canvas_rooms(tmp_path, orgs=("Alpha", "Beta", "Gamma"), nodes=2) as [room, far]:
        store = room.store
        p = People(room)
        await p.connect()
        far_ann = Client("far-ann", ANN, 3002, far)  # the same partner on another node
        await far_ann.connect()
        await first_round(p)
        v1 = await versions.save(store, room, "after round 1", WHO)
        kept = doc_to_json(room.doc)

        await p.act("ann", lambda d: retext(d, "a1", "rewritten"))
        await p.act("bob", lambda d: notes(d).pop("b1"))
        await p.act("gil", lambda d: notes(d)["g1"].__setitem__("block", "pains"))
        await p.act("gil", lambda d: notes(d).__setitem__("g3", note("gains", "new since")))
        await p.act("bob", lambda d: notes(d)["a1"]["votes"].__setitem__("u_bob", 1))
        await p.act(
            "fac", lambda d: d.get("blocks", type=Map)["gains"].__setitem__("locked_by", "u_fac")
        )
        before_restore = doc_to_json(room.doc)

        done = await versions.restore_in_place(store, room, v1.id, WHO)
        assert done.changed
        assert done.version.created_by == SERVER_OWNER
        await p.pump()
        canvas = p.converged()
        assert {k: canvas[k] for k in ("blocks", "notes", "orgs")} == {
            k: kept[k] for k in ("blocks", "notes", "orgs")
        }
        # Nothing lost: what the restore replaced is a version of its own.
        assert await versions.content(store, "c", done.version.id) == before_restore
        # Durable, and on the other node too.
        stored = await store.load("c")
        assert stored is not None and doc_json(stored.parts()) == doc_json([room.doc.get_update()])
        await until(lambda: doc_to_json(far.doc) == canvas, far_ann)
        assert doc_to_json(far_ann.doc) == canvas

        # After the restore, everyone keeps editing, and the edits stand.
        await p.act("bob", lambda d: retext(d, "b1", "broken chargers, again"))
        await p.act("ann", lambda d: notes(d).__setitem__("a9", note("customer-jobs", "after")))
        canvas = p.converged()
        assert canvas["notes"]["b1"]["text"] == "broken chargers, again"
        assert "a9" in canvas["notes"]
        # Restoring what the canvas already equals changes nothing.
        v3 = await versions.save(store, room, "same", WHO)
        assert not (await versions.restore_in_place(store, room, v3.id, WHO)).changed


async def test_restore_keeps_organizations_added_since(tmp_path: Path) -> None:
    from server.canvas import edits

    async with canvas_rooms(tmp_path, orgs=("Alpha",)) as [room]:
        v1 = await versions.save(room.store, room, "one partner", WHO)
        await room.apply_server_change(
            lambda d: edits.add_org(d, "Delta", None, "partner-co-creation")
        )
        await versions.restore_in_place(room.store, room, v1.id, WHO)
        canvas = doc_to_json(room.doc)
        assert set(canvas["orgs"]) == {"alpha", "delta"}
        # Its value map blocks were not in the version: the board is the version's.
        assert not any(b.startswith("delta:") for b in canvas["blocks"])


async def test_automatic_versions_are_kept_apart_and_bounded(tmp_path: Path) -> None:
    from server.store.base import MAX_VERSIONS, VersionLimit

    async with canvas_rooms(tmp_path) as [room]:
        store = room.store
        named = await versions.save(store, room, "after round 1", WHO)
        for i in range(MAX_VERSIONS + 5):  # e.g. a vote round closed, again and again
            assert await versions.save_automatic(store, "c", room.doc, f"vote round {i} closed")
        kept = await store.list_versions("c")
        assert len(kept) == MAX_VERSIONS
        assert kept[0].name == f"vote round {MAX_VERSIONS + 4} closed"
        assert named.id in {v.id for v in kept}  # the one saved on purpose stays
        # Only versions saved on purpose: an automatic one is skipped, a restore refused.
        for v in kept:
            if v.created_by == SERVER_OWNER:
                await store.delete_version("c", v.id)
        for i in range(MAX_VERSIONS - 1):
            await versions.save(store, room, f"named {i}", WHO)
        assert await versions.save_automatic(store, "c", room.doc, "drafts revealed") is None
        before = doc_to_json(room.doc)
        with pytest.raises(VersionLimit):
            await versions.restore_in_place(store, room, named.id, WHO)
        assert doc_to_json(room.doc) == before
        assert len(await store.list_versions("c")) == MAX_VERSIONS
