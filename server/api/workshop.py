# ruff: noqa: B008  (FastAPI dependencies are declared as argument defaults)
"""Running the workshop over HTTP: vote rounds and ballots, timers, the stage (freeze, gather,
spotlight, comment settings), lock all, and the server clock.

Every change here is written by the server into roots no session may write
(``SERVER_ROOTS``), after checking who asks; a frozen canvas refuses every one of them (409)
except unfreezing. Ballots are the exception to "everything is in the document": they stay in
the store until the round's results are revealed (server/workshop/rounds.py).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pycrdt import Doc, Map
from pydantic import BaseModel, Field, field_validator

from .. import versions
from ..canvas import edits
from ..room import Room
from ..store.base import AuditEntry, Ballot, CanvasNotFound
from ..workshop import rounds, stage, timers
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
    integral,
    invalid,
)

if TYPE_CHECKING:
    from ..services import Services

router = APIRouter(tags=["workshop"], route_class=JSONRoute)

FROZEN = {409: {"model": ErrorOut, "description": "the canvas is frozen (unfreeze it first)"}}
NO_ROUND = {404: {"model": ErrorOut, "description": "no such canvas, or no such round"}}
ROUND_CLOSED = {
    409: {"model": ErrorOut, "description": "the round is closed, or the canvas is frozen"}
}
VOTER = {
    **PARTICIPANT,
    403: {
        "model": ErrorOut,
        "description": "token for another canvas, a viewer, or the operator key (votes belong "
        "to a participant)",
    },
}


def now_ms() -> int:
    return int(time.time() * 1000)


# -- models -----------------------------------------------------------------------------------


class TimeOut(BaseModel):
    now_ms: int = Field(description="server time, epoch milliseconds")


class RoundIn(StrictIn):
    title: str = Field(default="Vote", min_length=1, max_length=120)
    blocks: list[str] = Field(
        default_factory=list, max_length=200, description="block ids; empty: the whole canvas"
    )
    dots: int = Field(ge=1, le=100, description="dots per participant")
    per_note: int = Field(default=1, ge=1, le=100, description="at most this many on one note")
    anonymous: bool = True
    visibility: Literal["hidden", "live"] = Field(
        default="hidden", description="hidden: results only when the round closes"
    )

    @field_validator("dots", "per_note", mode="before")
    @classmethod
    def _whole(cls, value: Any) -> Any:
        return integral(value)


class RoundOut(BaseModel):
    id: str
    title: str
    blocks: list[str]
    dots: int
    per_note: int
    anonymous: bool
    visibility: str
    status: str
    opened_at: int
    closed_at: int | None
    voters: int
    tally: dict[str, Any] | None = Field(description="the results, once the round is closed")
    live: dict[str, Any] | None = Field(
        default=None, description="a live round's results so far, while it is open"
    )


class BallotIn(StrictIn):
    dots: dict[str, int] = Field(
        max_length=500, description="note id -> dots; the whole ballot, replacing the last one"
    )


class BallotOut(BaseModel):
    round_id: str
    dots: dict[str, int]
    used: int
    budget: int
    per_note: int
    status: str


class TimerIn(StrictIn):
    action: Literal["start", "pause", "resume", "add", "stop"]
    seconds: float | None = Field(default=None, ge=-86400, le=86400)
    label: str | None = Field(default=None, max_length=120)


class TimerOut(BaseModel):
    id: str
    label: str
    state: str
    duration_ms: int
    ends_at: int | None
    paused_remaining: int | None
    remaining_ms: int
    now_ms: int


class GatherIn(StrictIn):
    """The facilitator's view: the canvas area on their screen (board units: x, y, w, h), which
    every client shows whole; ``zoom`` for clients that place a point and a scale instead."""

    x: float = Field(ge=-1e7, le=1e7)
    y: float = Field(ge=-1e7, le=1e7)
    w: float | None = Field(default=None, gt=0, le=1e7)
    h: float | None = Field(default=None, gt=0, le=1e7)
    zoom: float = Field(default=1.0, gt=0, le=100)


class SpotlightIn(StrictIn):
    block: str | None = Field(max_length=200)


class FreezeIn(StrictIn):
    frozen: bool


class SettingsIn(StrictIn):
    viewer_comments: bool | None = None
    protect_notes: bool | None = None


class LockAllIn(StrictIn):
    locked: bool


class StageOut(BaseModel):
    frozen: bool
    frozen_by: str
    frozen_at: int
    gather: dict[str, Any] | None
    spotlight: dict[str, Any] | None
    viewer_comments: bool
    protect_notes: bool


# -- helpers ----------------------------------------------------------------------------------


def _round_out(r: rounds.RoundState) -> RoundOut:
    return RoundOut(
        id=r.id,
        **r.config.as_dict(),
        status=r.status,
        opened_at=r.opened_at,
        closed_at=r.closed_at,
        voters=r.voters,
        tally=r.tally,
        live=r.live,
    )


def _stage_out(doc: Doc) -> StageOut:
    s = stage.plain(doc)
    protect = doc.get("meta", type=Map).get("protect_notes")
    return StageOut(
        frozen=s.get("frozen") is True,
        frozen_by=str(s.get("frozen_by", "")),
        frozen_at=int(s.get("frozen_at", 0) or 0),
        gather=s.get("gather") if isinstance(s.get("gather"), dict) else None,
        spotlight=s.get("spotlight") if isinstance(s.get("spotlight"), dict) else None,
        viewer_comments=s.get("viewer_comments") is True,
        protect_notes=protect is True,
    )


def _audit(
    canvas_id: str, caller: Caller, action: str, target: str, detail: str = ""
) -> AuditEntry:
    who = caller.identity
    return AuditEntry(
        canvas_id,
        time.time(),
        who.user_id if who else "operator",
        who.name if who else "Operator",
        who.org_id if who else "",
        action,
        target,
        detail,
    )


class _Canvas:
    """The loaded room of a canvas for one request (404 when there is none)."""

    def __init__(self, svc: Services, canvas_id: str) -> None:
        self.svc = svc
        self.canvas_id = canvas_id
        self.room: Room | None = None

    async def __aenter__(self) -> Room:
        try:
            self.room = await self.svc.rooms.acquire(self.canvas_id)
        except CanvasNotFound:
            raise HTTPException(404, "canvas not found") from None
        return self.room

    async def __aexit__(self, *exc: object) -> None:
        if self.room is not None:
            self.svc.rooms.release(self.room)


def _not_frozen(room: Room) -> None:
    if stage.is_frozen(room.doc):
        raise HTTPException(409, stage.FROZEN_REASON)


async def _write(
    room: Room, change: Callable[[Doc], None], audit: list[AuditEntry], *, frozen_ok: bool = False
) -> None:
    if not frozen_ok:
        _not_frozen(room)
    try:
        await room.apply_server_change(change, audit)
    except CanvasNotFound:
        raise HTTPException(404, "canvas not found") from None


def _org_names(doc: Doc) -> dict[str, str]:
    out: dict[str, str] = {}
    for oid, org in doc.get("orgs", type=Map).items():
        name = org.get("name") if isinstance(org, Map) else None
        out[oid] = name if isinstance(name, str) else oid
    return out


# -- server time ------------------------------------------------------------------------------


@router.get("/api/time", response_model=TimeOut)
async def server_time() -> TimeOut:
    """The server clock, so clients show the same remaining time whatever their own clock says
    (offset = now_ms - (sent + received) / 2)."""
    return TimeOut(now_ms=now_ms())


# -- vote rounds ------------------------------------------------------------------------------


@router.post(
    "/api/canvases/{canvas_id}/rounds",
    status_code=201,
    response_model=RoundOut,
    responses=declare(
        FACILITATOR, NO_CANVAS, BODY, FROZEN, s422="a field invalid, or a block the canvas lacks"
    ),
)
async def open_round(
    canvas_id: str,
    body: RoundIn,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> RoundOut:
    """Open a dot-voting round; participants then PUT their ballots."""
    config = rounds.RoundConfig(
        body.title,
        list(dict.fromkeys(body.blocks)),
        body.dots,
        body.per_note,
        body.anonymous,
        body.visibility,
    )
    if config.per_note > config.dots:
        invalid(("body", "per_note"), "per_note cannot exceed dots")
    round_id = secrets.token_urlsafe(6)
    async with _Canvas(svc, canvas_id) as room:
        _not_frozen(room)
        known = set(room.doc.get("blocks", type=Map).keys())
        for i, b in enumerate(config.blocks):
            if b not in known:
                invalid(("body", "blocks", i), f"no block {b!r} on this canvas")
        await svc.store.open_round(canvas_id, round_id, time.time())
        by = caller.identity.name if caller.identity else "Operator"
        await _write(
            room,
            lambda doc: rounds.write_open(doc, round_id, config, by, now_ms()),
            [_audit(canvas_id, caller, "open-round", round_id, config.title)],
        )
        state = rounds.read(room.doc, round_id)
    assert state is not None
    return _round_out(state)


@router.get(
    "/api/canvases/{canvas_id}/rounds",
    response_model=list[RoundOut],
    responses=declare(PARTICIPANT, NO_CANVAS, VALIDATION),
)
async def list_rounds(
    canvas_id: str, svc: Services = Depends(services), caller: Caller = Depends(canvas_caller)
) -> list[RoundOut]:
    """Every round, oldest first, with the tally of those revealed (as in the document)."""
    async with _Canvas(svc, canvas_id) as room:
        return [_round_out(r) for r in rounds.all_rounds(room.doc)]


async def _voter(caller: Caller) -> Any:
    who = caller.identity
    if who is None:
        raise HTTPException(403, "votes belong to a participant: use a participant's token")
    if not who.can_write:
        raise HTTPException(403, "viewers do not vote")
    return who


@router.put(
    "/api/canvases/{canvas_id}/rounds/{round_id}/ballot",
    response_model=BallotOut,
    responses=declare(
        VOTER,
        NO_ROUND,
        BODY,
        ROUND_CLOSED,
        s422="over the budget, over the per-note cap, or a note the round does not vote on "
        '(`loc` `["body", "dots", note_id]`)',
    ),
)
async def put_ballot(
    canvas_id: str,
    round_id: str,
    body: BallotIn,
    svc: Services = Depends(services),
    caller: Caller = Depends(canvas_caller),
) -> BallotOut:
    """Place or take back dots: the whole ballot, checked against the round, replaces the last.
    Only the caller's own ballot (from the token); nothing of it enters the document while the
    round's results are hidden."""
    who = await _voter(caller)
    async with _Canvas(svc, canvas_id) as room:
        _not_frozen(room)
        state = rounds.read(room.doc, round_id)
        if state is None:
            raise HTTPException(404, "no such round")
        if state.status != "open":
            raise HTTPException(409, "the round is closed")
        try:
            dots = rounds.check_ballot(room.doc, state.config, body.dots)
        except rounds.BallotError as exc:
            invalid(exc.where, str(exc))
        ballot = Ballot(canvas_id, round_id, who.user_id, who.name, who.org_id, dots, time.time())
        if not await svc.store.put_ballot(ballot):
            raise HTTPException(409, "the round is closed")
        ballots = await svc.store.list_ballots(canvas_id, round_id)
        names = _org_names(room.doc)
        # Written only if the round is still open here: a close on another node wins.
        await _write(
            room,
            lambda doc: _progress(doc, round_id, ballots, names),
            [_audit(canvas_id, caller, "ballot", round_id)],
            frozen_ok=True,
        )
    return BallotOut(
        round_id=round_id,
        dots=dots,
        used=sum(dots.values()),
        budget=state.config.dots,
        per_note=state.config.per_note,
        status="open",
    )


def _progress(doc: Doc, round_id: str, ballots: list[Ballot], names: dict[str, str]) -> None:
    state = rounds.read(doc, round_id)
    if state is not None and state.status == "open":
        rounds.write_progress(doc, round_id, ballots, names)


@router.get(
    "/api/canvases/{canvas_id}/rounds/{round_id}/ballot",
    response_model=BallotOut,
    responses=declare(VOTER, NO_ROUND, VALIDATION),
)
async def get_ballot(
    canvas_id: str,
    round_id: str,
    svc: Services = Depends(services),
    caller: Caller = Depends(canvas_caller),
) -> BallotOut:
    """The caller's own dots in this round (nobody else's)."""
    who = await _voter(caller)
    async with _Canvas(svc, canvas_id) as room:
        state = rounds.read(room.doc, round_id)
    if state is None:
        raise HTTPException(404, "no such round")
    ballot = await svc.store.get_ballot(canvas_id, round_id, who.user_id)
    dots = ballot.dots if ballot else {}
    return BallotOut(
        round_id=round_id,
        dots=dots,
        used=sum(dots.values()),
        budget=state.config.dots,
        per_note=state.config.per_note,
        status=state.status,
    )


@router.post(
    "/api/canvases/{canvas_id}/rounds/{round_id}/close",
    response_model=RoundOut,
    responses=declare(FACILITATOR, NO_ROUND, VALIDATION, FROZEN),
)
async def close_round(
    canvas_id: str,
    round_id: str,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> RoundOut:
    """Close the round (read-only from now on) and reveal its tally; closing again rewrites the
    same tally. The first close saves an automatic version ("vote round closed: <title>")."""
    async with _Canvas(svc, canvas_id) as room:
        _not_frozen(room)
        before = rounds.read(room.doc, round_id)
        if before is None:
            raise HTTPException(404, "no such round")
        closed = await svc.store.close_round(canvas_id, round_id, time.time())
        if closed is None:
            raise HTTPException(404, "no such round")
        ballots = closed.ballots
        names = _org_names(room.doc)
        await _write(
            room,
            lambda doc: rounds.write_close(doc, round_id, ballots, names, now_ms()),
            [_audit(canvas_id, caller, "close-round", round_id)],
        )
        # The first close of all, on any node (the store says: two facilitators closing at once
        # on two nodes both saw "open" in their documents): an automatic version of the result.
        if closed.first:
            title = before.config.title or round_id
            await versions.save_automatic(
                svc.store, canvas_id, room.doc, f"vote round closed: {title}"
            )
        state = rounds.read(room.doc, round_id)
    assert state is not None
    return _round_out(state)


# -- timers -----------------------------------------------------------------------------------


@router.put(
    "/api/canvases/{canvas_id}/timers/{timer_id}",
    response_model=TimerOut,
    responses=declare(
        FACILITATOR,
        NO_CANVAS,
        BODY,
        FROZEN,
        s422="a field invalid, or an action the timer's state does not allow "
        "(pause a timer that is not running, add to a stopped one)",
    ),
)
async def timer_action(
    canvas_id: str,
    timer_id: str,
    body: TimerIn,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> TimerOut:
    """start (seconds), pause, resume, add (seconds, may be negative), stop. The document then
    holds ``ends_at`` in server epoch ms for every client."""
    if not 1 <= len(timer_id) <= 64:
        invalid(("path", "timer_id"), "a timer id is 1 to 64 characters")
    out: list[timers.TimerState] = []
    at = now_ms()

    def change(doc: Doc) -> None:
        try:
            out.append(timers.act(doc, timer_id, body.action, body.seconds, body.label, at))
        except timers.TimerError as exc:
            invalid(("body", "action"), str(exc))

    async with _Canvas(svc, canvas_id) as room:
        await _write(room, change, [_audit(canvas_id, caller, f"timer-{body.action}", timer_id)])
    t = out[0]
    return TimerOut(id=timer_id, **t.as_dict(), remaining_ms=t.remaining(at), now_ms=at)


# -- the stage --------------------------------------------------------------------------------


@router.get(
    "/api/canvases/{canvas_id}/stage",
    response_model=StageOut,
    responses=declare(PARTICIPANT, NO_CANVAS, VALIDATION),
)
async def get_stage(
    canvas_id: str, svc: Services = Depends(services), caller: Caller = Depends(canvas_caller)
) -> StageOut:
    async with _Canvas(svc, canvas_id) as room:
        return _stage_out(room.doc)


@router.put(
    "/api/canvases/{canvas_id}/freeze",
    response_model=StageOut,
    responses=declare(FACILITATOR, NO_CANVAS, BODY),
)
async def freeze(
    canvas_id: str,
    body: FreezeIn,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> StageOut:
    """Frozen: every change from everyone is refused before it is applied, on every node, until
    unfrozen (it is kept in the document, so it survives restarts). Presence still works."""
    who = caller.identity
    async with _Canvas(svc, canvas_id) as room:
        await _write(
            room,
            lambda doc: stage.set_frozen(doc, body.frozen, who, now_ms()),
            [_audit(canvas_id, caller, "freeze" if body.frozen else "unfreeze", canvas_id)],
            frozen_ok=True,
        )
        return _stage_out(room.doc)


@router.post(
    "/api/canvases/{canvas_id}/gather",
    response_model=StageOut,
    responses=declare(FACILITATOR, NO_CANVAS, BODY, FROZEN),
)
async def gather(
    canvas_id: str,
    body: GatherIn,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> StageOut:
    """ "Bring everyone to me": every client moves its view to (x, y, zoom) and follows until
    its user moves away. Each call is a new summons (``seq``)."""
    view = body.model_dump(exclude_none=True)

    def change(doc: Doc) -> None:
        stage.gather(doc, caller.identity, view, now_ms())

    async with _Canvas(svc, canvas_id) as room:
        await _write(
            room,
            change,
            [_audit(canvas_id, caller, "gather", canvas_id)],
        )
        return _stage_out(room.doc)


@router.delete(
    "/api/canvases/{canvas_id}/gather",
    response_model=StageOut,
    responses=declare(FACILITATOR, NO_CANVAS, VALIDATION, FROZEN),
)
async def release(
    canvas_id: str, svc: Services = Depends(services), caller: Caller = Depends(facilitator)
) -> StageOut:
    """End the summons: clients stop following."""
    async with _Canvas(svc, canvas_id) as room:
        await _write(room, stage.release, [_audit(canvas_id, caller, "release", canvas_id)])
        return _stage_out(room.doc)


@router.put(
    "/api/canvases/{canvas_id}/spotlight",
    response_model=StageOut,
    responses=declare(FACILITATOR, NO_CANVAS, BODY, FROZEN, s422="no such block"),
)
async def spotlight(
    canvas_id: str,
    body: SpotlightIn,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> StageOut:
    """Spotlight one block for everyone (``null``: none)."""
    async with _Canvas(svc, canvas_id) as room:
        if body.block is not None and body.block not in room.doc.get("blocks", type=Map):
            invalid(("body", "block"), f"no block {body.block!r} on this canvas")
        await _write(
            room,
            lambda doc: stage.spotlight(doc, body.block, caller.identity, now_ms()),
            [_audit(canvas_id, caller, "spotlight", body.block or "")],
        )
        return _stage_out(room.doc)


@router.patch(
    "/api/canvases/{canvas_id}/settings",
    response_model=StageOut,
    responses=declare(FACILITATOR, NO_CANVAS, BODY, FROZEN),
)
async def settings(
    canvas_id: str,
    body: SettingsIn,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> StageOut:
    """Workshop settings: viewers may comment; partners protect their notes."""
    record = await svc.store.get_canvas(canvas_id)
    if record is None:
        raise HTTPException(404, "canvas not found")

    def change(doc: Doc) -> None:
        if body.viewer_comments is not None:
            stage.set_viewer_comments(doc, body.viewer_comments)
        if body.protect_notes is not None:
            doc.get("meta", type=Map)["protect_notes"] = body.protect_notes

    detail = ",".join(f"{k}={v}" for k, v in body.model_dump(exclude_none=True).items())
    async with _Canvas(svc, canvas_id) as room:
        await _write(room, change, [_audit(canvas_id, caller, "settings", canvas_id, detail)])
        if body.protect_notes is not None:
            record.settings = {**record.settings, "protect_notes": body.protect_notes}
            await svc.store.update_canvas(record)
        return _stage_out(room.doc)


@router.put(
    "/api/canvases/{canvas_id}/locks",
    response_model=StageOut,
    responses=declare(FACILITATOR, NO_CANVAS, BODY, FROZEN),
)
async def lock_all(
    canvas_id: str,
    body: LockAllIn,
    svc: Services = Depends(services),
    caller: Caller = Depends(facilitator),
) -> StageOut:
    """Lock (or unlock) every block at once: editors then change no note anywhere."""
    by = (caller.identity.name if caller.identity else "Operator") if body.locked else ""
    async with _Canvas(svc, canvas_id) as room:
        await _write(
            room,
            lambda doc: edits.lock_all(doc, by),
            [_audit(canvas_id, caller, "lock-all" if body.locked else "unlock-all", canvas_id)],
        )
        return _stage_out(room.doc)
