"""Invite links per partner organization: redeem, use limits, expiry and revocation.

A link that is revoked or expires stops working at once, for sockets already open with it too.
"""

from __future__ import annotations

import asyncio
import time

import jwt
import websockets
from pycrdt import Map

from server.auth import Tokens
from server.session import Identity
from server.store import open_store
from server.store.base import Invite
from tests.partner_helpers import (
    api,
    attempt,
    canvas_json,
    connect,
    make_invite,
    member,
    partner_canvas,
    redeem,
)
from tests.support import ServerProcess, YClient

SECRET = "a048e0df09aeb6e7ebf7eaf031ec1732cb27259731f9a880b1cbd9066be7011f"  # what ServerProcess sets as COCANVAS_SECRET


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
    # Whatever org it claims, the note is Bea's organization's (attributed by her client id).
    await bea.wait_for(lambda: bea.attributed().get("n", {}).get("org") == "beta")
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
    assert api(server, "GET", f"/api/canvases/{canvas['id']}", t1).status_code == 410
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
    await fac.wait_for(lambda: fac.attributed().get("g1", {}).get("org") == "gamma-labs")
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


async def test_an_invite_must_name_one_of_the_canvas_orgs(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    path = f"/api/canvases/{canvas['id']}/invites"
    fac = canvas["facilitator_token"]
    base = {"role": "editor", "expires_in_s": 60}

    missing = api(server, "POST", path, fac, json=base)
    assert missing.status_code == 422, missing.text
    assert [(e["loc"], e["type"]) for e in missing.json()["detail"]] == [
        (["body", "org_id"], "missing")
    ]
    empty = api(server, "POST", path, fac, json={**base, "org_id": ""})
    assert empty.status_code == 422, empty.text
    [error] = empty.json()["detail"]
    assert error["loc"] == ["body", "org_id"]
    assert "org_id is required: an invite names one of this canvas's organizations" in error["msg"]
    unknown = api(server, "POST", path, fac, json={**base, "org_id": "nobody"})
    assert unknown.status_code == 422
    [error] = unknown.json()["detail"]
    assert error["msg"] == "no organization 'nobody' on this canvas"
    # A canvas without organizations has nobody to invite until the facilitator adds one.
    bare = server.create_canvas("Bare", "business-model")
    assert bare["orgs"] == []
    r = api(
        server,
        "POST",
        f"/api/canvases/{bare['id']}/invites",
        bare["facilitator_token"],
        json={**base, "org_id": ""},
    )
    assert r.status_code == 422
    assert api(server, "GET", path, fac).json() == []  # nothing was created

    # The published schema says so.
    schema = api(server, "GET", "/openapi.json").json()
    invite_in = schema["components"]["schemas"]["InviteIn"]
    assert "org_id" in invite_in["required"]
    assert invite_in["properties"]["org_id"]["minLength"] == 1
    responses = schema["paths"]["/api/canvases/{canvas_id}/invites"]["post"]["responses"]
    assert "org_id" in responses["422"]["description"]


async def test_an_invited_editor_cannot_touch_the_facilitators_notes(
    server: ServerProcess,
) -> None:
    """The hole an invite for organization "" opened, closed end to end."""
    canvas = partner_canvas(server)  # partners protect their notes (on by default here)
    fac = await connect(server, canvas, canvas["facilitator_token"], "fac")
    fac.add_note("fac-note", "Facilitator's framing", block="customer-jobs")
    ed = member(server, canvas, "alpha", "editor", "Eve")
    assert ed.org_id == "alpha"
    eve = await connect(server, canvas, ed.token, "eve")
    await eve.wait_for(lambda: "fac-note" in eve.notes)

    eve.notes["fac-note"]["text"].insert(0, "Eve was here: ")
    await eve.wait_for(lambda: len(eve.denials) >= 1)
    del eve.notes["fac-note"]
    await eve.wait_for(lambda: len(eve.denials) >= 2)

    def intact(notes: Map) -> bool:
        return "fac-note" in notes and str(notes["fac-note"]["text"]) == "Facilitator's framing"

    # Refused and undone everywhere: on the server, for the facilitator, in Eve's own document.
    await fac.wait_for(lambda: intact(fac.notes))
    await eve.wait_for(lambda: intact(eve.notes))
    stored = canvas_json(server, canvas)["notes"]["fac-note"]
    assert (stored["text"], stored["org"]) == ("Facilitator's framing", "")
    # Eve's own notes are still hers to write.
    eve.add_note("eve-note", "Eve's idea", block="customer-jobs")
    await fac.wait_for(lambda: fac.attributed().get("eve-note", {}).get("org") == "alpha")
    for c in (fac, eve):
        await c.close()


async def test_links_made_without_an_org_before_the_rule_no_longer_grant_editing(
    server: ServerProcess,
) -> None:
    """Invites for organization "" already in the store: no editor may come from them."""
    canvas = partner_canvas(server)
    server.stop()
    store = open_store(f"sqlite:///{(server.data_dir / 'cocanvas.db').resolve()}")
    await store.start()
    now = time.time()
    for invite_id, role in (("legacy-editor", "editor"), ("legacy-viewer", "viewer")):
        await store.create_invite(
            Invite(invite_id, canvas["id"], "", role, now, now + 3600, "operator")
        )
    await store.close()
    server.start()

    r = redeem(server, "legacy-editor", "Eve")
    assert (r.status_code, r.json()["detail"]) == (
        410,
        "invite link names no organization: ask for a new one",
    )
    assert redeem(server, "legacy-viewer", "Vic").status_code == 200  # viewers write nothing

    # A token already redeemed from such a link (before the upgrade) is refused at the door.
    identity = Identity("u_legacy", "Eve", "", "editor", "legacy-editor")
    token = Tokens(SECRET).issue(canvas["id"], identity, 3600)
    legacy = YClient(server.ws, canvas["id"], token, "legacy")
    try:
        await legacy.connect(wait_sync=False)
    except websockets.ConnectionClosed:
        pass
    await asyncio.wait_for(legacy.closed.wait(), 5)
    assert (legacy.close_code, legacy.close_reason) == (4410, "invite link names no organization")
    assert legacy.frames_received == []
