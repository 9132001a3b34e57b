"""Liveness, readiness and metrics for load balancers and orchestrators."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from ..store.base import StoreError
from .deps import services

if TYPE_CHECKING:
    from ..app import Services

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str  # "ready" or "not ready"
    node: str
    checks: dict[str, str]  # "store", "broker": "ok" or why not


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
    """Ready to take new sessions: the store answers and the broker is connected."""
    checks: dict[str, str] = {}
    try:
        await svc.store.ping()
        checks["store"] = "ok"
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
    svc.metrics.rooms.set(len(svc.rooms))
    svc.metrics.room_loads.set(svc.rooms.loads)
    m = svc.metrics
    m.broker_dropped.set(getattr(svc.broker, "dropped", 0))
    m.broker_outages.set(getattr(svc.broker, "outages", 0))
    m.store_commits.set(getattr(svc.store, "commits", getattr(svc.store, "batches", 0)))
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
