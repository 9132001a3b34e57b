"""Signed tokens: who is connecting, for which canvas, with which role, until when.

Tokens are JWTs (HS256, pyjwt) carrying the canvas id, user id, display name, organization, role
and, for tokens obtained through an invite link, the invite id (so revoking the link can close the
sockets opened with it). A token for one canvas never opens another.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt

from . import closecodes
from .session import ROLES, Identity

ALGORITHM = "HS256"


@dataclass(slots=True)
class TokenError(Exception):
    status: int  # HTTP status for the API
    code: int  # WebSocket close code
    message: str

    def __str__(self) -> str:
        return self.message


def unauthorized(message: str) -> TokenError:
    return TokenError(401, closecodes.UNAUTHORIZED, message)


def forbidden(message: str) -> TokenError:
    return TokenError(403, closecodes.FORBIDDEN, message)


class Tokens:
    def __init__(self, secret: str) -> None:
        if len(secret) < 32:
            raise ValueError("COCANVAS_SECRET must be at least 32 characters")
        self._secret = secret

    def issue(
        self, canvas_id: str, identity: Identity, ttl_s: float, now: float | None = None
    ) -> str:
        now = time.time() if now is None else now
        claims = {
            "sub": identity.user_id,
            "name": identity.name,
            "org": identity.org_id,
            "role": identity.role,
            "cid": canvas_id,
            "iat": int(now),
            "exp": int(now + ttl_s),
        }
        if identity.invite_id:
            claims["inv"] = identity.invite_id
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str | None, canvas_id: str | None) -> tuple[Identity, str]:
        """Return (identity, canvas id) or raise TokenError; canvas_id None accepts any canvas."""
        if not token:
            raise unauthorized("missing token")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "sub", "cid", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise unauthorized(f"invalid token: {exc}") from None
        if canvas_id is not None and claims["cid"] != canvas_id:
            raise forbidden("token is for another canvas")
        role = claims["role"]
        if role not in ROLES:
            raise unauthorized("invalid role in token")
        identity = Identity(
            user_id=str(claims["sub"]),
            name=str(claims.get("name", "")),
            org_id=str(claims.get("org", "")),
            role=role,
            invite_id=claims.get("inv"),
        )
        return identity, str(claims["cid"])

    @staticmethod
    def expires_at(token: str) -> float:
        """Expiry of a token :meth:`verify` accepted, so its socket can be closed when it lapses."""
        return float(jwt.decode(token, options={"verify_signature": False})["exp"])


def new_user_id() -> str:
    return "u_" + uuid.uuid4().hex[:16]


def load_or_create_secret(configured: str | None, data_dir: Path) -> str:
    """The configured secret, or one generated on first run and kept in the data directory."""
    if configured:
        return configured
    path = data_dir / "secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.write_text(secret)
    path.chmod(0o600)
    return secret
