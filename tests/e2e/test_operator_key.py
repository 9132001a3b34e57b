"""The canvas list page on a server with COCANVAS_ADMIN_TOKEN (the multi-node deployment)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support import ServerProcess

from .conftest import SECRET
from .ui import wait_connected

pytestmark = pytest.mark.e2e

OPERATOR_KEY = "operator-key-" + "k" * 24


@pytest.fixture(scope="module")
def admin_web(
    tmp_path_factory: pytest.TempPathFactory, client_dist: Path
) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("e2e-admin") / "data"
    proc = ServerProcess(
        data,
        env={
            "COCANVAS_CLIENT_DIR": str(client_dist),
            "COCANVAS_SECRET": SECRET,
            "COCANVAS_ADMIN_TOKEN": OPERATOR_KEY,
        },
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def test_without_an_admin_token_the_list_page_shows_no_operator_key_form(open_page):
    page = open_page(None, None, "/")
    expect(page.get_by_role("heading", name="Canvases")).to_be_visible()
    # Wait for the list request to finish before checking that no form appeared.
    expect(page.locator('#main [aria-live="polite"][aria-busy="false"]')).to_have_count(1)
    expect(page.get_by_label("Operator key")).to_be_hidden()
    expect(page.get_by_role("button", name="Forget key")).to_be_hidden()


def test_operator_key_form_unlocks_listing_and_creating_canvases(admin_web, open_page):
    page = open_page(None, None, "/", base=admin_web.http)

    # The server answers 401: the page asks for the key instead of failing.
    key = page.get_by_label("Operator key")
    expect(key).to_be_visible()
    expect(key).to_have_attribute("type", "password")
    expect(page.get_by_text("Enter the operator key to see and create canvases.")).to_be_visible()
    expect(page.get_by_role("button", name="Forget key")).to_be_hidden()

    # A wrong key is refused with a clear message (keyboard only: type, Enter).
    key.focus()
    page.keyboard.type("not-the-key")
    page.keyboard.press("Enter")
    expect(page.locator("#operator-key-error")).to_have_text(re.compile("not accepted"))
    expect(key).to_have_attribute("aria-invalid", "true")
    expect(key).to_be_focused()

    # The right key lists the (empty) canvases and is kept in localStorage.
    key.fill(OPERATOR_KEY)
    page.get_by_role("button", name="Use key").click()
    expect(page.get_by_text("No canvases yet")).to_be_visible()
    expect(page.locator("#operator-key-error")).to_have_text("")
    expect(page.get_by_role("button", name="Forget key")).to_be_visible()
    assert page.evaluate("localStorage.getItem('cocanvas.operatorKey')") == OPERATOR_KEY

    # Create a canvas from the UI; it opens and then shows up in the list.
    page.get_by_label("Title").fill("Regional pilot")
    page.get_by_label("Your name (facilitator)").fill("Olga Operator")
    page.get_by_role("button", name="Create canvas").click()
    expect(page).to_have_url(re.compile(r"/c/[^/]+$"))
    canvas_id = page.url.rsplit("/", 1)[1]
    wait_connected(page)

    page.goto(admin_web.http + "/")
    item = page.locator(f'li[data-canvas-id="{canvas_id}"]')
    expect(item.get_by_role("link", name="Regional pilot")).to_be_visible()
    expect(item).to_contain_text("you have access")

    # Forgetting the key clears it; the page asks for it again.
    page.get_by_role("button", name="Forget key").click()
    assert page.evaluate("localStorage.getItem('cocanvas.operatorKey')") is None
    expect(page.get_by_label("Operator key")).to_be_focused()
    expect(page.get_by_text("Enter the operator key to see and create canvases.")).to_be_visible()
    expect(page.locator(f'li[data-canvas-id="{canvas_id}"]')).to_have_count(0)
    assert not page.errors  # type: ignore[attr-defined]
