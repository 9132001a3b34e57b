"""Signed tokens: who is connecting, for which canvas, with which role, until when.

Tokens are JWTs (HS256, pyjwt) carrying the canvas id, user id, display name, organization, role
and, for tokens obtained through an invite link, the invite id (so revoking the link can close the
sockets opened with it). A token for one canvas never opens another.
"""

from __future__ import annotations

import logging
import math
import os
import re
import secrets
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import jwt

from . import closecodes
from .session import ROLES, Identity

ALGORITHM = "HS256"

log = logging.getLogger("cocanvas.auth")

# A secret is refused at startup when it contains one of these (compared on letters and digits
# only, case-insensitively: "Change_Me" is "changeme"), ...
PLACEHOLDER_WORDS = (
    "changeme",
    "secret",
    "example",
    "placeholder",
    "replaceme",
    "password",
    "dummy",
    "insecure",
)
# ... has a run of this many identical characters, or is a shorter string repeated ...
MAX_RUN = 10
# ... or carries fewer bits than this by the estimate of :func:`secret_bits`.
MIN_SECRET_BITS = 128
HOW_TO_MAKE_ONE = "generate one with `openssl rand -hex 32`"


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


class WeakSecret(ValueError):
    """The signing secret is a placeholder or too guessable: the node refuses to start."""


def secret_bits(secret: str) -> float:
    """A simple strength estimate: length × the Shannon entropy of its characters (bits/char).

    It ignores order, so it overrates patterns (those are refused separately), and it underrates
    short random strings: 64 random hex digits (``openssl rand -hex 32``) score 220-250 bits,
    32 of them about 115.
    """
    n = len(secret)
    if n == 0:
        return 0.0
    counts = Counter(secret).values()
    return -sum(c * math.log2(c / n) for c in counts)


def secret_weakness(secret: str) -> str | None:
    """Why ``secret`` must not sign tokens, or None when it may. Never quotes the secret."""
    if len(secret) < 32:
        return f"is {len(secret)} characters long; it needs at least 32"
    folded = re.sub(r"[^0-9a-z]", "", secret.lower())
    for word in PLACEHOLDER_WORDS:
        if word in folded:
            return f"looks like a placeholder (it contains {word!r})"
    if re.search(rf"(.)\1{{{MAX_RUN - 1}}}", secret):
        return f"repeats one character {MAX_RUN} or more times in a row"
    n = len(secret)
    for period in range(1, n // 2 + 1):
        if secret == (secret[:period] * (n // period + 1))[:n]:
            return f"is a {period}-character string repeated"
    bits = secret_bits(secret)
    if bits < MIN_SECRET_BITS:
        return f"is too predictable (about {bits:.0f} bits; at least {MIN_SECRET_BITS} are needed)"
    return None


def check_secret(secret: str, source: str = "COCANVAS_SECRET") -> str:
    """``secret``, or :class:`WeakSecret` with a message that names where it came from."""
    why = secret_weakness(secret)
    if why is not None:
        raise WeakSecret(
            f"refusing to start: {source} {why}. Set COCANVAS_SECRET to a random value of at "
            f"least 32 characters ({HOW_TO_MAKE_ONE}), the same on every node."
        )
    return secret


def check_admin_token(token: str) -> str:
    """The operator key: at least 16 characters and no placeholder (the k8s manifest shipped
    ``change-me``); it guards creating and listing every canvas."""
    folded = re.sub(r"[^0-9a-z]", "", token.lower())
    why = next(
        (f"looks like a placeholder (it contains {w!r})" for w in PLACEHOLDER_WORDS if w in folded),
        None,
    )
    if len(token) < 16:
        why = f"is {len(token)} characters long; it needs at least 16"
    if why is not None:
        raise WeakSecret(
            f"refusing to start: COCANVAS_ADMIN_TOKEN {why}. Set it to a random value "
            "(openssl rand -hex 16)."
        )
    return token


def generate_secret() -> str:
    """64 URL-safe characters (384 random bits), never one that :func:`check_secret` refuses."""
    while True:
        secret = secrets.token_urlsafe(48)
        if secret_weakness(secret) is None:
            return secret


def load_or_create_secret(configured: str | None, data_dir: Path) -> str:
    """The configured secret, or one generated on first run and kept in the data directory.

    Either is checked (:func:`check_secret`): a placeholder or a guessable secret stops the node
    at startup rather than signing tokens anyone could forge.
    """
    if configured is not None:
        # Set but empty (say, a manifest whose value was never filled in) is refused too: a
        # node that generated its own secret would not accept the other nodes' tokens.
        if not configured.strip():
            raise WeakSecret(
                "refusing to start: COCANVAS_SECRET is set but empty; " + HOW_TO_MAKE_ONE
            )
        return check_secret(configured)
    path = data_dir / "secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _create_secret_file(path)
    return check_secret(_read_secret_file(path), f"the secret in {path} (COCANVAS_SECRET unset)")


def _create_secret_file(path: Path) -> None:
    """Write a new secret to ``path``, readable by this user only from its first byte on.

    ``O_EXCL`` makes creating it atomic: when two processes start on a fresh data directory at
    once, one creates the file and the other reads the winner's secret.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as f:
        f.write(generate_secret())
        f.flush()
        os.fsync(f.fileno())


def _read_secret_file(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & 0o077:
        log.warning("%s is readable by other users (mode %o): chmod 600 it", path, mode & 0o777)
    # Another process may have created it a moment ago and still be writing it.
    for _ in range(50):
        text = path.read_text().strip()
        if text:
            return text
        time.sleep(0.02)
    return text
