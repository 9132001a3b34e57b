"""Helpers for the partner tests: a two-partner canvas, invite links, members with tokens."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import websockets
from pycrdt import Map

from server.canvas.export import doc_to_json
from tests.support import ServerProcess, YClient


@dataclass
class Member:
    token: str
    user_id: str
    org_id: str
    role: str
    name: str


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def partner_canvas(server: ServerProcess, **extra: Any) -> dict[str, Any]:
    return server.create_canvas(
        "Partners",
        "partner-co-creation",
        orgs=[{"name": "Alpha"}, {"name": "Beta"}],
        facilitator_name="Fran",
        **extra,
    )


def make_invite(
    server: ServerProcess,
    canvas: dict[str, Any],
    org_id: str,
    role: str,
    expires_in_s: float = 3600,
    max_uses: int | None = None,
) -> dict[str, Any]:
    r = httpx.post(
        f"{server.http}/api/canvases/{canvas['id']}/invites",
        json={"org_id": org_id, "role": role, "expires_in_s": expires_in_s, "max_uses": max_uses},
        headers=auth(canvas["facilitator_token"]),
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def redeem(server: ServerProcess, invite_id: str, name: str) -> httpx.Response:
    return httpx.post(f"{server.http}/api/invites/{invite_id}/redeem", json={"name": name})


def member(
    server: ServerProcess, canvas: dict[str, Any], org_id: str, role: str, name: str
) -> Member:
    inv = make_invite(server, canvas, org_id, role)
    r = redeem(server, inv["id"], name)
    assert r.status_code == 200, r.text
    body = r.json()
    return Member(body["token"], body["user_id"], body["org_id"], body["role"], body["name"])


async def connect(server: ServerProcess, canvas: dict[str, Any], token: str, name: str) -> YClient:
    return await YClient(server.ws, canvas["id"], token, name).connect()


def canvas_json(server: ServerProcess, canvas: dict[str, Any]) -> dict[str, Any]:
    r = httpx.get(
        f"{server.http}/api/canvases/{canvas['id']}", headers=auth(canvas["facilitator_token"])
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def notes_of(client: YClient) -> dict[str, Any]:
    """The client's notes as everyone reads them: attributed (``canvas/attribution.py``), so
    ``org``/``author``/``author_name`` are what the creating client id says."""
    notes: dict[str, Any] = doc_to_json(client.doc)["notes"]
    return notes


def raw_notes_of(client: YClient) -> dict[str, Any]:
    """The client's notes as written, fields and all (what a hostile client may have made up)."""
    return client.notes.to_py() or {}


def blocks_of(client: YClient) -> Map:
    return client.doc.get("blocks", type=Map)


def api(
    server: ServerProcess, method: str, path: str, token: str | None = None, json: Any = None
) -> httpx.Response:
    """One HTTP call (blocking; the server is another process, so the loop is not starved)."""
    headers = auth(token) if token else {}
    return httpx.request(method, server.http + path, headers=headers, json=json)


async def attempt(
    server: ServerProcess, canvas_id: str, token: str
) -> tuple[list[bytes], int | None]:
    """Connect and read until closed (or 1 s of quiet): the frames received and the close code."""
    frames: list[bytes] = []
    async with websockets.connect(f"{server.ws}/{canvas_id}?token={token}") as ws:
        try:
            async with asyncio.timeout(1):
                async for frame in ws:
                    frames.append(frame if isinstance(frame, bytes) else frame.encode())
        except (TimeoutError, websockets.ConnectionClosed):
            pass
        return frames, ws.close_code
