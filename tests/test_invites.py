"""Invite links per partner organization: redeem, use limits, expiry and revocation.

A link that is revoked or expires stops working at once, for sockets already open with it too.
"""

from __future__ import annotations

import asyncio
import time

import jwt
from pycrdt import Map

from tests.partner_helpers import api, attempt, connect, make_invite, member, partner_canvas, redeem
from tests.support import ServerProcess


async def test_redeem_gives_a_token_for_the_links_org_and_role(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    inv = make_invite(server, canvas, "beta", "editor", expires_in_s=600, max_uses=None)
    assert inv["url"] == f"/i/{inv['id']}"
    assert (inv["org_id"], inv["role"], inv["uses"], inv["revoked"], inv["max_uses"]) == (
        "beta",
        "editor",
        0,
        False,
        None,
    )
    assert abs(inv["expires_at"] - (time.time() + 600)) < 5

    r = redeem(server, inv["id"], "Bea")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["canvas_id"], body["org_id"], body["role"], body["name"]) == (
        canvas["id"],
        "beta",
        "editor",
        "Bea",
    )
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["inv"] == inv["id"] and claims["exp"] <= inv["expires_at"]

    listed = api(
        server, "GET", f"/api/canvases/{canvas['id']}/invites", canvas["facilitator_token"]
    ).json()
    assert [(i["id"], i["uses"]) for i in listed] == [(inv["id"], 1)]
    people = api(
        server, "GET", f"/api/canvases/{canvas['id']}/participants", canvas["facilitator_token"]
    ).json()
    assert [(p["name"], p["org_id"], p["role"], p["invite_id"]) for p in people] == [
        ("Bea", "beta", "editor", inv["id"])
    ]

    bea = await connect(server, canvas, body["token"], "bea")
    bea.add_note("n", "from Bea", block="customer-jobs", org="alpha")
    await bea.wait_for(lambda: bea.notes.get("n") is not None and bea.notes["n"]["org"] == "beta")
    await bea.close()


async def test_unknown_used_up_expired_links(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    assert redeem(server, "no-such-invite", "X").status_code == 404
    once = make_invite(server, canvas, "alpha", "viewer", max_uses=1)
    assert redeem(server, once["id"], "First").status_code == 200
    second = redeem(server, once["id"], "Second")
    assert (second.status_code, second.json()["detail"]) == (410, "invite link used up")
    short = make_invite(server, canvas, "alpha", "editor", expires_in_s=0.5)
    await asyncio.sleep(0.7)
    late = redeem(server, short["id"], "Late")
    assert (late.status_code, late.json()["detail"]) == (410, "invite link expired")
    bad = api(
        server,
        "POST",
        f"/api/canvases/{canvas['id']}/invites",
        canvas["facilitator_token"],
        json={"org_id": "nobody", "role": "editor", "expires_in_s": 60},
    )
    assert bad.status_code == 422


async def test_revoking_closes_open_sockets_and_the_link(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    inv = make_invite(server, canvas, "alpha", "editor")
    t1 = redeem(server, inv["id"], "One").json()["token"]
    t2 = redeem(server, inv["id"], "Two").json()["token"]
    other = member(server, canvas, "beta", "editor", "Other")
    c1 = await connect(server, canvas, t1, "one")
    c2 = await connect(server, canvas, t2, "two")
    bystander = await connect(server, canvas, other.token, "bystander")

    started = time.monotonic()
    r = api(
        server,
        "DELETE",
        f"/api/canvases/{canvas['id']}/invites/{inv['id']}",
        canvas["facilitator_token"],
    )
    assert r.status_code == 200 and r.json()["revoked"] is True
    await asyncio.wait_for(asyncio.gather(c1.closed.wait(), c2.closed.wait()), 1.0)
    print(f"sockets closed {time.monotonic() - started:.3f}s after revocation")
    assert (c1.close_code, c2.close_code) == (4410, 4410)
    assert not bystander.closed.is_set()

    assert redeem(server, inv["id"], "Three").status_code == 410
    assert await attempt(server, canvas["id"], t1) == ([], 4410)
    assert api(server, "GET", f"/api/canvases/{canvas['id']}", t1).status_code == 403
    await bystander.close()


async def test_sockets_close_when_the_link_expires(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    inv = make_invite(server, canvas, "alpha", "editor", expires_in_s=2.5)
    body = redeem(server, inv["id"], "Brief").json()
    assert body["expires_at"] <= inv["expires_at"]
    client = await connect(server, canvas, body["token"], "brief")
    await asyncio.wait_for(client.closed.wait(), 4)
    late_by = time.time() - inv["expires_at"]
    print(f"socket closed {late_by:+.3f}s relative to the link's expiry")
    assert client.close_code == 4410
    assert late_by < 1.0


async def test_adding_an_org_adds_its_value_map_live(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    fac = await connect(server, canvas, canvas["facilitator_token"], "fac")
    r = api(
        server,
        "POST",
        f"/api/canvases/{canvas['id']}/orgs",
        canvas["facilitator_token"],
        json={"name": "Gamma Labs", "color": "#112233"},
    )
    assert r.status_code == 201, r.text
    org = r.json()
    assert (org["id"], org["initials"], org["color"]) == ("gamma-labs", "GL", "#112233")
    assert org["blocks"] == [
        "gamma-labs:products-services",
        "gamma-labs:pain-relievers",
        "gamma-labs:gain-creators",
    ]
    blocks = fac.doc.get("blocks", type=Map)
    await fac.wait_for(
        lambda: (
            "gamma-labs:gain-creators" in blocks and "gamma-labs" in fac.doc.get("orgs", type=Map)
        )
    )

    # A partner of the new org joins and writes in its own value map; a late joiner sees it all.
    gamma = member(server, canvas, "gamma-labs", "editor", "Gil")
    g = await connect(server, canvas, gamma.token, "gamma")
    g.add_note("g1", "our offer", block="gamma-labs:products-services")
    await fac.wait_for(lambda: "g1" in fac.notes and fac.notes["g1"]["org"] == "gamma-labs")
    assert g.denials == []
    late = await connect(server, canvas, canvas["facilitator_token"], "late")
    assert "gamma-labs:pain-relievers" in late.doc.get("blocks", type=Map)
    same_name = api(
        server,
        "POST",
        f"/api/canvases/{canvas['id']}/orgs",
        canvas["facilitator_token"],
        json={"name": "Gamma Labs"},
    )
    assert same_name.json()["id"] == "gamma-labs-2"
    for c in (fac, g, late):
        await c.close()
