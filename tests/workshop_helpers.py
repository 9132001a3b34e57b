"""Helpers for the workshop tests: a three-partner canvas, its members, and reading what a
socket received."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Map

from server import protocol
from server.canvas.export import doc_to_json
from tests.partner_helpers import Member, api, connect, member
from tests.support import ServerProcess, YClient


@dataclass
class Workshop:
    canvas: dict[str, Any]
    fac_token: str
    members: dict[str, Member]  # name -> member
    clients: dict[str, YClient]  # name (and "fac") -> connected client

    @property
    def id(self) -> str:
        return str(self.canvas["id"])


def three_partner_canvas(server: ServerProcess) -> dict[str, Any]:
    return server.create_canvas(
        "Workshop",
        "partner-co-creation",
        orgs=[{"name": "Alpha"}, {"name": "Beta"}, {"name": "Gamma"}],
        facilitator_name="Fran",
    )


async def workshop(
    server: ServerProcess, people: dict[str, tuple[str, str]] | None = None
) -> Workshop:
    """A canvas with a connected facilitator and members (name -> (org, role))."""
    people = people or {"Ann": ("alpha", "editor"), "Bob": ("beta", "editor")}
    canvas = three_partner_canvas(server)
    members = {n: member(server, canvas, org, role, n) for n, (org, role) in people.items()}
    clients = {"fac": await connect(server, canvas, canvas["facilitator_token"], "fac")}
    for n, m in members.items():
        clients[n] = await connect(server, canvas, m.token, n)
    return Workshop(canvas, canvas["facilitator_token"], members, clients)


async def close_all(w: Workshop) -> None:
    for c in w.clients.values():
        await c.close()


def route(
    server: ServerProcess, method: str, w: Workshop, tail: str, token: str, body: Any = None
) -> Any:
    return api(server, method, f"/api/canvases/{w.id}{tail}", token, body)


def received_updates(client: YClient, upto: int | None = None) -> list[bytes]:
    """The document updates in the frames a client received (its first ``upto`` frames)."""
    out = []
    for frame in client.frames_received[:upto]:
        msg = protocol.decode(frame)
        if msg.kind in (protocol.Kind.SYNC_STEP2, protocol.Kind.SYNC_UPDATE):
            out.append(msg.payload)
    return out


def doc_of(updates: list[bytes]) -> Doc:
    doc: Doc = Doc()
    for u in updates:
        doc.apply_update(u)
    return doc


def rounds_of(client: YClient) -> dict[str, Any]:
    return client.doc.get("rounds", type=Map).to_py() or {}


def stage_of(client: YClient) -> dict[str, Any]:
    return client.doc.get("stage", type=Map).to_py() or {}


def comments_of(client: YClient) -> dict[str, Any]:
    """The client's comments as everyone reads them: author and organization from the creating
    client id (``server/canvas/attribution.py``), not from the comment's own fields."""
    return doc_to_json(client.doc)["comments"]
