"""Where the workshop features meet, through the real doors (a server process, tokens, real
sockets): a marker in organization A's drafts is in A's member's exports and in no export B's
member or the facilitator downloads (until the facilitator is given draft access); a reveal into
a frozen canvas answers 409; a round's close and a reveal save automatic versions; removing a
participant in the console closes their draft-space socket. The rules are in-process in
tests/test_workshop_seams.py."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson

from server import closecodes
from tests.partner_helpers import api, member, partner_canvas
from tests.support import ServerProcess, YClient

FORMATS = ("json", "md", "csv", "svg", "png", "pdf")
TEXT_FORMATS = ("json", "md", "csv", "svg")  # the PNG has pixels, the PDF compressed text


def drafts_ws(server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/drafts"


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a condition the server reaches on its own (polled over HTTP)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def exported(server: ServerProcess, cid: str, fmt: str, token: str, query: str = "") -> bytes:
    r = api(server, "GET", f"/api/canvases/{cid}/export.{fmt}{query}", token)
    assert r.status_code == 200, (fmt, r.text[:200])
    return r.content


def draft_count(server: ServerProcess, cid: str, token: str, org: str) -> int:
    r = api(server, "GET", f"/api/canvases/{cid}/drafts", token)
    assert r.status_code == 200, r.text
    return int(r.json()["counts"].get(org, 0))


async def test_drafts_are_in_their_organizations_exports_only(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    cid, fac = canvas["id"], canvas["facilitator_token"]
    ann = member(server, canvas, "alpha", "editor", "Ann")
    val = member(server, canvas, "alpha", "viewer", "Val")
    bob = member(server, canvas, "beta", "editor", "Bob")
    marker = "M" + secrets.token_hex(10)
    # Differential: B's exports are the same bytes whether or not A drafts anything.
    without = {fmt: exported(server, cid, fmt, bob.token) for fmt in TEXT_FORMATS}
    drafting = await YClient(drafts_ws(server), cid, ann.token, "ann").connect()
    drafting.add_note("d-" + marker, f"our floor price {marker}", block="gains")
    await until(lambda: draft_count(server, cid, ann.token, "alpha") == 1)
    saved = api(server, "POST", f"/api/canvases/{cid}/versions", fac, {"name": "v1"})
    assert saved.status_code == 201, saved.text

    for fmt in TEXT_FORMATS:  # A's members: their own drafts, marked as drafts
        for token in (ann.token, val.token):
            assert marker.encode() in exported(server, cid, fmt, token), fmt
    as_json = orjson.loads(exported(server, cid, "json", ann.token))
    assert "d-" + marker in as_json["drafts"] and "d-" + marker not in as_json["notes"]
    # A version's export has no drafts, whoever downloads it.
    version = f"?version={saved.json()['id']}"
    assert marker.encode() not in exported(server, cid, "json", ann.token, version)
    # B's member and the facilitator: not a byte of it, in any format.
    for fmt in FORMATS:
        for token in (bob.token, fac):
            body = exported(server, cid, fmt, token)
            assert marker.encode() not in body, fmt
            if token == bob.token and fmt in without:
                assert body == without[fmt], fmt

    # Given draft access, the facilitator's own export has every organization's drafts.
    r = api(
        server, "PUT", f"/api/canvases/{cid}/drafts/settings", fac, {"facilitator_access": True}
    )
    assert r.status_code == 200
    assert marker.encode() in exported(server, cid, "md", fac)
    assert marker.encode() not in exported(server, cid, "md", bob.token)
    await drafting.close()


async def test_frozen_reveal_round_close_versions_and_removal(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    cid, fac = canvas["id"], canvas["facilitator_token"]
    ann = member(server, canvas, "alpha", "editor", "Ann")
    bob = member(server, canvas, "beta", "editor", "Bob")
    drafting = await YClient(drafts_ws(server), cid, ann.token, "ann").connect()
    drafting.add_note("d-1", "alpha idea", block="gains")
    await until(lambda: draft_count(server, cid, ann.token, "alpha") == 1)

    def version_names() -> list[str]:
        r = api(server, "GET", f"/api/canvases/{cid}/versions", fac)
        assert r.status_code == 200
        return [v["name"] for v in r.json() if v["automatic"]]

    # Frozen: the reveal is refused like every other change, and the draft stays private.
    assert (
        api(server, "PUT", f"/api/canvases/{cid}/freeze", fac, {"frozen": True}).status_code == 200
    )
    r = api(server, "POST", f"/api/canvases/{cid}/drafts/reveal", fac, {})
    assert r.status_code == 409 and "frozen" in r.text
    assert draft_count(server, cid, ann.token, "alpha") == 1
    assert b"alpha idea" not in exported(server, cid, "json", bob.token)
    assert (
        api(server, "PUT", f"/api/canvases/{cid}/freeze", fac, {"frozen": False}).status_code == 200
    )
    r = api(server, "POST", f"/api/canvases/{cid}/drafts/reveal", fac, {})
    assert r.status_code == 200 and r.json()["revealed"] == {"alpha": ["d-1"]}
    assert version_names() == ["drafts revealed: Alpha"]

    # A round closes: its result is a version, once, and in the exports by organization.
    rid = api(
        server,
        "POST",
        f"/api/canvases/{cid}/rounds",
        fac,
        {"title": "Pick", "dots": 2, "per_note": 2},
    ).json()["id"]
    ballot = api(
        server, "PUT", f"/api/canvases/{cid}/rounds/{rid}/ballot", bob.token, {"dots": {"d-1": 2}}
    )
    assert ballot.status_code == 200, ballot.text
    assert api(server, "POST", f"/api/canvases/{cid}/rounds/{rid}/close", fac).status_code == 200
    assert api(server, "POST", f"/api/canvases/{cid}/rounds/{rid}/close", fac).status_code == 200
    assert sorted(version_names()) == ["drafts revealed: Alpha", "vote round closed: Pick"]
    report: dict[str, Any] = orjson.loads(exported(server, cid, "json", ann.token))["report"]
    (result,) = report["vote_results"]
    assert result["ranking"][0]["by_org"] == {"beta": 2} and report["dots"] == {"d-1": 2}

    # Removing Ann in the console closes her draft socket (4403), not only the shared one.
    again = await YClient(drafts_ws(server), cid, ann.token, "ann-2").connect()
    r = api(server, "DELETE", f"/api/canvases/{cid}/participants/{ann.user_id}", fac)
    assert r.status_code == 200, r.text
    await asyncio.wait_for(again.closed.wait(), 10)
    assert again.close_code == closecodes.FORBIDDEN
    await drafting.close()
    await again.close()
