# ruff: noqa: B008  (FastAPI dependencies are declared as argument defaults)
"""The contribution map over HTTP: ``GET /api/canvases/{id}/contribution``.

Any participant of the canvas may read it (viewers too: it says nothing the board does not show).
The answer is :func:`server.canvas.contribution.contribution_map` of the live document, so it is
what the board shows at this moment, on whichever node answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from ..canvas.contribution import contribution_map
from ..canvas.export import doc_to_json
from ..store.base import CanvasNotFound
from .deps import Caller, canvas_caller, require_canvas, services
from .errors import NO_CANVAS, PARTICIPANT, VALIDATION, JSONRoute, declare

if TYPE_CHECKING:
    from ..services import Services

router = APIRouter(prefix="/api/canvases", tags=["contribution"], route_class=JSONRoute)


class Column(BaseModel):
    id: str = Field(description='an organization id; "" for notes of no organization')
    name: str
    color: str


class Cell(BaseModel):
    note: str = Field(description="the partner's note that addresses the row")
    text: str
    link: str = Field(description="the fit link's id")
    kind: str = Field(description="relieves | creates | helps-with | provides | performs")
    strength: Literal["essential", "nice-to-have"]


class Row(BaseModel):
    note: str = Field(description="the customer job, pain or gain (or key resource / activity)")
    kind: str
    block: str
    text: str
    votes: int
    cells: dict[str, list[Cell]] = Field(description="organization id -> its notes addressing it")
    orgs: list[str] = Field(description="organizations addressing the row, in column order")
    essential: bool = Field(description="at least one essential link addresses it")
    status: Literal["gap", "single", "overlap"]
    overlap: Literal["complement", "competition"] | None = Field(
        description="the facilitator's mark of an overlap (document root `overlaps`)"
    )


class Overlap(BaseModel):
    note: str
    orgs: list[str]
    mark: Literal["complement", "competition"] | None


class Coverage(BaseModel):
    kind: str
    total: int
    addressed: int
    essential_single: int = Field(description="addressed essentially by only one partner")
    sentence: str


class Partner(BaseModel):
    org: str
    name: str
    rows: list[str] = Field(description="rows it addresses")
    notes: list[str] = Field(description="its notes linked to rows")
    essential: int = Field(description="its essential links")
    sole: list[str] = Field(description="rows only it addresses: lost without it")
    sentence: str


class Arrow(BaseModel):
    id: str
    from_org: str
    to: str = Field(description='an organization id or "customer"')
    kind: Literal["product", "service", "data", "money", "referral", "support"]
    note: str


class ContributionMap(BaseModel):
    organizations: list[Column]
    rows: list[Row]
    gaps: list[str] = Field(description="rows no partner addresses, most voted first")
    overlaps: list[Overlap]
    coverage: list[Coverage]
    partners: list[Partner]
    exchange: list[Arrow] = Field(description="the partners' value exchange (valid arrows)")


@router.get(
    "/{canvas_id}/contribution",
    response_model=ContributionMap,
    responses=declare(PARTICIPANT, NO_CANVAS, VALIDATION),
)
async def read_contribution(
    canvas_id: str, svc: Services = Depends(services), caller: Caller = Depends(canvas_caller)
) -> ContributionMap:
    """One row per customer job, pain and gain, one column per organization; gaps, overlaps,
    coverage, each partner's contribution and the value exchange."""
    await require_canvas(svc, canvas_id)
    try:
        room = await svc.rooms.acquire(canvas_id)
    except CanvasNotFound:
        raise HTTPException(404, "canvas not found") from None
    try:
        content = doc_to_json(room.doc)
    finally:
        svc.rooms.release(room)
    return ContributionMap.model_validate(contribution_map(content))
