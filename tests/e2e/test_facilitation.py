"""Running a workshop in Debian's Chromium: a facilitator and three partners of three
organizations vote one round to the end, share one timer whatever their clocks say, are
brought to the facilitator's view, and discuss a note in a thread from two organizations."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from .conftest import ARTIFACTS
from .ui import add_note, block, wait_connected

pytestmark = pytest.mark.e2e

ORGS = ("Acme Corp", "Beta Labs", "Gamma Co")


def people(make_canvas: Any, open_page: Any, height: int = 1000) -> tuple[Any, Page, list[Page]]:
    canvas = make_canvas("business-model", orgs=ORGS)
    fac = open_page(canvas, canvas.facilitator_token, height=height)
    parts = [
        open_page(canvas, canvas.token(name, org), height=height)
        for name, org in (("Ann Acme", ORGS[0]), ("Bob Beta", ORGS[1]), ("Gus Gamma", ORGS[2]))
    ]
    for p in (fac, *parts):
        wait_connected(p)
    return canvas, fac, parts


def shot(page: Page, name: str) -> None:
    (ARTIFACTS / "screenshots").mkdir(parents=True, exist_ok=True)
    page.screenshot(
        path=str(ARTIFACTS / "screenshots" / f"facilitation-{name}.png"), full_page=True
    )


def place(page: Page, note_id: str, dots: int) -> None:
    row = page.locator(f'#ws-ballot li[data-note-id="{note_id}"]')
    for _ in range(dots):
        before = int(row.locator(".ws-mine").inner_text())
        row.locator(".ws-dot-plus").click()
        expect(row.locator(".ws-mine")).to_have_text(str(before + 1))


def test_a_vote_round_to_the_end_with_the_same_ranking_and_breakdown_everywhere(
    make_canvas: Any, open_page: Any
) -> None:
    _, fac, (ann, bob, gus) = people(make_canvas, open_page)
    a = add_note(fac, "key-partners", "Shared logistics")
    b = add_note(fac, "key-partners", "Joint data pool")
    c = add_note(fac, "key-partners", "Common brand")
    fac.fill("#ws-round-dots", "3")
    fac.fill("#ws-round-cap", "2")
    fac.click("#ws-round-open")
    for p in (ann, bob, gus):
        expect(p.locator("#ws-budget")).to_have_text("0 of 3 dots used (at most 2 per note)")
    place(ann, a, 2)
    place(ann, b, 1)
    place(bob, a, 1)
    place(bob, c, 2)
    place(gus, c, 1)
    place(gus, a, 1)
    # Over the cap: the server refuses, the count stays.
    bob.locator(f'#ws-ballot li[data-note-id="{c}"] .ws-dot-plus').click()
    expect(bob.locator(".toast-error").last).to_contain_text("at most 2")
    expect(bob.locator(f'#ws-ballot li[data-note-id="{c}"] .ws-mine')).to_have_text("2")
    # Hidden until the close, on everyone's screen.
    expect(ann.locator("#ws-results")).to_contain_text("Results appear when the round closes")
    expect(fac.locator("#ws-vote-body")).to_contain_text("3 voted")
    fac.click("#ws-round-close")
    rankings = []
    for p in (fac, ann, bob, gus):
        expect(p.locator("#ws-ranking li")).to_have_count(3)
        expect(p.locator("#ws-results")).to_contain_text("Final: 3 voted")
        rankings.append(p.locator("#ws-ranking li").all_inner_texts())
    assert all(r == rankings[0] for r in rankings), rankings
    first, second, third = rankings[0]
    assert first.startswith("1. Shared logistics — 4 dots: Acme Corp 2, Beta Labs 1, Gamma Co 1")
    assert "shared by 3" in first
    assert second.startswith("2. Common brand — 3 dots: Beta Labs 2, Gamma Co 1 shared by 2")
    assert third.startswith("3. Joint data pool — 1 dot: Acme Corp 1") and "only Acme Corp" in third
    # Dots on the notes on the board, and the round is read-only now.
    expect(gus.locator(f'.note[data-note-id="{a}"]')).to_have_attribute("data-ws-dots", "●●●●")
    expect(gus.locator("#ws-vote-body")).to_contain_text("The round is closed")
    shot(fac, "results")


def test_the_timer_shows_the_same_seconds_whatever_the_clock(
    make_canvas: Any, open_page: Any, browser: Any
) -> None:
    canvas, fac, parts = people(make_canvas, open_page)
    # One more participant whose computer clock is forty minutes behind.
    skewed_ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    skewed_ctx.add_init_script(
        "(() => { const real = Date.now.bind(Date); Date.now = () => real() - 2400000 })();"
        f"window.localStorage.setItem('cocanvas:token:{canvas.id}', "
        f"{canvas.token('Sam Skew', ORGS[0])!r})"
    )
    skewed = skewed_ctx.new_page()
    try:
        skewed.goto(f"{canvas.server.http}/c/{canvas.id}")
        wait_connected(skewed)
        # Before any timer: said in words, with who starts one.
        expect(fac.locator("#ws-timer-remaining")).to_have_text("No timer running")
        expect(skewed.locator("#ws-timer-remaining")).to_have_text(
            "No timer running: the facilitator starts one"
        )
        fac.fill("#ws-timer-minutes", "5")
        fac.click("#ws-timer-start")
        pages = [fac, *parts, skewed]
        for p in pages:
            expect(p.locator("#ws-timer-label")).to_contain_text("running")
        # Read every page within a few milliseconds of each other.
        for p in pages:
            p.wait_for_function(
                "() => Number(document.getElementById('ws-timer-remaining').dataset.remainingMs) < 300000"
            )
        left = [
            float(p.evaluate("document.getElementById('ws-timer-remaining').dataset.remainingMs"))
            for p in pages
        ]
        assert max(left) - min(left) <= 1000, left
        assert all(290_000 < v <= 300_000 for v in left), left
        fac.click("#ws-timer-pause")
        for p in pages:
            expect(p.locator("#ws-timer-label")).to_contain_text("paused")
        shown = {p.locator("#ws-timer-remaining").inner_text() for p in pages}
        assert len(shown) == 1, shown
        shot(skewed, "timer")
    finally:
        skewed_ctx.close()


def view(page: Page) -> dict[str, float]:
    """The canvas area a page shows (board units), as the workshop panel reads it."""
    return json.loads(page.locator("#workshop").get_attribute("data-view") or "{}")  # type: ignore[no-any-return]


def same_view(a: dict[str, float], b: dict[str, float]) -> bool:
    tolerance = 0.02 * max(a["w"], 1.0)
    return all(abs(a[k] - b[k]) <= tolerance for k in ("x", "y", "w", "h"))


def test_bring_everyone_to_me_moves_the_others_viewports(make_canvas: Any, open_page: Any) -> None:
    _, fac, parts = people(make_canvas, open_page)
    # The facilitator zooms into one block (double-click its title); the others still see it all.
    fac.locator('section.block[data-block-id="key-partners"] .block-head').dblclick()
    fac.wait_for_function(
        "JSON.parse(document.getElementById('workshop').dataset.view || '{}').w < 1000"
    )
    target = view(fac)
    assert not same_view(view(parts[0]), target)
    fac.click("#ws-gather")
    for p in parts:
        expect(p.locator("#ws-follow-status")).to_have_text("Following Fay Cilitator")
        p.wait_for_function(
            "t => { const v = JSON.parse(document.getElementById('workshop').dataset.view || '{}');"
            " return Math.abs(v.x - t.x) < 0.02 * t.w && Math.abs(v.w - t.w) < 0.02 * t.w }",
            arg=target,
        )
        assert same_view(view(p), target)
    # Moving away stops following; the next summons brings them back.
    ann = parts[0]
    ann.click(".fit-all")
    expect(ann.locator("#ws-follow-status")).to_contain_text("Stopped following")
    assert not same_view(view(ann), target)
    fac.click("#ws-gather")
    expect(ann.locator("#ws-follow-status")).to_have_text("Following Fay Cilitator")
    ann.wait_for_function(
        "t => Math.abs(JSON.parse(document.getElementById('workshop').dataset.view).w - t.w) < 0.02 * t.w",
        arg=target,
    )
    shot(ann, "gathered")
    assert same_view(view(ann), target)


def test_a_comment_thread_from_two_organizations(make_canvas: Any, open_page: Any) -> None:
    _, fac, (ann, bob, _) = people(make_canvas, open_page)
    nid = add_note(fac, "customer-segments", "SMEs in the region")
    ann.select_option("#ws-comment-note", nid)
    ann.fill("#ws-comment-text", "We serve 200 of them already")
    ann.click("#ws-comment-post")
    bob.select_option("#ws-comment-note", nid)
    first = bob.locator("#ws-thread li").first
    expect(first.locator(".ws-comment-author")).to_have_text("Ann Acme (Acme Corp)")
    expect(bob.locator(".toast").last).to_contain_text("Ann Acme commented")
    first.get_by_role("button", name="Reply").click()
    bob.fill("#ws-comment-text", "So do we, in the north")
    bob.click("#ws-comment-post")
    thread = ann.locator("#ws-thread li")
    expect(thread).to_have_count(2)
    expect(thread.nth(1).locator(".ws-comment-author")).to_have_text("Bob Beta (Beta Labs)")
    expect(thread.nth(1).locator(".ws-comment-text")).to_have_text("So do we, in the north")
    # The count on the note, for everyone.
    expect(fac.locator(f'.note[data-note-id="{nid}"]')).to_have_attribute(
        "data-ws-comments", "2 comments"
    )
    thread.first.get_by_role("button", name="Resolve").click()
    expect(bob.locator("#ws-thread li").first).to_have_class("resolved")
    shot(bob, "comments")


def test_the_console_shows_who_is_here_and_freezes_the_canvas(
    make_canvas: Any, open_page: Any
) -> None:
    canvas = make_canvas("business-model", orgs=ORGS)
    server = canvas.server
    headers = {"Authorization": f"Bearer {canvas.facilitator_token}"}
    invite = httpx.post(
        f"{server.http}/api/canvases/{canvas.id}/invites",
        json={"org_id": canvas.org_id(ORGS[1]), "role": "editor", "expires_in_s": 3600},
        headers=headers,
    ).json()
    joined = httpx.post(f"{server.http}/api/invites/{invite['id']}/redeem", json={"name": "Bea"})
    fac = open_page(canvas, canvas.facilitator_token)
    bea = open_page(canvas, joined.json()["token"])
    wait_connected(fac)
    wait_connected(bea)
    fac.click("#ws-console-refresh")
    row = fac.locator("#ws-people tr", has_text="Bea")
    expect(row).to_contain_text("Beta Labs")
    expect(row).to_contain_text("online")
    expect(fac.locator("#ws-invite-uses")).to_contain_text("Beta Labs · editor: 1 use")

    fac.check("#ws-freeze")
    expect(bea.locator("#ws-frozen")).to_contain_text("frozen")
    # The board is read-only (no + buttons); the keyboard way is refused with the reason.
    expect(block(bea, "key-partners").locator("button.add-note")).to_be_hidden()
    block(bea, "key-partners").focus()
    bea.keyboard.press("n")
    expect(bea.locator(".toast-error").last).to_contain_text("froze the canvas")
    assert (
        httpx.get(f"{server.http}/api/canvases/{canvas.id}", headers=headers).json()["notes"] == {}
    )
    fac.click("#ws-console-refresh")
    expect(fac.locator("#ws-timeline")).to_contain_text("froze the canvas")
    shot(fac, "console")
    fac.uncheck("#ws-freeze")
    expect(bea.locator("#ws-frozen")).to_be_hidden()
