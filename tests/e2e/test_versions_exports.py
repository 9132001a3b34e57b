"""Take the workshop home, in the browser: download each export from the menu, save a
version, change things, read the diff, view the version read-only, restore it."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect

from .ui import add_note, note, note_text, wait_connected

pytestmark = pytest.mark.e2e


def test_download_every_export_from_the_menu(
    make_canvas, open_page, screenshots_dir: Path, tmp_path: Path
):
    canvas = make_canvas("partner-co-creation", ("Acme Corp", "Beta Labs"), title="Export me")
    ann = open_page(canvas, canvas.token("Ann", "Acme Corp"))
    wait_connected(ann)
    add_note(ann, "customer-jobs", "Charge overnight")
    add_note(ann, "acme-corp:products-services", "Fleet charging app")
    panel = ann.locator("section.versions")
    expect(panel.get_by_role("heading", name="Export and versions")).to_be_visible()
    # An editor sees the menu and the list, not the facilitator's buttons.
    expect(panel.get_by_role("button", name="Save version")).to_have_count(0)
    files = {}
    for ext in ("pdf", "png", "svg", "md", "csv", "json"):
        with ann.expect_download() as info:
            panel.locator(f'button[data-export="{ext}"]').click()
        download = info.value
        assert download.suggested_filename == f"Export-me.{ext}"
        path = tmp_path / download.suggested_filename
        download.save_as(path)
        files[ext] = path.read_bytes()
    assert files["pdf"].startswith(b"%PDF-")
    assert Image.open(io.BytesIO(files["png"])).size[0] == 1600
    (screenshots_dir / "export-from-menu.png").write_bytes(files["png"])
    rows = list(csv.DictReader(io.StringIO(files["csv"].decode("utf-8-sig"))))
    assert sorted((r["text"], r["organization"]) for r in rows) == [
        ("Charge overnight", "Acme Corp"),
        ("Fleet charging app", "Acme Corp"),
    ]
    md = files["md"].decode()
    listing, cmap = md.split("\n## Contribution map\n")
    assert listing.count("Charge overnight") == 1  # once block by block
    gaps = cmap.split("**Gaps**")[1].split("**Overlaps**")[0]
    assert "- Charge overnight" in gaps  # no partner helps with this job yet
    assert b">Fleet charging<" in files["svg"]  # wrapped onto two lines of the note
    assert b"Fleet charging app" in files["json"]
    assert ann.errors == []


def test_save_change_diff_view_and_restore(make_canvas, open_page, screenshots_dir: Path):
    canvas = make_canvas("partner-co-creation", ("Acme Corp", "Beta Labs"), title="Rounds")
    fay = open_page(canvas, canvas.facilitator_token, height=1400)
    bob = open_page(canvas, canvas.token("Bob", "Beta Labs"))
    wait_connected(fay)
    wait_connected(bob)
    first = add_note(bob, "pains", "Chargers are broken")

    panel = fay.locator("section.versions")
    panel.get_by_label("Save a version named").fill("after round 1")
    panel.get_by_role("button", name="Save version").click()
    v1 = panel.locator("li.version").filter(has_text="after round 1")
    expect(v1).to_be_visible()

    # Round 2: Bob rewrites his note and adds one.
    note(bob, first).dblclick()
    editor = note_text(bob, first)
    expect(editor).to_be_focused()
    editor.press("Control+End")  # the end of the text, not of its first wrapped line
    bob.keyboard.type(" at night")
    bob.keyboard.press("Escape")
    second = add_note(bob, "gains", "One card everywhere")
    expect(note(fay, second)).to_be_visible()

    v1.get_by_role("button", name="Changes since: after round 1").click()
    diff = panel.locator(".version-diff")
    beta = diff.locator('.diff-org[data-org="beta-labs"]')
    expect(beta.locator("h4")).to_have_text("Beta Labs")
    expect(beta).to_contain_text("Added “One card everywhere”")
    expect(beta).to_contain_text("Edited “Chargers are broken” → “Chargers are broken at night”")

    v1.get_by_role("button", name="View: after round 1").click()
    view = fay.get_by_role("dialog", name="“after round 1” (read-only)")
    image = view.get_by_role("img", name="The board as it was in “after round 1”")
    expect(image).to_be_visible()
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") == 1600
    fay.screenshot(path=str(screenshots_dir / "version-read-only.png"))
    view.get_by_role("button", name="Close").click()
    expect(view).to_have_count(0)
    panel.screenshot(path=str(screenshots_dir / "versions-panel-diff.png"))

    v1.get_by_role("button", name="Restore: after round 1").click()
    fay.get_by_role("dialog").get_by_role("button", name="Restore").click()
    # Everyone converges on the version: Bob's second note goes, his first is as it was.
    expect(note(bob, second)).to_have_count(0)
    expect(note(fay, second)).to_have_count(0)
    expect(note_text(bob, first)).to_have_value("Chargers are broken")
    expect(panel.locator("li.version.automatic")).to_contain_text(
        "before restoring “after round 1”"
    )
    fay.screenshot(path=str(screenshots_dir / "versions-after-restore.png"), full_page=True)
    # And editing goes on.
    third = add_note(bob, "gains", "After the restore")
    expect(note_text(fay, third)).to_have_value("After the restore")
    assert fay.errors == [] and bob.errors == []
