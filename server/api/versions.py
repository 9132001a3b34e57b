# ruff: noqa: B008  (FastAPI dependencies are declared as argument defaults)
"""Named versions over HTTP: save (facilitator), list and read (any participant), delete,
restore in place or as a new canvas (facilitator), and the diff between two versions or a
version and now, grouped by organization (any participant).

A version is a state of the shared canvas, which holds nothing private (drafts live in
documents of their own), so every participant reads the same versions and diffs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field

from .. import versions
from ..exports import board_from_json
from ..room import Room
from ..session import ROLE_FACILITATOR, Identity
from ..store.base import SERVER_OWNER, CanvasNotFound, Version, VersionLimit
from ..workshop import stage
from .canvases import FACILITATOR_TOKEN_TTL_S, new_canvas_id
from .deps import Caller, canvas_caller, facilitator, require_canvas, services
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
)
from .exports import canvas_content

if TYPE_CHECKING:
    from ..services import Services

router = APIRouter(tags=["versions"], route_class=JSONRoute)

NO_VERSION = {404: {"model": ErrorOut, "description": "no such canvas, or no such version of it"}}
FULL = {
    409: {
        "model": ErrorOut,
        "description": "the canvas keeps its maximum of versions, all saved on purpose: "
        "delete one first",
    }
}


class VersionIn(StrictIn):
    name: str = Field(min_length=1, max_length=120)


class VersionOut(BaseModel):
    id: int
    name: str
    created_at: float
    created_by: str
    automatic: bool  # saved by the server (a vote round closed, before a restore, …)
    size: int


class VersionContent(VersionOut):
    meta: dict[str, Any]
    blocks: dict[str, Any]
    notes: dict[str, Any]
    orgs: dict[str, Any]


class Restored(BaseModel):
    restored: int
    changed: bool  # False: the canvas already equalled the version
    backup: VersionOut  # the automatic version holding what the restore replaced


class CopyIn(StrictIn):
    title: str | None = Field(default=None, min_length=1, max_length=200)


class Copied(BaseModel):
    id: str
    title: str
    template: str
    created_at: float
    facilitator_token: str


class DiffOut(BaseModel):
    base: int
    target: int | None  # None: the canvas now
    orgs: list[dict[str, Any]]
    totals: dict[str, int]
    rounds_closed: list[dict[str, Any]] = Field(
        default_factory=list, description="vote rounds closed in between, with their ranking"
    )


def _out(v: Version) -> VersionOut:
    return VersionOut(
        id=v.id,
        name=v.name,
        created_at=v.created_at,
        created_by=v.created_by,
        automatic=v.created_by == SERVER_OWNER,
        size=v.size,
    )


@asynccontextmanager
async def held_room(svc: Services, canvas_id: str) -> AsyncIterator[Room]:
    """The canvas's loaded room for the length of a request (404 when there is no canvas)."""
    try:
        room = await svc.rooms.acquire(canvas_id)
    except CanvasNotFound:
        raise HTTPException(404, "canvas not found") from None
    try:
        yield room
    finally:
        svc.rooms.release(room)


def _who(caller: Caller) -> versions.Who:
    i = caller.identity
    return (
        versions.Who(i.user_id, i.name, i.org_id) if i else versions.Who("operator", "Operator", "")
    )


async def _listed(svc: Services, canvas_id: str, version_id: int) -> Version:
    for v in await svc.store.list_versions(canvas_id):
        if v.id == version_id:
            return v
    raise HTTPException(404, "no such version of this canvas")


@router.post(
    "/api/canvases/{canvas_id}/versions",
    status_code=201,
    response_model=VersionOut,
    responses=declare(FACILITATOR, NO_CANVAS, BODY, FULL),
)
async def save_version(
    canvas_id: str,
    body: VersionIn,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> VersionOut:
    """Save the canvas as it is now under a name ("after round 1")."""
    await require_canvas(svc, canvas_id)
    try:
        async with held_room(svc, canvas_id) as room:
            return _out(await versions.save(svc.store, room, body.name, _who(caller)))
    except VersionLimit as exc:
        raise HTTPException(409, str(exc)) from None
    except CanvasNotFound:
        raise HTTPException(404, "canvas not found") from None


@router.get(
    "/api/canvases/{canvas_id}/versions",
    response_model=list[VersionOut],
    responses=declare(PARTICIPANT, NO_CANVAS, VALIDATION),
)
async def list_versions(
    canvas_id: str, svc: Services = Depends(services), caller: Caller = Depends(canvas_caller)
) -> list[VersionOut]:
    """Newest first."""
    await require_canvas(svc, canvas_id)
    return [_out(v) for v in await svc.store.list_versions(canvas_id)]


@router.get(
    "/api/canvases/{canvas_id}/versions/{version_id}",
    response_model=VersionContent,
    responses=declare(PARTICIPANT, NO_VERSION, VALIDATION),
)
async def read_version(
    canvas_id: str,
    version_id: int = Path(ge=1, le=2**62),
    svc: Services = Depends(services),
    caller: Caller = Depends(canvas_caller),
) -> VersionContent:
    """The version's content, read-only (the exports take ``?version=`` for files of it)."""
    await require_canvas(svc, canvas_id)
    v = await _listed(svc, canvas_id, version_id)
    raw = board_from_json(await canvas_content(svc, canvas_id, version_id)).raw
    return VersionContent(
        **_out(v).model_dump(),
        meta=raw["meta"],
        blocks=raw["blocks"],
        notes=raw["notes"],
        orgs=raw["orgs"],
    )


@router.delete(
    "/api/canvases/{canvas_id}/versions/{version_id}",
    status_code=204,
    responses=declare(FACILITATOR, NO_VERSION, VALIDATION),
)
async def delete_version(
    canvas_id: str,
    version_id: int = Path(ge=1, le=2**62),
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> Response:
    await require_canvas(svc, canvas_id)
    if not await svc.store.delete_version(canvas_id, version_id):
        raise HTTPException(404, "no such version of this canvas")
    return Response(status_code=204)


@router.post(
    "/api/canvases/{canvas_id}/versions/{version_id}/restore",
    response_model=Restored,
    responses=declare(
        FACILITATOR,
        NO_VERSION,
        VALIDATION,
        FULL,
        s409="the canvas keeps its maximum of versions, all saved on purpose, so what the "
        "restore would replace could not be kept: delete one first (nothing was changed); "
        "or the canvas is frozen",
    ),
)
async def restore_version(
    canvas_id: str,
    version_id: int = Path(ge=1, le=2**62),
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> Restored:
    """Make the canvas equal the version, as a new change everyone sees at once. What it
    replaces is saved first as an automatic version (``backup``), so nothing is lost."""
    await require_canvas(svc, canvas_id)
    try:
        async with held_room(svc, canvas_id) as room:
            if stage.is_frozen(room.doc):
                raise HTTPException(409, stage.FROZEN_REASON)
            done = await versions.restore_in_place(svc.store, room, version_id, _who(caller))
    except versions.VersionNotFound:
        raise HTTPException(404, "no such version of this canvas") from None
    except VersionLimit as exc:
        raise HTTPException(409, f"{exc}; nothing was restored") from None
    except CanvasNotFound:
        raise HTTPException(404, "canvas not found") from None
    return Restored(
        restored=version_id,
        changed=done.changed,
        backup=_out(done.version),
    )


@router.post(
    "/api/canvases/{canvas_id}/versions/{version_id}/copy",
    status_code=201,
    response_model=Copied,
    responses=declare(
        FACILITATOR,
        NO_VERSION,
        BODY,
        s403="token for another canvas, a role that may not do this, or (with "
        "COCANVAS_ADMIN_TOKEN set) not the operator, who alone creates canvases",
    ),
)
async def copy_version(
    canvas_id: str,
    version_id: int = Path(ge=1, le=2**62),
    body: CopyIn | None = None,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> Copied:
    """Restore the version as a new canvas (its content, no history; the original's template
    and settings, none of its invites). The caller becomes the new canvas's facilitator."""
    if svc.settings.admin_token and not caller.operator:
        raise HTTPException(403, "creating a canvas needs the operator key")
    await require_canvas(svc, canvas_id)
    try:
        record = await versions.restore_as_new(
            svc.store, canvas_id, version_id, new_canvas_id(), body.title if body else None
        )
    except versions.VersionNotFound:
        raise HTTPException(404, "no such version of this canvas") from None
    except CanvasNotFound:
        raise HTTPException(404, "canvas not found") from None
    who = caller.identity
    identity = Identity(
        "u_facilitator_" + record.id, who.name if who else "Facilitator", "", ROLE_FACILITATOR
    )
    return Copied(
        id=record.id,
        title=record.title,
        template=record.template,
        created_at=record.created_at,
        facilitator_token=svc.tokens.issue(record.id, identity, FACILITATOR_TOKEN_TTL_S),
    )


@router.get(
    "/api/canvases/{canvas_id}/versions/{version_id}/diff",
    response_model=DiffOut,
    responses=declare(PARTICIPANT, NO_VERSION, VALIDATION),
)
async def diff(
    canvas_id: str,
    version_id: int = Path(ge=1, le=2**62),
    to: int | None = Query(
        default=None, ge=1, le=2**62, description="the version to compare to (default: now)"
    ),
    svc: Services = Depends(services),
    caller: Caller = Depends(canvas_caller),
) -> DiffOut:
    """From this version to version ``to`` (or the canvas now): notes added, removed,
    edited, moved, votes and links changed, by organization."""
    await require_canvas(svc, canvas_id)
    try:
        async with held_room(svc, canvas_id) as room:
            out = await versions.compare(svc.store, room, version_id, to)
    except versions.VersionNotFound:
        raise HTTPException(404, "no such version of this canvas") from None
    except CanvasNotFound:
        raise HTTPException(404, "canvas not found") from None
    return DiffOut(base=version_id, target=to, **out)
