"""Fault injection for tests, mounted only when COCANVAS_TEST_HOOKS=true (never in production)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends

from .deps import services

if TYPE_CHECKING:
    from ..services import Services

router = APIRouter(prefix="/api/_test", include_in_schema=False)


@router.post("/drop-publishes")
async def drop_publishes(count: int = 1, svc: Services = Depends(services)) -> dict[str, int]:
    """The next ``count`` broker publishes of this node are numbered but never sent."""
    svc.broker.drop_next_publishes(count)
    return {"dropping": count}
