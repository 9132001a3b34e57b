"""Where the workshop features meet, in-process (real Rooms, PolicyGate, SQLite, the memory
broker between two nodes; tests/test_drafts.py's world): a reveal into a frozen canvas is
refused and reveals nothing; a reveal saves an automatic version on the node that did it; a
participant removed (or given another role) loses their draft-space sockets on every node;
what a reader's export carries of the draft spaces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server import closecodes, control, drafts, versions
from server.canvas.diff import diff
from server.canvas.restore import content_of
from server.store.base import SERVER_OWNER, StoreError
from server.workshop import stage
from tests.test_drafts import ANN, BOB, FRAN, drafter, note, notes, pump, viewer_of_shared, world
from tests.test_drafts import write as draft


async def _freeze(node: object, frozen: bool) -> None:
    shared = node.shared  # type: ignore[attr-defined]
    room = await shared.acquire("c")
    try:
        await room.apply_server_change(lambda d: stage.set_frozen(d, frozen, FRAN, 1))
    finally:
        shared.release(room)


async def test_a_reveal_into_a_frozen_canvas_is_refused_and_reveals_nothing(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as (one, two):
        ann = await drafter(one, ANN)
        await draft(ann, note("gains", "alpha idea"))
        watcher = await viewer_of_shared(two, BOB)
        await _freeze(one, True)
        for node in (one, two):  # the freeze reached the other node too
            with pytest.raises(drafts.CanvasFrozen):
                await node.spaces.reveal("c", ["alpha"], None, FRAN)
        await pump(watcher, ann)
        assert notes(watcher) == {} and set(notes(ann)) == {"n-alpha idea"}
        assert await one.spaces.store.list_versions("c") == []
        await _freeze(two, False)
        result = await two.spaces.reveal("c", ["alpha"], None, FRAN)
        assert result.revealed == {"alpha": ["n-alpha idea"]}
        await pump(watcher, ann)
        assert set(notes(watcher)) == {"n-alpha idea"}


async def test_a_reveal_saves_an_automatic_version_of_what_it_revealed(tmp_path: Path) -> None:
    async with world(tmp_path) as (one, two):
        ann = await drafter(one, ANN)
        bob = await drafter(two, BOB)
        await draft(ann, note("gains", "alpha idea"))
        await draft(bob, note("customer-jobs", "beta idea"))
        await two.spaces.reveal("c", ["alpha", "beta"], None, FRAN)
        (saved,) = await two.spaces.store.list_versions("c")
        assert (saved.name, saved.created_by) == ("drafts revealed: Alpha, Beta", SERVER_OWNER)
        state = await two.spaces.store.get_version("c", saved.id)
        assert state is not None
        assert set(content_of(state)["notes"]) == {"n-alpha idea", "n-beta idea"}
        # A reveal that reveals nothing saves nothing.
        assert (await one.spaces.reveal("c", ["alpha", "beta"], None, FRAN)).count == 0
        assert len(await one.spaces.store.list_versions("c")) == 1
        # Its diff against the canvas before shows the revealed notes under their organization.
        before = await versions.content(one.spaces.store, "c", saved.id)
        assert before["notes"]["n-beta idea"]["org"] == "beta"


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (control.ParticipantRemoved("u-ann"), closecodes.FORBIDDEN),
        (control.RoleChanged("u-ann"), closecodes.ROLE_CHANGED),
    ],
)
async def test_removing_a_participant_closes_their_draft_sockets_on_every_node(
    tmp_path: Path, message: control.Control, code: int
) -> None:
    async with world(tmp_path) as (one, two):
        here = await drafter(one, ANN)
        there = await drafter(two, ANN)
        other = await drafter(two, BOB)
        one.spaces.close_participant("c", message, code, ["alpha", "beta"])
        await pump(here, there, other)
        assert here.session.close_code == code and there.session.close_code == code
        assert other.session.close_code is None  # nobody else's


async def test_an_export_carries_only_the_readers_own_organizations_drafts(tmp_path: Path) -> None:
    async with world(tmp_path, nodes=1) as (one,):
        ann = await drafter(one, ANN)
        bob = await drafter(one, BOB)
        await draft(ann, note("gains", "ALPHAMARK", id="a-1"))
        await draft(bob, note("gains", "BETAMARK", id="b-1"))
        # A hostile client reusing an id another organization drafted: in nobody's merge.
        await draft(bob, note("gains", "BETACOPY", id="dup"))
        await draft(ann, note("gains", "ALPHACOPY", id="dup"))
        spaces = one.spaces
        assert set(await spaces.readable_notes(ANN, "c")) == {"a-1", "dup"}
        assert set(await spaces.readable_notes(BOB, "c")) == {"b-1", "dup"}
        assert await spaces.readable_notes(FRAN, "c") == {}  # no facilitator access
        assert await spaces.readable_notes(None, "c") == {}  # nor the operator's
        record = await spaces.store.get_canvas("c")
        assert record is not None
        record.settings[drafts.FACILITATOR_ACCESS] = True
        await spaces.store.update_canvas(record)
        assert set(await spaces.readable_notes(FRAN, "c")) == {"a-1", "b-1"}


def test_the_diff_lists_comments_added_and_resolved_and_rounds_closed() -> None:
    note = {"block": "pains", "text": "broken", "org": "beta"}
    before: dict[str, Any] = {
        "orgs": {"alpha": {"name": "Alpha"}, "beta": {"name": "Beta"}},
        "notes": {"n1": note},
        "comments": {"c1": {"note": "n1", "text": "which?", "org": "alpha", "resolved": False}},
        "rounds": {"r1": {"title": "Pick", "status": "open"}},
    }
    after = {
        **before,
        "comments": {
            "c1": {"note": "n1", "text": "which?", "org": "alpha", "resolved": True},
            "c2": {"note": "n1", "text": "fast ones", "org": "beta", "parent": "c1"},
        },
        "rounds": {
            "r1": {
                "title": "Pick",
                "status": "closed",
                "tally": {"voters": 2, "ranking": [{"note": "n1", "total": 3}]},
            },
            "r2": {"title": "Later", "status": "open"},
        },
    }
    out = diff(before, after)
    by_org = {g["org"]: g for g in out["orgs"]}
    assert [c["id"] for c in by_org["alpha"]["comments_resolved"]] == ["c1"]
    assert by_org["alpha"]["comments_added"] == []
    assert by_org["beta"]["comments_added"] == [
        {"id": "c2", "note": "n1", "text": "fast ones", "author_name": "", "reply": True}
    ]
    assert (out["totals"]["comments_added"], out["totals"]["comments_resolved"]) == (1, 1)
    assert out["rounds_closed"] == [
        {"id": "r1", "title": "Pick", "voters": 2, "ranking": [{"note": "n1", "total": 3}]}
    ]
    assert diff(after, after)["rounds_closed"] == [] and diff(after, after)["orgs"] == []


async def test_a_reveal_stays_done_when_its_automatic_version_cannot_be_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world(tmp_path, nodes=1) as (one,):
        ann = await drafter(one, ANN)
        await draft(ann, note("gains", "alpha idea"))

        async def broken(*args: object, **kwargs: object) -> None:
            raise StoreError("disk full")

        monkeypatch.setattr(one.spaces.store, "save_version", broken)
        result = await one.spaces.reveal("c", ["alpha"], None, FRAN)
        assert result.revealed == {"alpha": ["n-alpha idea"]}  # reported as done, as it is
        watcher = await viewer_of_shared(one, BOB)
        assert set(notes(watcher)) == {"n-alpha idea"}
