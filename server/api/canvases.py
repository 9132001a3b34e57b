"""Canvases over HTTP: create from a template, list, read as JSON, delete."""

from __future__ import annotations

import contextlib
import secrets
import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, Field, field_validator

from ..auth import TokenError
from ..canvas import templates
from ..canvas.export import doc_to_json
from ..session import ROLE_FACILITATOR, Identity
from ..store.base import CanvasNotFound, CanvasRecord
from .deps import Caller, canvas_caller, facilitator, operator_if_configured, services
from .errors import (
    BODY,
    FACILITATOR,
    NO_CANVAS,
    OPERATOR,
    PARTICIPANT,
    RATE_LIMITED,
    VALIDATION,
    JSONRoute,
    StrictIn,
    declare,
)

if TYPE_CHECKING:
    from ..services import Services

router = APIRouter(prefix="/api/canvases", tags=["canvases"], route_class=JSONRoute)

FACILITATOR_TOKEN_TTL_S = 30 * 24 * 3600


class OrgIn(StrictIn):
    name: str = Field(min_length=1, max_length=80)
    color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")


class CanvasIn(StrictIn):
    title: str = Field(min_length=1, max_length=200)
    template: str = Field(
        description=" | ".join(templates.TEMPLATES),
        json_schema_extra={"enum": list(templates.TEMPLATES)},
    )
    orgs: list[OrgIn] | None = Field(default=None, max_length=20)
    facilitator_name: str = Field(default="Facilitator", min_length=1, max_length=80)
    # Editors may change only their own organization's notes (default: on for partner co-creation).
    protect_notes: bool | None = None

    @field_validator("template")
    @classmethod
    def _known_template(cls, value: str) -> str:
        if value not in templates.TEMPLATES:
            raise ValueError(
                f"unknown template {value!r}; use one of {', '.join(templates.TEMPLATES)}"
            )
        return value


class OrgOut(BaseModel):
    id: str
    name: str
    color: str
    initials: str


class CanvasSummary(BaseModel):
    id: str
    title: str
    template: str
    created_at: float


class CanvasCreated(CanvasSummary):
    settings: dict[str, Any]
    orgs: list[OrgOut]
    facilitator_token: str


class CanvasDoc(CanvasSummary):
    settings: dict[str, Any]
    meta: dict[str, Any]
    blocks: dict[str, Any]
    notes: dict[str, Any]
    orgs: dict[str, Any]
    links: dict[str, Any] = {}  # fit links (canvas/fit.py)
    exchange: dict[str, Any] = {}  # the partners' value exchange
    overlaps: dict[str, Any] = {}  # the facilitator's complement/competition marks


def new_canvas_id() -> str:
    return secrets.token_urlsafe(9).replace("-", "x").replace("_", "y")


@router.post(
    "",
    status_code=201,
    response_model=CanvasCreated,
    dependencies=[Depends(operator_if_configured)],
    responses=declare(OPERATOR, BODY, RATE_LIMITED, s422="invalid body, e.g. an unknown template"),
)
async def create_canvas(body: CanvasIn, svc: Services = Depends(services)) -> CanvasCreated:
    raw_orgs = (
        [(o.name, o.color) for o in body.orgs]
        if body.orgs
        else templates.default_orgs(body.template)
    )
    orgs = templates.make_orgs(raw_orgs)
    protect = (
        body.protect_notes
        if body.protect_notes is not None
        else body.template == "partner-co-creation"
    )
    now = time.time()
    record = CanvasRecord(
        new_canvas_id(), body.title, body.template, now, {"protect_notes": protect}
    )
    update = templates.initial_update(body.title, body.template, orgs, protect, now)
    await svc.store.create_canvas(record, update)
    identity = Identity("u_facilitator_" + record.id, body.facilitator_name, "", ROLE_FACILITATOR)
    token = svc.tokens.issue(record.id, identity, FACILITATOR_TOKEN_TTL_S)
    return CanvasCreated(
        id=record.id,
        title=record.title,
        template=record.template,
        created_at=record.created_at,
        settings=record.settings,
        orgs=[
            OrgOut(id=o.id, name=o.name, color=o.color, initials=templates.initials(o.name))
            for o in orgs
        ],
        facilitator_token=token,
    )


@router.get(
    "",
    response_model=list[CanvasSummary],
    dependencies=[Depends(operator_if_configured)],
    responses=declare(OPERATOR),
)
async def list_canvases(svc: Services = Depends(services)) -> list[CanvasSummary]:
    return [
        CanvasSummary(id=r.id, title=r.title, template=r.template, created_at=r.created_at)
        for r in await svc.store.list_canvases()
    ]


@router.get(
    "/{canvas_id}", response_model=CanvasDoc, responses=declare(PARTICIPANT, NO_CANVAS, VALIDATION)
)
async def read_canvas(
    canvas_id: str, svc: Services = Depends(services), caller: Caller = Depends(canvas_caller)
) -> CanvasDoc:
    record = await svc.store.get_canvas(canvas_id)
    if record is None:
        raise HTTPException(404, "canvas not found")
    try:
        room = await svc.rooms.acquire(canvas_id)
    except CanvasNotFound:
        raise HTTPException(404, "canvas not found") from None
    try:
        content = doc_to_json(room.doc)
    finally:
        svc.rooms.release(room)
    return CanvasDoc(
        id=record.id,
        title=record.title,
        template=record.template,
        created_at=record.created_at,
        settings=record.settings,
        **content,
    )


@router.delete(
    "/{canvas_id}", status_code=204, responses=declare(FACILITATOR, NO_CANVAS, VALIDATION)
)
async def delete_canvas(
    canvas_id: str, svc: Services = Depends(services), caller: Caller = Depends(facilitator)
) -> Response:
    # Its draft spaces' sockets close too (the store deletes their documents with the canvas).
    orgs: list[str] = []
    if svc.drafts is not None:
        with contextlib.suppress(TokenError):  # no such canvas: answered 404 below
            orgs = await svc.drafts.org_list(canvas_id)
    if not await svc.store.delete_canvas(canvas_id):
        raise HTTPException(404, "canvas not found")
    await svc.rooms.delete_canvas(canvas_id)
    if svc.drafts is not None:
        await svc.drafts.delete_canvas(canvas_id, orgs)
    return Response(status_code=204)
