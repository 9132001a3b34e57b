"""What a person does and sees on the canvas page, as Playwright steps."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Locator, Page, expect


def wait_connected(page: Page) -> None:
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "connected")
    expect(page.locator("section.block").first).to_be_visible()


def block(page: Page, block_id: str) -> Locator:
    return page.locator(f'section.block[data-block-id="{block_id}"]')


def note(page: Page, note_id: str) -> Locator:
    return page.locator(f'.note[data-note-id="{note_id}"]')


def note_text(page: Page, note_id: str) -> Locator:
    return note(page, note_id).locator("textarea")


def add_note(page: Page, block_id: str, text: str) -> str:
    """Click the block's + button, type, leave the editor; returns the new note's id."""
    block(page, block_id).locator("button.add-note").click()
    editor = page.locator(".note.editing textarea")
    expect(editor).to_be_focused()
    note_id = editor.evaluate("el => el.closest('.note').dataset.noteId")
    page.keyboard.type(text)
    page.keyboard.press("Escape")
    expect(note(page, note_id)).to_be_focused()
    return str(note_id)


def focused(page: Page) -> dict[str, Any]:
    return page.evaluate(
        """() => { const el = document.activeElement; return {
              tag: el.tagName, cls: el.className, note: el.dataset?.noteId ?? null,
              block: el.dataset?.blockId ?? null, label: el.getAttribute('aria-label') } }"""
    )


def tab_to(page: Page, predicate: Any, limit: int = 80) -> dict[str, Any]:
    """Press Tab until the focused element matches; fails if it never does (keyboard trap or missing stop)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        f = focused(page)
        if predicate(f):
            return f
    raise AssertionError("tabbing never reached the wanted element")


def box(loc: Locator) -> dict[str, float]:
    b = loc.bounding_box()
    assert b is not None, "element has no box (not visible?)"
    return b


def status_text(page: Page) -> str:
    return page.locator("#connection-status").inner_text()


PENDING = re.compile(r"(\d+) local edits? pending")
