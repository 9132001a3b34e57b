"""A connected participant as a room sees it: who it is, and a way to send it frames.

``send`` never blocks and never spawns a task (pycrdt-websocket's task-per-send is what makes it
collapse at 100 clients): the transport writes the frame at once, and only if a write would wait
does it queue frames behind one writer (see ws.py). A session that falls too far behind is closed
rather than allowed to grow without bound.

A node holds one Session per connection (10,000 idle connections, issue 11), so sessions have
``__slots__``: no per-instance ``__dict__``.
"""

from __future__ import annotations

import abc
import itertools
from dataclasses import dataclass

_ids = itertools.count(1)

# Each refused change costs the server a correction and everyone a larger update: a session may
# cause this many in a burst, then this many per second; past that it is closed (1008).
REFUSAL_BURST = 200.0
REFUSAL_PER_S = 20.0

ROLE_FACILITATOR = "facilitator"
ROLE_EDITOR = "editor"
ROLE_VIEWER = "viewer"
ROLES = (ROLE_FACILITATOR, ROLE_EDITOR, ROLE_VIEWER)


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    name: str
    org_id: str
    role: str
    invite_id: str | None = None

    @property
    def can_write(self) -> bool:
        return self.role in (ROLE_FACILITATOR, ROLE_EDITOR)


class Session(abc.ABC):
    __slots__ = (
        "id",
        "identity",
        "client_ids",
        "bound_ids",
        "caught_up",
        "held",
        "held_bytes",
        "refusal_tokens",
        "refusal_at",
    )

    def __init__(self, identity: Identity) -> None:
        self.id = next(_ids)
        self.identity = identity
        # Awareness client ids this connection has announced; removed for everyone when it leaves.
        self.client_ids: set[int] = set()
        # Yjs client ids this connection bound to its identity (structs or presence); capped.
        self.bound_ids: set[int] = set()
        # A reconnecting tab's step 2 may carry another node's updates this node has not heard
        # yet: the room catches up from the store once per session before refusing it.
        self.caught_up = False
        # Updates that need this session's own clocks it has not sent yet: (update, frame).
        self.held: list[tuple[bytes, bytes | None]] = []
        self.held_bytes = 0
        # Refused changes this session may still cause (a token bucket: burst, refill per s).
        self.refusal_tokens = REFUSAL_BURST
        self.refusal_at = 0.0

    @abc.abstractmethod
    def send(self, frame: bytes) -> None:
        """Queue one frame; never blocks."""

    def send_many(self, frames: list[bytes]) -> None:
        """Queue frames in order; a transport that can writes them with one system call (a
        commit batch released to a session is several updates at once)."""
        for frame in frames:
            self.send(frame)

    @abc.abstractmethod
    def close(self, code: int, reason: str) -> None:
        """Send what is queued, then close with this code; never blocks."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool: ...

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.identity.user_id}/{self.identity.org_id}>"
