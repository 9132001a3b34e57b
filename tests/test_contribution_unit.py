"""The contribution map as a pure function (server/canvas/contribution.py) on canvases shaped the
way a hostile or buggy client could leave them: what it must ignore, and whom it must credit.
Over HTTP, cell by cell, in tests/test_fit_sockets.py."""

from __future__ import annotations

from typing import Any

from server.canvas import templates
from server.canvas.contribution import contribution_map


def canvas(template: str, orgs: list[str], notes: dict[str, Any], **roots: Any) -> dict[str, Any]:
    specs = templates.make_orgs([(o, None) for o in orgs])
    blocks = {
        b.id: {"kind": b.kind, "org": b.org, "order": i, "title": b.title}
        for i, b in enumerate(templates.blocks_for(template, specs))
    }
    return {
        "meta": {"template": template},
        "blocks": blocks,
        "notes": notes,
        "orgs": {o.id: {"name": o.name, "color": o.color} for o in specs},
        "links": roots.get("links", {}),
        "exchange": roots.get("exchange", {}),
        "overlaps": roots.get("overlaps", {}),
    }


def n(block: str, text: str, org: str = "", **extra: Any) -> dict[str, Any]:
    return {"block": block, "text": text, "org": org, **extra}


def cells(result: dict[str, Any], row: str) -> dict[str, list[str]]:
    r = next(r for r in result["rows"] if r["note"] == row)
    return {o: [c["note"] for c in cs] for o, cs in r["cells"].items()}


def test_a_note_in_a_competitors_value_map_counts_for_its_author() -> None:
    c = canvas(
        "partner-co-creation",
        ["Alpha", "Beta"],
        {
            "p1": n("pains", "Cold"),
            "a_in_b": n("beta:pain-relievers", "planted by Alpha", org="alpha"),
            "f_in_b": n("beta:pain-relievers", "the facilitator writes for Beta"),
        },
        links={
            "l1": {"from": "a_in_b", "to": "p1", "strength": "essential"},
            "l2": {"from": "f_in_b", "to": "p1", "strength": "nice-to-have"},
        },
    )
    assert cells(contribution_map(c), "p1") == {"alpha": ["a_in_b"], "beta": ["f_in_b"]}


def test_links_the_server_would_refuse_are_ignored_and_duplicates_count_once() -> None:
    c = canvas(
        "value-proposition",
        ["Alpha"],
        {
            "p1": n("pains", "Cold"),
            "j1": n("customer-jobs", "Commute"),
            "r1": n("pain-relievers", "Shelter", org="alpha"),
        },
        links={
            "dangling": {"from": "gone", "to": "p1"},  # a cross-node race
            "wrong-kind": {"from": "r1", "to": "j1", "kind": "relieves"},  # the stored kind lies
            "backwards": {"from": "p1", "to": "r1"},
            "not-a-map": "r1->p1",
            "a": {"from": "r1", "to": "p1", "strength": "nice-to-have"},
            "b": {"from": "r1", "to": "p1", "strength": "essential"},
        },
        exchange={
            "ok": {"from_org": "alpha", "to": "customer", "kind": "service", "note": "rides"},
            "to-nobody": {"from_org": "alpha", "to": "ghost", "kind": "data"},
            "bad-kind": {"from_org": "alpha", "to": "customer", "kind": "bribe"},
        },
        overlaps={"p1": "competition", "j1": "nonsense"},
    )
    got = contribution_map(c)
    row = next(r for r in got["rows"] if r["note"] == "p1")
    assert row["cells"]["alpha"] == [
        {"note": "r1", "text": "Shelter", "link": "b", "kind": "relieves", "strength": "essential"}
    ]
    assert row["overlap"] is None  # one partner: no overlap to mark
    assert got["gaps"] == ["j1"]
    assert [a["id"] for a in got["exchange"]] == ["ok"]


def test_business_model_key_partners_provide_resources_and_perform_activities() -> None:
    c = canvas(
        "business-model",
        ["Transit Co", "Energy Co"],
        {
            "kr1": n("key-resources", "Charging network", created_at=1),
            "kr2": n("key-resources", "Rolling stock", created_at=2, votes={"u1": 1}),
            "ka1": n("key-activities", "Fleet maintenance"),
            "kp1": n("key-partners", "Energy supplier", partner_org="energy-co"),
            "kp2": n("key-partners", "Someone not on the canvas", partner_org="acme"),
        },
        links={
            "l1": {"from": "kp1", "to": "kr1", "strength": "essential"},
            "l2": {"from": "kp2", "to": "ka1"},
        },
    )
    got = contribution_map(c)
    assert [o["id"] for o in got["organizations"]] == ["energy-co", "transit-co", ""]
    assert cells(got, "kr1") == {"energy-co": ["kp1"], "transit-co": [], "": []}
    assert cells(got, "ka1") == {"energy-co": [], "transit-co": [], "": ["kp2"]}
    assert got["gaps"] == ["kr2"]
    assert [x["sentence"] for x in got["coverage"]] == [
        "1 of 2 key resources provided, 1 essential one by only one partner",
        "1 of 1 key activity performed",
    ]
    energy = next(p for p in got["partners"] if p["org"] == "energy-co")
    assert energy["sentence"] == (
        "Energy Co addresses 1 key resource with 1 note; without it 1 key resource would go "
        "unaddressed."
    )
