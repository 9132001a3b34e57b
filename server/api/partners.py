# ruff: noqa: B008  (FastAPI dependencies are declared as argument defaults)
"""Partner organizations over HTTP: organizations, invite links, participants, audit trail.

An invite link is a capability for one organization and role; redeeming it mints a token whose
expiry never outlives the link. Revoking a link closes, within the second, every socket opened
with it on every node (through the broker). Creating canvases and redeeming links are the two
doors anyone may knock on, so both are rate limited per client address.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pycrdt import Doc
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..auth import new_user_id
from ..canvas import edits, templates
from ..limits import AddressBuckets
from ..session import ROLE_EDITOR, ROLES, Identity
from ..store.base import AuditEntry, CanvasNotFound, Invite, Participant
from ..workshop import stage
from .deps import Caller, facilitator, require_canvas, services
from .errors import (
    BODY,
    FACILITATOR,
    NO_CANVAS,
    RATE_LIMITED,
    VALIDATION,
    ErrorOut,
    JSONRoute,
    StrictIn,
    declare,
    integral,
    invalid,
)

if TYPE_CHECKING:
    from ..services import Services

router = APIRouter(tags=["partners"], route_class=JSONRoute)

MAX_INVITE_TTL_S = 90 * 24 * 3600


# -- models -----------------------------------------------------------------------------------


class OrgIn(StrictIn):
    name: str = Field(min_length=1, max_length=80)
    color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")


class OrgOut(BaseModel):
    id: str
    name: str
    color: str
    initials: str
    blocks: list[str]


NO_ORG = "org_id is required: an invite names one of this canvas's organizations"


class InviteIn(StrictIn):
    # Required and non-empty: an invite for organization "" would make its holders members of the
    # facilitator's own organization, and so able to edit the facilitator's protected notes.
    org_id: str = Field(
        max_length=80,
        description="one of the canvas's organizations (ids in the document's `orgs` map)",
        json_schema_extra={"minLength": 1},
    )
    role: str = Field(pattern="^(" + "|".join(ROLES) + ")$")
    expires_in_s: float = Field(gt=0, le=MAX_INVITE_TTL_S)
    max_uses: int | None = Field(default=None, ge=1, le=100_000)

    @field_validator("org_id")
    @classmethod
    def _org_named(cls, value: str) -> str:
        if not value:
            raise ValueError(NO_ORG)
        return value

    @field_validator("max_uses", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        return integral(value)


class InviteOut(BaseModel):
    id: str
    url: str
    org_id: str
    role: str
    created_at: float
    expires_at: float
    max_uses: int | None
    uses: int
    revoked: bool
    expired: bool


class RedeemIn(StrictIn):
    name: str = Field(min_length=1, max_length=80)


class Redeemed(BaseModel):
    token: str
    canvas_id: str
    user_id: str
    name: str
    org_id: str
    role: str
    expires_at: float


class ParticipantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: str
    name: str
    org_id: str
    role: str
    invite_id: str | None
    joined_at: float


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: float
    user_id: str
    user_name: str
    org_id: str
    action: str
    target: str
    detail: str


def _invite_out(inv: Invite, now: float | None = None) -> InviteOut:
    now = time.time() if now is None else now
    return InviteOut(
        id=inv.id,
        url=f"/i/{inv.id}",
        org_id=inv.org_id,
        role=inv.role,
        created_at=inv.created_at,
        expires_at=inv.expires_at,
        max_uses=inv.max_uses,
        uses=inv.uses,
        revoked=inv.revoked,
        expired=inv.expires_at <= now,
    )


# -- writing to a live canvas from HTTP -------------------------------------------------------


async def apply_server_change(
    svc: Services, canvas_id: str, change: Callable[[Doc], None], audit: Sequence[AuditEntry] = ()
) -> bytes | None:
    """Change a canvas as the server: durable first, then to local sessions and other nodes.

    Written on the room's own document (the policy gate gives it a 32-bit client id), so the
    change is ordered after everything the room has seen, exactly like a compensation.
    """
    room = await svc.rooms.acquire(canvas_id)
    try:
        if stage.is_frozen(room.doc):
            raise HTTPException(409, stage.FROZEN_REASON)
        return await room.apply_server_change(change, audit)
    finally:
        svc.rooms.release(room)


# -- organizations ----------------------------------------------------------------------------


@router.post(
    "/api/canvases/{canvas_id}/orgs",
    status_code=201,
    response_model=OrgOut,
    responses=declare(
        FACILITATOR,
        NO_CANVAS,
        BODY,
        {409: {"model": ErrorOut, "description": "the canvas is frozen"}},
    ),
)
async def add_org(
    canvas_id: str,
    body: OrgIn,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> OrgOut:
    record = await svc.store.get_canvas(canvas_id)
    if record is None:
        raise HTTPException(404, "canvas not found")
    added: list[edits.AddedOrg] = []

    def change(doc: Doc) -> None:
        added.append(edits.add_org(doc, body.name, body.color, record.template))

    who = caller.identity
    audit = [
        AuditEntry(
            canvas_id,
            time.time(),
            who.user_id if who else "operator",
            who.name if who else "Operator",
            who.org_id if who else "",
            "add-org",
            templates.slug(body.name),
            body.name,
        )
    ]
    try:
        await apply_server_change(svc, canvas_id, change, audit)
    except CanvasNotFound:
        raise HTTPException(404, "canvas not found") from None
    org = added[0]
    return OrgOut(
        id=org.id, name=org.name, color=org.color, initials=org.initials, blocks=org.blocks
    )


# -- participants and audit -------------------------------------------------------------------


@router.get(
    "/api/canvases/{canvas_id}/participants",
    response_model=list[ParticipantOut],
    responses=declare(FACILITATOR, NO_CANVAS, VALIDATION),
)
async def list_participants(
    canvas_id: str, svc: Services = Depends(services), caller: Caller = Depends(facilitator)
) -> list[ParticipantOut]:
    await require_canvas(svc, canvas_id)
    participants = await svc.store.list_participants(canvas_id)
    return [ParticipantOut.model_validate(p) for p in participants]


@router.get(
    "/api/canvases/{canvas_id}/audit",
    response_model=list[AuditOut],
    responses=declare(FACILITATOR, NO_CANVAS, VALIDATION),
)
async def list_audit(
    canvas_id: str,
    limit: int = Query(200, ge=1, le=1000),
    before: float | None = None,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> list[AuditOut]:
    """Newest first; page with ``before`` = the oldest ``at`` seen."""
    await require_canvas(svc, canvas_id)
    entries = await svc.store.list_audit(canvas_id, limit, before)
    return [AuditOut.model_validate(a) for a in entries]


# -- invites ----------------------------------------------------------------------------------


async def _canvas_orgs(svc: Services, canvas_id: str) -> set[str]:
    try:
        room = await svc.rooms.acquire(canvas_id)
    except CanvasNotFound:
        raise HTTPException(404, "canvas not found") from None
    try:
        return edits.org_ids(room.doc)
    finally:
        svc.rooms.release(room)


@router.post(
    "/api/canvases/{canvas_id}/invites",
    status_code=201,
    response_model=InviteOut,
    responses=declare(
        FACILITATOR,
        NO_CANVAS,
        BODY,
        s422="`org_id` missing, empty or not one of this canvas's organizations "
        '(`loc` `["body", "org_id"]`), or another field invalid',
    ),
)
async def create_invite(
    canvas_id: str,
    body: InviteIn,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> InviteOut:
    if body.org_id not in await _canvas_orgs(svc, canvas_id):
        invalid(("body", "org_id"), f"no organization {body.org_id!r} on this canvas")
    now = time.time()
    invite = Invite(
        id=secrets.token_urlsafe(18),
        canvas_id=canvas_id,
        org_id=body.org_id,
        role=body.role,
        created_at=now,
        expires_at=now + body.expires_in_s,
        created_by=caller.identity.user_id if caller.identity else "operator",
        max_uses=body.max_uses,
    )
    try:
        await svc.store.create_invite(invite)
    except CanvasNotFound:
        raise HTTPException(404, "canvas not found") from None
    return _invite_out(invite, now)


@router.get(
    "/api/canvases/{canvas_id}/invites",
    response_model=list[InviteOut],
    responses=declare(FACILITATOR, NO_CANVAS, VALIDATION),
)
async def list_invites(
    canvas_id: str, svc: Services = Depends(services), caller: Caller = Depends(facilitator)
) -> list[InviteOut]:
    await require_canvas(svc, canvas_id)
    now = time.time()
    return [_invite_out(i, now) for i in await svc.store.list_invites(canvas_id)]


@router.delete(
    "/api/canvases/{canvas_id}/invites/{invite_id}",
    response_model=InviteOut,
    responses=declare(
        FACILITATOR, VALIDATION, {404: {"model": ErrorOut, "description": "no such invite"}}
    ),
)
async def revoke_invite(
    canvas_id: str,
    invite_id: str,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> InviteOut:
    if not await svc.store.revoke_invite(canvas_id, invite_id):
        raise HTTPException(404, "invite not found")
    svc.rooms.revoke_invite(canvas_id, invite_id)
    if svc.drafts is not None:  # its sockets in draft spaces close too
        svc.drafts.revoke_invite(canvas_id, invite_id, await _canvas_orgs(svc, canvas_id))
    invite = await svc.store.get_invite(invite_id)
    assert invite is not None
    return _invite_out(invite)


@router.post(
    "/api/invites/{invite_id}/redeem",
    response_model=Redeemed,
    responses=declare(
        BODY,
        RATE_LIMITED,
        {
            404: {"model": ErrorOut, "description": "no such invite link"},
            410: {
                "model": ErrorOut,
                "description": "invite link revoked, expired or used up, or an editor link "
                "made without an organization",
            },
        },
    ),
)
async def redeem_invite(
    invite_id: str, body: RedeemIn, svc: Services = Depends(services)
) -> Redeemed:
    now = time.time()
    invite = await svc.store.redeem_invite(invite_id, now)
    if invite is None:
        known = await svc.store.get_invite(invite_id)
        if known is None:
            raise HTTPException(404, "invite not found")
        if known.revoked:
            raise HTTPException(410, "invite link revoked")
        if known.expires_at <= now:
            raise HTTPException(410, "invite link expired")
        raise HTTPException(410, "invite link used up")
    if not invite.org_id and invite.role == ROLE_EDITOR:
        # Made before invites had to name an organization: its holders would share the
        # facilitator's organization "" and so could edit the facilitator's protected notes.
        raise HTTPException(410, "invite link names no organization: ask for a new one")
    identity = Identity(new_user_id(), body.name, invite.org_id, invite.role, invite.id)
    # Tokens.issue floors now + ttl; from a whole second, the token never outlives the link.
    ttl = int(invite.expires_at) - now
    token = svc.tokens.issue(invite.canvas_id, identity, ttl, now)
    await svc.store.add_participant(
        Participant(
            identity.user_id,
            invite.canvas_id,
            body.name,
            invite.org_id,
            invite.role,
            invite.id,
            now,
        )
    )
    return Redeemed(
        token=token,
        canvas_id=invite.canvas_id,
        user_id=identity.user_id,
        name=body.name,
        org_id=invite.org_id,
        role=invite.role,
        expires_at=float(int(now + ttl)),
    )


# -- flood guard ------------------------------------------------------------------------------

_FLOOD_PATHS = re.compile(r"^/api/(canvases|invites/[^/]+/redeem)/?$")


def install_flood_guard(app: FastAPI, rate_per_s: float, burst_s: float = 5.0) -> AddressBuckets:
    """HTTP 429 for an address that floods the open doors (create canvas, redeem a link)."""
    buckets = AddressBuckets(rate_per_s, burst_s)

    @app.middleware("http")
    async def flood_guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.method == "POST" and _FLOOD_PATHS.match(request.url.path):
            address = request.client.host if request.client else "?"
            if not buckets.get(address).take():
                return JSONResponse(
                    {"detail": "too many requests"}, status_code=429, headers={"Retry-After": "1"}
                )
        return await call_next(request)

    return buckets
