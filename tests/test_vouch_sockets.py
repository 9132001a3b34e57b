"""Crafted updates against a real server, over real sockets: the server accepts only updates it
can fully account for when they arrive (server/vouch.py).

Each test plays one attack a hostile partner can mount with a valid Yjs encoding (built struct by
struct with tests/yenc.py) and asserts what every other party sees afterwards: the other clients,
a late joiner, the JSON API, and the store after a restart.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import orjson
from pycrdt import Map, Text, XmlFragment

from server import closecodes, protocol
from server import yupdate as y
from server.vouch import decode_state_vector
from tests.partner_helpers import Member, api, canvas_json, connect, member, partner_canvas
from tests.support import ServerProcess, YClient
from tests.yenc import S, delete_only, encode


def clock_of(client: YClient, client_id: int) -> int:
    return decode_state_vector(client.doc.get_state()).get(client_id, 0)


def stored_parts(server: ServerProcess, canvas_id: str) -> list[bytes]:
    """The canvas as the store keeps it (latest snapshot and the log), read from its file."""
    con = sqlite3.connect(server.data_dir / "cocanvas.db")
    try:
        snap = con.execute(
            "SELECT data FROM snapshots WHERE canvas_id=? ORDER BY id DESC LIMIT 1", (canvas_id,)
        ).fetchall()
        rows = con.execute(
            "SELECT data FROM updates WHERE canvas_id=? ORDER BY id", (canvas_id,)
        ).fetchall()
    finally:
        con.close()
    return [bytes(r[0]) for r in snap] + [bytes(r[0]) for r in rows]


def stored_clients(server: ServerProcess, canvas_id: str) -> set[int]:
    out: set[int] = set()
    for part in stored_parts(server, canvas_id):
        out |= {s.client for s in y.read_update(part).structs}
    return out


def log_rows(server: ServerProcess, canvas_id: str) -> int:
    con = sqlite3.connect(server.data_dir / "cocanvas.db")
    try:
        return int(
            con.execute("SELECT count(*) FROM updates WHERE canvas_id=?", (canvas_id,)).fetchone()[
                0
            ]
        )
    finally:
        con.close()


async def refused(client: YClient, frame: bytes) -> str:
    """Send a crafted frame; the server must close the sender with 1008. Returns the reason."""
    await client.send_raw(frame)
    await asyncio.wait_for(client.closed.wait(), 10)
    assert client.close_code == closecodes.POLICY_VIOLATION, (
        client.close_code,
        client.close_reason,
    )
    return client.close_reason


async def scene(
    server: ServerProcess,
) -> tuple[dict[str, Any], Member, Member, YClient, YClient, YClient]:
    canvas = partner_canvas(server)
    alpha = member(server, canvas, "alpha", "editor", "Ann")
    viewer = member(server, canvas, "beta", "viewer", "Vic")
    fac = await connect(server, canvas, canvas["facilitator_token"], "fac")
    a = await connect(server, canvas, alpha.token, "alpha")
    v = await connect(server, canvas, viewer.token, "viewer")
    return canvas, alpha, viewer, fac, a, v


def texts(notes: dict[str, Any]) -> dict[str, str]:
    return {k: str(n.get("text")) for k, n in notes.items()}


async def everyone_sees(
    server: ServerProcess, canvas: dict[str, Any], clients: list[YClient], want: dict[str, str]
) -> None:
    """Every client, a late joiner and the API hold exactly these note texts."""
    for c in clients:
        await c.wait_for(lambda c=c: texts(c.notes.to_py() or {}) == want)
    late = await connect(server, canvas, canvas["facilitator_token"], "late")
    assert texts(late.notes.to_py() or {}) == want
    await late.close()
    assert texts(canvas_json(server, canvas)["notes"]) == want


async def test_deletes_of_future_clocks_are_refused_and_later_notes_survive(
    server: ServerProcess,
) -> None:
    canvas, _alpha, viewer, fac, a, v = await scene(server)
    fac.add_note("n0", "first", block="customer-jobs")
    await v.wait_for(lambda: "n0" in v.notes)
    # A viewer deletes the facilitator's and the editor's next 10,000 clocks.
    attack = delete_only(
        {
            fac.client_id: [(clock_of(v, fac.client_id), 10_000)],
            a.client_id: [(0, 10_000)],
        }
    )
    reason = await refused(v, protocol.sync_update(attack))
    assert "do not exist" in reason
    # The victims write on: their notes reach everyone and survive a restart.
    fac.add_note("n1", "facilitator's next", block="customer-jobs")
    a.add_note("a1", "alpha's next", block="gains", org="alpha")
    want = {"n0": "first", "n1": "facilitator's next", "a1": "alpha's next"}
    await everyone_sees(server, canvas, [fac, a], want)
    for c in (fac, a):
        await c.close()
    server.stop()
    server.start()
    assert texts(canvas_json(server, canvas)["notes"]) == want


async def test_deletes_aimed_at_the_servers_own_restorations_are_refused(
    server: ServerProcess,
) -> None:
    canvas, _alpha, viewer, fac, a, v = await scene(server)
    fac.add_note("n0", "protected", block="customer-jobs")
    await v.wait_for(lambda: "n0" in v.notes)
    # A viewer's delete is refused by the policy: the server restores the note (its own id).
    del v.notes["n0"]
    await v.wait_for(lambda: "viewers cannot change the canvas" in v.denials)
    await v.wait_for(lambda: "n0" in v.notes)
    known = set(decode_state_vector(v.doc.get_state()))
    server_ids = known - {fac.client_id, v.client_id}
    assert server_ids, "the restoration is written with the server's client id"
    # Another viewer session aims a delete at the server's future clocks...
    v2 = await connect(server, canvas, viewer.token, "viewer2")
    attack = delete_only({sid: [(clock_of(v2, sid), 10_000)] for sid in server_ids})
    await refused(v2, protocol.sync_update(attack))
    # ...so the next restoration holds, also after a restart.
    del v.notes["n0"]
    await v.wait_for(lambda: v.denials.count("viewers cannot change the canvas") >= 2)
    await everyone_sees(server, canvas, [fac, a], {"n0": "protected"})
    for c in (fac, a, v):
        await c.close()
    server.stop()
    server.start()
    assert texts(canvas_json(server, canvas)["notes"]) == {"n0": "protected"}


async def test_structs_parked_on_a_missing_origin_are_refused(server: ServerProcess) -> None:
    canvas, _alpha, viewer, fac, a, v = await scene(server)
    fac.add_note("n0", "first", block="customer-jobs")
    await v.wait_for(lambda: "n0" in v.notes)
    nxt = clock_of(v, fac.client_id)
    # Values that would wait for the facilitator's next clocks and then override them.
    attack = encode(
        [
            S(v.client_id, k, ("any", ["viewer text"]), origin=(fac.client_id, nxt + k))
            for k in range(12)
        ]
    )
    reason = await refused(v, protocol.sync_update(attack))
    assert "does not exist" in reason or "refers to" in reason
    fac.add_note("n1", "the facilitator's own words", block="customer-jobs")
    want = {"n0": "first", "n1": "the facilitator's own words"}
    await everyone_sees(server, canvas, [fac, a], want)
    note = canvas_json(server, canvas)["notes"]["n1"]
    assert note["author"] == "u_facilitator_" + canvas["id"]
    audit = api(server, "GET", f"/api/canvases/{canvas['id']}/audit", canvas["facilitator_token"])
    creates = [e for e in audit.json() if e["target"] == "n1"]
    assert [(e["action"], e["user_id"]) for e in creates] == [
        ("create", "u_facilitator_" + canvas["id"])
    ]
    assert v.client_id not in stored_clients(server, canvas["id"])
    for c in (fac, a):
        await c.close()


async def test_xml_and_deep_notes_are_refused_whole(server: ServerProcess) -> None:
    canvas, alpha, _viewer, fac, a, v = await scene(server)
    fac.add_note("n0", "first", block="customer-jobs")
    await a.wait_for(lambda: "n0" in a.notes)
    # A stock client can set a note to an XmlFragment.
    a.notes["x"] = XmlFragment()
    await asyncio.wait_for(a.closed.wait(), 10)
    assert a.close_code == closecodes.POLICY_VIOLATION
    assert "XmlFragment" in a.close_reason
    # A Map nested 1,500 deep inside a note, from a fresh editor session.
    a2 = await connect(server, canvas, alpha.token, "alpha2")
    me = a2.client_id
    structs = [S(me, 0, ("type", y.MAP), parent="notes", sub="deep")]
    for depth in range(1, 1500):
        structs.append(S(me, depth, ("type", y.MAP), parent=(me, depth - 1), sub="k"))
    reason = await refused(a2, protocol.sync_update(encode(structs)))
    assert "Map may not be written at note.k" in reason
    await everyone_sees(server, canvas, [fac, v], {"n0": "first"})
    r = api(server, "GET", f"/api/canvases/{canvas['id']}", canvas["facilitator_token"])
    assert r.status_code == 200 and set(r.json()["notes"]) == {"n0"}
    assert not ({a.client_id, me} & stored_clients(server, canvas["id"]))
    for c in (fac, v):
        await c.close()
    server.stop()
    server.start()
    r = api(server, "GET", f"/api/canvases/{canvas['id']}", canvas["facilitator_token"])
    assert r.status_code == 200 and set(r.json()["notes"]) == {"n0"}


async def test_a_frame_asking_for_too_much_work_is_refused_before_it_starts(
    server: ServerProcess,
) -> None:
    canvas, _alpha, _viewer, fac, a, v = await scene(server)
    me = v.client_id
    # 150,000 new note maps in one 1.5 MB frame.
    structs = [S(me, k, ("type", y.MAP), parent="notes", sub=f"k{k}") for k in range(150_000)]
    reason = await refused(v, protocol.sync_update(encode(structs)))
    assert "too many" in reason
    # The node keeps serving everyone else.
    fac.add_note("n1", "still here", block="customer-jobs")
    await everyone_sees(server, canvas, [fac, a], {"n1": "still here"})
    assert me not in stored_clients(server, canvas["id"])
    for c in (fac, a):
        await c.close()


async def test_deletes_that_change_nothing_are_not_stored(server: ServerProcess) -> None:
    canvas, _alpha, _viewer, fac, a, _v = await scene(server)
    fac.add_note("n0", "gone soon", block="customer-jobs")
    await a.wait_for(lambda: "n0" in a.notes)
    del fac.notes["n0"]
    await a.wait_for(lambda: "n0" not in a.notes)
    await asyncio.sleep(0)  # let the delete be persisted before counting rows
    rows = log_rows(server, canvas["id"])
    # An editor re-sends deletes of what is already deleted, a thousand times.
    deleted = y.read_update(fac.doc.get_update()).deletes
    attack = protocol.sync_update(delete_only(deleted))
    for _ in range(200):
        await a.send_raw(attack)
    # A marker after the flood: once it is in, every frame before it was handled.
    a.add_note("a1", "marker", block="gains", org="alpha")
    await fac.wait_for(lambda: "a1" in fac.notes)
    assert not a.closed.is_set()
    # The marker is a's first structs: the server writes who its client id is (one ``ids``
    # row, ahead of it), then the marker itself. The flood stored nothing.
    assert log_rows(server, canvas["id"]) <= rows + 2
    for c in (fac, a):
        await c.close()


async def test_votes_of_others_in_a_new_note_are_removed(server: ServerProcess) -> None:
    canvas, alpha, _viewer, fac, a, _v = await scene(server)
    with a.doc.transaction():
        a.notes["a1"] = Map(
            {
                "block": "gains",
                "text": Text("stuffed ballot"),
                "org": "alpha",
                "x": 0.1,
                "y": 0.1,
                "votes": Map({alpha.user_id: 1, "u_someone_else": 5, "u_other": 3}),
            }
        )
    await a.wait_for(lambda: "you may only change your own vote" in a.denials)
    await fac.wait_for(
        lambda: (fac.notes.to_py() or {}).get("a1", {}).get("votes") == {alpha.user_id: 1}
    )
    assert canvas_json(server, canvas)["notes"]["a1"]["votes"] == {alpha.user_id: 1}
    for c in (fac, a):
        await c.close()


def _client_with_id(server: ServerProcess, canvas: dict[str, Any], token: str, cid: int) -> YClient:
    return YClient(server.ws, canvas["id"], token, f"id-{cid}").use_client_id(cid)


async def test_a_client_id_belongs_to_whoever_used_it_first(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    ann = member(server, canvas, "alpha", "editor", "Ann")
    bob = member(server, canvas, "beta", "editor", "Bob")
    fac = await connect(server, canvas, canvas["facilitator_token"], "fac")
    tab = await _client_with_id(server, canvas, ann.token, 424242).connect()
    tab.add_note("a1", "Ann's", block="gains", org="alpha")
    await fac.wait_for(lambda: "a1" in fac.notes)
    await tab.close()
    # Bob writes with Ann's client id: refused, and nothing of it is kept.
    impostor = await _client_with_id(server, canvas, bob.token, 424242).connect()
    impostor.doc.apply_update(fac.doc.get_update())
    await asyncio.sleep(0)
    nxt = clock_of(impostor, 424242)
    forged = encode([S(424242, nxt, ("type", y.MAP), parent="notes", sub="forged")])
    reason = await refused(impostor, protocol.sync_update(forged))
    assert "belongs to someone else" in reason
    # Ann's tab reconnects after a restart with the same id and goes on writing.
    server.stop()
    server.start()
    fac2 = await connect(server, canvas, canvas["facilitator_token"], "fac2")
    back = _client_with_id(server, canvas, ann.token, 424242)
    back.doc.apply_update(fac2.doc.get_update())
    await back.connect()
    text = back.notes["a1"]["text"]
    text.insert(len(str(text)), " again")
    await fac2.wait_for(lambda: str((fac2.notes.get("a1") or {}).get("text", "")) == "Ann's again")
    assert not back.closed.is_set()
    assert orjson.dumps(canvas_json(server, canvas)["notes"]["a1"]["text"]) == b'"Ann\'s again"'
    for c in (fac2, back):
        await c.close()
