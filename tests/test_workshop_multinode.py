"""The workshop on two nodes (PostgreSQL + Redis): a vote round, comments, freeze and removal
behave as on one, whichever node takes the HTTP request and whichever holds the socket."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pycrdt import Map

from server import closecodes
from tests.partner_helpers import api, canvas_json, connect, member
from tests.services import RedisServer
from tests.support import YClient
from tests.test_multinode import pg_url, redis_proc, two_nodes  # noqa: F401
from tests.workshop_helpers import comments_of, rounds_of, stage_of, three_partner_canvas


async def test_workshop_across_two_nodes(
    tmp_path: Path,
    redis_proc: RedisServer,  # noqa: F811
    pg_url: str,  # noqa: F811
) -> None:
    async with two_nodes(tmp_path, pg_url, redis_proc.url) as (a, b):
        canvas = three_partner_canvas(a)
        cid, fac_token = canvas["id"], canvas["facilitator_token"]
        ann_m = member(a, canvas, "alpha", "editor", "Ann")
        bob_m = member(a, canvas, "beta", "editor", "Bob")
        cy_m = member(b, canvas, "gamma", "editor", "Cy")
        fac = await connect(a, canvas, fac_token, "fac@a")
        ann = await connect(a, canvas, ann_m.token, "ann@a")
        bob = await connect(b, canvas, bob_m.token, "bob@b")
        cy = await connect(b, canvas, cy_m.token, "cy@b")
        clients: list[YClient] = [fac, ann, bob, cy]
        try:
            for nid in ("x", "y"):
                fac.add_note(nid, nid, block="customer-jobs")
            for c in clients:
                await c.wait_for(lambda c=c: {"x", "y"} <= set(c.notes.keys()))

            # A round opened on node A, ballots through both nodes.
            rid = api(a, "POST", f"/api/canvases/{cid}/rounds", fac_token, {"dots": 2}).json()["id"]
            mark = len(bob.frames_received)
            ballot = f"/api/canvases/{cid}/rounds/{rid}/ballot"
            assert (
                api(b, "PUT", ballot, bob_m.token, {"dots": {"x": 1, "y": 1, "z": 1}}).status_code
                == 422
            )
            assert api(b, "PUT", ballot, bob_m.token, {"dots": {"x": 1, "y": 2}}).status_code == 422
            assert api(b, "PUT", ballot, bob_m.token, {"dots": {"x": 1}}).status_code == 200
            assert api(a, "PUT", ballot, ann_m.token, {"dots": {"x": 1}}).status_code == 200
            assert api(b, "PUT", ballot, cy_m.token, {"dots": {"y": 1}}).status_code == 200
            # Every ballot is committed (the PUTs answered); Bob's socket got no ballot of them.
            for frame in bob.frames_received[mark:]:  # hidden on the other node too
                assert ann_m.user_id.encode() not in frame and b"ranking" not in frame
            # Closed on node B; node A's sockets see the same tally; late ballots refused.
            closed = api(b, "POST", f"/api/canvases/{cid}/rounds/{rid}/close", fac_token).json()
            assert closed["tally"]["voters"] == 3
            assert [(r["note"], r["total"], r["by_org"]) for r in closed["tally"]["ranking"]] == [
                ("x", 2, {"alpha": 1, "beta": 1}),
                ("y", 1, {"gamma": 1}),
            ]
            for c in clients:
                await c.wait_for(lambda c=c: rounds_of(c).get(rid, {}).get("status") == "closed")
                assert rounds_of(c)[rid]["tally"] == closed["tally"]
            assert api(a, "PUT", ballot, ann_m.token, {"dots": {"y": 1}}).status_code == 409

            # A comment written on node B with a forged author arrives stamped on node A.
            bob.doc.get("comments", type=Map)["c1"] = Map(
                {"note": "x", "text": "agreed", "author": ann_m.user_id, "org": "alpha"}
            )
            await fac.wait_for(lambda: comments_of(fac).get("c1", {}).get("org") == "beta")
            assert comments_of(fac)["c1"]["author"] == bob_m.user_id

            # Frozen through node A: node B refuses before applying, and stores nothing.
            assert (
                api(
                    a, "PUT", f"/api/canvases/{cid}/freeze", fac_token, {"frozen": True}
                ).status_code
                == 200
            )
            await bob.wait_for(lambda: stage_of(bob).get("frozen") is True)
            bob.add_note("frozen", "no", block="customer-jobs")
            await bob.wait_for(lambda: any("frozen" in d for d in bob.denials))
            assert "frozen" not in canvas_json(b, canvas)["notes"]
            assert "frozen" not in canvas_json(a, canvas)["notes"]
            assert (
                api(
                    b,
                    "PUT",
                    f"/api/canvases/{cid}/timers/t",
                    fac_token,
                    {"action": "start", "seconds": 9},
                ).status_code
                == 409
            )
            assert (
                api(
                    b, "PUT", f"/api/canvases/{cid}/freeze", fac_token, {"frozen": False}
                ).status_code
                == 200
            )
            await ann.wait_for(lambda: stage_of(ann).get("frozen") is False)

            # Removed through node A: Cy's socket on node B closes, and stays closed.
            assert (
                api(
                    a, "DELETE", f"/api/canvases/{cid}/participants/{cy_m.user_id}", fac_token
                ).status_code
                == 200
            )
            await asyncio.wait_for(cy.closed.wait(), 5)
            assert cy.close_code == closecodes.FORBIDDEN
            assert api(b, "GET", f"/api/canvases/{cid}/rounds", cy_m.token).status_code == 403
        finally:
            for c in clients:
                await c.close()
