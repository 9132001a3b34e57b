"""Request dependencies shared by the routers: services, bearer tokens, operator key."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Depends, HTTPException, Request

from ..auth import TokenError
from ..session import ROLE_FACILITATOR, Identity

if TYPE_CHECKING:
    from ..services import Services


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value:
        return None
    return value.strip()


def is_operator(svc: Services, token: str | None) -> bool:
    admin = svc.settings.admin_token
    return bool(admin and token and hmac.compare_digest(admin, token))


@dataclass(frozen=True)
class Caller:
    identity: Identity | None  # None for the operator
    operator: bool

    @property
    def facilitator(self) -> bool:
        return self.operator or (
            self.identity is not None and self.identity.role == ROLE_FACILITATOR
        )


async def canvas_caller(
    canvas_id: str, request: Request, svc: Services = Depends(services)
) -> Caller:
    """Any participant of this canvas (or the operator); 401/403/410 otherwise."""
    token = bearer(request)
    if is_operator(svc, token):
        return Caller(None, True)
    try:
        identity, _ = svc.tokens.verify(token, canvas_id)
    except TokenError as exc:
        raise HTTPException(exc.status, exc.message) from None
    if identity.invite_id is not None and await svc.invite_revoked(identity.invite_id):
        # 410 like redeeming the link (and close code 4410 on its sockets): the credential was
        # good and is gone, which a client shows differently from "not allowed".
        raise HTTPException(410, "invite link revoked")
    current = await svc.current_identity(canvas_id, identity)
    if current is None:
        raise HTTPException(403, "removed from this canvas")
    return Caller(current, False)


def facilitator(caller: Caller = Depends(canvas_caller)) -> Caller:
    if not caller.facilitator:
        raise HTTPException(403, "only a facilitator may do this")
    return caller


def operator_if_configured(request: Request, svc: Services = Depends(services)) -> None:
    """Open on the embedded default; needs the operator key when COCANVAS_ADMIN_TOKEN is set."""
    if svc.settings.admin_token and not is_operator(svc, bearer(request)):
        raise HTTPException(
            401, "operator key required (Authorization: Bearer <COCANVAS_ADMIN_TOKEN>)"
        )


async def require_canvas(svc: Services, canvas_id: str) -> None:
    """404 for a canvas that does not exist (or no longer does). Called in the handler, after the
    caller's token was checked, so that 404 never tells a stranger which canvas ids exist."""
    if await svc.store.get_canvas(canvas_id) is None:
        raise HTTPException(404, "canvas not found")
