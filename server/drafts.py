"""Private draft spaces, one per (canvas, organization), and the staged reveal.

Private by construction rather than by a check on every path: an organization's drafts live in
a Yjs document of their own, with its own document id ``<canvas>/drafts/<org>`` (its own rows in
the store's log, snapshots, client-id bindings and audit, its own broker channel, its own Room
in a :class:`Rooms` of its own). Nothing that serves the shared canvas (its WebSocket, its HTTP
JSON, versions, audit, the canvas's broker channel) ever opens that document, and no shared door
can be made to: a canvas id never contains ``/``, both the WebSocket endpoint and the HTTP
routes take the canvas id as one path segment, and tokens name the canvas, not a draft space.
The only doors are :class:`DraftDoor` (WebSocket) and the routes in ``server/api/drafts.py``,
through :meth:`DraftSpaces.authorize`,, which authorizes from the token's organization (and
the facilitator, when the canvas allows it).

Inside a draft space everybody writes as a member of its organization: the same vouch and
policy run, and they stamp ``org`` with the space's organization and ``author`` from the token.

A reveal copies chosen drafts into the shared canvas, under the same note ids, with author and
organization intact, as **one** server update on the shared canvas (one row appended to its log,
one transaction on every node: all of a reveal or none of it), and only then deletes them from
the draft spaces. If the node dies in between, the shared canvas already holds all of it and the
draft spaces still hold copies; every open of a draft space first settles it (deletes every
draft the shared canvas holds under the same id, organization and author), so the reveal rolls
forward, and the same ids mean a repeated reveal never duplicates a note.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import time
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from pycrdt import Map

from . import closecodes, control, versions
from .auth import TokenError
from .broker.base import KIND_CONTROL, Broker
from .canvas import attribution
from .canvas import drafts as content
from .canvas.export import doc_to_json
from .room import Room
from .rooms import Rooms
from .session import ROLE_EDITOR, ROLE_FACILITATOR, ROLE_VIEWER, Identity
from .store.base import AuditEntry, CanvasNotFound, CanvasRecord, Store, StoreError
from .workshop import stage

log = logging.getLogger("cocanvas.drafts")

SEPARATOR = "/drafts/"
WS_PREFIX = "/drafts/"  # the WebSocket door: /drafts/{canvas_id}
# Canvas settings (CanvasRecord.settings) that govern draft spaces; both off by default.
FACILITATOR_ACCESS = "drafts_facilitator_access"  # the facilitator may open every draft space
SELF_PUBLISH = "drafts_self_publish"  # an organization's editors may reveal their own drafts
TEMPLATE = "draft-space"
# The facilitator's sessions in draft spaces carry this as their "invite": turning
# facilitator_access off revokes it like a link, closing them (4410) on every node.
FACILITATOR_PASS = ":facilitator-pass"

# Test hook (COCANVAS_TEST_HOOKS only): kill -9 this process at a point of a reveal.
CRASH_POINTS = ("before-shared", "after-shared")


def draft_id(canvas_id: str, org_id: str) -> str:
    """The document id of an organization's draft space (never a valid canvas id)."""
    return f"{canvas_id}{SEPARATOR}{org_id}"


def _org_name(orgs: dict[str, Any], org_id: str) -> str:
    entry = orgs.get(org_id)
    name = entry.get("name") if isinstance(entry, dict) else None
    return name if isinstance(name, str) and name else org_id


def _forbidden(message: str) -> TokenError:
    return TokenError(403, closecodes.FORBIDDEN, message)


def _not_found(message: str) -> TokenError:
    return TokenError(404, closecodes.NOT_FOUND, message)


class CanvasFrozen(Exception):
    """The shared canvas is frozen: a reveal would change it, so nothing is revealed."""


@dataclass(slots=True)
class RevealResult:
    revealed: dict[str, list[str]] = field(default_factory=dict)  # org -> note ids
    conflicts: list[str] = field(default_factory=list)  # ids taken by another shared note
    at: float = 0.0

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.revealed.values())


class DraftSpaces:
    """Every draft space of this node: authorizing, loading, settling, counting, revealing."""

    def __init__(
        self,
        store: Store,
        broker: Broker,
        shared: Rooms,
        rooms: Rooms,
        *,
        crash_point: str = "",
    ) -> None:
        self.store = store
        self.broker = broker
        self.shared = shared
        self.rooms = rooms  # draft rooms only; never the shared canvases'
        self.crash_point = crash_point
        self._locks: dict[str, asyncio.Lock] = {}

    # -- who may open what --------------------------------------------------------------------

    async def settings(self, canvas_id: str) -> dict[str, Any]:
        record = await self.store.get_canvas(canvas_id)
        if record is None or SEPARATOR in canvas_id:
            raise _not_found("canvas not found")
        return record.settings

    async def authorize(
        self, identity: Identity | None, canvas_id: str, org_id: str | None
    ) -> tuple[str, Identity | None]:
        """Which organization's space this caller may open, and who they are inside it.

        ``identity`` None is the operator (HTTP only). Members open their own organization's
        space (``org_id`` omitted or their own); the facilitator any organization's, only when
        the canvas allows it. Inside, a facilitator writes as an editor of that organization.
        """
        settings = await self.settings(canvas_id)
        orgs = await self.org_ids(canvas_id)
        facilitator = identity is None or identity.role == ROLE_FACILITATOR
        if facilitator:
            if not settings.get(FACILITATOR_ACCESS):
                raise _forbidden("this canvas keeps draft spaces from the facilitator")
            if not org_id:
                raise _not_found("name the organization (org)")
            if org_id not in orgs:
                raise _not_found("no such organization on this canvas")
            if identity is None:
                return org_id, None
            # Its invite link (if any) still closes it when revoked; else the facilitator pass.
            invite = identity.invite_id or FACILITATOR_PASS
            inside = Identity(identity.user_id, identity.name, org_id, ROLE_EDITOR, invite)
            return org_id, inside
        assert identity is not None
        if not identity.org_id or identity.org_id not in orgs:
            raise _forbidden("only members of an organization have a draft space")
        if org_id and org_id != identity.org_id:
            raise _forbidden("a draft space is private to its organization")
        role = ROLE_VIEWER if identity.role == ROLE_VIEWER else ROLE_EDITOR
        return identity.org_id, Identity(
            identity.user_id, identity.name, identity.org_id, role, identity.invite_id
        )

    async def org_ids(self, canvas_id: str) -> set[str]:
        room = await self._shared(canvas_id)
        try:
            return set(content.frame_of(room.doc)["orgs"])
        finally:
            self.shared.release(room)

    async def _shared(self, canvas_id: str) -> Room:
        try:
            return await self.shared.acquire(canvas_id)
        except CanvasNotFound:
            raise _not_found("canvas not found") from None

    # -- the WebSocket door (ws.handle calls this between the token and the join) -------------

    async def open(
        self, identity: Identity, canvas_id: str, org_id: str | None
    ) -> tuple[Room, Identity]:
        """The draft room this token may join (settled and framed), held: release it after."""
        org, inside = await self.authorize(identity, canvas_id, org_id)
        assert inside is not None
        room = await self.acquire(canvas_id, org)
        return room, inside

    async def acquire(self, canvas_id: str, org_id: str) -> Room:
        """Load (creating it on first use) an organization's draft space, bring its frame up
        to date and settle any reveal that committed on the shared canvas. Pair with release."""
        doc_id = draft_id(canvas_id, org_id)
        shared = await self._shared(canvas_id)
        try:
            await self._ensure(doc_id, canvas_id, org_id, shared)
            room = await self.rooms.acquire(doc_id)
            try:
                frame = content.frame_of(shared.doc)
                await room.apply_server_change(lambda d: content.sync_frame(d, frame, org_id))
                await self._settle(shared, room)
            except BaseException:
                self.rooms.release(room)
                raise
            return room
        finally:
            self.shared.release(shared)

    def release(self, room: Room) -> None:
        self.rooms.release(room)

    async def _ensure(self, doc_id: str, canvas_id: str, org_id: str, shared: Room) -> None:
        if await self.store.get_canvas(doc_id) is not None:
            return
        record = CanvasRecord(
            doc_id, "", TEMPLATE, time.time(), {"drafts_of": canvas_id, "org": org_id}
        )
        try:
            await self.store.create_canvas(
                record, content.initial_update(content.frame_of(shared.doc), org_id)
            )
        except StoreError:
            if await self.store.get_canvas(doc_id) is None:  # not a race another node won
                raise

    async def _settle(self, shared: Room, room: Room) -> None:
        """Roll an interrupted reveal forward: drafts the shared canvas already holds go."""
        authors = attribution.authors_of(shared.doc)
        done = [
            d.id for d in content.drafts_in(room.doc) if content.same_note(shared.doc, d, authors)
        ]
        if done:
            log.info("settling %d revealed drafts in %s", len(done), room.canvas_id)
            await room.apply_server_change(lambda d: content.remove(d, done))

    # -- counts -------------------------------------------------------------------------------

    async def counts(self, canvas_id: str, orgs: Iterable[str]) -> dict[str, int]:
        """How many drafts each organization has (numbers only). A space never opened is 0
        and is not created by asking."""
        out: dict[str, int] = {}
        for org in sorted(orgs):
            if await self.store.get_canvas(draft_id(canvas_id, org)) is None:
                out[org] = 0
                continue
            room = await self.acquire(canvas_id, org)
            try:
                out[org] = content.count(room.doc)
            finally:
                self.release(room)
        return out

    # -- what an export carries ---------------------------------------------------------------

    async def readable_notes(self, identity: Identity | None, canvas_id: str) -> dict[str, Any]:
        """The draft notes (id -> note JSON) a reader's own export carries: a member's own
        organization's; the facilitator's (``identity`` None: the operator) every
        organization's, only while the canvas gives them access (the same rule as
        :meth:`authorize`); nobody else's, ever. A space never opened is not created by asking.

        An id drafted in two organizations' spaces (a hostile client picks its ids) is left out
        rather than letting one organization's draft stand for another's."""
        settings = await self.settings(canvas_id)
        orgs = await self.org_ids(canvas_id)
        if identity is None or identity.role == ROLE_FACILITATOR:
            wanted = sorted(orgs) if settings.get(FACILITATOR_ACCESS) else []
        else:
            wanted = [identity.org_id] if identity.org_id in orgs else []
        merged: dict[str, Any] = {}
        twice: set[str] = set()
        for org in wanted:
            if await self.store.get_canvas(draft_id(canvas_id, org)) is None:
                continue
            room = await self.acquire(canvas_id, org)
            try:
                notes = doc_to_json(room.doc)["notes"]  # attributed, as every reader sees them
            finally:
                self.release(room)
            for nid, note in notes.items():
                if nid in merged:
                    twice.add(nid)
                merged[nid] = note
        return {k: v for k, v in merged.items() if k not in twice}

    # -- the reveal ---------------------------------------------------------------------------

    async def reveal(
        self,
        canvas_id: str,
        orgs: list[str],
        note_ids: list[str] | None,
        by: Identity | None,
    ) -> RevealResult:
        """Move the chosen drafts of ``orgs`` into the shared canvas: one update, then cleanup."""
        lock = self._locks.setdefault(canvas_id, asyncio.Lock())
        async with lock:
            return await self._reveal(canvas_id, orgs, note_ids, by)

    async def _reveal(
        self, canvas_id: str, orgs: list[str], note_ids: list[str] | None, by: Identity | None
    ) -> RevealResult:
        result = RevealResult(at=time.time())
        held: list[Room] = []
        shared = await self._shared(canvas_id)
        try:
            # A frozen canvas refuses every change, a reveal too (the drafts stay private).
            if stage.is_frozen(shared.doc):
                raise CanvasFrozen(stage.FROZEN_REASON)
            for org in sorted(set(orgs)):
                if await self.store.get_canvas(draft_id(canvas_id, org)) is not None:
                    held.append(await self.acquire(canvas_id, org))
            found = {room: content.drafts_in(room.doc, note_ids) for room in held}
            # An id drafted in two organizations' spaces (a hostile client picks its ids) would
            # overwrite one with the other inside the one update: both are kept back.
            seen: dict[str, int] = {}
            for ds in found.values():
                for d in ds:
                    seen[d.id] = seen.get(d.id, 0) + 1
            picked: dict[Room, list[content.Draft]] = {}
            authors = attribution.authors_of(shared.doc)
            for room, drafts in found.items():
                ok = []
                for d in drafts:
                    if seen[d.id] > 1 or content.taken(shared.doc, d, authors):
                        result.conflicts.append(d.id)
                    else:
                        ok.append(d)
                if ok:
                    picked[room] = ok
            everything = [d for ds in picked.values() for d in ds]
            for room, ds in picked.items():
                result.revealed[room.canvas_id.rsplit(SEPARATOR, 1)[1]] = [d.id for d in ds]
            if not everything:
                return result
            record = {
                "at": result.at,
                "orgs": sorted(result.revealed),
                "count": len(everything),
                "by": by.name if by else "Operator",
            }
            audit = [
                AuditEntry(
                    canvas_id,
                    result.at,
                    by.user_id if by else "operator",
                    by.name if by else "Operator",
                    by.org_id if by else "",
                    "reveal",
                    d.id,
                    d.org,
                )
                for d in everything
            ]
            self._crash("before-shared")
            # The whole reveal is this one update: durable, then on every node, or not at all.
            await shared.apply_server_change(
                lambda d: content.write_revealed(d, everything, record), audit
            )
            self._crash("after-shared")
            for room, ds in picked.items():
                gone = [d.id for d in ds]
                await room.apply_server_change(
                    functools.partial(content.remove, ids=gone, record=record)
                )
            # An automatic version, on the node that revealed: the canvas as the reveal left it.
            orgs_now = shared.doc.get("orgs", type=Map).to_py() or {}
            shown = ", ".join(_org_name(orgs_now, o) for o in sorted(result.revealed))
            await versions.save_automatic(
                self.store, canvas_id, shared.doc, f"drafts revealed: {shown}"
            )
            log.info(
                "revealed %d drafts of %s on %s",
                len(everything),
                sorted(result.revealed),
                canvas_id,
            )
            return result
        finally:
            for room in held:
                self.release(room)
            self.shared.release(shared)

    def _crash(self, point: str) -> None:
        if self.crash_point == point:
            log.warning("test hook: killing this node %s", point)
            os.kill(os.getpid(), signal.SIGKILL)

    # -- what shared doors tell draft spaces -------------------------------------------------

    async def org_list(self, canvas_id: str) -> list[str]:
        return sorted(await self.org_ids(canvas_id))

    def revoke_invite(self, canvas_id: str, invite_id: str, orgs: Iterable[str]) -> None:
        """An invite was revoked: its sockets in draft spaces close too, on every node."""
        payload = control.encode(control.InviteRevoked(invite_id))
        for org in orgs:
            doc_id = draft_id(canvas_id, org)
            self.broker.publish(doc_id, KIND_CONTROL, payload)
            room = self.rooms.get_loaded(doc_id)
            if room is not None:
                room.close_sessions_of_invite(invite_id)

    def close_participant(
        self, canvas_id: str, message: control.Control, code: int, orgs: Iterable[str]
    ) -> None:
        """A participant was removed or given another role: their sockets in every draft space
        of the canvas close too (``code`` as on the shared canvas), here and on every node."""
        for org in orgs:
            self.rooms.close_participant(draft_id(canvas_id, org), message, code)

    def withdraw_facilitator(
        self, canvas_id: str, orgs: Iterable[str], facilitator_invites: Iterable[str] = ()
    ) -> None:
        """facilitator_access was turned off: the facilitators' draft sockets close (those of
        the canvas's token, and those opened through facilitator invite links)."""
        orgs = list(orgs)
        for invite in (FACILITATOR_PASS, *facilitator_invites):
            self.revoke_invite(canvas_id, invite, orgs)

    async def delete_canvas(self, canvas_id: str, orgs: Iterable[str]) -> None:
        """The canvas was deleted (the store deleted its draft spaces with it): close them."""
        for org in orgs:
            doc_id = draft_id(canvas_id, org)
            self.broker.publish(doc_id, KIND_CONTROL, control.encode(control.CanvasDeleted()))
            await self.rooms.evict(doc_id, closecodes.NOT_FOUND, "canvas was deleted")


class DraftDoor:
    """The WebSocket door of draft spaces: ``/drafts/{canvas_id}?token=…[&org=…]`` (see ws.py).

    A stock y-websocket client opens it with ``new WebsocketProvider(base + '/drafts',
    canvasId, doc, { params: { token, org } })``; members may leave ``org`` out.
    """

    prefix = WS_PREFIX

    def __init__(self, spaces: DraftSpaces) -> None:
        self.spaces = spaces

    async def open(
        self, identity: Identity, canvas_id: str, scope: MutableMapping[str, Any]
    ) -> tuple[Rooms, Room, Identity]:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        org = (query.get("org") or [None])[0]
        if not canvas_id or "/" in canvas_id:
            raise _not_found("canvas not found")
        room, inside = await self.spaces.open(identity, canvas_id, org)
        return self.spaces.rooms, room, inside


__all__ = ["CanvasFrozen", "DraftDoor", "DraftSpaces", "RevealResult", "draft_id"]
