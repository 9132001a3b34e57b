"""Draft spaces over HTTP: how many drafts each organization has, who may open and reveal them,
and the reveal itself. Content of a draft space is never answered here: it travels only over
the draft space's own WebSocket door (server/drafts.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from .. import closecodes, drafts
from ..auth import TokenError
from ..closecodes import CloseSession
from ..session import ROLE_EDITOR, ROLE_FACILITATOR
from ..store.base import CanvasNotFound
from .deps import Caller, canvas_caller, facilitator, services
from .errors import (
    BODY,
    FACILITATOR,
    NO_CANVAS,
    PARTICIPANT,
    VALIDATION,
    ErrorOut,
    JSONRoute,
    StrictIn,
    declare,
    invalid,
)

if TYPE_CHECKING:
    from ..services import Services

router = APIRouter(
    prefix="/api/canvases/{canvas_id}/drafts", tags=["drafts"], route_class=JSONRoute
)


class DraftSettings(BaseModel):
    facilitator_access: bool = Field(
        description="the facilitator may open every organization's draft space"
    )
    self_publish: bool = Field(description="an organization's editors may reveal their own drafts")


class DraftSettingsIn(StrictIn):
    facilitator_access: bool | None = None
    self_publish: bool | None = None


class DraftsOut(BaseModel):
    settings: DraftSettings
    counts: dict[str, int] = Field(
        description="organization id -> number of drafts (every organization for the "
        "facilitator, the caller's own otherwise); numbers only, never content"
    )


class RevealIn(StrictIn):
    orgs: list[str] | None = Field(
        default=None,
        max_length=100,
        description="organizations whose drafts to reveal; omitted: every organization "
        "(the facilitator) or the caller's own (an editor, when self-publishing is allowed)",
    )
    note_ids: list[str] | None = Field(
        default=None, max_length=10000, description="only these drafts; omitted: all of them"
    )


class RevealOut(BaseModel):
    revealed: dict[str, list[str]] = Field(description="organization id -> note ids revealed")
    conflicts: list[str] = Field(
        description="drafts kept back: their id is another note's on the shared canvas"
    )
    count: int
    at: float


def _spaces(svc: Services) -> drafts.DraftSpaces:
    assert svc.drafts is not None
    return svc.drafts


def _settings_out(settings: dict[str, object]) -> DraftSettings:
    return DraftSettings(
        facilitator_access=bool(settings.get(drafts.FACILITATOR_ACCESS)),
        self_publish=bool(settings.get(drafts.SELF_PUBLISH)),
    )


async def _org_ids(spaces: drafts.DraftSpaces, canvas_id: str) -> set[str]:
    try:
        return await spaces.org_ids(canvas_id)
    except TokenError as exc:
        raise HTTPException(exc.status, exc.message) from None


STORE_DOWN = {503: {"model": ErrorOut, "description": "the store is unavailable; retry"}}


@router.get(
    "",
    response_model=DraftsOut,
    responses=declare(PARTICIPANT, NO_CANVAS, VALIDATION, STORE_DOWN),
)
async def draft_counts(
    canvas_id: str, svc: Services = Depends(services), caller: Caller = Depends(canvas_caller)
) -> DraftsOut:
    """Per-organization draft counts: the facilitator sees every organization's, a member
    their own organization's."""
    spaces = _spaces(svc)
    record = await svc.store.get_canvas(canvas_id)
    if record is None:
        raise HTTPException(404, "canvas not found")
    orgs = await _org_ids(spaces, canvas_id)
    if not caller.facilitator:
        assert caller.identity is not None
        own = caller.identity.org_id
        orgs = {own} if own in orgs else set()
    try:
        counts = await spaces.counts(canvas_id, orgs)
    except CanvasNotFound:
        raise HTTPException(404, "canvas not found") from None
    except CloseSession as exc:  # settling a draft space needed the store
        raise HTTPException(
            404 if exc.code == closecodes.NOT_FOUND else 503, "store unavailable"
        ) from None
    return DraftsOut(settings=_settings_out(record.settings), counts=counts)


@router.put(
    "/settings", response_model=DraftSettings, responses=declare(FACILITATOR, NO_CANVAS, BODY)
)
async def put_draft_settings(
    canvas_id: str,
    body: DraftSettingsIn,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> DraftSettings:
    """Whether the facilitator may open draft spaces, and whether organizations may reveal
    their own drafts. Fields left out keep their value. Turning facilitator access off closes
    the facilitator's open draft sockets (4410) on every node."""
    record = await svc.store.get_canvas(canvas_id)
    if record is None:
        raise HTTPException(404, "canvas not found")
    if body.facilitator_access is not None:
        record.settings[drafts.FACILITATOR_ACCESS] = body.facilitator_access
    if body.self_publish is not None:
        record.settings[drafts.SELF_PUBLISH] = body.self_publish
    try:
        await svc.store.update_canvas(record)
    except CanvasNotFound:
        raise HTTPException(404, "canvas not found") from None
    if body.facilitator_access is False:
        spaces = _spaces(svc)
        invites = [
            i.id for i in await svc.store.list_invites(canvas_id) if i.role == ROLE_FACILITATOR
        ]
        spaces.withdraw_facilitator(canvas_id, await _org_ids(spaces, canvas_id), invites)
    return _settings_out(record.settings)


@router.post(
    "/reveal",
    response_model=RevealOut,
    responses=declare(
        FACILITATOR,
        NO_CANVAS,
        BODY,
        STORE_DOWN,
        {409: {"model": ErrorOut, "description": "the canvas is frozen (unfreeze it first)"}},
        s403="token for another canvas, or not allowed to reveal these organizations' drafts "
        "(editors: only their own, and only when the canvas allows self-publishing)",
        s422="invalid body, or `orgs` names an organization the canvas does not have",
    ),
)
async def reveal(
    canvas_id: str,
    body: RevealIn,
    svc: Services = Depends(services),
    caller: Caller = Depends(canvas_caller),
) -> RevealOut:
    """Move drafts into the shared canvas with their ids, author and organization, as one
    update (all of it or none, on every node), then out of the draft spaces; an automatic
    version ("drafts revealed: …") keeps the canvas as the reveal left it. A frozen canvas
    refuses it (409) and the drafts stay private."""
    spaces = _spaces(svc)
    record = await svc.store.get_canvas(canvas_id)
    if record is None:
        raise HTTPException(404, "canvas not found")
    orgs = await _org_ids(spaces, canvas_id)
    for i, org in enumerate(body.orgs or ()):
        if org not in orgs:
            invalid(("body", "orgs", i), f"no organization {org!r} on this canvas")
    if caller.facilitator:
        chosen = sorted(set(body.orgs)) if body.orgs is not None else sorted(orgs)
    else:
        who = caller.identity
        assert who is not None
        if who.role != ROLE_EDITOR or who.org_id not in orgs:
            raise HTTPException(403, "only the facilitator or an organization's editors reveal")
        if not record.settings.get(drafts.SELF_PUBLISH):
            raise HTTPException(403, "the facilitator has not allowed organizations to publish")
        if body.orgs is not None and set(body.orgs) != {who.org_id}:
            raise HTTPException(403, "an organization reveals only its own drafts")
        chosen = [who.org_id]
    try:
        result = await spaces.reveal(canvas_id, chosen, body.note_ids, caller.identity)
    except CanvasNotFound:
        raise HTTPException(404, "canvas not found") from None
    except drafts.CanvasFrozen as exc:
        raise HTTPException(409, str(exc)) from None
    except TokenError as exc:
        raise HTTPException(exc.status, exc.message) from None
    except CloseSession as exc:  # the store failed for the shared canvas or a draft space
        if exc.code == closecodes.NOT_FOUND:
            raise HTTPException(404, "canvas not found") from None
        raise HTTPException(
            503, "the store is unavailable: nothing or all of the reveal is on the canvas; retry"
        ) from None
    return RevealOut(
        revealed=result.revealed, conflicts=result.conflicts, count=result.count, at=result.at
    )
