"""Attribution without rewriting: a note's organization and author follow from the client id that
created it (``server/canvas/attribution.py``), in-process on real Rooms (PolicyGate, SQLite store,
memory broker), with adversaries built the way an attacker builds them: valid updates whose
fields, roots or client ids lie. Differential where it can be: the canvas with the adversary
equals the canvas without, as everyone reads it (the attributed JSON, the exports, the
contribution map, each client's own document).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map, Text

from server import closecodes, protocol
from server.canvas import attribution, templates
from server.canvas.attribution import IDS, attribute, ids_entry, note_creators
from server.canvas.contribution import contribution_map
from server.canvas.export import doc_to_json
from server.canvas.restore import content_of
from server.exports import export
from server.room import Room
from server.session import Identity
from server.store.base import CanvasRecord, ClientBinding
from tests.adversary import Client, doc_json, json_of
from tests.inproc import canvas_rooms

FAC = Identity("u_fac", "Fran", "", "facilitator")
ANN = Identity("u_ann", "Ann", "alpha", "editor")
BOB = Identity("u_bob", "Bob", "beta", "editor")
PEOPLE = {"fac": (FAC, 1001), "ann": (ANN, 1002), "bob": (BOB, 1003)}
ORGS = {"alpha", "beta"}


def notes(doc: Doc) -> Map:
    return doc.get("notes", type=Map)


def note(block: str, text: str, **fields: Any) -> Callable[[Doc], None]:
    nid = fields.pop("id", "n-" + text)

    def change(doc: Doc) -> None:
        notes(doc)[nid] = Map({"block": block, "text": Text(text), "x": 0.2, "y": 0.3, **fields})

    return change


async def settle(*clients: Client) -> None:
    """Deliver everything in flight (the memory broker delivers on later loop turns)."""
    for _ in range(20):
        await asyncio.sleep(0)
        for room in {c.room for c in clients}:
            await room.pipeline.drained()
        while any([await c.pump() for c in clients]):
            pass


async def people_in(room: Room, **only: tuple[Identity, int]) -> dict[str, Client]:
    out = {k: Client(k, ident, cid, room) for k, (ident, cid) in (only or PEOPLE).items()}
    for c in out.values():
        await c.connect()
    return out


async def act(people: dict[str, Client], who: str, change: Callable[[Doc], None]) -> list[str]:
    """``who`` makes a local change and sends it; everyone pumps; what ``who`` was told."""
    actor = people[who]
    before = len(actor.denials)
    await actor.send_update(actor.local(change))
    await settle(*people.values())
    return actor.denials[before:]


def seen(c: Client) -> dict[str, tuple[str, str, str]]:
    """What one client shows for each note: (org, author, name), by the rule, from its own doc."""
    return {
        nid: (n["org"], n["author"], n["author_name"])
        for nid, n in doc_to_json(c.doc)["notes"].items()
    }


# -- the rule -------------------------------------------------------------------------------


def test_the_rule_trusts_fields_only_where_the_server_or_a_facilitator_wrote_them() -> None:
    lie = {"org": "beta", "author": "u_bob", "author_name": "Bob"}
    member = ids_entry("u_ann", "alpha", "Ann", False)
    fac = ids_entry("u_fac", "", "Fran", True)
    server = ids_entry(attribution.SERVER_USER, "", "", False)
    legacy = ids_entry(attribution.LEGACY_USER, "", "", False)
    assert attribute(lie, member, ORGS).fields() == {
        "org": "alpha",
        "author": "u_ann",
        "author_name": "Ann",
    }
    assert attribute(lie, fac, ORGS).fields() == {
        "org": "beta",
        "author": "u_fac",
        "author_name": "Fran",
    }
    # A facilitator files under a known partner or the facilitation, nothing else.
    assert attribute({"org": "gamma"}, fac, ORGS).org == ""
    assert attribute({"org": 7}, fac, ORGS).org == ""
    assert attribute({}, fac, ORGS).org == ""
    assert attribute(lie, server, ORGS).fields() == lie
    assert attribute(lie, legacy, ORGS).fields() == lie
    # No entry: written before attribution (stamped then) or offline by the server.
    assert attribute(lie, None, ORGS).by == attribution.BY_STAMPED
    # Garbage entries never make a member trusted.
    assert (
        attribute(lie, {"user": "u_ann", "org": "alpha", "facilitator": "yes"}, ORGS).org == "alpha"
    )
    assert attribute(lie, ["u_ann"], ORGS).by == attribution.BY_STAMPED


def test_creators_are_the_live_entry_of_each_note() -> None:
    """Replaced, deleted and re-created entries: the creator is the live item's client."""
    doc: Doc = Doc()

    def as_client(cid: int, change: Callable[[Doc], None]) -> None:
        w: Doc = Doc(client_id=cid)
        w.apply_update(doc.get_update())
        with w.transaction():
            change(w)
        doc.apply_update(w.get_update(doc.get_state()))

    as_client(11, note("gains", "one", id="n1"))
    as_client(22, note("gains", "one again", id="n1"))  # replaces the entry
    as_client(11, note("gains", "two", id="n2"))
    as_client(11, lambda d: notes(d)["n2"].__setitem__("text", Text("edited")))  # a field only
    as_client(33, note("gains", "three", id="n3"))
    as_client(33, lambda d: notes(d).__delitem__("n3"))
    as_client(44, note("gains", "four", id="n4"))
    as_client(44, lambda d: notes(d).__delitem__("n4"))
    as_client(55, note("gains", "four again", id="n4"))
    got = {k: c for k, (c, _) in note_creators(doc.get_update()).items()}
    assert got == {"n1": 22, "n2": 11, "n4": 55}


def _by_placement(state: bytes) -> dict[str, tuple[int, int]]:
    """The reference: place every struct with the validator's walk, keep live root entries."""
    from server import yupdate as y
    from server.canvas.attribution import _Deleted
    from server.vouch import placements

    parsed = y.read_update(state)
    deleted = _Deleted(parsed.deletes)
    out = {}
    for client, clock, _n, info in placements(parsed):
        if info[0] == "notes" and info[2] == "note" and not deleted.has(client, clock):
            out[str(info[1])] = (client, clock)
    return out


def random_doc(seed: int) -> Doc:
    """Random writers replacing, deleting, re-creating and editing notes, some concurrently."""
    import random

    rng = random.Random(seed)
    doc: Doc = Doc(client_id=1)
    forks: list[Doc] = []
    for step in range(60):
        fork = rng.random() < 0.3  # applied later: concurrent with what comes between
        # A fork's clocks are not in the document yet: its id must be its own (one tab).
        cid = 100 + step if fork else rng.choice((11, 22, 33, 44))
        w: Doc = Doc(client_id=cid)
        w.apply_update(doc.get_update())
        nid = f"n{rng.randrange(6)}"
        with w.transaction():
            live = notes(w)
            roll = rng.random()
            if nid in live and roll < 0.3:
                del live[nid]
            elif nid in live and roll < 0.6:
                live[nid]["text"].insert(0, f"{step} ")
                live[nid]["x"] = rng.random()
            else:
                note("gains", f"s{step}", id=nid)(w)
        if fork:
            forks.append(w)
        else:
            doc.apply_update(w.get_update(doc.get_state()))
        if forks and rng.random() < 0.3:
            doc.apply_update(forks.pop().get_update())
    for f in forks:
        doc.apply_update(f.get_update())
    return doc


@pytest.mark.parametrize("seed", range(12))
def test_the_fast_reading_of_creators_equals_placing_every_struct(seed: int) -> None:
    doc = random_doc(seed)
    state = doc.get_update()
    live_now = set(notes(doc).keys())
    assert set(note_creators(state)) == live_now
    assert note_creators(state) == _by_placement(state)


# -- live rooms --------------------------------------------------------------------------------


async def test_a_partners_lies_in_its_own_note_change_nothing_anyone_sees(tmp_path: Path) -> None:
    """Differential: Ann's note whose fields claim Bob of beta, against the same note written
    honestly. Everyone's view, the exports, the contribution map and the rules are the same."""
    worlds: list[tuple[dict[str, Client], Room]] = []
    views = []
    for forged in (True, False):
        async with canvas_rooms(tmp_path / str(forged), orgs=("Alpha", "Beta")) as [room]:
            people = await people_in(room)
            lies = {"org": "beta", "author": "u_bob", "author_name": "Bob"} if forged else {}
            told = await act(people, "ann", note("gains", "ours", id="a1", **lies))
            assert told == []
            # Bob may not touch it (it is alpha's, whatever it says), Ann may.
            told = await act(people, "bob", lambda d: notes(d)["a1"]["text"].insert(0, "x"))
            assert told == ["this note belongs to another organization"]
            assert await act(people, "ann", lambda d: notes(d)["a1"].__setitem__("x", 0.5)) == []
            # Bob's delete is refused and the note restored by the server, still Ann's.
            told = await act(people, "bob", lambda d: notes(d).__delitem__("a1"))
            assert told == ["this note belongs to another organization"]
            content = doc_to_json(room.doc)
            for c in people.values():
                assert seen(c) == {"a1": ("alpha", "u_ann", "Ann")}
                assert c.json() == json_of(room.doc)
            stored = await room.store.load("c")
            assert stored is not None and doc_json(stored.parts()) == json_of(room.doc)
            views.append(
                (
                    content,
                    export(content, "csv"),
                    export(content, "md"),
                    contribution_map(content),
                )
            )
            worlds.append((people, room))
    assert views[0] == views[1]
    assert views[0][0]["notes"]["a1"]["org"] == "alpha"


async def test_facilitators_still_file_notes_under_any_partner(tmp_path: Path) -> None:
    async with canvas_rooms(tmp_path, orgs=("Alpha", "Beta")) as [room]:
        people = await people_in(room)
        await act(people, "fac", note("gains", "for beta", id="f1", org="beta"))
        await act(people, "fac", note("gains", "nowhere", id="f2", org="gamma"))
        for c in people.values():
            assert seen(c)["f1"] == ("beta", "u_fac", "Fran")
            assert seen(c)["f2"] == ("", "u_fac", "Fran")
        # With protected notes, beta's members own what the facilitator filed under beta.
        assert await act(people, "bob", lambda d: notes(d)["f1"].__setitem__("x", 0.9)) == []
        told = await act(people, "ann", lambda d: notes(d)["f1"].__setitem__("x", 0.1))
        assert told == ["this note belongs to another organization"]


@pytest.mark.parametrize("protect", [True, False])
async def test_editing_a_victims_org_field_is_refused_and_changes_nothing(
    tmp_path: Path, protect: bool
) -> None:
    async with canvas_rooms(tmp_path, orgs=("Alpha", "Beta"), protect=protect) as [room]:
        people = await people_in(room)
        await act(people, "ann", note("gains", "ann's", id="a1"))
        await act(people, "fac", note("gains", "server-ish", id="f1", org="alpha"))
        before = json_of(room.doc)
        for nid in ("a1", "f1"):
            for f, v in (("org", "beta"), ("author", "u_bob"), ("author_name", "Bob")):
                told = await act(
                    people, "bob", lambda d, nid=nid, f=f, v=v: notes(d)[nid].__setitem__(f, v)
                )
                assert told, (nid, f)
        assert json_of(room.doc) == before
        for c in people.values():
            assert c.json() == before


async def test_the_ids_root_is_the_servers_alone(tmp_path: Path) -> None:
    """A partner forging who its id is (as the server, as another user, as a facilitator), in
    the same update as a note that would then be trusted: refused, and the note is Bob's."""
    async with canvas_rooms(tmp_path, orgs=("Alpha", "Beta")) as [room]:
        people = await people_in(room)
        real = ids_entry("u_bob", "beta", "Bob", False)
        for forged in (
            ids_entry(attribution.SERVER_USER, "", "", False),
            ids_entry("u_ann", "alpha", "Ann", False),
            ids_entry("u_bob", "beta", "Bob", True),
        ):

            def change(d: Doc, forged: dict[str, Any] = forged) -> None:
                d.get(IDS, type=Map)[str(1003)] = forged
                d.get(IDS, type=Map)["424242"] = forged
                note("gains", "trust me", id="b1", org="alpha", author="u_ann")(d)

            told = await act(people, "bob", change)
            assert "ids are changed by the server only" in told
            for c in people.values():
                assert seen(c)["b1"] == ("beta", "u_bob", "Bob")
                assert c.doc.get(IDS, type=Map)["1003"] == real
                assert "424242" not in c.doc.get(IDS, type=Map)


async def test_another_users_client_id_cannot_carry_attribution(tmp_path: Path) -> None:
    """Bob writes a note with Ann's client id (so it would be attributed to Ann): refused
    before anything is applied, and Ann's attribution is unchanged."""
    async with canvas_rooms(tmp_path, orgs=("Alpha", "Beta")) as [room]:
        people = await people_in(room)
        await act(people, "ann", note("gains", "ann's", id="a1"))
        before = json_of(room.doc)
        forger: Doc = Doc(client_id=1002)  # Ann's id, which is bound to Ann
        forger.apply_update(room.doc.get_update())
        with forger.transaction():
            note("gains", "framed", id="a2")(forger)
            notes(forger)["a1"]["text"].insert(0, "framed ")
        attack = forger.get_update(room.doc.get_state())
        closed = await people["bob"].send(protocol.sync_update(attack))
        assert closed is not None and closed.code == closecodes.POLICY_VIOLATION
        await settle(*people.values())
        assert json_of(room.doc) == before
        # A fresh id Bob claims is Bob's, whatever org fields he writes.
        bob2 = Client("bob2", BOB, 5005, room)
        await bob2.connect()
        people["bob2"] = bob2
        await act(people, "bob2", note("gains", "fresh", id="b2", org="alpha", author="u_ann"))
        assert seen(people["ann"])["b2"] == ("beta", "u_bob", "Bob")
        assert seen(people["ann"])["a1"] == ("alpha", "u_ann", "Ann")


class Watcher(Client):
    """A client that checks, after every frame it applies, that each note it holds has its
    creator's ids entry (the ordering the room promises), across nodes."""

    violations: list[str]

    async def _handle(self, frame: bytes) -> None:
        await super()._handle(frame)
        ids = self.doc.get(IDS, type=Map)
        for nid, (client, _) in note_creators(self.doc.get_update()).items():
            if str(client) not in ids:
                self.violations.append(f"{nid} by {client} before its ids entry")


async def test_the_ids_entry_reaches_everyone_no_later_than_the_note(tmp_path: Path) -> None:
    async with canvas_rooms(tmp_path, orgs=("Alpha", "Beta"), nodes=2) as [one, two]:
        watchers = []
        for room in (one, two):
            w = Watcher(f"w@{id(room)}", Identity("u_w", "W", "beta", "viewer"), 0, room)
            w.client_id = 7000 + len(watchers)
            w.doc = Doc(client_id=w.client_id)
            w.violations = []
            await w.connect()
            watchers.append(w)
        people = await people_in(one)
        writers = {**people, "w1": watchers[0], "w2": watchers[1]}
        for i in range(5):
            for who in ("ann", "bob", "fac"):
                await people[who].send_update(
                    people[who].local(note("gains", f"{who} {i}", id=f"{who}-{i}"))
                )
        for _ in range(50):
            await settle(*writers.values())
            if all(len(w.doc.get("notes", type=Map)) == 15 for w in watchers):
                break
        for w in watchers:
            assert len(w.doc.get("notes", type=Map)) == 15
            assert w.violations == []
            assert {n[0] for n in seen(w).values()} == {"alpha", "beta", ""}


async def test_one_ids_entry_per_client_id_and_no_correction_per_note(tmp_path: Path) -> None:
    """Twenty notes from one tab: one ids entry, and every note travels as its client sent it
    (no server correction merged in: the update stored is the client's own)."""
    async with canvas_rooms(tmp_path, orgs=("Alpha", "Beta")) as [room]:
        people = await people_in(room)
        before = await room.store.load("c")
        assert before is not None
        rows = len(before.updates)
        sent = []
        for i in range(20):
            u = people["ann"].local(note("gains", f"idea {i}", id=f"a{i}", org="alpha"))
            assert u is not None
            sent.append(u)
            assert await people["ann"].send_update(u) is None
        await settle(*people.values())
        stored = await room.store.load("c")
        assert stored is not None
        new = [u for _, u in stored.updates[rows:]]
        assert new[1:] == sent  # the first row is the ids entry of Ann's id
        ids = room.doc.get(IDS, type=Map)
        assert ids["1002"] == ids_entry("u_ann", "alpha", "Ann", False)
        assert all(seen(people["bob"])[f"a{i}"] == ("alpha", "u_ann", "Ann") for i in range(20))


# -- old canvases ----------------------------------------------------------------------------


def _old_style_canvas() -> tuple[bytes, list[ClientBinding]]:
    """A canvas as the stamping policy left it: notes created by members' ids, then stamped by
    a server correction written with the room's id; no ``ids`` root. A facilitator's note filed
    under beta kept its org; a member's org was overwritten with its own."""
    doc: Doc = Doc()
    doc.apply_update(
        templates.initial_update(
            "Old",
            "partner-co-creation",
            templates.make_orgs([("Alpha", None), ("Beta", None)]),
            True,
            1.0,
        )
    )
    server_id = 900

    def write(cid: int, change: Callable[[Doc], None]) -> None:
        w: Doc = Doc(client_id=cid)
        w.apply_update(doc.get_update())
        with w.transaction():
            change(w)
        doc.apply_update(w.get_update(doc.get_state()))

    stamps = {
        "a1": (1002, "alpha", "u_ann", "Ann", "beta"),  # Ann claimed beta: stamped alpha
        "b1": (1003, "beta", "u_bob", "Bob", "beta"),
        "f1": (1001, "beta", "u_fac", "Fran", "beta"),  # the facilitator filed it under beta
        "f2": (1001, "", "u_fac", "Fran", ""),
    }
    for nid, (cid, _org, _user, _name, claimed) in stamps.items():
        write(cid, note("gains", nid, id=nid, org=claimed))
    for nid, (_cid, org, user, name, _claimed) in stamps.items():
        write(
            server_id,
            lambda d, nid=nid, org=org, user=user, name=name: [
                notes(d)[nid].__setitem__(k, v)
                for k, v in (("org", org), ("author", user), ("author_name", name))
            ],
        )
    bindings = [
        ClientBinding(1001, "u_fac", "", 1.0),
        ClientBinding(1002, "u_ann", "alpha", 1.0),
        ClientBinding(1003, "u_bob", "beta", 1.0),
        ClientBinding(server_id, attribution.SERVER_USER, "", 1.0),
    ]
    return doc.get_update(), bindings


async def test_an_old_canvas_keeps_what_its_stamps_said(tmp_path: Path) -> None:
    state, bindings = _old_style_canvas()
    stamped = {
        nid: (n["org"], n["author"], n["author_name"])
        for nid, n in (Doc().get("notes", type=Map).to_py() or {}).items()
    }
    old: Doc = Doc()
    old.apply_update(state)
    stamped = {
        nid: (n["org"], n["author"], n["author_name"])
        for nid, n in (old.get("notes", type=Map).to_py() or {}).items()
    }
    assert stamped["a1"] == ("alpha", "u_ann", "Ann") and stamped["f1"][0] == "beta"
    # A version saved before the change reads as its stamps (no ids root: stamped).
    assert {
        k: (v["org"], v["author"], v["author_name"]) for k, v in content_of(state)["notes"].items()
    } == stamped
    async with canvas_rooms(tmp_path, orgs=("Alpha", "Beta")) as [room]:
        store = room.store
        await store.create_canvas(
            CanvasRecord("old", "Old", "partner-co-creation", 1.0, {"protect_notes": True}), state
        )
        await store.bind_client_ids("old", bindings)
        from server.rooms import Rooms  # the same wiring as canvas_rooms

        rooms = Rooms(
            store, room.broker, gate_factory=type(room.gate), room_options={"awareness_tick_s": 0}
        )
        try:
            loaded = await rooms.acquire("old")
            ids = loaded.doc.get(IDS, type=Map)
            assert ids["1002"] == ids_entry("u_ann", "alpha", "Ann", False)
            assert ids["1001"] == ids_entry("u_fac", "", "Fran", True)
            assert ids["1003"] == ids_entry("u_bob", "beta", "Bob", False)
            got = {
                k: (v["org"], v["author"], v["author_name"])
                for k, v in doc_to_json(loaded.doc)["notes"].items()
            }
            assert got == stamped
            # Durable: a fresh load of the store reads the same, and writes nothing more.
            reloaded = await store.load("old")
            assert reloaded is not None
            assert doc_json(reloaded.parts()) == json_of(loaded.doc)
            # The rules follow the migrated attribution: Ann may not move beta's notes.
            ann = Client("ann", ANN, 1002, loaded)
            await ann.connect()
            await ann.send_update(ann.local(lambda d: notes(d)["f1"].__setitem__("x", 0.9)))
            await settle(ann)
            assert ann.denials == ["this note belongs to another organization"]
            assert seen(ann) == stamped
        finally:
            await rooms.close_all()


def link(frm: str, to: str, lid: str, **fields: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        doc.get("links", type=Map)[lid] = Map(
            {
                "from": frm,
                "to": to,
                "kind": "relieves",
                "strength": "essential",
                "created_at": 5.0,
                **fields,
            }
        )

    return change


async def test_a_partners_lies_in_its_own_link_change_nothing_anyone_sees(tmp_path: Path) -> None:
    """Fit links follow the same rule: Ann's link whose fields claim beta, against the same link
    written honestly; Bob may neither delete it nor, by his refused delete, make it his."""
    views = []
    for forged in (True, False):
        async with canvas_rooms(tmp_path / str(forged), orgs=("Alpha", "Beta")) as [room]:
            people = await people_in(room)
            await act(people, "fac", note("pains", "cold", id="p1"))
            await act(people, "ann", note("alpha:pain-relievers", "shelter", id="r1"))
            lies = {"org": "beta", "author": "u_bob", "author_name": "Bob"} if forged else {}
            assert await act(people, "ann", link("r1", "p1", "L1", **lies)) == []
            told = await act(people, "bob", lambda d: d.get("links", type=Map).__delitem__("L1"))
            assert told == ["this link belongs to another organization"]
            told = await act(
                people,
                "bob",
                lambda d: d.get("links", type=Map)["L1"].__setitem__("strength", "nice-to-have"),
            )
            assert told == ["this link belongs to another organization"]
            content = doc_to_json(room.doc)
            assert {k: content["links"]["L1"][k] for k in ("org", "author", "author_name")} == {
                "org": "alpha",
                "author": "u_ann",
                "author_name": "Ann",
            }
            for c in people.values():
                assert c.json() == json_of(room.doc)
            views.append((content, contribution_map(content), export(content, "csv")))
    assert views[0] == views[1]
