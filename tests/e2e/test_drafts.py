"""Private drafts in the browser: two organizations draft at the same time, each sees only its
own; the facilitator sees counts, reveals all, and everyone sees everything."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .ui import add_note, note, wait_connected

pytestmark = pytest.mark.e2e


def test_two_organizations_draft_privately_then_the_facilitator_reveals_all(
    make_canvas, open_page, screenshots_dir
):
    canvas = make_canvas("partner-co-creation", title="Pricing workshop")
    alice_token = canvas.token("Alice Smith", "Acme Corp")
    bob_token = canvas.token("Bob Jones", "Beta Labs")
    fay = open_page(canvas, canvas.facilitator_token)
    alice = open_page(canvas, alice_token, f"/c/{canvas.id}/drafts")
    bob = open_page(canvas, bob_token, f"/c/{canvas.id}/drafts")
    for p in (fay, alice, bob):
        wait_connected(p)
    expect(alice.locator("#draft-banner")).to_contain_text("Private to Acme Corp")
    expect(bob.locator("#draft-banner")).to_contain_text("Private to Beta Labs")
    expect(fay.locator("#draft-banner")).to_have_count(0)

    a1 = add_note(alice, "customer-jobs", "Acme would go as low as 4 EUR")
    b1 = add_note(bob, "pains", "Beta cannot ship before May")
    # Each sees only its own; the facilitator sees numbers only.
    expect(note(alice, a1)).to_be_visible()
    expect(note(bob, b1)).to_be_visible()
    counts = fay.locator("#draft-counts")
    expect(counts.locator('li[data-org="acme-corp"] .draft-count')).to_have_text("1 draft")
    expect(counts.locator('li[data-org="beta-labs"] .draft-count')).to_have_text("1 draft")
    for page, other in ((alice, "Beta cannot ship"), (bob, "as low as 4 EUR")):
        expect(page.locator("main")).not_to_contain_text(other)
    expect(fay.locator("main")).not_to_contain_text("as low as 4 EUR")
    expect(fay.locator("main")).not_to_contain_text("Beta cannot ship")
    alice.screenshot(path=str(screenshots_dir / "drafts-private-acme.png"))
    fay.screenshot(path=str(screenshots_dir / "drafts-facilitator-counts.png"))

    # Alice's colleague, another browser, drafts with her live.
    carol = open_page(canvas, canvas.token("Carol Chen", "Acme Corp"), f"/c/{canvas.id}/drafts")
    wait_connected(carol)
    expect(note(carol, a1)).to_be_visible()

    fay.get_by_role("button", name="Reveal all drafts").click()
    expect(fay.locator("#toasts")).to_contain_text("2 drafts of Acme Corp, Beta Labs revealed")
    expect(note(fay, a1)).to_be_visible()
    expect(note(fay, b1)).to_be_visible()
    expect(note(alice, a1)).to_have_count(0)  # gone from the draft space
    expect(bob.locator("#toasts")).to_contain_text("2 drafts of Acme Corp, Beta Labs revealed")
    expect(carol.locator("#toasts")).to_contain_text("revealed by Fay Cilitator")
    expect(counts.locator('li[data-org="acme-corp"] .draft-count')).to_have_text("0 drafts")
    for name, token in (("alice", alice_token), ("bob", bob_token)):
        shared = open_page(canvas, token)
        wait_connected(shared)
        expect(note(shared, a1).locator(".note-badge")).to_have_text("AC")
        expect(note(shared, b1).locator(".note-badge")).to_have_text("BL")
        expect(shared.locator(f'.note[data-note-id="{a1}"]')).to_have_count(1)
        shared.screenshot(path=str(screenshots_dir / f"drafts-revealed-{name}.png"))
    for p in (fay, alice, bob, carol):
        assert p.errors == []
