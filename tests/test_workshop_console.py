"""The facilitator's console over real sockets: online and last seen, a role change that holds
against the token already issued, removal that closes sockets and keeps them closed, and the
audit timeline filtered by organization."""

from __future__ import annotations

import asyncio

from server import closecodes
from tests.partner_helpers import attempt, connect
from tests.support import ServerProcess
from tests.workshop_helpers import close_all, route, workshop


async def test_console_roles_removal_presence_and_timeline(server: ServerProcess) -> None:
    w = await workshop(server)
    ann_m, bob_m = w.members["Ann"], w.members["Bob"]
    ann, bob = w.clients["Ann"], w.clients["Bob"]
    await ann.set_awareness({"user": {"name": "Ann"}})
    await w.clients["fac"].wait_for(lambda: len(w.clients["fac"].awareness) >= 1)

    people = {
        p["name"]: p for p in route(server, "GET", w, "/console/participants", w.fac_token).json()
    }
    assert people["Ann"]["online"] and people["Ann"]["org_name"] == "Alpha"
    assert people["Bob"]["role"] == "editor" and not people["Bob"]["removed"]
    assert route(server, "GET", w, "/console/participants", ann_m.token).status_code == 403

    # Bob becomes a viewer: his socket closes (4412), and the same token is now a viewer's.
    r = route(
        server, "PUT", w, f"/participants/{bob_m.user_id}/role", w.fac_token, {"role": "viewer"}
    )
    assert r.status_code == 200 and r.json()["role"] == "viewer"
    await asyncio.wait_for(bob.closed.wait(), 5)
    assert bob.close_code == closecodes.ROLE_CHANGED
    bob2 = await connect(server, w.canvas, bob_m.token, "bob2")
    bob2.add_note("b1", "as a viewer now", block="customer-jobs")
    await bob2.wait_for(lambda: any("viewers" in d for d in bob2.denials))
    await bob2.wait_for(lambda: "b1" not in bob2.notes)
    ballot = route(server, "POST", w, "/rounds", w.fac_token, {"dots": 1})
    rid = ballot.json()["id"]
    assert (
        route(server, "PUT", w, f"/rounds/{rid}/ballot", bob_m.token, {"dots": {}}).status_code
        == 403
    )
    await bob2.close()
    people = {
        p["name"]: p for p in route(server, "GET", w, "/console/participants", w.fac_token).json()
    }
    assert not people["Bob"]["online"] and people["Bob"]["last_seen"] is not None

    # Ann is removed: her socket closes (4403) and her token opens nothing any more.
    ann.add_note("a1", "Ann's note stays", block="customer-jobs")
    await w.clients["fac"].wait_for(lambda: "a1" in w.clients["fac"].notes)
    assert (
        route(server, "DELETE", w, f"/participants/{ann_m.user_id}", w.fac_token).status_code == 200
    )
    await asyncio.wait_for(ann.closed.wait(), 5)
    assert ann.close_code == closecodes.FORBIDDEN
    frames, code = await attempt(server, w.id, ann_m.token)
    assert code == closecodes.FORBIDDEN and frames == []
    assert route(server, "GET", w, "/rounds", ann_m.token).status_code == 403
    assert "a1" in w.clients["fac"].notes
    assert route(server, "DELETE", w, "/participants/nobody", w.fac_token).status_code == 404

    timeline = route(server, "GET", w, "/console/timeline?org=alpha", w.fac_token).json()
    assert timeline and all(e["org_id"] == "alpha" for e in timeline)
    assert any(e["text"] == "Ann (Alpha) created note a1" for e in timeline)
    everyone = route(server, "GET", w, "/console/timeline", w.fac_token).json()
    assert any(e["action"] == "remove" and e["target"] == ann_m.user_id for e in everyone)
    assert any(e["action"] == "role" and e["detail"] == "viewer" for e in everyone)
    await close_all(w)
