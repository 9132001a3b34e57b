"""Every door × every bad credential: zero successes, and not one byte of a canvas leaks.

The doors are the WebSocket (token in the query or in ``Sec-WebSocket-Protocol``) and every HTTP
route that reads or changes a canvas. The same credentials, valid, open every door (checked
first, so the matrix cannot pass by every door being broken).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from server.auth import Tokens
from server.session import Identity
from tests.partner_helpers import api, make_invite, member, partner_canvas
from tests.support import ServerProcess

SECRET = "e58b0c93b42c573c1ea0be8d0f76dfe2172a2fe37bab0a370d1e120fd0579515"
OTHER_SECRET = "31ffe13ed0c264444d551083cce386f3103c661882749b084f1697a239e576ba"


@pytest.fixture(scope="module")
def doors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        Path(tmp_path_factory.mktemp("doors")) / "data",
        env={"COCANVAS_SECRET": SECRET, "COCANVAS_ALLOWED_ORIGINS": '["https://workshop.example"]'},
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def bad_credentials(server: ServerProcess, canvas: dict[str, Any]) -> dict[str, str | None]:
    """Name -> token. Each is refused by every door of ``canvas``."""
    fac = Identity("u_forger", "Forger", "", "facilitator")
    now = time.time()
    other = partner_canvas(server)
    revoked_inv = make_invite(server, canvas, "alpha", "facilitator")
    revoked = api(
        server, "POST", f"/api/invites/{revoked_inv['id']}/redeem", json={"name": "Rex"}
    ).json()
    r = api(
        server,
        "DELETE",
        f"/api/canvases/{canvas['id']}/invites/{revoked_inv['id']}",
        canvas["facilitator_token"],
    )
    assert r.status_code == 200
    return {
        "none": None,
        "garbage": "not-a-jwt",
        "bad signature": Tokens(OTHER_SECRET).issue(canvas["id"], fac, 3600),
        "expired": Tokens(SECRET).issue(canvas["id"], fac, 60, now=now - 3600),
        "another canvas": other["facilitator_token"],
        "revoked invite": revoked["token"],
    }


HTTP_DOORS = [
    ("GET", "/api/canvases/{id}", None),
    ("GET", "/api/canvases/{id}/invites", None),
    (
        "POST",
        "/api/canvases/{id}/invites",
        {"org_id": "alpha", "role": "editor", "expires_in_s": 60},
    ),
    ("DELETE", "/api/canvases/{id}/invites/{invite}", None),
    ("GET", "/api/canvases/{id}/participants", None),
    ("GET", "/api/canvases/{id}/audit", None),
    ("POST", "/api/canvases/{id}/orgs", {"name": "Gamma"}),
    ("DELETE", "/api/canvases/{id}", None),
]
FACILITATOR_ONLY = {(m, p) for m, p, _ in HTTP_DOORS if (m, p) != ("GET", "/api/canvases/{id}")}


async def ws_attempt(
    server: ServerProcess, canvas_id: str, token: str | None, how: str, **kw: Any
) -> tuple[list[bytes], int | None]:
    """Open a socket, say hello like a client, and collect every frame until it closes."""
    url = f"{server.ws}/{canvas_id}"
    if how == "query" and token is not None:
        url += f"?token={token}"
    if how == "subprotocol" and token is not None:
        kw["subprotocols"] = [f"token.{token}"]
    frames: list[bytes] = []
    async with websockets.connect(url, max_size=None, **kw) as ws:
        try:
            await ws.send(b"\x00\x00\x01\x00")  # sync step 1, empty state vector
            async with asyncio.timeout(3):
                async for frame in ws:
                    frames.append(frame if isinstance(frame, bytes) else frame.encode())
        except websockets.ConnectionClosed:
            pass
        except TimeoutError:
            pass
        return frames, ws.close_code


def http_attempt(
    server: ServerProcess,
    door: tuple[str, str, Any],
    canvas: dict[str, Any],
    invite: str,
    token: str | None,
) -> int:
    method, path, body = door
    return api(
        server, method, path.format(id=canvas["id"], invite=invite), token, json=body
    ).status_code


async def test_valid_credentials_open_every_door(doors_server: ServerProcess) -> None:
    canvas = partner_canvas(doors_server)
    invite = make_invite(doors_server, canvas, "alpha", "editor")["id"]
    token = canvas["facilitator_token"]
    for how in ("query", "subprotocol"):
        frames, code = await asyncio.wait_for(
            _first_frame(doors_server, canvas["id"], token, how), 5
        )
        assert frames and code is None, how
    for door in HTTP_DOORS:
        status = http_attempt(doors_server, door, canvas, invite, token)
        assert 200 <= status < 300, (door, status)


async def _first_frame(
    server: ServerProcess, canvas_id: str, token: str, how: str
) -> tuple[list[bytes], int | None]:
    url = f"{server.ws}/{canvas_id}" + (f"?token={token}" if how == "query" else "")
    kw: dict[str, Any] = {"subprotocols": [f"token.{token}"]} if how == "subprotocol" else {}
    async with websockets.connect(url, **kw) as ws:
        frame = await ws.recv()
        return [frame if isinstance(frame, bytes) else frame.encode()], ws.close_code


async def test_every_door_refuses_every_bad_credential(doors_server: ServerProcess) -> None:
    canvas = partner_canvas(doors_server)
    member(doors_server, canvas, "alpha", "editor", "Ann")  # so there is something to leak
    invite = make_invite(doors_server, canvas, "alpha", "editor")["id"]
    successes: list[str] = []
    leaks: list[str] = []
    for name, token in bad_credentials(doors_server, canvas).items():
        for how in ("query", "subprotocol"):
            frames, code = await ws_attempt(doors_server, canvas["id"], token, how)
            if frames:
                leaks.append(f"ws/{how} with {name}: {len(frames)} frames")
            if code not in (4401, 4403, 4410):
                successes.append(f"ws/{how} with {name}: close code {code}")
        for door in HTTP_DOORS:
            status = http_attempt(doors_server, door, canvas, invite, token)
            if status not in (401, 403, 410):
                successes.append(f"{door[0]} {door[1]} with {name}: HTTP {status}")
    assert successes == []
    assert leaks == []
    # The canvas survived the DELETE attempts and the invite is still live.
    assert (
        api(
            doors_server, "GET", f"/api/canvases/{canvas['id']}", canvas["facilitator_token"]
        ).status_code
        == 200
    )


async def test_close_codes_say_why(doors_server: ServerProcess) -> None:
    canvas = partner_canvas(doors_server)
    creds = bad_credentials(doors_server, canvas)
    expected = {
        "none": 4401,
        "garbage": 4401,
        "bad signature": 4401,
        "expired": 4401,
        "another canvas": 4403,
        "revoked invite": 4410,
    }
    for name, token in creds.items():
        frames, code = await ws_attempt(doors_server, canvas["id"], token, "query")
        assert (name, code, frames) == (name, expected[name], [])


async def test_editors_cannot_use_facilitator_doors(doors_server: ServerProcess) -> None:
    canvas = partner_canvas(doors_server)
    invite = make_invite(doors_server, canvas, "alpha", "editor")["id"]
    editor = member(doors_server, canvas, "alpha", "editor", "Ann")
    for door in HTTP_DOORS:
        status = http_attempt(doors_server, door, canvas, invite, editor.token)
        if door[:2] in FACILITATOR_ONLY:
            assert status == 403, door
        else:
            assert status == 200, door


async def test_foreign_origin_is_refused_before_anything_is_sent(
    doors_server: ServerProcess,
) -> None:
    canvas = partner_canvas(doors_server)
    token = canvas["facilitator_token"]
    frames, code = await ws_attempt(
        doors_server, canvas["id"], token, "query", origin="https://evil.example"
    )
    assert (frames, code) == ([], 4403)
    frames, code = await asyncio.wait_for(
        _first_frame_origin(doors_server, canvas["id"], token, "https://workshop.example"), 5
    )
    assert frames


async def _first_frame_origin(
    server: ServerProcess, canvas_id: str, token: str, origin: str
) -> tuple[list[bytes], int | None]:
    async with websockets.connect(f"{server.ws}/{canvas_id}?token={token}", origin=origin) as ws:  # type: ignore[arg-type]
        frame = await ws.recv()
        return [frame if isinstance(frame, bytes) else frame.encode()], ws.close_code
