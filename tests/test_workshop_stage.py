"""Freeze, timers and "bring everyone to me" over real sockets: freeze refuses every change
before it is applied and survives a restart; the stage and timers are the server's to write."""

from __future__ import annotations

import httpx
from pycrdt import Map

from server import protocol
from tests.partner_helpers import canvas_json, connect
from tests.support import ServerProcess
from tests.workshop_helpers import close_all, route, stage_of, workshop


async def test_freeze_refuses_every_change_and_survives_a_restart(server: ServerProcess) -> None:
    w = await workshop(server)
    fac, ann, bob = (w.clients[n] for n in ("fac", "Ann", "Bob"))
    fac.add_note("n1", "before the freeze", block="customer-jobs")
    await bob.wait_for(lambda: "n1" in bob.notes)
    r = route(server, "PUT", w, "/freeze", w.fac_token, {"frozen": True})
    assert r.status_code == 200 and r.json()["frozen"] is True
    for c in (fac, ann, bob):
        await c.wait_for(lambda c=c: stage_of(c).get("frozen") is True)
    frames = len(bob.frames_received)

    ann.add_note("a1", "during the freeze", block="customer-jobs")
    fac.notes["n1"]["text"].insert(0, "edited ")  # the facilitator's socket too
    fac.doc.get("meta", type=Map)["title"] = "renamed"
    for c in (ann, fac):
        await c.wait_for(lambda c=c: any("frozen" in d for d in c.denials))
    # Over HTTP too, except unfreezing.
    assert (
        route(
            server, "PUT", w, "/timers/t", w.fac_token, {"action": "start", "seconds": 5}
        ).status_code
        == 409
    )
    assert route(server, "POST", w, "/rounds", w.fac_token, {"dots": 1}).status_code == 409
    assert route(server, "POST", w, "/orgs", w.fac_token, {"name": "Delta"}).status_code == 409
    # Nothing was applied, stored or relayed: Bob got no update at all.
    assert not any(
        protocol.decode(f).kind is protocol.Kind.SYNC_UPDATE for f in bob.frames_received[frames:]
    )
    doc = canvas_json(server, w.canvas)
    assert set(doc["notes"]) == {"n1"} and doc["notes"]["n1"]["text"] == "before the freeze"
    assert doc["meta"]["title"] == "Workshop"
    await close_all(w)

    server.stop()
    server.start()
    ann2 = await connect(server, w.canvas, w.members["Ann"].token, "ann2")
    assert stage_of(ann2).get("frozen") is True
    ann2.add_note("a2", "after the restart", block="customer-jobs")
    await ann2.wait_for(lambda: any("frozen" in d for d in ann2.denials))
    assert "a2" not in canvas_json(server, w.canvas)["notes"]

    assert route(server, "PUT", w, "/freeze", w.fac_token, {"frozen": False}).status_code == 200
    await ann2.wait_for(lambda: stage_of(ann2).get("frozen") is False)
    ann2.add_note("a3", "thawed", block="customer-jobs")
    await ann2.wait_for(lambda: "a3" in canvas_json(server, w.canvas)["notes"])
    await ann2.close()


async def test_only_the_server_writes_the_stage(server: ServerProcess) -> None:
    """A participant cannot forge "the facilitator summons you", nor unfreeze, nor a timer."""
    w = await workshop(server)
    fac, ann, bob = (w.clients[n] for n in ("fac", "Ann", "Bob"))
    ann.doc.get("stage", type=Map)["gather"] = {"seq": 99, "by": "fac", "x": 1.0, "y": 2.0}
    ann.doc.get("timers", type=Map)["t"] = Map({"state": "running", "ends_at": 1})
    await ann.wait_for(lambda: any("server only" in d for d in ann.denials))
    await ann.wait_for(lambda: "gather" not in stage_of(ann))
    await ann.wait_for(lambda: "t" not in (ann.doc.get("timers", type=Map).to_py() or {}))
    assert "gather" not in stage_of(bob)
    assert (
        route(server, "POST", w, "/gather", w.members["Ann"].token, {"x": 1, "y": 2}).status_code
        == 403
    )

    r = route(server, "POST", w, "/gather", w.fac_token, {"x": 10.5, "y": -3, "zoom": 2})
    assert r.status_code == 200
    for c in (ann, bob):
        await c.wait_for(lambda c=c: (stage_of(c).get("gather") or {}).get("seq") == 1)
    g = stage_of(bob)["gather"]
    assert (g["x"], g["y"], g["zoom"], g["by_name"]) == (10.5, -3, 2, "Fran")
    assert (
        route(server, "POST", w, "/gather", w.fac_token, {"x": 10.5, "y": -3}).json()["gather"][
            "seq"
        ]
        == 2
    )
    assert route(server, "DELETE", w, "/gather", w.fac_token).json()["gather"] is None
    await bob.wait_for(lambda: "gather" not in stage_of(bob))
    assert route(server, "PUT", w, "/spotlight", w.fac_token, {"block": "nope"}).status_code == 422
    assert (
        route(server, "PUT", w, "/spotlight", w.fac_token, {"block": "customer-jobs"}).status_code
        == 200
    )
    await bob.wait_for(
        lambda: (stage_of(bob).get("spotlight") or {}).get("block") == "customer-jobs"
    )
    await close_all(w)


async def test_timer_in_server_time(server: ServerProcess) -> None:
    w = await workshop(server)
    bob = w.clients["Bob"]

    def timer(body: object) -> httpx.Response:
        return route(server, "PUT", w, "/timers/ideation", w.fac_token, body)  # type: ignore[no-any-return]

    before = httpx.get(server.http + "/api/time").json()["now_ms"]
    started = timer({"action": "start", "seconds": 300, "label": "Ideation"}).json()
    after = httpx.get(server.http + "/api/time").json()["now_ms"]
    assert before <= started["ends_at"] - 300_000 <= after
    await bob.wait_for(lambda: "ideation" in (bob.doc.get("timers", type=Map).to_py() or {}))
    seen = bob.doc.get("timers", type=Map)["ideation"].to_py()
    assert seen["ends_at"] == started["ends_at"] and seen["state"] == "running"

    paused = timer({"action": "pause"}).json()
    assert paused["state"] == "paused" and 0 < paused["paused_remaining"] <= 300_000
    assert timer({"action": "pause"}).status_code == 422  # not running
    added = timer({"action": "add", "seconds": 60}).json()
    assert added["paused_remaining"] == paused["paused_remaining"] + 60_000
    resumed = timer({"action": "resume"}).json()
    assert resumed["ends_at"] - resumed["now_ms"] == added["paused_remaining"]
    assert timer({"action": "stop"}).json()["remaining_ms"] == 0
    assert timer({"action": "add", "seconds": 5}).status_code == 422  # stopped
    assert (
        route(server, "PUT", w, "/timers/x", w.members["Bob"].token, {"action": "stop"}).status_code
        == 403
    )
    await bob.wait_for(lambda: bob.doc.get("timers", type=Map)["ideation"]["state"] == "stopped")
    await close_all(w)


async def test_a_restore_keeps_rounds_and_freeze_and_is_refused_while_frozen(
    server: ServerProcess,
) -> None:
    """Rounds, timers and the stage are the session's, not content: restoring a version saved
    while a round was open does not reopen it nor drop its tally."""
    w = await workshop(server)
    fac, bob = w.clients["fac"], w.clients["Bob"]
    fac.add_note("n1", "an idea", block="customer-jobs")
    await bob.wait_for(lambda: "n1" in bob.notes)
    rid = route(server, "POST", w, "/rounds", w.fac_token, {"dots": 1}).json()["id"]
    saved = route(server, "POST", w, "/versions", w.fac_token, {"name": "round open"})
    assert saved.status_code == 201, saved.text
    assert (
        route(
            server, "PUT", w, f"/rounds/{rid}/ballot", w.members["Bob"].token, {"dots": {"n1": 1}}
        ).status_code
        == 200
    )
    tally = route(server, "POST", w, f"/rounds/{rid}/close", w.fac_token).json()["tally"]
    fac.add_note("n2", "after the version", block="customer-jobs")
    await bob.wait_for(lambda: "n2" in bob.notes)

    restored = route(server, "POST", w, f"/versions/{saved.json()['id']}/restore", w.fac_token)
    assert restored.status_code == 200, restored.text
    await bob.wait_for(lambda: "n2" not in bob.notes)
    rounds = bob.doc.get("rounds", type=Map).to_py() or {}
    assert rounds[rid]["status"] == "closed" and rounds[rid]["tally"] == tally

    assert route(server, "PUT", w, "/freeze", w.fac_token, {"frozen": True}).status_code == 200
    again = route(server, "POST", w, f"/versions/{saved.json()['id']}/restore", w.fac_token)
    assert again.status_code == 409
    await bob.wait_for(lambda: stage_of(bob).get("frozen") is True)
    assert "n2" not in bob.notes
    await close_all(w)
