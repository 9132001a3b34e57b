"""The web client as one whole: the fit links are drawn in canvas coordinates and redrawn only
when something they show changed (idle frames, pans and zooms cost no redraw and read no
layout); a frozen canvas is read-only on everyone's board, with the reason said; the invite
panel's use counts follow redeems; the partner canvas with every panel at desktop and phone
sizes (screenshots in artifacts/screenshots/whole-*.png)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from .conftest import Canvas
from .ui import add_note, block, note, note_text, wait_connected

pytestmark = pytest.mark.e2e

FRAMES = """n => new Promise(done => { let i = 0; const f = () => (++i >= n ? done(null) :
  requestAnimationFrame(f)); requestAnimationFrame(f) })"""
COUNT_LAYOUT_READS = """() => { if (window.__rects !== undefined) { window.__rects = 0; return }
  window.__rects = 0; const orig = Element.prototype.getBoundingClientRect;
  Element.prototype.getBoundingClientRect = function () { window.__rects++;
  return orig.call(this) } }"""


def draws(page: Page) -> int:
    return int(page.locator("svg.fit-overlay").get_attribute("data-draws") or "0")


def link_by_keyboard(page: Page, from_id: str, target_label: str) -> None:
    note(page, from_id).focus()
    page.keyboard.press("l")
    page.get_by_role("dialog").get_by_role("button", name=target_label).click()
    page.get_by_role("dialog").get_by_role("button", name="Essential").click()


def linked_canvas(
    make_canvas: Any, open_page: Any, **size: int
) -> tuple[Canvas, Page, Page, str, str]:
    canvas: Canvas = make_canvas("partner-co-creation", orgs=("Alpha Transit", "Beta Data"))
    alpha = canvas.org_id("Alpha Transit")
    fac = open_page(canvas, canvas.facilitator_token, **size)
    ann = open_page(canvas, canvas.token("Ann", "Alpha Transit"), **size)
    wait_connected(fac)
    wait_connected(ann)
    pain = add_note(fac, "pains", "Waiting in the cold")
    reliever = add_note(ann, f"{alpha}:pain-relievers", "Heated shelters")
    expect(note(ann, pain)).to_be_visible()
    link_by_keyboard(ann, reliever, "Pains: Waiting in the cold")
    for p in (ann, fac):
        expect(p.locator(f'line.fit-line[data-to="{pain}"]')).to_have_count(1)
    return canvas, fac, ann, pain, reliever


def test_fit_links_redraw_only_when_an_end_note_changes_not_per_frame_or_on_zoom(
    make_canvas: Any, open_page: Any
) -> None:
    _, fac, ann, pain, _ = linked_canvas(make_canvas, open_page, width=1440, height=900)
    line = ann.locator(f'line.fit-line[data-to="{pain}"]')
    # Idle: frames pass, nothing is redrawn and no layout is read (the old overlay read every
    # note's box on every frame).
    ann.evaluate(FRAMES, 3)
    before = draws(ann)
    ann.evaluate(COUNT_LAYOUT_READS)
    ann.evaluate(FRAMES, 20)
    assert draws(ann) == before
    assert ann.evaluate("window.__rects") == 0

    # Zoom: the line moves on screen with the board's world, drawn once, in canvas units.
    attrs = line.evaluate("l => [l.getAttribute('x2'), l.getAttribute('y2')]")
    on_screen = line.bounding_box()
    ann.get_by_role("button", name="Zoom in").click()
    ann.wait_for_function(
        "([el, b]) => { const r = el.getBoundingClientRect(); return r.x !== b.x || r.width !== b.width }",
        arg=[line.element_handle(), on_screen],
    )
    ann.evaluate(FRAMES, 5)
    assert line.evaluate("l => [l.getAttribute('x2'), l.getAttribute('y2')]") == attrs
    assert draws(ann) == before

    # The facilitator's pain grows by three lines: Ann's line is redrawn to the new box.
    note(fac, pain).focus()
    fac.keyboard.press("Enter")
    fac.keyboard.press("End")
    for word in ("by the road", "in the rain", "for an hour"):
        fac.keyboard.press("Enter")
        fac.keyboard.type(word)
    fac.keyboard.press("Escape")
    ann.wait_for_function(
        "([el, y]) => el.getAttribute('y2') !== y", arg=[line.element_handle(), attrs[1]]
    )
    assert draws(ann) > before
    assert ann.errors == [] and fac.errors == []


def test_a_frozen_canvas_is_read_only_on_every_board_and_says_why(
    make_canvas: Any, open_page: Any
) -> None:
    canvas, fac, ann, pain, reliever = linked_canvas(make_canvas, open_page)
    server = canvas.server
    headers = {"Authorization": f"Bearer {canvas.facilitator_token}"}
    url = f"{server.http}/api/canvases/{canvas.id}"
    expect(ann.locator(f'.fit-handle[data-note-id="{reliever}"]')).to_be_visible()
    expect(block(ann, "pains").locator("button.add-note")).to_be_visible()
    saved = httpx.get(url, headers=headers).json()

    r = httpx.put(f"{url}/freeze", json={"frozen": True}, headers=headers)
    assert r.status_code == 200, r.text
    for p in (ann, fac):
        # No add buttons, no link handles, the notes read-only: for the facilitator too.
        expect(p.locator("section.block button.add-note:visible")).to_have_count(0)
        expect(p.locator(".fit-handle:visible")).to_have_count(0)
        expect(note(p, pain)).to_have_class(re.compile(r"\breadonly\b"))
    # Ann clicks her own note: the say-why bubble names the freeze.
    note(ann, reliever).focus()
    ann.keyboard.press("Enter")
    expect(ann.locator(".why-pop")).to_contain_text("The facilitator froze the canvas")
    expect(note(ann, reliever).locator("textarea")).not_to_be_editable()
    # Keys that would change the canvas say the same, and change nothing.
    block(ann, "gains").focus()
    ann.keyboard.press("n")
    expect(ann.locator(".toast-error").last).to_contain_text("froze the canvas")
    note(ann, reliever).focus()
    ann.keyboard.press("l")
    expect(ann.get_by_role("dialog")).to_have_count(0)
    ann.keyboard.press("Delete")
    expect(ann.get_by_role("dialog")).to_have_count(0)
    ann.keyboard.press("Control+z")
    expect(ann.locator(".toast-error").last).to_contain_text("froze the canvas")
    after = httpx.get(url, headers=headers).json()
    assert after["notes"] == saved["notes"]
    assert after.get("links") == saved.get("links")

    r = httpx.put(f"{url}/freeze", json={"frozen": False}, headers=headers)
    assert r.status_code == 200, r.text
    expect(block(ann, "pains").locator("button.add-note")).to_be_visible()
    expect(ann.locator(f'.fit-handle[data-note-id="{reliever}"]')).to_be_visible()
    note(ann, reliever).focus()
    ann.keyboard.press("Enter")
    expect(note(ann, reliever).locator("textarea")).to_be_editable()
    # Deleting a linked note says first that the server removes its link and undo will not
    # bring that back.
    ann.keyboard.press("Escape")
    ann.keyboard.press("Delete")
    dialog = ann.get_by_role("dialog")
    expect(dialog).to_contain_text(
        "Its fit link goes too: undo brings back the note, not the link."
    )
    dialog.get_by_role("button", name="Cancel").click()
    expect(ann.locator(f'line.fit-line[data-to="{pain}"]')).to_have_count(1)
    assert ann.errors == [] and fac.errors == []


def test_leaving_with_edits_still_pending_asks_first(make_canvas: Any, open_page: Any) -> None:
    canvas: Canvas = make_canvas("business-model")
    page = open_page(canvas, canvas.facilitator_token)
    wait_connected(page)
    add_note(page, "key-partners", "saved")
    expect(page.locator("#connection-status")).to_have_attribute("data-pending", "0")
    asked: list[str] = []
    page.on("dialog", lambda d: asked.append(d.type))
    with page.expect_event("close"):
        page.close(run_before_unload=True)  # nothing pending: no question, the page goes
    assert asked == []

    page = open_page(canvas, canvas.facilitator_token)
    wait_connected(page)
    page.context.set_offline(True)
    expect(page.locator("#connection-status")).not_to_have_attribute("data-state", "connected")
    kept = add_note(page, "key-partners", "not yet sent")
    expect(page.locator("#connection-status")).not_to_have_attribute("data-pending", "0")
    with page.expect_event("dialog") as info:
        page.close(run_before_unload=True)
    assert info.value.type == "beforeunload"
    info.value.dismiss()  # the person stays, the edit with them
    expect(note_text(page, kept)).to_have_value("not yet sent")


def test_invite_use_counts_follow_a_redeem(make_canvas: Any, open_page: Any) -> None:
    canvas: Canvas = make_canvas("business-model", orgs=("Acme Corp", "Beta Labs"))
    server = canvas.server
    headers = {"Authorization": f"Bearer {canvas.facilitator_token}"}
    invite = httpx.post(
        f"{server.http}/api/canvases/{canvas.id}/invites",
        json={"org_id": canvas.org_id("Beta Labs"), "role": "editor", "expires_in_s": 3600},
        headers=headers,
    ).json()
    fac = open_page(canvas, canvas.facilitator_token)
    wait_connected(fac)
    row = fac.locator(f'.invite-list li[data-invite-id="{invite["id"]}"]')
    expect(row).to_contain_text("0 uses")
    expect(fac.locator("#people")).to_have_attribute("data-settled", "true")
    joined = httpx.post(f"{server.http}/api/invites/{invite['id']}/redeem", json={"name": "Bea"})
    assert joined.status_code in (200, 201), joined.text
    bea = open_page(canvas, joined.json()["token"])
    wait_connected(bea)
    # Bea's arrival refreshes the facilitator's list: no reload, no button.
    expect(row).to_contain_text("1 use ")
    assert fac.errors == []


@pytest.mark.parametrize(
    ("label", "width", "height"), [("desktop", 1440, 900), ("phone", 390, 844)]
)
def test_the_partner_canvas_with_every_panel_fits_the_screen(
    make_canvas: Any, open_page: Any, screenshots_dir: Path, label: str, width: int, height: int
) -> None:
    _, fac, ann, pain, _ = linked_canvas(make_canvas, open_page, width=width, height=height)
    for p in (ann, fac):
        expect(p.locator("#workshop")).to_be_attached()
        expect(p.locator("section.versions")).to_be_attached()
    ann.screenshot(path=str(screenshots_dir / f"whole-{label}-board.png"))
    drawer = ann.locator("button.drawer-toggle")
    if drawer.is_visible():
        drawer.click()
        expect(ann.locator("#sidebar")).to_have_class(re.compile(r"\bopen\b"))
    # The side panel (a drawer on the phone) lies on screen, and none of its panels is cut off
    # at the side (wider than the panel column).
    ann.wait_for_function(
        """() => { const r = document.getElementById('sidebar').getBoundingClientRect();
                 return r.left >= 0 && r.right <= innerWidth + 0.5 }"""
    )
    cut = ann.evaluate(
        """() => [...document.querySelectorAll('#sidebar > .panel-side, #sidebar > div')]
              .filter(el => el.offsetParent && el.scrollWidth > el.clientWidth + 1)
              .map(el => el.className)"""
    )
    assert cut == []
    ann.screenshot(path=str(screenshots_dir / f"whole-{label}-panels.png"))
    if drawer.is_visible():
        drawer.click()
    ann.get_by_role("button", name="Fit & value exchange").click()
    expect(ann.locator("table.contribution-map")).to_be_visible()
    # The fit view opens under the board, not instead of it; its own content scrolls.
    board_h = ann.locator("#board").evaluate("el => el.getBoundingClientRect().height")
    assert board_h >= height * 0.3, board_h
    if label == "desktop":
        # …and the board re-fits to the smaller space: the whole canvas is still in view.
        ann.wait_for_function(
            """() => { const b = document.getElementById('board').getBoundingClientRect();
                     return [...document.querySelectorAll('.board-world > .panel')].every(p => {
                       const r = p.getBoundingClientRect();
                       return r.top >= b.top - 1 && r.bottom <= b.bottom + 1 }) }"""
        )
    view = ann.locator("#fit-view")
    view.locator("#fit-links").scroll_into_view_if_needed()
    expect(view.locator("#fit-links li[data-link-id]")).to_be_in_viewport()
    ann.screenshot(path=str(screenshots_dir / f"whole-{label}-fit.png"))
    assert ann.errors == [] and fac.errors == []
