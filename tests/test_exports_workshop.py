"""What the workshop features put into every export (in-process, pure functions): the
contribution map and the value exchange in the Markdown report, the SVG and the JSON; closed
vote rounds' results by organization; comment counts and dots in the CSV; never an open
round's votes, never a draft in the shared sections."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from typing import Any

import orjson
from PIL import Image

from server.exports import board_from_json, export
from server.exports.layout import layout
from tests.test_exports import canvas

# b2 (Beta's reliever) and a3 (Alpha's reliever) both relieve b1: an overlap marked
# "competition"; a1, f1 (jobs) and g1 (a gain) stay gaps.
LINKS = {
    "l1": {"from": "b2", "to": "b1", "strength": "essential", "org": "beta"},
    "l2": {"from": "a3", "to": "b1", "strength": "nice-to-have", "org": "alpha"},
}
EXCHANGE = {
    "x1": {"from_org": "alpha", "to": "beta", "kind": "data", "note": "charger telemetry"},
    "x2": {"from_org": "beta", "to": "customer", "kind": "service", "note": ""},
    # Not a valid arrow (an unknown kind): no export shows it.
    "x3": {"from_org": "gamma", "to": "beta", "kind": "bribe", "note": "HIDDENARROW"},
}
CLOSED = {
    "title": "Round one",
    "status": "closed",
    "closed_at": 2000,
    "opened_at": 1000,
    "anonymous": True,
    "visibility": "hidden",
    "tally": {
        "ranking": [
            {"place": 1, "note": "b1", "total": 3, "by_org": {"alpha": 1, "beta": 2}, "orgs": 2},
            {"place": 2, "note": "a1", "total": 1, "by_org": {"alpha": 1}, "orgs": 1},
        ],
        "voters": 3,
        "shared": ["b1"],
        "org_names": {"alpha": "Alpha", "beta": "Beta"},
    },
}
# An open live round shows a running tally on the board: not a result, not in the exports.
OPEN_LIVE = {
    "title": "Round two",
    "status": "open",
    "opened_at": 3000,
    "visibility": "live",
    "live": {"ranking": [{"place": 1, "note": "g1", "total": 77, "by_org": {"gamma": 77}}]},
}
COMMENTS = {
    "c1": {
        "note": "b1",
        "text": "Which chargers?",
        "author_name": "Gil",
        "org": "gamma",
        "created_at": 10,
        "resolved": False,
    },
    "c2": {
        "note": "b1",
        "parent": "c1",
        "text": "The fast ones",
        "author_name": "Bob",
        "org": "beta",
        "created_at": 11,
        "resolved": True,
    },
    "c3": {
        "note": "gone",
        "text": "ORPHANCOMMENT",
        "author_name": "Eve",
        "org": "beta",
        "created_at": 12,
    },
}


def workshop_canvas() -> dict[str, Any]:
    content = canvas()
    content["notes"]["a3"] = {
        "block": "alpha:pain-relievers",
        "text": "Spare parts depot",
        "org": "alpha",
        "author": "u_ann",
        "author_name": "Ann",
        "x": 0.5,
        "y": 0.5,
        "votes": {},
    }
    content["links"] = dict(LINKS)
    content["exchange"] = dict(EXCHANGE)
    content["overlaps"] = {"b1": "competition"}
    content["rounds"] = {"r1": CLOSED, "r2": OPEN_LIVE}
    content["comments"] = dict(COMMENTS)
    return content


def section(md: str, title: str) -> str:
    return md.split(f"\n## {title}\n")[1].split("\n## ")[0]


def test_markdown_report_carries_the_contribution_map_and_the_value_exchange() -> None:
    md = export(workshop_canvas(), "md").decode()
    cmap = section(md, "Contribution map")
    assert "- 1 of 1 pain relieved, 1 essential one by only one partner" not in cmap  # two relieve
    assert "- 1 of 1 pain relieved" in cmap
    assert "- 0 of 2 jobs helped with" in cmap and "- 0 of 1 gain created" in cmap
    gaps = cmap.split("**Gaps**")[1].split("**Overlaps**")[0]
    assert "Book a charging slot" in gaps and "Pay with one card everywhere" in gaps
    assert "Chargers are often broken" not in gaps
    overlaps = cmap.split("**Overlaps**")[1].split("**Each partner")[0]
    assert "- Chargers are often broken: Alpha, Beta — marked *competition*" in overlaps
    partners = cmap.split("**Each partner's contribution:**")[1]
    assert "Gamma addresses nothing yet\\." in partners
    assert "Beta addresses 1 pain with 1 note" in partners
    # The map as a table: the pain's row holds each partner's reliever in its column.
    row = next(line for line in cmap.splitlines() if line.startswith("| Chargers are often"))
    # Columns by name: Alpha, Beta, Gamma.
    assert row == (
        "| Chargers are often broken | pains | Spare parts depot | "
        "Remote diagnostics, 24/7 (essential) |  |"
    )
    exchange = section(md, "Value exchange")
    assert "- Alpha → Beta: data — charger telemetry" in exchange
    assert "- Beta → the customer: service" in exchange
    assert "HIDDENARROW" not in md and "bribe" not in md


def test_markdown_report_has_closed_rounds_by_organization_and_comment_threads() -> None:
    md = export(workshop_canvas(), "md").decode()
    votes = section(md, "Vote results")
    assert "### Round one" in votes and "3 voters." in votes
    assert (
        "1. Chargers are often broken — 3 (Alpha 1, Beta 2) — backed by several partners" in votes
    )
    assert "2. Book a charging slot — 1 (Alpha 1)" in votes
    assert "Round two" not in md and "77" not in md  # an open round is no result
    pains = md.split("## Pains")[1].split("\n## ")[0]
    assert "3 dots in closed rounds" in pains
    comments = section(md, "Comments")
    assert "- On “Chargers are often broken”:" in comments
    assert "  - Gil (Gamma): Which chargers?" in comments
    assert "    - Bob (Beta): The fast ones *(resolved)*" in comments
    assert "ORPHANCOMMENT" not in md  # a comment on no note of the canvas


def test_csv_rows_carry_comment_counts_and_dots_from_closed_rounds() -> None:
    rows = list(csv.DictReader(io.StringIO(export(workshop_canvas(), "csv").decode("utf-8-sig"))))
    by_id = {r["note_id"]: r for r in rows}
    assert (by_id["b1"]["comments"], by_id["b1"]["dots"]) == ("2", "3")
    assert (by_id["a1"]["comments"], by_id["a1"]["dots"]) == ("0", "1")
    assert by_id["g1"]["dots"] == "0"  # the open live round's 77 dots are not counted
    assert by_id["b2"]["linked_notes"] == "b1"


def test_json_export_has_every_root_and_the_report() -> None:
    content = workshop_canvas()
    out = orjson.loads(export(content, "json"))
    for root in ("links", "exchange", "overlaps", "comments", "rounds"):
        assert out[root] == content[root]
    report = out["report"]
    (result,) = report["vote_results"]
    assert result["round"] == "r1" and result["ranking"][0]["by_org"] == {"alpha": 1, "beta": 2}
    assert report["dots"] == {"b1": 3, "a1": 1}
    assert report["comment_counts"] == {"b1": 2}
    cmap = report["contribution"]
    assert cmap["overlaps"] == [{"note": "b1", "orgs": ["alpha", "beta"], "mark": "competition"}]
    assert sorted(cmap["gaps"]) == ["a1", "f1", "g1"]
    assert [a["id"] for a in cmap["exchange"]] == ["x1", "x2"]


def test_drafts_count_in_no_shared_section() -> None:
    content = workshop_canvas()
    drafts = {
        "d1": {"block": "gamma:pain-relievers", "text": "DRAFTRELIEF", "org": "gamma", "x": 0.1},
    }
    out = orjson.loads(export(content, "json", drafts=drafts))
    assert "d1" in out["drafts"]
    assert "DRAFTRELIEF" not in orjson.dumps(out["report"]).decode()
    md = export(content, "md", drafts=drafts).decode()
    assert "DRAFTRELIEF *(draft)*" in md and "DRAFTRELIEF" not in section(md, "Contribution map")


def test_svg_and_png_show_the_value_exchange_panel_under_the_board() -> None:
    content = workshop_canvas()
    svg = export(content, "svg")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    (panel,) = [g for g in root.iter(f"{ns}g") if g.get("class") == "exchange"]
    lines = ["".join(t.itertext()) for t in panel.iter(f"{ns}text")]
    assert lines == [
        "Value exchange",
        "Alpha → Beta: data — charger telemetry",
        "Beta → Customer: service",
    ]
    assert b"HIDDENARROW" not in svg
    # The links are drawn too.
    assert {el.get("data-link") for el in root.iter(f"{ns}line") if el.get("data-link")} == {
        "l1",
        "l2",
    }
    lay = layout(board_from_json(content))
    image = Image.open(io.BytesIO(export(content, "png")))
    assert image.size[0] == lay.width and image.size[1] == int(root.get("height") or 0) > lay.height
    # The panel's first legend swatch is in Alpha's colour.
    swatch = image.convert("RGB").getpixel((41, lay.height + 44 + 14 - 5))
    assert isinstance(swatch, tuple) and all(
        abs(a - b) <= 8 for a, b in zip(swatch[:3], (0x2F, 0x6F, 0xDB), strict=True)
    )


def test_gaps_rank_by_dots_from_closed_rounds_and_link_kinds_come_from_the_blocks() -> None:
    content = workshop_canvas()
    before = orjson.loads(export(content, "json"))["report"]["contribution"]["gaps"]
    assert before[0] == "a1"  # its two free votes (and one dot)
    tally = dict(CLOSED["tally"])  # type: ignore[arg-type]
    tally["ranking"] = [{"place": 1, "note": "g1", "total": 5, "by_org": {"gamma": 5}}]
    content["rounds"] = {"r1": {**CLOSED, "tally": tally}, "r2": OPEN_LIVE}
    cmap = orjson.loads(export(content, "json"))["report"]["contribution"]
    assert cmap["gaps"][0] == "g1"  # five dots in a closed round
    assert next(r for r in cmap["rows"] if r["note"] == "g1")["votes"] == 5
    # A link whose client-written kind lies is shown with the kind its blocks give it.
    content["links"]["l1"] = {**LINKS["l1"], "kind": "FAKEKIND"}
    md = export(content, "md").decode()
    assert "FAKEKIND" not in md
    assert "- Remote diagnostics, 24/7 → *relieves* → Chargers are often broken" in md
