"""Everything from the keyboard, and what assistive technology is told."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .ui import block, focused, note, note_text, tab_to, wait_connected

pytestmark = pytest.mark.e2e


def test_create_edit_move_and_delete_a_note_without_the_mouse(make_canvas, open_page):
    canvas = make_canvas("business-model")
    alice = open_page(canvas, canvas.token("Alice Smith", "Acme Corp"))
    bob = open_page(canvas, canvas.token("Bob Jones", "Beta Labs"))
    wait_connected(alice)
    wait_connected(bob)
    kb = alice.keyboard

    # Tab reaches the first block, which has an accessible name.
    f = tab_to(alice, lambda f: f["block"] == "key-partners")
    assert f["label"] == "Key Partners block, 0 notes"

    # N adds a note to the focused block and opens it for typing.
    kb.press("n")
    editor = alice.locator(".note.editing textarea")
    expect(editor).to_be_focused()
    nid = editor.evaluate("el => el.closest('.note').dataset.noteId")
    kb.type("Keyboard idea")
    kb.press("Escape")
    assert focused(alice)["note"] == nid
    expect(note_text(bob, nid)).to_have_value("Keyboard idea")

    # Enter edits again; Escape leaves.
    kb.press("Enter")
    expect(note_text(alice, nid)).to_be_focused()
    kb.press("End")
    kb.type("!")
    kb.press("Escape")
    expect(note_text(bob, nid)).to_have_value("Keyboard idea!")

    # Alt+Arrow moves the note to the next block in reading order, keeping focus on it.
    kb.press("Alt+ArrowRight")
    expect(block(bob, "key-activities").locator(f'[data-note-id="{nid}"]')).to_be_visible()
    assert focused(alice)["note"] == nid

    # M opens a "move to" menu; arrow keys and Enter pick a block.
    kb.press("m")
    menu = alice.get_by_role("dialog", name="Move note to…")
    expect(menu).to_be_visible()
    expect(menu.get_by_role("button", name="Key Activities (current)")).to_be_disabled()
    for _ in range(12):
        if alice.evaluate("document.activeElement.textContent") == "Customer Segments":
            break
        kb.press("ArrowDown")
    kb.press("Enter")
    expect(block(bob, "customer-segments").locator(f'[data-note-id="{nid}"]')).to_be_visible()
    expect(note(alice, nid)).to_be_focused()
    expect(note(alice, nid)).to_have_attribute(
        "aria-label", "Note in Customer Segments: Keyboard idea!. by Alice Smith, Acme Corp"
    )

    # Delete asks first; Escape cancels, then Tab to the confirm button and Enter deletes.
    kb.press("Delete")
    expect(alice.get_by_role("dialog")).to_be_visible()
    kb.press("Escape")
    expect(note(alice, nid)).to_be_focused()
    expect(note(bob, nid)).to_have_count(1)
    kb.press("Delete")
    expect(alice.get_by_role("button", name="Cancel")).to_be_focused()
    kb.press("Tab")
    expect(alice.get_by_role("button", name="Delete note")).to_be_focused()
    kb.press("Enter")
    expect(note(bob, nid)).to_have_count(0)
    assert focused(alice)["block"] == "customer-segments"


def test_outline_view_lists_blocks_and_notes_with_author_and_organization(make_canvas, open_page):
    canvas = make_canvas("value-proposition")
    alice = open_page(canvas, canvas.token("Alice Smith", "Acme Corp"))
    bob = open_page(canvas, canvas.token("Bob Jones", "Beta Labs"))
    wait_connected(alice)
    wait_connected(bob)
    bob.locator('section.block[data-block-id="gains"] button.add-note').click()
    bob.keyboard.type("Saves time")
    bob.keyboard.press("Escape")

    toggle = alice.get_by_role("button", name="Outline view")
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true")
    outline = alice.locator("#outline")
    expect(outline.get_by_role("heading", name="Outline")).to_be_focused()
    gains = outline.locator('li[data-block-id="gains"]')
    expect(gains.get_by_role("heading")).to_have_text("Gains (1 note)")
    expect(gains).to_contain_text("Saves time — Bob Jones, Beta Labs")
    # It follows live changes.
    bob.keyboard.press("Enter")
    bob.keyboard.press("End")
    bob.keyboard.type(" daily")
    bob.keyboard.press("Escape")
    expect(gains).to_contain_text("Saves time daily — Bob Jones, Beta Labs")


def test_presence_list_cursors_and_polite_join_announcements(make_canvas, open_page):
    canvas = make_canvas("business-model")
    alice = open_page(canvas, canvas.token("Alice Smith", "Acme Corp"))
    wait_connected(alice)
    live = alice.locator("#presence-live")
    expect(live).to_have_attribute("aria-live", "polite")
    alice.wait_for_timeout(1700)  # past the settle period after Alice's own sync

    bob = open_page(canvas, canvas.token("Bob Jones", "Beta Labs"))
    wait_connected(bob)
    expect(alice.locator("#people")).to_contain_text("Bob Jones (Beta Labs)")
    expect(bob.locator("#people")).to_contain_text("Alice Smith (Acme Corp)")
    expect(live).to_have_text("Bob Jones (Beta Labs) joined")

    # Bob's pointer shows on Alice's board with his name.
    b = bob.locator('section.block[data-block-id="channels"]').bounding_box()
    assert b is not None
    bob.mouse.move(b["x"] + 40, b["y"] + 60)
    bob.mouse.move(b["x"] + 50, b["y"] + 70)
    expect(alice.locator(".remote-cursor")).to_contain_text("Bob Jones (Beta Labs)")

    # Leaving is announced too, after a short grace period (a reload is not a departure).
    bob.context.close()
    expect(alice.locator("#people")).not_to_contain_text("Bob Jones")
    expect(live).to_have_text("Bob Jones (Beta Labs) left", timeout=8_000)

    # Muting stops presence announcements.
    alice.get_by_label("Announce who joins and leaves").uncheck()
    carol = open_page(canvas, canvas.token("Carol King", "Acme Corp"))
    wait_connected(carol)
    expect(alice.locator("#people")).to_contain_text("Carol King (Acme Corp)")
    alice.wait_for_timeout(800)
    expect(live).not_to_contain_text("Carol")
