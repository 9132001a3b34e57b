"""A canvas that holds a real workshop (issue 10): zoom and pan, notes that never hide each other,
the co-creation layout, saying why, and every screen size — in Debian's Chromium, real server."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .ui import block, box, note, wait_connected

pytestmark = pytest.mark.e2e

SIZES = {
    "1920x1080": (1920, 1080),
    "1440x900": (1440, 900),
    "1024x768": (1024, 768),
    "390x844": (390, 844),
}
THREE = ("Acme Corp", "Beta Labs", "Gamma Works")
PEOPLE = {"Acme Corp": "Alice Smith", "Beta Labs": "Bob Jones", "Gamma Works": "Gina Park"}


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"] - 0.5
        and b["x"] < a["x"] + a["width"] - 0.5
        and a["y"] < b["y"] + b["height"] - 0.5
        and b["y"] < a["y"] + a["height"] - 0.5
    )


def inside(inner: dict[str, float], outer: dict[str, float], slack: float = 1.0) -> bool:
    return (
        inner["x"] >= outer["x"] - slack
        and inner["y"] >= outer["y"] - slack
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + slack
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + slack
    )


def quick_note(page: Page, block_id: str, text: str) -> str:
    """Keyboard path: focus the block, N, type, Escape twice (back on the block)."""
    block(page, block_id).focus()
    page.keyboard.press("n")
    editor = page.locator(".note.editing textarea")
    expect(editor).to_be_focused()
    nid = str(editor.evaluate("el => el.closest('.note').dataset.noteId"))
    page.keyboard.insert_text(text)
    page.keyboard.press("Escape")
    page.keyboard.press("Escape")
    return nid


def note_boxes(page: Page, block_id: str) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        f'section.block[data-block-id="{block_id}"] .note',
        """els => els.map(e => { const r = e.getBoundingClientRect();
             return {id: e.dataset.noteId, x: r.x, y: r.y, width: r.width, height: r.height} })""",
    )


def no_horizontal_scroll(page: Page) -> None:
    w = page.evaluate(
        "() => [document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]"
    )
    assert w[0] <= w[1], f"page scrolls sideways: {w}"


def press_fit(page: Page) -> None:
    page.locator("button.fit-all").click()


def test_sixty_notes_from_three_people_in_one_block_are_all_visible(make_canvas, open_page):
    canvas = make_canvas("business-model", orgs=THREE)
    pages = [open_page(canvas, canvas.token(PEOPLE[o], o)) for o in THREE]
    for p in pages:
        wait_connected(p)
    long = "A long note that needs several lines: shared warehouse, one invoice, joint training."
    ids: list[str] = []
    # Three people add 20 notes each into Key Partners, interleaved so their placements race.
    for i, page in itertools.islice(itertools.cycle(enumerate(pages)), 60):
        text = long if len(ids) % 7 == 3 else f"idea {len(ids)} from {THREE[i]}"
        ids.append(quick_note(page, "key-partners", text))
    for page in pages:
        expect(block(page, "key-partners").locator(".note")).to_have_count(60)
        press_fit(page)
    page = pages[0]
    page.mouse.move(1, 1)
    boxes = note_boxes(page, "key-partners")
    assert len(boxes) == 60
    for a, b in itertools.combinations(boxes, 2):
        assert not overlap(a, b), f"notes {a['id']} and {b['id']} overlap"
    kp = block(page, "key-partners")
    kp_box = box(kp)
    covered = [box(kp.locator(".block-title")), box(kp.locator("button.add-note"))]
    for other in ("key-activities", "value-propositions", "cost-structure"):
        covered += [box(block(page, other).locator(".block-title"))]
        covered += [box(block(page, other).locator("button.add-note"))]
    board = box(page.locator("#board"))
    for b in boxes:
        assert inside(b, kp_box), f"note {b['id']} sticks out of its block"
        assert inside(b, board), f"note {b['id']} is off screen after Fit"
        for c in covered:
            assert not overlap(b, c), f"note {b['id']} covers a block title or button"
    # Nothing covers any note: the topmost element at each note's centre is that note.
    hidden = page.evaluate(
        """() => [...document.querySelectorAll('[data-block-id="key-partners"] .note')].filter(n => {
              const r = n.getBoundingClientRect();
              const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
              return !top || top.closest('.note') !== n }).map(n => n.dataset.noteId)"""
    )
    assert hidden == []
    # Long notes grow (up to a limit) and show all of their text when focused.
    long_id = ids[3]
    short_h = box(note(page, ids[0]))["height"]
    assert box(note(page, long_id))["height"] > short_h
    note(page, long_id).focus()
    full = note(page, long_id).locator("textarea").evaluate("t => t.scrollHeight - t.clientHeight")
    assert full <= 1, "focused note must show all of its text"
    # Every participant sees the same packing (canvas coordinates, not screen positions).
    layouts = [
        p.eval_on_selector_all(
            '[data-block-id="key-partners"] .note',
            "els => els.map(e => [e.dataset.noteId, e.style.transform]).sort()",
        )
        for p in pages
    ]
    assert layouts[0] == layouts[1] == layouts[2]
    assert all(p.errors == [] for p in pages)


def test_zoom_and_pan_keep_the_note_under_the_pointer(make_canvas, open_page):
    canvas = make_canvas("business-model")
    page = open_page(canvas, canvas.token("Alice Smith", "Acme Corp"))
    wait_connected(page)
    nid = quick_note(page, "channels", "under the pointer")
    n = note(page, nid)
    b = box(n)
    x, y = b["x"] + b["width"] / 2, b["y"] + b["height"] * 0.6

    def under_pointer() -> str | None:
        return page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y)?.closest('.note')?.dataset.noteId ?? null",
            [x, y],
        )

    zoom = page.locator(".zoom-level")
    before = zoom.inner_text()
    page.mouse.move(x, y)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -300)  # ctrl+wheel (and trackpad pinch) zooms around the pointer
    page.keyboard.up("Control")
    expect(zoom).not_to_have_text(before)
    assert box(n)["width"] > b["width"] * 1.3
    assert under_pointer() == nid
    page.keyboard.down("Control")
    page.mouse.wheel(0, 500)
    page.keyboard.up("Control")
    expect(zoom).not_to_have_text(before)
    assert box(n)["width"] < b["width"]
    assert under_pointer() == nid

    # Space + drag pans, even starting on the note; the note travels with the pointer.
    start = box(n)
    page.mouse.move(x, y)
    page.keyboard.down("Space")
    page.mouse.down()
    page.mouse.move(x - 120, y + 70, steps=6)
    page.mouse.up()
    page.keyboard.up("Space")
    moved = box(n)
    assert abs(moved["x"] - (start["x"] - 120)) < 2 and abs(moved["y"] - (start["y"] + 70)) < 2
    x, y = x - 120, y + 70
    assert under_pointer() == nid
    # The note stayed in its block: panning is not a move.
    expect(block(page, "channels").locator(f'[data-note-id="{nid}"]')).to_have_count(1)
    # A plain wheel pans the canvas.
    page.mouse.wheel(0, 100)
    assert abs(box(n)["y"] - (moved["y"] - 100)) < 2
    assert page.errors == []


def test_fit_shows_every_block_and_the_profile_stays_central_with_six_partners(
    make_canvas, open_page, screenshots_dir
):
    partners = ("Acme Corp", "Beta Labs", "Gamma Works", "Delta AG", "Epsilon Oy", "Zeta BV")
    canvas = make_canvas("partner-co-creation", orgs=partners)
    page = open_page(canvas, canvas.facilitator_token, width=1440, height=900)
    wait_connected(page)
    expect(page.locator(".panel-value-map")).to_have_count(6)
    board = box(page.locator("#board"))
    # Zoom in and wander off, then Fit brings everything back.
    for _ in range(4):
        page.locator("button.zoom-in").click()
    # Zoomed in, an overview shows where we are; pressing on it pans there.
    overview = page.locator(".overview")
    expect(overview).to_be_visible()
    ov = box(overview)
    page.mouse.click(ov["x"] + ov["width"] / 2, ov["y"] + ov["height"] / 2)
    profile_now = box(page.locator(".shape-circle"))
    assert overlap(profile_now, board), "the overview's centre is the profile"
    page.screenshot(path=str(screenshots_dir / "partner-co-creation-six-partners-zoomed.png"))
    page.mouse.move(board["x"] + 50, board["y"] + 50)
    page.mouse.wheel(2000, 1500)
    press_fit(page)
    expect(overview).to_be_hidden()
    page.screenshot(path=str(screenshots_dir / "partner-co-creation-six-partners-fit.png"))
    for bid in page.eval_on_selector_all("section.block", "els => els.map(e => e.dataset.blockId)"):
        assert inside(box(block(page, bid)), board), f"{bid} not on screen after Fit"
    profile = box(page.locator(".shape-circle"))
    maps = [box(m) for m in page.locator(".panel-value-map .shape-square").all()]
    assert all(profile["width"] >= m["width"] and profile["height"] >= m["height"] for m in maps)
    centre = profile["x"] + profile["width"] / 2
    assert abs(centre - (board["x"] + board["width"] / 2)) < board["width"] * 0.05
    left = [m for m in maps if m["x"] + m["width"] <= profile["x"]]
    right = [m for m in maps if m["x"] >= profile["x"] + profile["width"]]
    assert len(left) == 3 and len(right) == 3, "partners' maps stand on both sides of the profile"
    # Each map is labelled with its partner and drawn in its colour.
    titles = page.locator(".panel-value-map .panel-title").all_inner_texts()
    for name in partners:
        assert any(name in t for t in titles), name
    colours = page.eval_on_selector_all(
        ".panel-value-map", "els => els.map(e => getComputedStyle(e).getPropertyValue('--org'))"
    )
    assert len(set(colours)) == 6
    # Zoom to one block: it fills the screen.
    block(page, "customer-jobs").focus()
    page.keyboard.press("z")
    jobs = box(block(page, "customer-jobs"))
    assert inside(jobs, board) and jobs["height"] > board["height"] * 0.8
    assert page.errors == []


def test_a_drop_onto_a_crowded_block_lands_in_it(make_canvas, open_page):
    canvas = make_canvas("business-model")
    page = open_page(canvas, canvas.token("Alice Smith", "Acme Corp"))
    wait_connected(page)
    for i in range(14):
        quick_note(page, "channels", f"channel {i}")
    mover = quick_note(page, "key-partners", "move me")
    press_fit(page)
    crowded = note_boxes(page, "channels")
    target = crowded[-1]  # drop right onto a note in the crowded (grown) block
    src = box(note(page, mover).locator(".note-head"))
    page.mouse.move(src["x"] + 30, src["y"] + 6)
    page.mouse.down()
    tx, ty = target["x"] + target["width"] / 2, target["y"] + target["height"] / 2
    page.mouse.move(tx, ty, steps=10)
    page.mouse.up()
    expect(block(page, "channels").locator(f'[data-note-id="{mover}"]')).to_have_count(1)
    boxes = note_boxes(page, "channels")
    assert len(boxes) == 15
    for a, b in itertools.combinations(boxes, 2):
        assert not overlap(a, b)
    assert page.errors == []


def test_a_protected_note_says_whose_it_is_and_why(make_canvas, open_page):
    canvas = make_canvas("partner-co-creation", orgs=("Acme Corp", "Beta Labs"))
    alice = open_page(canvas, canvas.token("Alice Smith", "Acme Corp"))
    bob = open_page(canvas, canvas.token("Bob Jones", "Beta Labs"))
    wait_connected(alice)
    wait_connected(bob)
    nid = quick_note(alice, "customer-jobs", "Alice's job")
    theirs = note(bob, nid)
    expect(theirs).to_have_class(__import__("re").compile(r"\breadonly\b"))
    theirs.click()
    why = bob.locator(".why-pop")
    expect(why).to_be_visible()
    expect(why).to_contain_text("Alice Smith · Acme Corp")
    expect(why).to_contain_text("Protected by Acme Corp")
    expect(note(bob, nid).locator("textarea")).not_to_be_focused()
    # The keyboard path says the same.
    theirs.focus()
    bob.keyboard.press("Enter")
    expect(why).to_contain_text("Protected by Acme Corp")
    # Leaving is visible, not only announced.
    expect(alice.locator("#people")).to_have_attribute("data-settled", "true")
    bob.context.close()
    expect(alice.locator(".toast")).to_contain_text("Bob Jones (Beta Labs) left", timeout=8_000)
    assert alice.errors == []


def test_phone_has_no_horizontal_scroll_shows_one_block_and_a_people_drawer(make_canvas, open_page):
    canvas = make_canvas("business-model", title="A rather long workshop title for a phone screen")
    page = open_page(canvas, canvas.token("Alice Smith", "Acme Corp"), width=390, height=844)
    wait_connected(page)
    no_horizontal_scroll(page)
    top = box(page.locator(".topbar"))
    assert top["height"] < 60, "header stays on one line"
    assert inside(
        box(page.locator("#connection-status")), {"x": 0, "y": 0, "width": 390, "height": 844}
    )
    nav = page.locator(".block-nav")
    expect(nav).to_be_visible()
    board = box(page.locator("#board"))
    first = page.locator(".block-nav-select").input_value()
    shown = box(block(page, first))
    # The block fills the width and starts on screen (a tall block scrolls down).
    assert shown["width"] > board["width"] * 0.9
    assert shown["x"] >= board["x"] and shown["x"] + shown["width"] <= board["x"] + board["width"]
    assert board["y"] <= shown["y"] < board["y"] + 40
    nav.get_by_role("button", name="Next block").click()
    second = page.locator(".block-nav-select").input_value()
    assert second != first
    expect(block(page, second)).to_be_focused()
    assert box(block(page, second))["width"] > board["width"] * 0.9
    nid = quick_note(page, second, "from my phone")
    assert inside(box(note(page, nid)), board)
    no_horizontal_scroll(page)
    # People: a drawer, closed until asked for.
    people = page.locator("#people")
    expect(people).not_to_be_visible()
    page.locator("button.drawer-toggle").click()
    expect(people).to_be_visible()
    expect(people).to_contain_text("Alice Smith")
    no_horizontal_scroll(page)
    page.locator("button.drawer-toggle").click()
    expect(people).not_to_be_visible()
    assert page.errors == []


@pytest.mark.parametrize("template", ["business-model", "value-proposition", "partner-co-creation"])
def test_screenshots_of_each_template_at_four_sizes(
    template, make_canvas, open_page, screenshots_dir
):
    canvas = make_canvas(template, orgs=THREE, title=f"Workshop — {template}")
    blocks = {
        "business-model": ["key-partners", "value-propositions", "customer-segments", "channels"],
        "value-proposition": ["products-services", "gain-creators", "pains", "customer-jobs"],
        "partner-co-creation": ["customer-jobs", "pains", "gains", "{org}:products-services"],
    }[template]
    page = None
    for k, org in enumerate(THREE):
        p = open_page(canvas, canvas.token(PEOPLE[org], org), width=1440, height=900)
        wait_connected(p)
        slug = canvas.org_id(org)
        for i, bid in enumerate(blocks):
            quick_note(
                p,
                bid.format(org=slug),
                f"{org.split()[0]} idea {i + 1}"
                + (" with a longer text that wraps" if (i + k) % 3 == 0 else ""),
            )
        page = page or p
    assert page is not None
    expect(page.locator(".note")).to_have_count(3 * len(blocks))
    for name, (w, h) in SIZES.items():
        page.set_viewport_size({"width": w, "height": h})
        if w > 640:
            press_fit(page)
        if w < 1200:  # the people panel is a closed drawer there
            expect(page.locator("#people")).not_to_be_visible()
        page.mouse.move(w - 2, h - 2)
        expect(page.locator(".zoom-level")).to_be_visible()
        no_horizontal_scroll(page)
        page.screenshot(path=str(screenshots_dir / f"{template}-{name}.png"))


def test_two_finger_pinch_zooms_around_the_fingers(make_canvas, open_page):
    canvas = make_canvas("business-model")
    page = open_page(canvas, canvas.token("Alice Smith", "Acme Corp"), width=1024, height=768)
    wait_connected(page)
    nid = quick_note(page, "channels", "pinch me")
    b = box(note(page, nid))
    cx, cy = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 2})

    def touch(kind: str, spread: float) -> None:
        points = (
            []
            if kind == "touchEnd"
            else [
                {"x": cx - spread, "y": cy, "id": 0},
                {"x": cx + spread, "y": cy, "id": 1},
            ]
        )
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    # One finger starts on the note itself: a pinch wins over dragging it.
    assert b["width"] / 2 > 20
    placed = note(page, nid).evaluate("n => n.style.transform")
    touch("touchStart", 20)
    for spread in (25, 32, 40):
        touch("touchMove", spread)
    touch("touchEnd", 0)
    grown = box(note(page, nid))
    assert grown["width"] > b["width"] * 1.6, (b, grown)
    # The point between the fingers stayed put: the note is still centred there.
    assert (
        abs(grown["x"] + grown["width"] / 2 - cx) < 3
        and abs(grown["y"] + grown["height"] / 2 - cy) < 3
    )
    expect(block(page, "channels").locator(f'[data-note-id="{nid}"]')).to_have_count(1)
    assert note(page, nid).evaluate("n => n.style.transform") == placed, "the pinch moved the note"
    assert page.errors == []
