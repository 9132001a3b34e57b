"""Fit across partners in the browser: two partners link their pain relievers to the same pain
from two browser contexts (one by dragging the handle, one from the keyboard), both see both
lines, the contribution map shows the overlap and the remaining gap, and the value exchange
shows arrows from three organizations. Screenshots go to artifacts/screenshots/fit-*.png."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .conftest import Canvas
from .ui import add_note, box, note, wait_connected

pytestmark = pytest.mark.e2e


def lines(page: Page, to: str | None = None) -> object:
    sel = "svg.fit-overlay line.fit-line" + (f'[data-to="{to}"]' if to else "")
    return page.locator(sel)


def add_arrow(page: Page, to_label: str, kind: str, text: str) -> None:
    page.locator("#arrow-to").select_option(label=to_label)
    page.locator("#arrow-kind").select_option(kind)
    page.locator("#arrow-note").fill(text)
    page.get_by_role("button", name="Add arrow").click()


def open_fit(page: Page) -> None:
    page.get_by_role("button", name="Fit & value exchange").click()
    expect(page.locator("#fit-view")).to_be_visible()


def test_two_partners_link_to_one_pain_and_the_map_shows_overlap_gap_and_exchange(
    make_canvas, open_page, screenshots_dir: Path
) -> None:
    canvas: Canvas = make_canvas(
        "partner-co-creation", orgs=("Alpha Transit", "Beta Data", "Gamma Energy"), title="Commute"
    )
    alpha_id, beta_id, gamma_id = (
        canvas.org_id(n) for n in ("Alpha Transit", "Beta Data", "Gamma Energy")
    )
    fac = open_page(canvas, canvas.facilitator_token, width=1500, height=1100)
    ann = open_page(canvas, canvas.token("Ann", "Alpha Transit"), width=1500, height=1100)
    bob = open_page(canvas, canvas.token("Bob", "Beta Data"), width=1500, height=1100)
    gus = open_page(canvas, canvas.token("Gus", "Gamma Energy"), width=1500, height=1100)
    for p in (fac, ann, bob, gus):
        wait_connected(p)

    cold = add_note(fac, "pains", "Waiting in the cold")
    relaxed = add_note(fac, "gains", "Arrive relaxed")
    shelter = add_note(ann, f"{alpha_id}:pain-relievers", "Heated shelters")
    arrivals = add_note(bob, f"{beta_id}:pain-relievers", "Live arrival times")
    expect(note(ann, arrivals)).to_be_visible()
    expect(note(bob, shelter)).to_be_visible()

    # Ann drags from the handle on her reliever onto the pain.
    handle = ann.locator(f'.fit-handle[data-note-id="{shelter}"]')
    expect(handle).to_be_visible()
    expect(ann.locator(f'.fit-handle[data-note-id="{arrivals}"]')).to_have_count(0)  # Bob's note
    start, target = box(handle), box(note(ann, cold))
    ann.mouse.move(start["x"] + 8, start["y"] + 8)
    ann.mouse.down()
    ann.mouse.move(target["x"] + target["width"] / 2, target["y"] + target["height"] / 2, steps=10)
    ann.mouse.up()
    expect(lines(ann, cold)).to_have_count(1)

    # Bob links from the keyboard: L on his focused note, then the pain, then how much it matters.
    note(bob, arrivals).focus()
    bob.keyboard.press("l")
    dialog = bob.get_by_role("dialog")
    expect(dialog).to_contain_text("Link “Live arrival times” to…")
    dialog.get_by_role("button", name="Pains: Waiting in the cold").click()
    bob.get_by_role("dialog").get_by_role("button", name="Essential").click()

    # Both partners (and the facilitator) see both lines ending at the same pain.
    for p in (ann, bob, fac):
        expect(lines(p, cold)).to_have_count(2)
        expect(p.locator(f'line.fit-line[data-from="{arrivals}"]')).to_have_attribute(
            "data-strength", "essential"
        )
    # The outline lists the links too (for screen readers).
    ann.get_by_role("button", name="Outline view").click()
    expect(ann.locator("#outline .outline-links li[data-link-id]")).to_have_count(2)
    expect(ann.locator("#outline .outline-links")).to_contain_text(
        "Live arrival times relieves Waiting in the cold (essential)"
    )
    ann.screenshot(path=str(screenshots_dir / "fit-board-ann.png"))
    bob.screenshot(path=str(screenshots_dir / "fit-board-bob.png"))

    # Value exchange: each partner draws its own outgoing arrow.
    for page, to_label, kind, text in (
        (ann, "Beta Data", "money", "Alpha pays Beta per trip planned"),
        (bob, "the customer", "data", "live arrivals in the app"),
        (gus, "Alpha Transit", "support", "chargers at stations"),
    ):
        open_fit(page)
        add_arrow(page, to_label, kind, text)

    # The facilitator's contribution map: the overlap, the remaining gap, the coverage sentence.
    open_fit(fac)
    table = fac.locator("table.contribution-map")
    expect(table.locator(f'tr[data-row="{cold}"]')).to_have_attribute("data-status", "overlap")
    expect(table.locator(f'tr[data-row="{relaxed}"]')).to_have_attribute("data-status", "gap")
    expect(table.locator(f'tr[data-row="{cold}"] td[data-org="{alpha_id}"]')).to_have_text(
        "Heated shelters"
    )
    expect(table.locator(f'tr[data-row="{cold}"] td[data-org="{beta_id}"]')).to_have_text(
        "★ Live arrival times"
    )
    expect(table.locator(f'tr[data-row="{cold}"] td[data-org="{gamma_id}"]')).to_have_text("")
    expect(fac.locator(".fit-coverage li[data-kind=pains]")).to_have_text("1 of 1 pain relieved")
    expect(fac.locator(".fit-coverage li[data-kind=gains]")).to_have_text("0 of 1 gain created")
    expect(fac.locator(".fit-gaps")).to_contain_text("Arrive relaxed")
    # The facilitator marks the overlap; the partners' maps say so too.
    fac.get_by_label("Mark the overlap on “Waiting in the cold”").select_option("complement")
    expect(table.locator(f'tr[data-row="{cold}"] .tag-overlap')).to_have_text("overlap: complement")
    expect(ann.locator(f'tr[data-row="{cold}"] .tag-overlap')).to_have_text("overlap: complement")

    arrows = fac.locator("svg.exchange-net g.exchange-arrow")
    expect(arrows).to_have_count(3)
    assert sorted(arrows.evaluate_all("els => els.map(e => e.dataset.from)")) == sorted(
        [alpha_id, beta_id, gamma_id]
    )
    expect(
        fac.locator(".exchange-list li[data-arrow-id] >> text=Gamma Energy → Alpha Transit")
    ).to_have_count(1)
    # Bob may not remove Alpha's arrow: only his own has a Remove button.
    expect(
        bob.locator(".exchange-list li")
        .filter(has_text="Beta Data →")
        .get_by_role("button", name="Remove")
    ).to_have_count(1)
    expect(
        bob.locator(".exchange-list li").filter(has_text="Alpha Transit →").get_by_role("button")
    ).to_have_count(0)

    # Highlight the pain's row on the board.
    table.locator(f'tr[data-row="{cold}"]').get_by_role("button", name="Show on board").click()
    expect(fac.locator("svg.fit-overlay rect.fit-ring")).to_have_count(3)
    fac.screenshot(path=str(screenshots_dir / "fit-view-facilitator.png"), full_page=True)

    # Ann deletes her reliever: her line disappears for everyone.
    note(ann, shelter).hover()
    note(ann, shelter).locator("button.note-delete").click()
    ann.get_by_role("dialog").get_by_role("button", name="Delete note").click()
    for p in (ann, bob, fac):
        expect(lines(p, cold)).to_have_count(1)
    for p in (fac, ann, bob, gus):
        assert p.errors == [], p.errors


def test_business_model_key_partner_names_an_organization_that_provides_a_resource(
    make_canvas, open_page, screenshots_dir: Path
) -> None:
    canvas: Canvas = make_canvas("business-model", orgs=("Transit Co", "Energy Co"))
    energy = canvas.org_id("Energy Co")
    fac = open_page(canvas, canvas.facilitator_token)
    wait_connected(fac)
    partner = add_note(fac, "key-partners", "Electricity supplier")
    resource = add_note(fac, "key-resources", "Charging network")
    open_fit(fac)
    fac.get_by_label("Organization of the key partner “Electricity supplier”").select_option(
        label="Energy Co"
    )
    note(fac, partner).focus()
    fac.keyboard.press("l")
    fac.get_by_role("dialog").get_by_role("button", name="Key Resources: Charging network").click()
    fac.get_by_role("dialog").get_by_role("button", name="Essential").click()
    expect(fac.locator(f'line.fit-line[data-to="{resource}"]')).to_have_count(1)
    row = fac.locator(f'table.contribution-map tr[data-row="{resource}"]')
    expect(row.locator(f'td[data-org="{energy}"]')).to_have_text("★ Electricity supplier")
    expect(fac.locator(".fit-coverage li[data-kind=key-resources]")).to_have_text(
        "1 of 1 key resource provided, 1 essential one by only one partner"
    )
    fac.screenshot(path=str(screenshots_dir / "fit-business-model.png"), full_page=True)
    assert fac.errors == []
