"""What every door (HTTP routes, the WebSocket endpoint) needs, built once per app by app.py.

Its own module so that the routers and ws.py depend on it, not on app.py, which imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from .auth import Tokens
from .broker import Broker
from .config import Settings
from .drafts import DraftSpaces
from .limits import AddressBuckets, ConnectionLimiter
from .metrics import Metrics
from .rooms import Rooms
from .session import Identity
from .store import Store


@dataclass
class Services:
    """Everything a request handler needs, built once per app."""

    settings: Settings
    store: Store
    broker: Broker
    rooms: Rooms
    tokens: Tokens
    metrics: Metrics = field(default_factory=Metrics)
    addresses: AddressBuckets | None = None
    connections: AddressBuckets | None = None  # new WebSockets per address
    drafts: DraftSpaces | None = None  # private draft spaces (server/drafts.py)

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """Refuse cross-site WebSocket hijacking: a browser always sends Origin."""
        if origin is None:
            return True  # not a browser (native or server-side client)
        allowed = self.settings.allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        return urlsplit(origin).netloc == (host or "")

    async def invite_revoked(self, invite_id: str) -> bool:
        invite = await self.store.get_invite(invite_id)
        return invite is None or invite.revoked

    async def current_identity(self, canvas_id: str, identity: Identity) -> Identity | None:
        """The identity a token stands for now: None when the facilitator removed the
        participant, else with the role the console last gave them. Tokens from invite links
        only (the facilitator's own token is not a participant)."""
        if identity.invite_id is None:
            return identity
        p = await self.store.get_participant(canvas_id, identity.user_id)
        if p is None:
            return identity
        if p.removed:
            return None
        return identity if p.role == identity.role else replace(identity, role=p.role)

    def limiter_for(self, address: str | None) -> ConnectionLimiter:
        s = self.settings
        bucket = None
        if self.addresses is not None and address is not None:
            bucket = self.addresses.get(address)
        return ConnectionLimiter(s.rate_messages_per_s, s.rate_bytes_per_s, s.rate_burst_s, bucket)
