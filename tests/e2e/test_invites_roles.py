"""Facilitator flows and what the server's rules look like from the browser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .ui import add_note, block, note, note_text, tab_to, wait_connected

pytestmark = pytest.mark.e2e


def test_facilitator_creates_a_canvas_invites_a_partner_and_revokes_the_link(web, open_page):
    fay = open_page(None, None, "/")
    fay.get_by_label("Title").fill("Mobility pilot")
    fay.get_by_label("Template").select_option("partner-co-creation")
    fay.get_by_label("Organizations").fill("City Transit\nBike Share Co")
    fay.get_by_label("Your name (facilitator)").fill("Fay")
    fay.get_by_role("button", name="Create canvas").click()
    expect(fay).to_have_url(re.compile(r"/c/[^/]+$"))
    canvas_id = fay.url.rsplit("/", 1)[1]
    wait_connected(fay)
    expect(fay.locator(".panel-value-map .panel-title")).to_have_text(
        ["CT Value Map — City Transit", "BS Value Map — Bike Share Co"]
    )

    # Invite someone from Bike Share Co as an editor.
    fay.get_by_label("Organization", exact=True).select_option(label="Bike Share Co")
    fay.get_by_label("Role").select_option("editor")
    fay.get_by_role("button", name="Create invite link").click()
    link = fay.get_by_role("textbox", name="Invite link for Bike Share Co, editor")
    expect(link).to_have_value(re.compile(r"^http://127\.0\.0\.1:\d+/i/[^/]+$"))
    url = link.input_value()

    bob = open_page(None, None, url.replace(web.http, ""))
    bob.get_by_label("Your name").fill("Bob")
    bob.get_by_role("button", name="Join canvas").click()
    expect(bob).to_have_url(web.http + f"/c/{canvas_id}")
    wait_connected(bob)
    expect(bob.locator(".me")).to_have_text("Bob · Bike Share Co · editor")
    expect(fay.locator("#people")).to_contain_text("Bob (Bike Share Co)")
    nid = add_note(bob, "bike-share-co:products-services", "Docking stations at stops")
    expect(note(fay, nid).locator(".note-badge")).to_have_text("BS")

    # The canvas list shows it, marked as accessible from this browser.
    listing = open_page(None, None, "/")
    item = listing.locator(f'li[data-canvas-id="{canvas_id}"]')
    expect(item).to_contain_text("Mobility pilot")
    expect(item).to_contain_text("invite needed")

    # Revoking the link cuts Bob off and the link stops working.
    fay.get_by_role("button", name="Revoke invite link for Bike Share Co, editor").click()
    expect(bob.locator("#connection-status")).to_have_attribute("data-state", "closed")
    expect(bob.locator("#connection-status")).to_contain_text("revoked")
    late = open_page(None, None, url.replace(web.http, ""))
    late.get_by_label("Your name").fill("Eve")
    late.get_by_role("button", name="Join canvas").click()
    expect(late.get_by_role("alert").filter(has_text="revoked")).to_be_visible()


def test_canvas_page_without_a_token_asks_for_an_invite_link(make_canvas, open_page):
    canvas = make_canvas("business-model")
    page = open_page(canvas, None)
    expect(page.get_by_role("heading", name="You need an invite link")).to_be_visible()
    expect(page.locator("section.block")).to_have_count(0)


def test_locked_blocks_viewers_and_protected_notes_are_read_only_in_the_ui(make_canvas, open_page):
    canvas = make_canvas("partner-co-creation")
    fay = open_page(canvas, canvas.facilitator_token)
    alice = open_page(canvas, canvas.token("Alice Smith", "Acme Corp"))
    bob = open_page(canvas, canvas.token("Bob Jones", "Beta Labs"))
    viewer = open_page(canvas, canvas.token("Vic Viewer", "Beta Labs", role="viewer"))
    for p in (fay, alice, bob, viewer):
        wait_connected(p)

    # Facilitator locks Pains: editors see the lock and lose the add button.
    fay.get_by_role("button", name="Lock Pains").click()
    expect(fay.get_by_role("button", name="Unlock Pains")).to_have_attribute("aria-pressed", "true")
    expect(block(alice, "pains").locator(".lock-badge")).to_be_visible()
    expect(block(alice, "pains").locator("button.add-note")).to_be_hidden()
    expect(block(alice, "pains")).to_have_attribute("aria-label", "Pains block, 0 notes, locked")
    block(alice, "pains").focus()
    alice.keyboard.press("n")
    expect(alice.locator(".toast-error")).to_contain_text("Pains is locked")
    expect(block(alice, "pains").locator(".note")).to_have_count(0)

    # With protect_notes (default on partner canvases) Bob cannot edit Alice's note.
    nid = add_note(alice, "gains", "Fewer transfers")
    expect(note(bob, nid)).to_have_class(re.compile(r"\breadonly\b"))
    note(bob, nid).focus()
    bob.keyboard.press("Enter")
    # Told why, next to the note: whose it is and what protects it.
    expect(bob.locator(".why-pop")).to_contain_text("Alice Smith · Acme Corp")
    expect(bob.locator(".why-pop")).to_contain_text("Protected by Acme Corp")
    expect(note_text(bob, nid)).not_to_be_editable()

    # ...but, as on the server, Bob may still ADD notes anywhere, also in Acme's value map;
    # Alice then cannot edit Bob's note there.
    acme_block = "acme-corp:gain-creators"
    expect(block(bob, acme_block).locator("button.add-note")).to_be_visible()
    theirs = add_note(bob, acme_block, "Shared ticketing")
    expect(note_text(alice, theirs)).to_have_value("Shared ticketing")
    expect(note(alice, theirs)).to_have_class(re.compile(r"\breadonly\b"))
    block(bob, acme_block).focus()
    bob.keyboard.press("n")
    expect(bob.locator(".note.editing textarea")).to_be_focused()
    bob.keyboard.press("Escape")

    # A viewer sees everything and can change nothing.
    expect(viewer.locator(".topbar .tag")).to_have_text("view only")
    expect(viewer.locator("button.add-note:visible")).to_have_count(0)
    expect(note_text(viewer, nid)).to_have_value("Fewer transfers")

    # Unlocking brings the add button back.
    fay.get_by_role("button", name="Unlock Pains").click()
    expect(block(alice, "pains").locator("button.add-note")).to_be_visible()


def test_an_edit_the_server_refuses_is_rolled_back_and_explained(make_canvas, open_page):
    """Bob adds a note offline into a block the facilitator locks meanwhile: on reconnect the
    server refuses it, the note disappears and Bob is told why."""
    canvas = make_canvas("business-model")
    fay = open_page(canvas, canvas.facilitator_token)
    bob = open_page(canvas, canvas.token("Bob Jones", "Beta Labs"))
    wait_connected(fay)
    wait_connected(bob)
    bob.context.set_offline(True)
    expect(bob.locator("#connection-status")).to_have_attribute("data-state", "offline")
    fay.get_by_role("button", name="Lock Channels").click()
    nid = add_note(bob, "channels", "Pop-up store")
    bob.context.set_offline(False)
    expect(bob.locator(".toast-error")).to_contain_text("not accepted")
    expect(note(bob, nid)).to_have_count(0)
    expect(note(fay, nid)).to_have_count(0)
    expect(block(bob, "channels").locator(".lock-badge")).to_be_visible()


def test_tab_order_reaches_every_block_of_the_partner_canvas(make_canvas, open_page):
    canvas = make_canvas("partner-co-creation")
    alice = open_page(canvas, canvas.token("Alice Smith", "Acme Corp"))
    wait_connected(alice)
    seen: list[str] = []

    def collect(f):
        if f["block"]:
            seen.append(f["block"])
        return f["block"] == "pains"

    tab_to(alice, collect)
    assert seen == [
        "acme-corp:products-services",
        "acme-corp:gain-creators",
        "acme-corp:pain-relievers",
        "beta-labs:products-services",
        "beta-labs:gain-creators",
        "beta-labs:pain-relievers",
        "customer-jobs",
        "gains",
        "pains",
    ]


def test_a_token_the_server_rejects_is_explained_instead_of_retried(make_canvas, open_page):
    canvas = make_canvas("business-model")
    header, payload, signature = canvas.facilitator_token.split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"  # readable claims, wrong signature
    page = open_page(canvas, forged)
    status = page.locator("#connection-status")
    expect(status).to_have_attribute("data-state", "closed")
    expect(status).to_contain_text("not valid")
    expect(page.locator(".toast-error")).to_have_count(1)
    expect(page.locator(".toast-error")).to_contain_text("invite link")
