"""Edit rules the server enforces, seen from real clients: refused changes vanish everywhere.

Every refusal is checked on the offender's own document too: a stock Yjs client keeps its
local change unless the server sends the compensation, so "the server did not apply it" is
not enough.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pycrdt import Array, Map, Text

from server import closecodes
from tests.partner_helpers import (
    Member,
    api,
    blocks_of,
    canvas_json,
    connect,
    member,
    notes_of,
    partner_canvas,
)
from tests.support import ServerProcess, YClient


async def converge(
    clients: list[YClient], server: ServerProcess, canvas: dict[str, Any], within: float = 5.0
) -> dict[str, Any]:
    """Wait until every client's notes equal the server's, and return them."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        want = canvas_json(server, canvas)["notes"]
        if all(notes_of(c) == want for c in clients):
            return want  # type: ignore[no-any-return]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"no convergence: server={want} clients={[notes_of(c) for c in clients]}"
            )
        await asyncio.sleep(0.02)


async def setup(
    server: ServerProcess,
) -> tuple[dict[str, Any], Member, Member, YClient, YClient, YClient]:
    canvas = partner_canvas(server)
    alpha = member(server, canvas, "alpha", "editor", "Ann")
    beta = member(server, canvas, "beta", "editor", "Bob")
    fac = await connect(server, canvas, canvas["facilitator_token"], "fac")
    a = await connect(server, canvas, alpha.token, "alpha")
    b = await connect(server, canvas, beta.token, "beta")
    return canvas, alpha, beta, fac, a, b


async def test_viewer_changes_vanish_but_awareness_works(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    viewer = member(server, canvas, "alpha", "viewer", "Vic")
    fac = await connect(server, canvas, canvas["facilitator_token"], "fac")
    v = await connect(server, canvas, viewer.token, "viewer")
    fac.add_note("n1", "facilitator note", block="customer-jobs")
    await v.wait_for(lambda: "n1" in v.notes)

    v.add_note("v1", "viewer note", block="customer-jobs")
    v.notes["n1"]["text"].insert(0, "defaced ")
    v.doc.get("meta", type=Map)["title"] = "hijacked"
    await v.wait_for(lambda: "viewers cannot change the canvas" in v.denials)
    notes = await converge([fac, v], server, canvas)
    assert set(notes) == {"n1"}
    assert notes["n1"]["text"] == "facilitator note"
    await v.wait_for(lambda: v.doc.get("meta", type=Map)["title"] == "Partners")
    assert canvas_json(server, canvas)["meta"]["title"] == "Partners"

    await v.set_awareness({"user": {"name": "Vic"}, "cursor": [1, 2]})
    await fac.wait_for(
        lambda: any(s.get("user", {}).get("name") == "Vic" for _, s in fac.awareness.values() if s)
    )
    for c in (fac, v):
        await c.close()


async def test_org_and_author_are_stamped_from_the_token(server: ServerProcess) -> None:
    canvas, alpha, beta, fac, a, b = await setup(server)
    a.add_note(
        "forged",
        "claims to be Beta",
        block="customer-jobs",
        org="beta",
        author=beta.user_id,
        author_name="Bob",
    )
    notes = await converge([fac, a, b], server, canvas)
    assert notes["forged"]["org"] == "alpha"
    assert notes["forged"]["author"] == alpha.user_id
    assert notes["forged"]["author_name"] == "Ann"
    assert a.denials == []  # a correction, not a refusal

    # Changing the stamp later is refused too.
    a.notes["forged"]["org"] = "beta"
    await a.wait_for(lambda: a.denials != [])
    notes = await converge([fac, a, b], server, canvas)
    assert notes["forged"]["org"] == "alpha"
    for c in (fac, a, b):
        await c.close()


async def test_partners_protect_their_notes(server: ServerProcess) -> None:
    canvas, alpha, beta, fac, a, b = await setup(server)
    b.add_note("beta-note", "Beta's idea", block="customer-jobs")
    await converge([fac, a, b], server, canvas)

    # Alpha edits, moves and deletes Beta's note: each is refused and undone for everyone.
    a.notes["beta-note"]["text"].insert(0, "Alpha was here: ")
    await a.wait_for(lambda: len(a.denials) >= 1)
    with a.doc.transaction():
        a.notes["beta-note"]["block"] = "pains"
        a.notes["beta-note"]["x"] = 0.9
    await a.wait_for(lambda: len(a.denials) >= 2)
    del a.notes["beta-note"]
    await a.wait_for(lambda: len(a.denials) >= 3)
    notes = await converge([fac, a, b], server, canvas)
    assert notes["beta-note"]["text"] == "Beta's idea"
    assert notes["beta-note"]["block"] == "customer-jobs"
    assert notes["beta-note"]["x"] == 0.1
    assert all("another organization" in d for d in a.denials)

    # Alpha may still add notes anywhere, even in Beta's value map.
    a.add_note("alpha-in-beta-map", "a suggestion", block="beta:products-services")
    notes = await converge([fac, a, b], server, canvas)
    assert notes["alpha-in-beta-map"]["org"] == "alpha"

    # Beta edits its own note; the facilitator may edit anyone's.
    b.notes["beta-note"]["text"].insert(len("Beta's idea"), "!")
    fac.notes["alpha-in-beta-map"]["text"].insert(0, "Fran: ")
    notes = await converge([fac, a, b], server, canvas)
    assert notes["beta-note"]["text"] == "Beta's idea!"
    assert notes["alpha-in-beta-map"]["text"] == "Fran: a suggestion"
    assert b.denials == [] and fac.denials == []
    for c in (fac, a, b):
        await c.close()


async def test_one_update_mixing_allowed_and_refused_keeps_only_the_allowed(
    server: ServerProcess,
) -> None:
    canvas, alpha, beta, fac, a, b = await setup(server)
    b.add_note("beta-note", "keep me", block="pains")
    await converge([fac, a, b], server, canvas)
    with a.doc.transaction():  # one transaction, so one update on the wire
        a.notes["mine"] = Map(
            {"block": "gains", "text": Text("mine"), "org": "alpha", "x": 0.2, "y": 0.2}
        )
        del a.notes["beta-note"]
    notes = await converge([fac, a, b], server, canvas)
    assert set(notes) == {"mine", "beta-note"}
    assert notes["beta-note"]["text"] == "keep me"
    for c in (fac, a, b):
        await c.close()


async def test_locked_block_refuses_everyone_but_facilitators(server: ServerProcess) -> None:
    canvas, alpha, beta, fac, a, b = await setup(server)
    a.add_note("inside", "in pains", block="pains")
    await converge([fac, a, b], server, canvas)

    # Editors cannot lock.
    blocks_of(a)["pains"]["locked_by"] = alpha.user_id
    await a.wait_for(lambda: "only facilitators change blocks" in a.denials)
    await a.wait_for(lambda: blocks_of(a)["pains"]["locked_by"] == "")

    blocks_of(fac)["pains"]["locked_by"] = "u_facilitator"
    await a.wait_for(lambda: blocks_of(a)["pains"]["locked_by"] == "u_facilitator")
    a.denials.clear()
    a.notes["inside"]["text"].insert(0, "edit ")  # own note, locked block
    a.add_note("new-in-locked", "nope", block="pains")
    with a.doc.transaction():
        a.notes["inside"]["block"] = "gains"  # moving out of a locked block
    b.add_note("b-in-gains", "free", block="gains")
    with b.doc.transaction():
        b.notes["b-in-gains"]["block"] = "pains"  # moving into a locked block
    await a.wait_for(lambda: len(a.denials) >= 3)
    await b.wait_for(lambda: len(b.denials) >= 1)
    notes = await converge([fac, a, b], server, canvas)
    assert "new-in-locked" not in notes
    assert notes["inside"] == {**notes["inside"], "text": "in pains", "block": "pains"}
    assert notes["b-in-gains"]["block"] == "gains"
    assert all("locked" in d for d in a.denials + b.denials)

    fac.notes["inside"]["text"].insert(0, "Fran: ")  # facilitators may
    blocks_of(fac)["pains"]["locked_by"] = ""
    await a.wait_for(lambda: blocks_of(a)["pains"]["locked_by"] == "")
    a.add_note("after-unlock", "yes", block="pains")
    notes = await converge([fac, a, b], server, canvas)
    assert notes["inside"]["text"] == "Fran: in pains"
    assert "after-unlock" in notes
    for c in (fac, a, b):
        await c.close()


async def test_votes_are_per_user(server: ServerProcess) -> None:
    canvas, alpha, beta, fac, a, b = await setup(server)
    b.add_note("idea", "vote for me", block="gains", votes=Map())
    await converge([fac, a, b], server, canvas)
    a.notes["idea"]["votes"][alpha.user_id] = 2  # own vote on a partner's note: fine
    await converge([fac, a, b], server, canvas)
    a.notes["idea"]["votes"][beta.user_id] = 5  # someone else's vote: refused
    await a.wait_for(lambda: a.denials != [])
    notes = await converge([fac, a, b], server, canvas)
    assert notes["idea"]["votes"] == {alpha.user_id: 2}
    for c in (fac, a, b):
        await c.close()


async def test_roots_outside_the_schema_are_refused(server: ServerProcess) -> None:
    """No honest client writes a root the schema does not have: the update is refused whole
    (1008) before it is applied, so nobody else, no late joiner and no store ever holds it."""
    canvas, alpha, beta, fac, a, b = await setup(server)
    a.doc.get("smuggled", type=Array).append("payload" * 100)
    await asyncio.wait_for(a.closed.wait(), 10)
    assert a.close_code == closecodes.POLICY_VIOLATION
    assert "not part of the canvas schema" in a.close_reason
    # The others stay connected and usable; a late joiner sees no trace of it.
    b.add_note("still-fine", "ok", block="gains")
    await converge([fac, b], server, canvas)
    late = await connect(server, canvas, canvas["facilitator_token"], "late")
    assert "smuggled" not in late.doc.keys()
    assert "smuggled" not in canvas_json(server, canvas)
    for c in (fac, b, late):
        await c.close()


async def test_audit_trail_newest_first(server: ServerProcess) -> None:
    canvas, alpha, beta, fac, a, b = await setup(server)
    a.add_note("n", "one", block="gains")
    await converge([fac, a, b], server, canvas)
    a.notes["n"]["text"].insert(3, " two")
    await converge([fac, a, b], server, canvas)
    with a.doc.transaction():
        a.notes["n"]["x"] = 0.5
    await converge([fac, a, b], server, canvas)
    del b.notes["n"]
    await b.wait_for(lambda: b.denials != [])
    # Ann deletes the note as the server restored it (not the item Bob's delete took).
    await converge([fac, a, b], server, canvas)
    del a.notes["n"]
    await converge([fac, a, b], server, canvas)

    r = api(server, "GET", f"/api/canvases/{canvas['id']}/audit", canvas["facilitator_token"])
    assert r.status_code == 200
    entries = [(e["action"], e["target"], e["user_id"], e["org_id"]) for e in r.json()]
    assert entries == [
        ("delete", "n", alpha.user_id, "alpha"),
        ("refused", "n", beta.user_id, "beta"),
        ("move", "n", alpha.user_id, "alpha"),
        ("edit", "n", alpha.user_id, "alpha"),
        ("create", "n", alpha.user_id, "alpha"),
    ]
    ats = [e["at"] for e in r.json()]
    assert ats == sorted(ats, reverse=True)
    # Editors may not read it.
    r = api(server, "GET", f"/api/canvases/{canvas['id']}/audit", alpha.token)
    assert r.status_code == 403
    for c in (fac, a, b):
        await c.close()


async def test_without_protection_editors_edit_each_others_notes(server: ServerProcess) -> None:
    canvas = partner_canvas(server, protect_notes=False)
    alpha = member(server, canvas, "alpha", "editor", "Ann")
    beta = member(server, canvas, "beta", "editor", "Bob")
    a = await connect(server, canvas, alpha.token, "alpha")
    b = await connect(server, canvas, beta.token, "beta")
    b.add_note("shared", "beta", block="gains")
    await a.wait_for(lambda: "shared" in a.notes)
    a.notes["shared"]["text"].insert(4, "+alpha")
    notes = await converge([a, b], server, canvas)
    assert notes["shared"]["text"] == "beta+alpha"
    assert a.denials == []
    for c in (a, b):
        await c.close()
