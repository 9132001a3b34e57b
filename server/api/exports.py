# ruff: noqa: B008  (FastAPI dependencies are declared as argument defaults)
"""Exports over HTTP: ``GET /api/canvases/{id}/export.{json,md,csv,svg,png,pdf}``.

Any participant's token (facilitator, editor, viewer) may export what it can read; ``?version=``
exports a saved version instead of the canvas now (the read-only view of a version). The shared
canvas holds nothing private, so every reader gets the same shared content; an export of the
canvas now adds the reader's *own* organization's drafts (``DraftSpaces.readable_notes``:
members their organization's, the facilitator every organization's only while the canvas
gives them access to draft spaces), marked as drafts. A version's export has no drafts (they
are not part of a version). The files
are the pure functions of ``server/exports/``, so CI and the web client's menu get the same
bytes. Rendering a picture costs tens of milliseconds of CPU, so the rendered formats are rate
limited per client address (429) and run in a worker thread.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from .. import closecodes, versions
from ..auth import TokenError
from ..canvas.export import doc_to_json
from ..closecodes import CloseSession
from ..exports import FORMATS, export
from ..limits import AddressBuckets
from ..store.base import CanvasNotFound
from .deps import Caller, canvas_caller, require_canvas, services
from .errors import (
    NO_CANVAS,
    PARTICIPANT,
    RATE_LIMITED,
    VALIDATION,
    ErrorOut,
    JSONRoute,
    declare,
)

if TYPE_CHECKING:
    from ..services import Services

router = APIRouter(tags=["exports"], route_class=JSONRoute)

RENDERED = ("svg", "png", "pdf")
RENDER_RATE_PER_S = 2.0  # rendered exports per client address, with a burst of 5 s of it
BINARY = ("png", "pdf")


def _filename(title: str, ext: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", title).strip("-.")[:80] or "canvas"
    return f"{stem}.{ext}"


def _render_budget(request: Request) -> bool:
    buckets: AddressBuckets | None = getattr(request.app.state, "render_buckets", None)
    if buckets is None:
        buckets = request.app.state.render_buckets = AddressBuckets(RENDER_RATE_PER_S, 5.0)
    address = request.client.host if request.client else "?"
    return buckets.get(address).take()


async def canvas_content(svc: Services, canvas_id: str, version_id: int | None) -> dict[str, Any]:
    """The canvas now, or a version of it; 404 for either missing."""
    if version_id is None:
        try:
            room = await svc.rooms.acquire(canvas_id)
        except CanvasNotFound:
            raise HTTPException(404, "canvas not found") from None
        try:
            return doc_to_json(room.doc)
        finally:
            svc.rooms.release(room)
    try:
        return await versions.content(svc.store, canvas_id, version_id)
    except versions.VersionNotFound:
        raise HTTPException(404, "no such version of this canvas") from None


async def own_drafts(svc: Services, canvas_id: str, caller: Caller) -> dict[str, Any] | None:
    """The draft notes this caller's own export carries (None: none)."""
    if svc.drafts is None:
        return None
    try:
        return await svc.drafts.readable_notes(caller.identity, canvas_id) or None
    except TokenError as exc:
        raise HTTPException(exc.status, exc.message) from None
    except CanvasNotFound:
        raise HTTPException(404, "canvas not found") from None
    except CloseSession as exc:  # loading a draft space needed the store
        if exc.code == closecodes.NOT_FOUND:
            raise HTTPException(404, "canvas not found") from None
        raise HTTPException(503, "the store is unavailable; retry") from None


STORE_DOWN = {503: {"model": ErrorOut, "description": "the store is unavailable; retry"}}


def _content_spec(ext: str) -> dict[str, Any]:
    media = FORMATS[ext].split(";")[0]
    if ext == "json":
        return {media: {"schema": {"type": "object"}}}
    if ext in BINARY:
        return {media: {"schema": {"type": "string", "format": "binary"}}}
    return {media: {"schema": {"type": "string"}}}


def _make_route(ext: str) -> None:
    responses = declare(
        PARTICIPANT,
        NO_CANVAS,
        VALIDATION,
        STORE_DOWN,
        *((RATE_LIMITED,) if ext in RENDERED else ()),
        s404="no such canvas, or no such version of it",
    )
    responses[200] = {"description": f"the canvas as {ext.upper()}", "content": _content_spec(ext)}

    async def handler(
        canvas_id: str,
        request: Request,
        version: int | None = Query(
            default=None, ge=1, le=2**62, description="export this saved version instead"
        ),
        svc: Services = Depends(services),
        caller: Caller = Depends(canvas_caller),
    ) -> Response:
        await require_canvas(svc, canvas_id)
        if ext in RENDERED and not _render_budget(request):
            raise HTTPException(429, "too many exports from this address; retry in a second")
        record = await svc.store.get_canvas(canvas_id)
        if record is None:
            raise HTTPException(404, "canvas not found")
        content = await canvas_content(svc, canvas_id, version)
        info = {
            "id": record.id,
            "title": record.title,
            "template": record.template,
            "created_at": record.created_at,
            "settings": record.settings,
            **({"version": version} if version is not None else {}),
        }
        # The shared canvas holds nothing private; the reader's own organization's drafts (a
        # document of their own) join this reader's export only.
        drafts = await own_drafts(svc, canvas_id, caller) if version is None else None
        if ext in RENDERED:
            body = await asyncio.to_thread(export, content, ext, drafts, info)
        else:
            body = export(content, ext, drafts, info)
        name = _filename(record.title + (f"-v{version}" if version else ""), ext)
        return Response(
            body,
            media_type=FORMATS[ext],
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
                # An SVG opened in a browser tab runs nothing and loads nothing.
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            },
        )

    handler.__name__ = f"export_{ext}"
    handler.__doc__ = f"The canvas (or one of its versions) as {ext.upper()}."
    router.add_api_route(
        f"/api/canvases/{{canvas_id}}/export.{ext}",
        handler,
        methods=["GET"],
        response_class=Response,
        responses=responses,
        summary=f"Export as {ext.upper()}",
    )


for _ext in FORMATS:
    _make_route(_ext)
