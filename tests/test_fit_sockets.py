"""Fit links and the contribution map through the real doors: a server process, real sockets,
tokens from invite links, the HTTP API; and the same link rules on two nodes (PostgreSQL and
Redis). The rules one by one are in tests/test_fit_rules.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pycrdt import Map, Text

from tests.partner_helpers import Member, api, auth, canvas_json, connect, member
from tests.services import RedisServer
from tests.support import ServerProcess, YClient
from tests.test_multinode import pg_url, redis_proc, two_nodes  # noqa: F401 (fixtures)


def put(client: YClient, root: str, key: str, value: Any) -> None:
    with client.doc.transaction():
        client.doc.get(root, type=Map)[key] = value


def drop(client: YClient, root: str, key: str) -> None:
    with client.doc.transaction():
        del client.doc.get(root, type=Map)[key]


def note(block: str, text: str, **extra: Any) -> Map:
    return Map({"block": block, "text": Text(text), "org": "", "x": 0.2, "y": 0.2, **extra})


def link(frm: str, to: str, **extra: Any) -> Map:
    return Map({"from": frm, "to": to, "strength": "nice-to-have", **extra})


def arrow(to: str, kind: str, text: str) -> Map:
    return Map({"to": to, "kind": kind, "note": text})


def root_of(client: YClient, root: str) -> dict[str, Any]:
    return client.doc.get(root, type=Map).to_py() or {}


async def everyone(clients: list[YClient], ok: Callable[[YClient], bool]) -> None:
    for c in clients:
        await c.wait_for(lambda c=c: ok(c))  # type: ignore[misc]


async def links_scenario(
    http: ServerProcess, canvas: dict[str, Any], fac: YClient, ann: YClient, bob: YClient
) -> None:
    """What the issue asks to be shown, wherever each participant is connected."""
    ann_id = canvas["_members"]["alpha"].user_id
    clients = [fac, ann, bob]
    put(fac, "notes", "p1", note("pains", "Waiting in the cold"))
    put(fac, "notes", "p2", note("pains", "Missed connections"))
    await everyone(clients, lambda c: {"p1", "p2"} <= set(root_of(c, "notes")))
    put(ann, "notes", "ar", note("alpha:pain-relievers", "Heated shelters"))
    put(bob, "notes", "br", note("beta:pain-relievers", "Live arrival times"))
    await everyone(clients, lambda c: {"ar", "br"} <= set(root_of(c, "notes")))

    # Ann's client claims Beta, someone else as author, and the wrong kind: the kind is stamped
    # from the blocks, organization and author follow from her client id (attribution).
    put(ann, "links", "L1", link("ar", "p1", org="beta", author="u_forged", kind="creates"))
    stamped = {"org": "alpha", "author": ann_id, "author_name": "Ann", "kind": "relieves"}
    await everyone(
        clients,
        lambda c: {k: c.attributed_links().get("L1", {}).get(k) for k in stamped} == stamped,
    )
    assert {k: canvas_json(http, canvas)["links"]["L1"][k] for k in stamped} == stamped

    # Bob links from Alpha's note: refused, told why, and gone from his own document too.
    denied = len(bob.denials)
    put(bob, "links", "L2", link("ar", "p2"))
    await bob.wait_for(lambda: len(bob.denials) > denied)
    assert "a link starts at one of your organization's notes" in bob.denials[denied]
    await bob.wait_for(lambda: "L2" not in root_of(bob, "links"))
    # His own note may link to the same pain: two partners' lines end at p1.
    put(bob, "links", "L3", link("br", "p1", strength="essential"))
    await everyone(clients, lambda c: {"L1", "L3"} <= set(root_of(c, "links")))
    assert all("L2" not in root_of(c, "links") for c in clients)
    assert "L2" not in canvas_json(http, canvas)["links"]

    # Ann deletes her reliever: her link to p1 disappears for everyone; Bob's stays.
    drop(ann, "notes", "ar")
    await everyone(clients, lambda c: set(root_of(c, "links")) == {"L3"})
    assert set(canvas_json(http, canvas)["links"]) == {"L3"}
    assert all(not c.closed.is_set() for c in clients)


def _members(server: ServerProcess, canvas: dict[str, Any]) -> dict[str, Member]:
    return {
        "alpha": member(server, canvas, "alpha", "editor", "Ann"),
        "beta": member(server, canvas, "beta", "editor", "Bob"),
    }


async def test_links_attributed_refused_and_gone_with_their_note(server: ServerProcess) -> None:
    canvas = server.create_canvas(
        "Partners", "partner-co-creation", orgs=[{"name": "Alpha"}, {"name": "Beta"}]
    )
    canvas["_members"] = m = _members(server, canvas)
    fac = await connect(server, canvas, canvas["facilitator_token"], "fac")
    ann = await connect(server, canvas, m["alpha"].token, "ann")
    bob = await connect(server, canvas, m["beta"].token, "bob")
    try:
        await links_scenario(server, canvas, fac, ann, bob)
    finally:
        for c in (fac, ann, bob):
            await c.close()


async def test_links_on_two_nodes(
    tmp_path: Path,
    redis_proc: RedisServer,  # noqa: F811
    pg_url: str,  # noqa: F811
) -> None:
    async with two_nodes(tmp_path, pg_url, redis_proc.url) as (a, b):
        canvas = a.create_canvas(
            "Partners", "partner-co-creation", orgs=[{"name": "Alpha"}, {"name": "Beta"}]
        )
        canvas["_members"] = m = _members(a, canvas)
        clients: list[YClient] = []
        try:
            fac = await connect(a, canvas, canvas["facilitator_token"], "fac@a")
            ann = await connect(a, canvas, m["alpha"].token, "ann@a")
            bob = await connect(b, canvas, m["beta"].token, "bob@b")
            clients = [fac, ann, bob]
            await links_scenario(b, canvas, fac, ann, bob)
        finally:
            for c in clients:
                with contextlib.suppress(Exception):
                    await c.close()


# -- the contribution map over HTTP ------------------------------------------------------------


async def test_contribution_map_cell_by_cell(server: ServerProcess) -> None:
    canvas = server.create_canvas(
        "Commute",
        "partner-co-creation",
        orgs=[{"name": "Alpha Transit"}, {"name": "Beta Data"}, {"name": "Gamma Energy"}],
    )
    ids = [o["id"] for o in canvas["orgs"]]
    assert ids == ["alpha-transit", "beta-data", "gamma-energy"]
    alpha, beta, gamma = ids
    ann = member(server, canvas, alpha, "editor", "Ann")
    bob = member(server, canvas, beta, "editor", "Bob")
    gus = member(server, canvas, gamma, "editor", "Gus")
    vic = member(server, canvas, beta, "viewer", "Vic")
    fac = await connect(server, canvas, canvas["facilitator_token"], "fac")
    a = await connect(server, canvas, ann.token, "ann")
    b = await connect(server, canvas, bob.token, "bob")
    g = await connect(server, canvas, gus.token, "gus")
    clients = [fac, a, b, g]
    try:
        # The customer profile, by the facilitator: one job, four pains, one gain.
        rows = {
            "j1": ("customer-jobs", "Get to work on time", 1.0, {}),
            "p1": ("pains", "Waiting in the cold", 2.0, {}),
            "p2": ("pains", "Missed connections", 3.0, {}),
            "p3": ("pains", "Unclear prices", 4.0, {}),
            "p4": ("pains", "Crowded trains", 5.0, {"u_x": 1, "u_y": 1}),
            "g1": ("gains", "Arrive relaxed", 6.0, {}),
        }
        for nid, (block, text, at, votes) in rows.items():
            put(fac, "notes", nid, note(block, text, created_at=at, votes=Map(votes)))
        # Each partner's value map, by the partner.
        put(a, "notes", "ar1", note(f"{alpha}:pain-relievers", "Heated shelters"))
        put(a, "notes", "ag1", note(f"{alpha}:gain-creators", "Quiet coaches"))
        put(b, "notes", "br1", note(f"{beta}:pain-relievers", "Live arrival times"))
        put(g, "notes", "gp1", note(f"{gamma}:products-services", "Station chargers"))
        await everyone(clients, lambda c: len(root_of(c, "notes")) == 10)
        put(a, "links", "la1", link("ar1", "p1"))
        put(a, "links", "la2", link("ag1", "g1", strength="essential"))
        put(b, "links", "lb1", link("br1", "p1", strength="essential"))
        put(b, "links", "lb2", link("br1", "p2", strength="essential"))
        put(fac, "overlaps", "p1", "competition")
        put(a, "exchange", "xa", arrow(beta, "money", "Alpha pays Beta per ride planned"))
        put(b, "exchange", "xb", arrow("customer", "data", "live arrivals in the app"))
        put(g, "exchange", "xg", arrow(alpha, "support", "chargers at stations"))
        await everyone(
            clients,
            lambda c: (
                len(root_of(c, "links")) == 4
                and len(root_of(c, "exchange")) == 3
                and root_of(c, "overlaps") == {"p1": "competition"}
            ),
        )
        assert all(c.denials == [] for c in clients), [c.denials for c in clients]

        r = api(server, "GET", f"/api/canvases/{canvas['id']}/contribution", vic.token)
        assert r.status_code == 200, r.text
        got = r.json()
    finally:
        for c in clients:
            await c.close()

    assert [o["id"] for o in got["organizations"]] == [alpha, beta, gamma]
    assert [o["name"] for o in got["organizations"]] == [
        "Alpha Transit",
        "Beta Data",
        "Gamma Energy",
    ]

    def cell(row: dict[str, Any], org: str) -> list[tuple[str, str, str]]:
        return [(c["note"], c["kind"], c["strength"]) for c in row["cells"][org]]

    by_id = {r["note"]: r for r in got["rows"]}
    assert [r["note"] for r in got["rows"]] == ["j1", "p1", "p2", "p3", "p4", "g1"]
    expected_cells = {
        ("j1", alpha): [],
        ("j1", beta): [],
        ("j1", gamma): [],
        ("p1", alpha): [("ar1", "relieves", "nice-to-have")],
        ("p1", beta): [("br1", "relieves", "essential")],
        ("p1", gamma): [],
        ("p2", alpha): [],
        ("p2", beta): [("br1", "relieves", "essential")],
        ("p2", gamma): [],
        ("p3", alpha): [],
        ("p3", beta): [],
        ("p3", gamma): [],
        ("p4", alpha): [],
        ("p4", beta): [],
        ("p4", gamma): [],
        ("g1", alpha): [("ag1", "creates", "essential")],
        ("g1", beta): [],
        ("g1", gamma): [],
    }
    for (row, org), want in expected_cells.items():
        assert cell(by_id[row], org) == want, (row, org)
        assert set(by_id[row]["cells"]) == {alpha, beta, gamma}
    assert {r: by_id[r]["status"] for r in by_id} == {
        "j1": "gap",
        "p1": "overlap",
        "p2": "single",
        "p3": "gap",
        "p4": "gap",
        "g1": "single",
    }
    assert by_id["p1"]["text"] == "Waiting in the cold" and by_id["p4"]["votes"] == 2
    assert by_id["p1"]["cells"][alpha][0]["text"] == "Heated shelters"
    # Gaps, the most voted first; the overlap with the facilitator's mark.
    assert got["gaps"] == ["p4", "j1", "p3"]
    assert got["overlaps"] == [{"note": "p1", "orgs": [alpha, beta], "mark": "competition"}]
    assert [c["sentence"] for c in got["coverage"]] == [
        "0 of 1 job helped with",
        "2 of 4 pains relieved, 1 essential one by only one partner",
        "1 of 1 gain created, 1 essential one by only one partner",
    ]
    partners = {p["org"]: p for p in got["partners"]}
    assert partners[alpha]["rows"] == ["p1", "g1"] and partners[alpha]["sole"] == ["g1"]
    assert partners[beta]["rows"] == ["p1", "p2"] and partners[beta]["sole"] == ["p2"]
    assert partners[gamma]["rows"] == [] and partners[gamma]["notes"] == []
    assert [partners[o]["sentence"] for o in ids] == [
        "Alpha Transit addresses 1 pain and 1 gain with 2 notes; "
        "without it 1 gain would go unaddressed.",
        "Beta Data addresses 2 pains with 1 note; without it 1 pain would go unaddressed.",
        "Gamma Energy addresses nothing yet.",
    ]
    assert [(x["from_org"], x["to"], x["kind"], x["note"]) for x in got["exchange"]] == [
        (alpha, beta, "money", "Alpha pays Beta per ride planned"),
        (beta, "customer", "data", "live arrivals in the app"),
        (gamma, alpha, "support", "chargers at stations"),
    ]


def test_contribution_route_doors(server: ServerProcess) -> None:
    canvas = server.create_canvas("Doors", "value-proposition")
    other = server.create_canvas("Other", "value-proposition")
    path = f"/api/canvases/{canvas['id']}/contribution"
    assert api(server, "GET", path).status_code == 401
    r = api(server, "GET", path, other["facilitator_token"])
    assert r.status_code == 403 and isinstance(r.json()["detail"], str)
    empty = api(server, "GET", path, canvas["facilitator_token"]).json()
    assert empty["rows"] == [] and empty["gaps"] == [] and empty["exchange"] == []
    assert [c["sentence"] for c in empty["coverage"]] == [
        "0 of 0 jobs helped with",
        "0 of 0 pains relieved",
        "0 of 0 gains created",
    ]
    gone = api(server, "DELETE", f"/api/canvases/{canvas['id']}", canvas["facilitator_token"])
    assert gone.status_code == 204
    r = api(server, "GET", path, canvas["facilitator_token"])
    assert r.status_code == 404 and r.json() == {"detail": "canvas not found"}
    spec = httpx.get(server.http + "/openapi.json", headers=auth("x")).json()
    declared = spec["paths"]["/api/canvases/{canvas_id}/contribution"]["get"]["responses"]
    assert set(declared) == {"200", "401", "403", "404", "410", "422"}
