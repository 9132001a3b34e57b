"""Each template looks like the canvas people know; screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .ui import block, box, wait_connected

pytestmark = pytest.mark.e2e

NOTES = {
    "business-model": {
        "Acme Corp": [
            "key-partners",
            "key-activities",
            "value-propositions",
            "channels",
            "cost-structure",
        ],
        "Beta Labs": [
            "key-resources",
            "customer-relationships",
            "customer-segments",
            "revenue-streams",
            "value-propositions",
        ],
    },
    "value-proposition": {
        "Acme Corp": ["products-services", "pain-relievers", "customer-jobs"],
        "Beta Labs": ["gain-creators", "pains", "gains"],
    },
    "partner-co-creation": {
        "Acme Corp": [
            "acme-corp:products-services",
            "acme-corp:gain-creators",
            "customer-jobs",
            "pains",
        ],
        "Beta Labs": [
            "beta-labs:products-services",
            "beta-labs:pain-relievers",
            "gains",
            "customer-jobs",
        ],
    },
}
IDEAS = [
    "Shared logistics hub",
    "Onboarding in one day",
    "Open data API",
    "Co-branded pilot",
    "Fewer handovers",
]


def left_of(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["x"] + a["width"] <= b["x"] + 2


def above(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["y"] + a["height"] <= b["y"] + 2


@pytest.mark.parametrize("template", list(NOTES))
def test_template_layout_and_screenshot(template, make_canvas, open_page, screenshots_dir):
    canvas = make_canvas(template, title=f"Demo — {template}")
    people = {
        "Acme Corp": open_page(canvas, canvas.token("Alice Smith", "Acme Corp")),
        "Beta Labs": open_page(canvas, canvas.token("Bob Jones", "Beta Labs")),
    }
    for page in people.values():
        wait_connected(page)
    for org, page in people.items():
        for i, block_id in enumerate(NOTES[template][org]):
            block(page, block_id).locator("button.add-note").click()
            page.keyboard.type(IDEAS[(i + len(org)) % len(IDEAS)])
            page.keyboard.press("Escape")
    alice = people["Acme Corp"]
    total = sum(len(v) for v in NOTES[template].values())
    expect(alice.locator(".note")).to_have_count(total)
    # Notes of both organizations carry their initials, not just their colour.
    expect(alice.locator('.note[data-org="acme-corp"] .note-badge').first).to_have_text("AC")
    expect(alice.locator('.note[data-org="beta-labs"] .note-badge').first).to_have_text("BL")

    b = {
        bid: box(block(alice, bid))
        for bid in alice.eval_on_selector_all(
            "section.block", "els => els.map(e => e.dataset.blockId)"
        )
    }
    if template == "business-model":
        assert left_of(b["key-partners"], b["key-activities"]) and left_of(
            b["key-activities"], b["value-propositions"]
        )
        assert left_of(b["value-propositions"], b["customer-relationships"]) and left_of(
            b["customer-relationships"], b["customer-segments"]
        )
        assert above(b["key-activities"], b["key-resources"]) and above(
            b["customer-relationships"], b["channels"]
        )
        # Key Partners, Value Propositions and Customer Segments are full height.
        stacked = b["key-activities"]["height"] + b["key-resources"]["height"]
        for tall in ("key-partners", "value-propositions", "customer-segments"):
            assert abs(b[tall]["height"] - stacked) < 4, tall
        assert above(b["key-partners"], b["cost-structure"]) and left_of(
            b["cost-structure"], b["revenue-streams"]
        )
        assert abs(b["cost-structure"]["width"] - b["revenue-streams"]["width"]) < 4
    else:
        profile = box(alice.locator(".shape-circle"))
        radius = alice.locator(".shape-circle").evaluate(
            "el => getComputedStyle(el).borderTopLeftRadius"
        )
        assert radius == "50%", radius
        squares = alice.locator(".panel-value-map .shape-square")
        expected_maps = 1 if template == "value-proposition" else 2
        expect(squares).to_have_count(expected_maps)
        boxes = [box(squares.nth(i)) for i in range(expected_maps)]
        for sq in boxes:
            assert abs(sq["width"] - sq["height"]) < 3, "value map must be a square"
            # The shared customer profile is at least as large as any partner's value map.
            assert profile["width"] >= sq["width"] and profile["height"] >= sq["height"]
        if expected_maps == 1:
            assert left_of(boxes[0], profile), "the value map stands left of the customer profile"
        else:
            # Partners' maps stand either side of the profile, which stays central.
            assert left_of(boxes[0], profile) and left_of(profile, boxes[1])
            assert abs(boxes[0]["y"] - boxes[1]["y"]) < 3, "partner maps level with each other"
            expect(alice.locator(".panel-value-map .panel-title")).to_have_text(
                ["AC Value Map — Acme Corp", "BL Value Map — Beta Labs"]
            )
        pre = "acme-corp:" if template == "partner-co-creation" else ""
        assert left_of(b[f"{pre}products-services"], b[f"{pre}gain-creators"])
        assert above(b[f"{pre}gain-creators"], b[f"{pre}pain-relievers"])
        assert left_of(b["gains"], b["customer-jobs"]) and above(b["gains"], b["pains"])
    alice.mouse.move(5, 5)
    alice.wait_for_timeout(300)
    alice.screenshot(path=str(screenshots_dir / f"{template}.png"), full_page=True)
