"""Exports from a canvas with known content: each format opened the way its reader opens it
(json, csv and an XML parser from the standard library, Pillow for the PNG, poppler's pdftoppm
for the PDF), in-process; the HTTP doors are in tests/test_versions_http.py."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import pytest
from PIL import Image
from pycrdt import Doc, Map, Text

from server.canvas import templates
from server.canvas.export import doc_to_json
from server.canvas.restore import make_equal
from server.exports import board_from_json, export
from server.exports.layout import layout
from tests.attribution_helpers import write_as
from tests.support import require

ORGS = [("Alpha", "#2f6fdb"), ("Beta", "#d9480f"), ("Gamma", "#2b8a3e")]
DRAFT = "DRAFTbeta7"

# (id, block, org, author, text, votes)
NOTES = [
    ("a1", "customer-jobs", "alpha", "Ann", "Book a charging slot", {"u_ann": 1, "u_bob": 1}),
    ("a2", "alpha:products-services", "alpha", "Ann", "Fleet charging app", {}),
    ("b1", "pains", "beta", "Bob", "Chargers are often broken", {"u_gil": 1}),
    ("b2", "beta:pain-relievers", "beta", "Bob", "Remote diagnostics, 24/7", {}),
    ("g1", "gains", "gamma", "Gil", "Pay with one card everywhere", {}),
    ("g2", "gamma:gain-creators", "gamma", "Gil", 'Roaming "one tariff", commas, too', {}),
    ("f1", "customer-jobs", "", "Fran", "Facilitator: plan the next round", {}),
]


def canvas() -> dict[str, Any]:
    orgs = templates.make_orgs(list(ORGS))
    doc: Doc = Doc()
    doc.apply_update(templates.initial_update("E-mobility", "partner-co-creation", orgs, True, 1.0))
    # Each author writes with its own client id (the facilitator's note is filed under no
    # organization, which a facilitator may do): org and author follow from the ids.
    for i, (nid, block, org, author, text, votes) in enumerate(NOTES):
        write_as(
            doc,
            100 + sorted({n[3] for n in NOTES}).index(author),
            lambda d, i=i, nid=nid, block=block, org=org, text=text, votes=votes: d.get(
                "notes", type=Map
            ).__setitem__(
                nid,
                Map(
                    {
                        "block": block,
                        "text": Text(text),
                        "org": org,
                        "x": (i * 0.37) % 1,
                        "y": (i * 0.23) % 1,
                        "votes": Map(votes),
                    }
                ),
            ),
            user=f"u_{author.lower()}",
            org=org,
            name=author,
            facilitator=author == "Fran",
        )
    return doc_to_json(doc)


def test_json_round_trips() -> None:
    content = canvas()
    out = orjson.loads(export(content, "json", canvas={"id": "c"}))
    assert out["format"] == "cocanvas-export" and out["canvas"] == {"id": "c"}
    assert {k: out[k] for k in content} == content
    # Written into an empty document (as restoring it as a new canvas does) it is the same canvas.
    doc: Doc = Doc()
    with doc.transaction():
        make_equal(doc, out)
    restored = doc_to_json(doc)
    assert {k: restored[k] for k in content} == content
    assert not any(v for k, v in restored.items() if k not in content)  # links etc.: none
    # Equal content, equal bytes: the API, the menu and CI produce the same file.
    assert export(content, "json") == export(canvas(), "json")


def test_csv_has_one_row_per_note_with_its_organization() -> None:
    raw = export(canvas(), "csv")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert sorted(r["note_id"] for r in rows) == sorted(n[0] for n in NOTES)
    names = {"alpha": "Alpha", "beta": "Beta", "gamma": "Gamma", "": ""}
    for nid, block, org, author, text, votes in NOTES:
        (row,) = [r for r in rows if r["note_id"] == nid]
        assert (row["organization_id"], row["organization"]) == (org, names[org])
        assert (row["text"], row["author"], row["block_id"]) == (text, author, block)
        assert row["votes"] == str(len(votes))
    assert {r["block"] for r in rows if r["block_id"] == "pains"} == {"Pains"}


def test_csv_cells_never_run_as_spreadsheet_formulas() -> None:
    content = canvas()
    content["notes"]["a1"]["text"] = '=HYPERLINK("http://evil.example","click")'
    content["notes"]["b1"]["author_name"] = "@SUM(A1:A9)"
    rows = list(csv.DictReader(io.StringIO(export(content, "csv").decode("utf-8-sig"))))
    by_id = {r["note_id"]: r for r in rows}
    assert by_id["a1"]["text"] == "'" + content["notes"]["a1"]["text"]
    assert by_id["b1"]["author"] == "'@SUM(A1:A9)"


def test_markdown_lists_every_note_once_under_its_block_with_organization_and_votes() -> None:
    md = export(canvas(), "md").decode()
    assert md.startswith("# E\\-mobility\n")
    # The block by block listing has every note once; the report's closing sections (the
    # contribution map's rows and gaps, tests/test_exports_workshop.py) refer back to some.
    listing = md.split("\n## Contribution map")[0]
    for nid, _block, _org, _author, text, _votes in NOTES:
        escaped = text.replace("-", "\\-").replace(".", "\\.").replace("/", "/")
        assert listing.count(escaped.replace(",", ",")) == 1, (nid, text)
    jobs = md.split("## Customer Jobs")[1].split("\n## ")[0]
    assert "Book a charging slot — **Alpha** · Ann · 2 votes" in jobs
    assert "Facilitator: plan the next round — **no organization** · Fran" in jobs
    assert "| Alpha | 2 | 2 |" in md and "| Beta | 2 | 1 |" in md


def test_markdown_and_svg_show_hostile_text_as_text() -> None:
    content = canvas()
    content["notes"]["a1"]["text"] = "<script>alert(1)</script> [x](javascript:alert(2)) # h \x01"
    content["orgs"]["beta"]["color"] = 'red" onload="alert(3)'
    md = export(content, "md").decode()
    assert "<script>" not in md and "](javascript" not in md
    svg = export(content, "svg")
    root = ET.fromstring(svg)  # well-formed, control character and all
    tags = {el.tag.split("}")[1] for el in root.iter()}
    assert tags <= {"svg", "defs", "marker", "path", "rect", "text", "g", "circle", "line"}
    assert not any(k.startswith("on") for el in root.iter() for k in el.attrib)
    assert b"<script>" not in svg and b"&lt;script&gt;" in svg


def _note_header_pixel(content: dict[str, Any], nid: str, scale: float = 1.0) -> tuple[int, int]:
    board = board_from_json(content)
    note = next(n for n in board.notes if n.id == nid)
    box = layout(board).note_rect(note.block, note.x, note.y)
    assert box is not None
    return int((box.x + box.w / 2) * scale), int((box.y + 8) * scale)


def _close(rgb: tuple[int, ...], hex_color: str) -> bool:
    want = [int(hex_color[i : i + 2], 16) for i in (1, 3, 5)]
    return all(abs(a - b) <= 8 for a, b in zip(rgb[:3], want, strict=True))


def test_png_decodes_at_the_boards_size_with_each_note_in_its_organizations_colour() -> None:
    content = canvas()
    image = Image.open(io.BytesIO(export(content, "png")))
    image.load()
    lay = layout(board_from_json(content))
    assert image.format == "PNG" and image.size == (lay.width, lay.height)
    rgb = image.convert("RGB")
    colours = dict(ORGS)
    for nid, _block, org, *_ in NOTES:
        if org:
            pixel = rgb.getpixel(_note_header_pixel(content, nid))
            assert isinstance(pixel, tuple)
            assert _close(pixel, colours[org.capitalize()]), (nid, pixel)


def test_pdf_renders_with_pdftoppm(tmp_path: Path) -> None:
    pdftoppm = shutil.which("pdftoppm")
    require(pdftoppm is not None, "pdftoppm not found (apt-get install poppler-utils)")
    assert pdftoppm is not None
    content = canvas()
    pdf = export(content, "pdf")
    assert pdf.startswith(b"%PDF-")
    (tmp_path / "board.pdf").write_bytes(pdf)
    # cairosvg writes 96 SVG pixels per inch (1 px = 0.75 pt): at 96 dpi the page image has the
    # board's size.
    subprocess.run(
        [
            pdftoppm,
            "-png",
            "-r",
            "96",
            "-singlefile",
            str(tmp_path / "board.pdf"),
            str(tmp_path / "page"),
        ],
        check=True,
        timeout=60,
    )
    page = Image.open(tmp_path / "page.png").convert("RGB")
    lay = layout(board_from_json(content))
    assert abs(page.size[0] - lay.width) <= 1 and abs(page.size[1] - lay.height) <= 1
    for nid, org in (("a1", "#2f6fdb"), ("b1", "#d9480f"), ("g1", "#2b8a3e")):
        pixel = page.getpixel(_note_header_pixel(content, nid))
        assert isinstance(pixel, tuple) and _close(pixel, org), (nid, pixel)
    # The pdftotext layer holds the notes' words too (text, not pixels).
    pdftotext = shutil.which("pdftotext")
    if pdftotext:
        text = subprocess.run(
            [pdftotext, str(tmp_path / "board.pdf"), "-"], capture_output=True, check=True
        ).stdout.decode()
        assert "Value Map — Alpha" in text and "Customer Profile" in text


# Beta's private draft, as its draft space (a document of its own) holds it.
BETA_DRAFTS = {
    "d1": {"block": "pains", "text": DRAFT, "org": "beta", "author_name": "Bob", "x": 0.5}
}


@pytest.mark.parametrize("fmt", ["json", "md", "csv", "svg", "pdf"])
def test_drafts_are_only_in_the_export_they_are_handed_to(fmt: str) -> None:
    content = canvas()
    # Another partner's or the facilitator's export is made without Beta's drafts.
    assert DRAFT.encode() not in export(content, fmt)
    if fmt != "pdf":  # (the PDF's text is compressed)
        assert DRAFT.encode() in export(content, fmt, drafts=BETA_DRAFTS)
    if fmt == "json":
        out = orjson.loads(export(content, fmt, drafts=BETA_DRAFTS))
        assert "d1" in out["drafts"] and "d1" not in out["notes"]
    if fmt == "md":
        assert f"{DRAFT} *(draft)* — **Beta**" in export(content, fmt, drafts=BETA_DRAFTS).decode()


def test_a_shared_note_cannot_hide_from_the_exports() -> None:
    content = canvas()
    content["notes"]["b1"]["draft"] = True  # any client may write this field into its note
    content["notes"]["b1"]["private"] = True
    for fmt in ("json", "md", "csv"):
        assert b"Chargers are often broken" in export(content, fmt), fmt
    rows = list(csv.DictReader(io.StringIO(export(content, "csv").decode("utf-8-sig"))))
    assert len(rows) == len(NOTES)


def test_every_template_lays_out_every_block() -> None:
    for template in templates.TEMPLATES:
        orgs = templates.make_orgs(list(ORGS))
        doc: Doc = Doc()
        doc.apply_update(templates.initial_update("T", template, orgs, True, 1.0))
        content = doc_to_json(doc)
        placed = layout(board_from_json(content)).placed()
        assert set(placed) == set(content["blocks"]), template
        other = [
            p
            for p in placed.values()
            if p.block.section not in ("bmc", "value-map", "customer-profile")
        ]
        assert other == [], template
