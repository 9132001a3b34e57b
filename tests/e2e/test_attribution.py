"""What a browser shows for a note a hostile partner wrote: its real author and organization
(the client's attribution module reads the creating client id and the server's ``ids`` root),
never what the note's fields claim — on the board and in the outline."""

from __future__ import annotations

import asyncio
import threading

from playwright.sync_api import expect
from pycrdt import Map

from tests.support import YClient

from .ui import note, wait_connected


def test_a_note_claiming_another_author_shows_its_real_one(make_canvas, open_page, web):
    canvas = make_canvas("value-proposition")
    alice = open_page(canvas, canvas.token("Alice Smith", "Acme Corp"))
    wait_connected(alice)
    acme, beta = canvas.org_id("Acme Corp"), canvas.org_id("Beta Labs")
    bob_token = canvas.token("Bob Jones", "Beta Labs")

    async def forge() -> None:
        bob = await YClient(web.ws, canvas.id, bob_token, "bob").connect()
        bob.add_note(
            "forged", "Framed idea", block="gains", org=acme, author="u_alice",
            author_name="Alice Smith",
        )  # fmt: skip
        # The server took it once it sends back who Bob's client id is (ahead of the note).
        ids = bob.doc.get("ids", type=Map)
        await bob.wait_for(lambda: str(bob.doc.client_id) in ids)
        assert bob.attributed()["forged"]["author_name"] == "Bob Jones"
        await bob.close()

    # Playwright's sync API runs a loop in this thread: the raw client gets its own.
    done: list[BaseException | None] = []

    def run() -> None:
        try:
            asyncio.run(forge())
            done.append(None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            done.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(30)
    assert done == [None], done
    shown = note(alice, "forged")
    expect(shown).to_have_attribute("data-org", beta)
    expect(shown.locator(".note-who")).to_have_text("Bob Jones")
    alice.get_by_role("button", name="Outline view").click()
    gains = alice.locator('#outline li[data-block-id="gains"]')
    expect(gains).to_contain_text("Framed idea — Bob Jones, Beta Labs")
