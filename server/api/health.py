"""Liveness, readiness and metrics for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from ..store.base import StoreError
from .deps import services

if TYPE_CHECKING:
    from ..services import Services

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str  # "ready" or "not ready"
    node: str
    checks: dict[str, str]  # "store", "broker": "ok" or why not


# /readyz answers within this, whatever the store does (its ping has its own ~2 s bound).
READY_TIMEOUT_S = 3.0


@router.get("/healthz", response_model=Health)
async def healthz() -> dict[str, str]:
    """The process is up and its event loop answers."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "the store or the broker is unavailable"}},
)
async def readyz(svc: Services = Depends(services)) -> JSONResponse:
    """Ready to take new sessions: the store commits within its bound and the broker is connected.

    503 while a commit cannot complete (frozen or failing disk, a lock held elsewhere, PostgreSQL
    away or read-only) and, for good, once the SQLite files were deleted or replaced under the
    running node.
    """
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await svc.store.ping()
        checks["store"] = "ok"
    except TimeoutError:
        checks["store"] = f"unavailable: no answer within {READY_TIMEOUT_S:g} s"
    except (StoreError, OSError) as exc:
        checks["store"] = f"unavailable: {exc}"
    checks["broker"] = "ok" if svc.broker.connected else "disconnected"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "node": svc.broker.node_id, "checks": checks},
        status_code=200 if ok else 503,
    )


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"description": "Prometheus text exposition format"}},
)
async def metrics(svc: Services = Depends(services)) -> Response:
    svc.metrics.watch(svc.store, svc.broker, svc.rooms)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
