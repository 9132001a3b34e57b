"""Two people on one canvas, each in their own browser context, through the real server."""

from __future__ import annotations

import re
from itertools import zip_longest

import pytest
from playwright.sync_api import expect

from tests.support import ServerProcess

from .conftest import SECRET, Canvas
from .ui import PENDING, add_note, block, box, note, note_text, status_text, wait_connected

pytestmark = pytest.mark.e2e


def test_note_added_edited_moved_and_deleted_in_one_browser_appears_in_the_other(
    make_canvas, open_page
):
    canvas = make_canvas("business-model")
    alice = open_page(canvas, canvas.token("Alice Smith", "Acme Corp"))
    bob = open_page(canvas, canvas.token("Bob Jones", "Beta Labs"))
    wait_connected(alice)
    wait_connected(bob)

    nid = add_note(alice, "key-partners", "Local suppliers")
    seen = note(bob, nid)
    expect(block(bob, "key-partners").locator(f'[data-note-id="{nid}"]')).to_be_visible()
    expect(note_text(bob, nid)).to_have_value("Local suppliers")
    # Organization shown as text on the note, not by colour alone; the accessible name says it all.
    expect(seen.locator(".note-badge")).to_have_text("AC")
    expect(seen).to_have_attribute(
        "aria-label", "Note in Key Partners: Local suppliers. by Alice Smith, Acme Corp"
    )

    # Edit: Alice clicks into the note and appends text.
    note(alice, nid).click()
    expect(note_text(alice, nid)).to_be_focused()
    alice.keyboard.press("End")
    alice.keyboard.type(" and logistics")
    alice.keyboard.press("Escape")
    expect(note_text(bob, nid)).to_have_value("Local suppliers and logistics")

    # Move: drag the note with the mouse into Value Propositions.
    src = box(note(alice, nid).locator(".note-head"))
    dst = box(block(alice, "value-propositions").locator(".notes-area"))
    alice.mouse.move(src["x"] + 20, src["y"] + 5)
    alice.mouse.down()
    alice.mouse.move(dst["x"] + 60, dst["y"] + 80, steps=8)
    alice.mouse.up()
    expect(block(alice, "value-propositions").locator(f'[data-note-id="{nid}"]')).to_be_visible()
    expect(block(bob, "value-propositions").locator(f'[data-note-id="{nid}"]')).to_be_visible()
    expect(block(bob, "key-partners").locator(".note")).to_have_count(0)

    # Delete, with confirmation.
    note(alice, nid).hover()
    note(alice, nid).locator("button.note-delete").click()
    dialog = alice.get_by_role("dialog")
    expect(dialog).to_contain_text("Local suppliers and logistics")
    dialog.get_by_role("button", name="Delete note").click()
    expect(note(alice, nid)).to_have_count(0)
    expect(note(bob, nid)).to_have_count(0)
    assert alice.errors == [] and bob.errors == []


def test_two_people_typing_in_the_same_note_merge(make_canvas, open_page):
    canvas = make_canvas("value-proposition")
    alice = open_page(canvas, canvas.token("Alice Smith", "Acme Corp"))
    bob = open_page(canvas, canvas.token("Bob Jones", "Beta Labs"))
    wait_connected(alice)
    wait_connected(bob)
    nid = add_note(alice, "pains", "hello world")
    expect(note_text(bob, nid)).to_have_value("hello world")

    note(alice, nid).click()
    alice.keyboard.press("End")
    note(bob, nid).click()
    bob.keyboard.press("Home")
    # Each sees that the other is in the note.
    expect(note(alice, nid)).to_have_class(re.compile(r"\bremote-editing\b"))
    expect(note(bob, nid).locator(".note-editors")).to_contain_text("Alice Smith")

    # Interleave keystrokes so the edits cross on the wire.
    for a, b in zip_longest(" from Alice!", "Bob says: ", fillvalue=""):
        alice.keyboard.type(a)
        bob.keyboard.type(b)
    merged = "Bob says: hello world from Alice!"
    expect(note_text(alice, nid)).to_have_value(merged)
    expect(note_text(bob, nid)).to_have_value(merged)


def test_reload_shows_the_persisted_canvas(make_canvas, open_page):
    canvas = make_canvas("business-model")
    token = canvas.token("Alice Smith", "Acme Corp")
    alice = open_page(canvas, token)
    wait_connected(alice)
    a = add_note(alice, "customer-segments", "Small farms")
    b = add_note(alice, "revenue-streams", "Subscription")
    alice.reload()
    wait_connected(alice)
    expect(note_text(alice, a)).to_have_value("Small farms")
    expect(block(alice, "revenue-streams").locator(f'[data-note-id="{b}"]')).to_be_visible()
    # And a brand-new browser (no local state at all) gets the same canvas from the server.
    fresh = open_page(canvas, canvas.token("Bob Jones", "Beta Labs"))
    wait_connected(fresh)
    expect(note_text(fresh, b)).to_have_value("Subscription")


def test_offline_edits_are_counted_and_merge_when_the_connection_returns(make_canvas, open_page):
    canvas = make_canvas("business-model")
    alice = open_page(canvas, canvas.token("Alice Smith", "Acme Corp"))
    bob = open_page(canvas, canvas.token("Bob Jones", "Beta Labs"))
    wait_connected(alice)
    wait_connected(bob)
    shared = add_note(bob, "channels", "web shop")
    expect(note_text(alice, shared)).to_have_value("web shop")

    alice.context.set_offline(True)
    expect(alice.locator("#connection-status")).to_have_attribute("data-state", "offline")
    offline_note = add_note(alice, "key-resources", "Cold storage")
    note(alice, shared).click()
    alice.keyboard.press("End")
    alice.keyboard.type(" + app")
    alice.keyboard.press("Escape")
    m = PENDING.search(status_text(alice))
    assert m and int(m.group(1)) >= 2, status_text(alice)

    # Meanwhile Bob keeps working; nothing from Alice reaches him while she is offline.
    note(bob, shared).click()
    bob.keyboard.press("Home")
    bob.keyboard.type("our ")
    bob.keyboard.press("Escape")
    bob.wait_for_timeout(500)
    expect(note(bob, offline_note)).to_have_count(0)
    expect(note_text(bob, shared)).to_have_value("our web shop")

    alice.context.set_offline(False)
    expect(alice.locator("#connection-status")).to_have_attribute("data-state", "connected")
    expect(alice.locator("#connection-status")).to_have_attribute("data-pending", "0")
    for page in (alice, bob):
        expect(note_text(page, shared)).to_have_value("our web shop + app")
        expect(note_text(page, offline_note)).to_have_value("Cold storage")


def test_undo_and_redo_touch_only_my_own_changes(make_canvas, open_page):
    canvas = make_canvas("business-model")
    alice = open_page(canvas, canvas.token("Alice Smith", "Acme Corp"))
    bob = open_page(canvas, canvas.token("Bob Jones", "Beta Labs"))
    wait_connected(alice)
    wait_connected(bob)
    bobs = add_note(bob, "key-activities", "Bob's note")
    expect(note(alice, bobs)).to_be_visible()
    mine = add_note(alice, "key-partners", "Mine")

    alice.keyboard.press("Control+z")  # the typing
    expect(note_text(alice, mine)).to_have_value("")
    alice.keyboard.press("Control+z")  # the note itself
    expect(note(alice, mine)).to_have_count(0)
    expect(note(bob, mine)).to_have_count(0)
    expect(note(alice, bobs)).to_be_visible()  # someone else's work is not mine to undo
    alice.get_by_role("button", name="Redo").click()
    expect(note(bob, mine)).to_be_visible()
    alice.keyboard.press("Control+Shift+z")
    expect(note_text(bob, mine)).to_have_value("Mine")


def test_server_restart_reconnects_and_keeps_edits_made_while_it_was_down(
    tmp_path, client_dist, open_page
):
    env = {"COCANVAS_CLIENT_DIR": str(client_dist), "COCANVAS_SECRET": SECRET}
    first = ServerProcess(tmp_path / "data", env=env).start()
    try:
        canvas = Canvas(
            first, first.create_canvas("Restart", "business-model", orgs=[{"name": "Acme"}])
        )
        page = open_page(canvas, canvas.facilitator_token, base=first.http)
        wait_connected(page)
        before = add_note(page, "key-partners", "before the restart")
        first.stop()  # graceful: sockets are closed with 1012 "service restart"
        status = page.locator("#connection-status")
        expect(status).to_have_attribute("data-state", "reconnecting")
        during = add_note(page, "channels", "while the server was down")
        expect(status).to_contain_text("pending")
        second = ServerProcess(tmp_path / "data", env=env, port=first.port).start()
    except BaseException:
        first.kill()
        raise
    try:
        expect(status).to_have_attribute("data-state", "connected", timeout=15_000)
        expect(status).to_have_attribute("data-pending", "0")
        fresh = open_page(canvas, canvas.facilitator_token, base=second.http)
        wait_connected(fresh)
        expect(note_text(fresh, before)).to_have_value("before the restart")
        expect(note_text(fresh, during)).to_have_value("while the server was down")
    finally:
        second.stop()
