# ruff: noqa: B008  (FastAPI dependencies are declared as argument defaults)
"""The facilitator's console over HTTP: who is here (online now, last seen), change a
participant's role, remove one, and the audit trail as a readable timeline filtered by
organization.

Role changes and removals are kept in the store and checked at every door (WebSocket and
HTTP, ``Services.current_identity``), so they hold against tokens already issued; the
participant's open sockets close on every node (control messages through the broker), on the
shared canvas and in its organizations' draft spaces alike: 4412 after a role change
(reconnecting gives the new role), 4403 after removal.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, HTTPException, Query
from pycrdt import Map
from pydantic import BaseModel, Field

from .. import closecodes, control
from ..auth import TokenError
from ..session import ROLES
from ..store.base import AuditEntry, CanvasNotFound, Participant
from .deps import Caller, facilitator, require_canvas, services
from .errors import BODY, FACILITATOR, NO_CANVAS, VALIDATION, ErrorOut, JSONRoute, StrictIn, declare

if TYPE_CHECKING:
    from ..services import Services

router = APIRouter(tags=["console"], route_class=JSONRoute)

NO_PARTICIPANT = {404: {"model": ErrorOut, "description": "no such canvas, or no such participant"}}

# How the timeline says what happened (action -> verb); others are shown as they are.
VERBS = {
    "create": "created note",
    "edit": "edited note",
    "move": "moved note",
    "delete": "deleted note",
    "vote": "voted on note",
    "refused": "was refused a change to",
    "lock": "locked block",
    "unlock": "unlocked block",
    "add-org": "added organization",
    "comment": "commented",
    "uncomment": "removed comment",
    "resolve": "resolved comment",
    "reopen": "reopened comment",
    "open-round": "opened vote round",
    "close-round": "closed vote round",
    "ballot": "placed dots in round",
    "freeze": "froze the canvas",
    "unfreeze": "unfroze the canvas",
    "gather": "brought everyone to their view",
    "release": "let everyone move freely",
    "lock-all": "locked every block",
    "unlock-all": "unlocked every block",
    "settings": "changed the settings",
    "role": "changed the role of",
    "remove": "removed participant",
}


async def _canvas_orgs(svc: Services, canvas_id: str) -> list[str]:
    assert svc.drafts is not None
    try:
        return await svc.drafts.org_list(canvas_id)
    except TokenError as exc:
        raise HTTPException(exc.status, exc.message) from None


class ConsoleParticipant(BaseModel):
    user_id: str
    name: str
    org_id: str
    org_name: str
    role: str
    invite_id: str | None
    joined_at: float
    online: bool
    last_seen: float | None = Field(description="now if online, else when a socket last closed")
    removed: bool


class RoleIn(StrictIn):
    role: str = Field(pattern="^(" + "|".join(ROLES) + ")$")


class TimelineEntry(BaseModel):
    at: float
    user_id: str
    user_name: str
    org_id: str
    org_name: str
    action: str
    target: str
    detail: str
    text: str = Field(description="the entry as a sentence, e.g. 'Ann (Alpha) moved note n1'")


async def _room_view(svc: Services, canvas_id: str) -> tuple[dict[str, str], set[str]]:
    """Organization names and who is online, from the loaded room."""
    try:
        room = await svc.rooms.acquire(canvas_id)
    except CanvasNotFound:
        raise HTTPException(404, "canvas not found") from None
    try:
        names = {}
        for oid, org in room.doc.get("orgs", type=Map).items():
            name = org.get("name") if isinstance(org, Map) else None
            names[oid] = name if isinstance(name, str) else oid
        online = room.presence.online_users() | {s.identity.user_id for s in room.sessions}
        return names, online
    finally:
        svc.rooms.release(room)


def _out(p: Participant, names: dict[str, str], online: set[str], now: float) -> ConsoleParticipant:
    here = p.user_id in online and not p.removed
    return ConsoleParticipant(
        user_id=p.user_id,
        name=p.name,
        org_id=p.org_id,
        org_name=names.get(p.org_id, p.org_id),
        role=p.role,
        invite_id=p.invite_id,
        joined_at=p.joined_at,
        online=here,
        last_seen=now if here else p.last_seen,
        removed=p.removed,
    )


@router.get(
    "/api/canvases/{canvas_id}/console/participants",
    response_model=list[ConsoleParticipant],
    responses=declare(FACILITATOR, NO_CANVAS, VALIDATION),
)
async def participants(
    canvas_id: str, svc: Services = Depends(services), caller: Caller = Depends(facilitator)
) -> list[ConsoleParticipant]:
    """Everyone who joined by link: organization, role, online now, last seen, removed."""
    await require_canvas(svc, canvas_id)
    names, online = await _room_view(svc, canvas_id)
    now = time.time()
    return [_out(p, names, online, now) for p in await svc.store.list_participants(canvas_id)]


def _who(caller: Caller) -> tuple[str, str, str]:
    who = caller.identity
    return (who.user_id, who.name, who.org_id) if who else ("operator", "Operator", "")


async def _change(
    svc: Services,
    canvas_id: str,
    user_id: str,
    caller: Caller,
    *,
    role: str | None = None,
    removed: bool | None = None,
) -> ConsoleParticipant:
    await require_canvas(svc, canvas_id)
    if caller.identity is not None and caller.identity.user_id == user_id:
        raise HTTPException(409, "a facilitator cannot change or remove themselves")
    uid, name, org = _who(caller)
    action, detail = ("remove", "") if removed else ("role", role or "")
    entry = AuditEntry(canvas_id, time.time(), uid, name, org, action, user_id, detail)
    p = await svc.store.update_participant(
        canvas_id, user_id, role=role, removed=removed, audit=entry
    )
    if p is None:
        raise HTTPException(404, "no such participant")
    message: control.Control
    if removed:
        message, code = control.ParticipantRemoved(user_id), closecodes.FORBIDDEN
    else:
        message, code = control.RoleChanged(user_id), closecodes.ROLE_CHANGED
    svc.rooms.close_participant(canvas_id, message, code)
    if svc.drafts is not None:  # their sockets in draft spaces close too, on every node
        svc.drafts.close_participant(canvas_id, message, code, await _canvas_orgs(svc, canvas_id))
    names, online = await _room_view(svc, canvas_id)
    return _out(p, names, online - {user_id}, time.time())


CHANGE_STATUSES = declare(
    FACILITATOR,
    NO_PARTICIPANT,
    BODY,
    {409: {"model": ErrorOut, "description": "the caller is that participant"}},
)


@router.put(
    "/api/canvases/{canvas_id}/participants/{user_id}/role",
    response_model=ConsoleParticipant,
    responses=CHANGE_STATUSES,
)
async def change_role(
    canvas_id: str,
    user_id: str,
    body: RoleIn,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> ConsoleParticipant:
    """Give a participant another role: at once on every door (their tokens now stand for it);
    their sockets close with 4412 and reconnect with it."""
    return await _change(svc, canvas_id, user_id, caller, role=body.role)


@router.delete(
    "/api/canvases/{canvas_id}/participants/{user_id}",
    response_model=ConsoleParticipant,
    responses=declare(
        FACILITATOR,
        NO_PARTICIPANT,
        VALIDATION,
        {409: {"model": ErrorOut, "description": "the caller is that participant"}},
    ),
)
async def remove(
    canvas_id: str,
    user_id: str,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> ConsoleParticipant:
    """Remove a participant: their sockets close (4403) on every node and their tokens open
    nothing of this canvas any more. Their notes stay."""
    return await _change(svc, canvas_id, user_id, caller, removed=True)


@router.get(
    "/api/canvases/{canvas_id}/console/timeline",
    response_model=list[TimelineEntry],
    responses=declare(FACILITATOR, NO_CANVAS, VALIDATION),
)
async def timeline(
    canvas_id: str,
    org: str | None = Query(None, max_length=80, description="only this organization's entries"),
    limit: int = Query(200, ge=1, le=1000),
    before: float | None = None,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> list[TimelineEntry]:
    """The audit trail, newest first, as sentences; filtered by organization. Filtering looks
    at the ``limit`` newest entries before ``before`` (page with the oldest ``at`` seen)."""
    await require_canvas(svc, canvas_id)
    names, _ = await _room_view(svc, canvas_id)
    out = []
    for a in await svc.store.list_audit(canvas_id, limit, before):
        if org is not None and a.org_id != org:
            continue
        org_name = names.get(a.org_id, a.org_id) if a.org_id else "facilitation"
        verb = VERBS.get(a.action, a.action)
        target = "" if a.target == canvas_id else a.target  # canvas-wide actions
        text = f"{a.user_name} ({org_name}) {verb} {target}".rstrip()
        if a.detail:
            text += f": {a.detail}"
        out.append(
            TimelineEntry(
                at=a.at,
                user_id=a.user_id,
                user_name=a.user_name,
                org_id=a.org_id,
                org_name=org_name,
                action=a.action,
                target=a.target,
                detail=a.detail,
                text=text,
            )
        )
    return out
