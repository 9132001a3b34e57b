"""Draft spaces in-process: who may open one, what the policy stamps inside it, and the reveal
(all of it or none, exactly once, settled forward after an interruption), on two nodes.

Real Rooms, the real PolicyGate, one SQLite store, the memory broker between two "nodes"; the
doors over real sockets are in tests/test_drafts_doors.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map, Text

from server import drafts
from server.auth import TokenError
from server.broker.memory import MemoryBroker, MemoryHub
from server.canvas import templates
from server.canvas.export import doc_to_json
from server.policy import PolicyGate
from server.room import Room
from server.rooms import Rooms
from server.session import Identity
from server.store.base import CanvasRecord
from server.store.sqlite import SQLiteStore
from tests.adversary import Client

ANN = Identity("u-ann", "Ann", "alpha", "editor")
AL = Identity("u-al", "Al", "alpha", "editor")
VAL = Identity("u-val", "Val", "alpha", "viewer")
BOB = Identity("u-bob", "Bob", "beta", "editor")
FRAN = Identity("u-fran", "Fran", "", "facilitator")


@dataclass
class Node:
    shared: Rooms
    spaces: drafts.DraftSpaces


@contextlib.asynccontextmanager
async def world(tmp_path: Path, nodes: int = 2, **settings: Any) -> AsyncIterator[list[Node]]:
    store = SQLiteStore(tmp_path / "db.sqlite", fsync=False)
    await store.start()
    hub = MemoryHub()
    brokers = [MemoryBroker(f"node-{i}", hub) for i in range(nodes)]
    for b in brokers:
        await b.start()
    orgs = templates.make_orgs([("Alpha", None), ("Beta", None)])
    initial = templates.initial_update("P", "partner-co-creation", orgs, True, 1.0)
    await store.create_canvas(
        CanvasRecord("c", "P", "partner-co-creation", 1.0, {"protect_notes": True, **settings}),
        initial,
    )
    out = []
    opts: dict[str, float | int] = {"awareness_tick_s": 0}
    for b in brokers:
        shared = Rooms(store, b, gate_factory=PolicyGate, room_options=opts)
        own = Rooms(store, b, gate_factory=PolicyGate, room_options=opts)
        out.append(Node(shared, drafts.DraftSpaces(store, b, shared, own)))
    try:
        yield out
    finally:
        for n in out:
            await n.spaces.rooms.close_all()
            await n.shared.close_all()
        for b in brokers:
            await b.close()
        await store.close()


async def drafter(node: Node, who: Identity, org: str | None = None) -> Client:
    room, inside = await node.spaces.open(who, "c", org)
    client = Client(who.name, inside, secrets.randbelow(2**31) + 1, room)
    await client.connect()
    return client


async def viewer_of_shared(node: Node, who: Identity) -> Client:
    room = await node.shared.acquire("c")
    client = Client(who.name, who, secrets.randbelow(2**31) + 1, room)
    await client.connect()
    return client


def note(block: str, text: str, **extra: Any) -> Callable[[Doc], None]:
    nid = extra.pop("id", "n-" + text)
    fields = {"block": block, "org": "", "x": 0.2, "y": 0.3} | extra

    def change(doc: Doc) -> None:
        doc.get("notes", type=Map)[nid] = Map({**fields, "text": Text(text)})

    return change


async def write(client: Client, change: Callable[[Doc], None]) -> None:
    assert await client.send_update(client.local(change)) is None
    await client.pump()


async def pump(*clients: Client) -> None:
    """Deliver everything in flight (the memory broker delivers on the next loop turns)."""
    for _ in range(20):
        await asyncio.sleep(0)
        while any([await c.pump() for c in clients]):
            pass


def notes(client: Client) -> dict[str, Any]:
    """The client's notes as it reads them: attributed (``canvas/attribution.py``)."""
    out: dict[str, Any] = doc_to_json(client.doc)["notes"]
    return out


async def test_members_draft_together_attributed_to_their_organization(tmp_path: Path) -> None:
    async with world(tmp_path) as (one, two):
        ann = await drafter(one, ANN)
        al = await drafter(two, AL)  # the other node: the draft space's own broker channel
        # A forged organization and author change nothing: the note is attributed by the
        # client id that wrote it (bound to the token, in the space).
        await write(ann, note("gains", "our margin is 4%", org="beta", author="u-bob"))
        await pump(ann, al)
        assert notes(al)["n-our margin is 4%"]["org"] == "alpha"
        assert notes(al)["n-our margin is 4%"]["author"] == "u-ann"

        # Members of one organization edit each other's drafts.
        def exclaim(d: Doc) -> None:
            text = d.get("notes", type=Map)["n-our margin is 4%"]["text"]
            text.insert(len(text), "!")

        await write(al, exclaim)
        await pump(ann, al)
        assert str(ann.doc.get("notes", type=Map)["n-our margin is 4%"]["text"]).endswith("!")
        # The frame (blocks, orgs) is the shared canvas's, without locks.
        blocks = ann.doc.get("blocks", type=Map)
        assert "gains" in blocks and "locked_by" not in blocks["gains"]


async def test_who_may_open_a_draft_space(tmp_path: Path) -> None:
    async with world(tmp_path, nodes=1) as (one,):
        with pytest.raises(TokenError) as refused:
            await one.spaces.open(BOB, "c", "alpha")
        assert refused.value.status == 403
        with pytest.raises(TokenError) as refused:
            await one.spaces.open(FRAN, "c", "alpha")  # the canvas does not allow it
        assert refused.value.status == 403
        with pytest.raises(TokenError) as refused:
            await one.spaces.open(Identity("u-x", "X", "", "editor"), "c", None)
        assert refused.value.status == 403
        with pytest.raises(TokenError) as refused:
            await one.spaces.open(ANN, "nope", None)
        assert refused.value.status == 404
        room, inside = await one.spaces.open(BOB, "c", None)
        assert room.canvas_id == "c/drafts/beta" and inside.org_id == "beta"
        one.spaces.release(room)


async def test_facilitator_inside_writes_as_the_space_and_viewers_write_nothing(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, nodes=1, drafts_facilitator_access=True) as (one,):
        fran = await drafter(one, FRAN, "alpha")
        val = await drafter(one, VAL)
        await write(fran, note("gains", "from fran", org="beta"))
        await pump(fran, val)
        assert notes(val)["n-from fran"]["org"] == "alpha"
        await val.send_update(val.local(note("gains", "viewer idea")))
        await pump(fran, val)
        assert "n-viewer idea" not in notes(fran) and "n-viewer idea" not in notes(val)
        # Blocks of a draft space are the shared canvas's: nobody writes them there.
        await write(fran, lambda d: d.get("blocks", type=Map)["gains"].__setitem__("title", "X"))
        await pump(fran, val)
        assert notes(val).keys() == {"n-from fran"}
        assert fran.doc.get("blocks", type=Map)["gains"]["title"] != "X"


async def test_reveal_all_on_both_nodes_exactly_once_with_author_and_org(tmp_path: Path) -> None:
    async with world(tmp_path) as (one, two):
        ann = await drafter(one, ANN)
        bob = await drafter(two, BOB)
        # Ann's draft claims to be Bob's: the reveal writes (as the server, whose fields are
        # trusted) who wrote it by attribution, never what its fields said.
        await write(ann, note("gains", "alpha idea", org="beta", author="u-bob", author_name="B"))
        await write(bob, note("customer-jobs", "beta idea"))
        # Before: neither shared view holds a draft.
        watchers = [await viewer_of_shared(one, BOB), await viewer_of_shared(two, ANN)]
        assert all(notes(w) == {} for w in watchers)
        assert await one.spaces.counts("c", ["alpha", "beta"]) == {"alpha": 1, "beta": 1}

        result = await one.spaces.reveal("c", ["alpha", "beta"], None, FRAN)
        assert result.revealed == {"alpha": ["n-alpha idea"], "beta": ["n-beta idea"]}
        await pump(*watchers, ann, bob)
        for w in watchers:
            got = notes(w)
            assert set(got) == {"n-alpha idea", "n-beta idea"}
            assert (got["n-alpha idea"]["org"], got["n-alpha idea"]["author"]) == ("alpha", "u-ann")
            assert (got["n-beta idea"]["org"], got["n-beta idea"]["author"]) == ("beta", "u-bob")
            assert got["n-alpha idea"]["text"] == "alpha idea"
            raw = w.doc.get("notes", type=Map).to_py() or {}
            assert (raw["n-alpha idea"]["org"], raw["n-alpha idea"]["author"]) == ("alpha", "u-ann")
            assert w.doc.get("meta", type=Map)["last_reveal"]["count"] == 2
        assert notes(ann) == {} and notes(bob) == {}  # removed from the draft spaces
        assert ann.doc.get("meta", type=Map)["last_reveal"]["orgs"] == ["alpha", "beta"]
        # Revealing again reveals nothing and duplicates nothing.
        again = await two.spaces.reveal("c", ["alpha", "beta"], None, FRAN)
        assert again.count == 0
        await pump(*watchers)
        assert all(len(notes(w)) == 2 for w in watchers)


async def test_reveal_chosen_drafts_keeps_the_rest_private(tmp_path: Path) -> None:
    async with world(tmp_path, nodes=1) as (one,):
        ann = await drafter(one, ANN)
        await write(ann, note("gains", "one"))
        await write(ann, note("gains", "two"))
        result = await one.spaces.reveal("c", ["alpha"], ["n-two", "n-missing"], FRAN)
        assert result.revealed == {"alpha": ["n-two"]}
        await ann.pump()
        assert set(notes(ann)) == {"n-one"}
        watcher = await viewer_of_shared(one, BOB)
        assert set(notes(watcher)) == {"n-two"}


async def test_a_draft_cannot_overwrite_another_organizations_note(tmp_path: Path) -> None:
    """A hostile member drafts under the id of a competitor's shared note, hoping a reveal
    overwrites it: the draft is kept back as a conflict and the shared note is untouched."""
    async with world(tmp_path, nodes=1) as (one,):
        bob_shared = await viewer_of_shared(one, BOB)
        await write(bob_shared, note("customer-jobs", "bob's real note", id="victim"))
        ann = await drafter(one, ANN)
        await write(ann, note("gains", "hijack", id="victim"))
        result = await one.spaces.reveal("c", ["alpha"], None, FRAN)
        assert result.conflicts == ["victim"] and result.count == 0
        await bob_shared.pump()
        assert notes(bob_shared)["victim"]["text"] == "bob's real note"
        assert notes(bob_shared)["victim"]["org"] == "beta"
        await ann.pump()
        assert "victim" in notes(ann)  # still private, not silently lost


async def test_the_same_id_in_two_organizations_drafts_overwrites_neither(tmp_path: Path) -> None:
    """A hostile member of Beta drafts under an id Alpha also uses (client ids are chosen by
    clients): "reveal all" reveals neither, so neither organization's note replaces the other."""
    async with world(tmp_path, nodes=1) as (one,):
        ann = await drafter(one, ANN)
        bob = await drafter(one, BOB)
        await write(ann, note("gains", "alpha's", id="same"))
        await write(ann, note("gains", "alpha other"))
        await write(bob, note("pains", "beta's", id="same"))
        result = await one.spaces.reveal("c", ["alpha", "beta"], None, FRAN)
        assert sorted(result.conflicts) == ["same", "same"]
        assert result.revealed == {"alpha": ["n-alpha other"]}
        watcher = await viewer_of_shared(one, BOB)
        assert set(notes(watcher)) == {"n-alpha other"}
        await pump(ann, bob)
        assert notes(ann)["same"]["text"] == "alpha's" and notes(bob)["same"]["text"] == "beta's"


@pytest.mark.parametrize("point", drafts.CRASH_POINTS)
async def test_interrupted_reveal_is_all_or_none_and_rolls_forward(
    tmp_path: Path, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node dies at each point of a reveal (here: the reveal stops there; the process
    kill is tests/test_drafts_doors.py): the shared canvas has all of it or none, and the
    next open of the draft space finishes the job without duplicates."""

    class Killed(Exception):
        pass

    async with world(tmp_path, nodes=1) as (one,):
        ann = await drafter(one, ANN)
        for t in ("a1", "a2", "a3"):
            await write(ann, note("gains", t))
        bob = await drafter(one, BOB)
        await write(bob, note("customer-jobs", "b1"))

        def crash(where: str) -> None:
            if where == point:
                raise Killed(where)

        monkeypatch.setattr(one.spaces, "_crash", crash)
        with pytest.raises(Killed):
            await one.spaces.reveal("c", ["alpha", "beta"], None, FRAN)
        monkeypatch.undo()
        watcher = await viewer_of_shared(one, BOB)
        shared = set(notes(watcher))
        assert shared in (set(), {"n-a1", "n-a2", "n-a3", "n-b1"})
        assert (shared == set()) == (point == "before-shared")
        # Opening a draft space settles it: what the shared canvas holds is gone from it.
        again = await drafter(one, ANN)
        left = set(notes(again))
        assert left == ({"n-a1", "n-a2", "n-a3"} if not shared else set())
        await one.spaces.reveal("c", ["alpha", "beta"], None, FRAN)
        await watcher.pump()
        assert set(notes(watcher)) == {"n-a1", "n-a2", "n-a3", "n-b1"}
        assert all(n["org"] in ("alpha", "beta") for n in notes(watcher).values())


async def test_shared_doors_never_open_a_draft_document(tmp_path: Path) -> None:
    """The draft space is a document of its own: the shared Rooms, the canvas list and the
    shared canvas's audit never hold it."""
    async with world(tmp_path, nodes=1) as (one,):
        ann = await drafter(one, ANN)
        await write(ann, note("gains", "secret"))
        store = one.spaces.store
        assert [r.id for r in await store.list_canvases()] == ["c"]
        assert all(a.canvas_id == "c" for a in await store.list_audit("c"))
        assert one.shared.get_loaded("c/drafts/alpha") is None
        shared: Room = await one.shared.acquire("c")
        try:
            assert b"secret" not in shared.doc.get_update()
        finally:
            one.shared.release(shared)
        # Deleting the canvas deletes its draft spaces' documents too.
        assert await store.delete_canvas("c")
        assert await store.load("c/drafts/alpha") is None


async def test_reveal_keeps_formatting_and_reopening_writes_nothing(tmp_path: Path) -> None:
    async with world(tmp_path, nodes=1) as (one,):
        ann = await drafter(one, ANN)
        await write(ann, note("gains", "bøld claim"))

        def embolden(d: Doc) -> None:
            d.get("notes", type=Map)["n-bøld claim"]["text"].format(0, 5, {"bold": True})

        await write(ann, embolden)
        room = ann.room
        before = room.log_count
        again, _ = await one.spaces.open(AL, "c", None)  # frame unchanged, nothing to settle
        assert again is room and room.log_count == before
        one.spaces.release(again)
        await one.spaces.reveal("c", ["alpha"], None, FRAN)
        watcher = await viewer_of_shared(one, BOB)
        text = watcher.doc.get("notes", type=Map)["n-bøld claim"]["text"]
        assert text.diff() == [("bøld", {"bold": True}), (" claim", None)]
