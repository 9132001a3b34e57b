"""The WebSocket endpoint ``/ws/{canvas_id}``: authenticate, join the room, pump frames.

This is the hot path, so it is a plain ASGI handler that the app calls before FastAPI's routing and
middleware (each of which would otherwise wrap every single send). Nothing of a canvas is sent
before the token is verified. The read loop handles one frame at a time per connection, so a fast
writer waits for its own updates to be durable (natural backpressure) while other connections'
updates share the same group commit.

Sending never spawns a task: a session writes through a transport (server/transport.py, the plain
ASGI path; or, for a uvicorn version it was tested with, the raw-frame adapter in
server/uvicorn_raw.py). This module never encodes a frame.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs

from . import closecodes, deadlines
from .auth import TokenError
from .closecodes import CloseSession
from .limits import ConnectionLimiter
from .pipeline import MAX_IN_FLIGHT_BYTES
from .room import Room, spawn
from .rooms import Rooms
from .session import ROLE_EDITOR, Identity, Session
from .store.base import CanvasNotFound, StoreError
from .transport import AsgiTransport
from .uvicorn_raw import raw_transport

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger("cocanvas.ws")
# A send backlog above COCANVAS_SEND_QUEUE_MAX_BYTES for this long (or, at once, above 4x it
# plus twice a room's bytes in flight) closes the connection with 1013.
SLOW_READER_GRACE_S = 1.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PATH_PREFIX = "/ws/"


class WebSocketSession(Session):
    """A Session over a transport (server/transport.py); it never touches framing itself."""

    __slots__ = (
        "_transport",
        "_max_backlog",
        "_over_since",
        "_hard_backlog",
        "_closed",
        "_watch",
    )

    def __init__(
        self, transport: AsgiTransport, identity: Identity, max_backlog_bytes: int
    ) -> None:
        super().__init__(identity)
        self._transport = transport
        self._max_backlog = max_backlog_bytes
        self._over_since: float | None = None
        # Past this at once, no grace: above the largest burst one release can hand a reader
        # (a room's bytes in flight, plus the one frame that crossed that bound).
        self._hard_backlog = 4 * max_backlog_bytes + 2 * MAX_IN_FLIGHT_BYTES
        self._closed = False
        # While over the backlog: a look after the grace, so a reader that stops reading after
        # the last burst it was sent is closed too (no later send would look).
        self._watch: deadlines.Deadline | None = None

    @property
    def closed(self) -> bool:
        return self._closed or not self._transport.is_open

    def send(self, frame: bytes) -> None:
        if self._keeping_up():
            self._transport.send(frame)
            self._mind()

    def send_many(self, frames: list[bytes]) -> None:
        if self._keeping_up():
            self._transport.send_many(frames)
            self._mind()

    def _mind(self) -> None:
        """After handing frames over: a backlog over the limit starts its grace now, and is
        looked at again when it ends, whether or not anything else is sent by then."""
        if self._over_since is None and self._transport.backlog() > self._max_backlog:
            self._start_grace(time.monotonic())

    def _keeping_up(self) -> bool:
        """Whether this connection may be sent more; closes it when it has been too slow."""
        if self.closed:
            return False
        backlog = self._transport.backlog()
        if backlog > self._max_backlog:
            # Too slow is a backlog that stays: a healthy reader handed one burst (a room
            # releases a whole commit batch at once) drains it within milliseconds.
            now = time.monotonic()
            if self._over_since is None:
                self._start_grace(now)
            elif now - self._over_since > SLOW_READER_GRACE_S or backlog > self._hard_backlog:
                self._too_slow()
                return False
        else:
            self._over_since = None
        return True

    def _too_slow(self) -> None:
        self.close(closecodes.TRY_AGAIN_LATER, "connection too slow to keep up")

    def _start_grace(self, now: float) -> None:
        self._over_since = now
        self._look_later()

    def _look_later(self) -> None:
        if self._watch is None:
            self._watch = deadlines.of().call_later(SLOW_READER_GRACE_S, self._look)

    def _look(self) -> None:
        """The grace has passed since the backlog went over (or since the last look)."""
        self._watch = None
        if self.closed or self._over_since is None:
            return
        if self._transport.backlog() <= self._max_backlog:
            self._over_since = None  # it caught up
        elif time.monotonic() - self._over_since > SLOW_READER_GRACE_S:
            self._too_slow()
        else:
            self._look_later()

    def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        self._transport.close(code, reason)

    async def finish(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        await self._transport.finish()


def transport_for(send: Send, writer: str) -> AsgiTransport:
    """``asgi``: the plain ASGI path; ``auto`` (default): the raw uvicorn adapter when the
    installed uvicorn is one it was tested with, else ASGI; ``raw``: as auto, warning when the
    adapter does not apply."""
    chosen: AsgiTransport | None = raw_transport(send) if writer != "asgi" else None
    if chosen is None and writer == "raw" and "raw-missing" not in _told:
        _told.add("raw-missing")
        log.warning("raw WebSocket writer unavailable here; using the ASGI path")
    kind = "raw uvicorn adapter" if chosen is not None else "ASGI"
    if kind not in _told:
        _told.add(kind)
        log.info("WebSocket writes: %s", kind)
    return chosen if chosen is not None else AsgiTransport(send)


_told: set[str] = set()


def _token_from(scope: Scope) -> tuple[str | None, str | None]:
    """Token from ``?token=`` or the ``Sec-WebSocket-Protocol`` header (``token.<jwt>``)."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    token = (query.get("token") or [None])[0]
    if token:
        return token, None
    for proto in scope.get("subprotocols", []):
        if proto.startswith("token."):
            return proto[len("token.") :], proto
    return None, None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _refuse(send: Send, code: int, reason: str, subprotocol: str | None = None) -> None:
    """Accept and close at once: browsers only see close codes on an accepted socket."""
    await send({"type": "websocket.accept", "subprotocol": subprotocol})
    await send({"type": "websocket.close", "code": code, "reason": reason})


class Door(Protocol):
    """Another document behind the same socket handling (e.g. a draft space, server/drafts.py):
    given the verified token, the room to join and who the session is inside it."""

    prefix: str

    async def open(
        self, identity: Identity, canvas_id: str, scope: Scope
    ) -> tuple[Rooms, Room, Identity]: ...


Refusal = tuple[int, str]


class _Refused(Exception):
    """A step of opening a socket says no: the socket is accepted and closed with this code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


async def handle(
    services: Services, scope: Scope, receive: Receive, send: Send, door: Door | None = None
) -> None:
    """The ASGI handler for ``/ws/{canvas_id}`` (or a door's own prefix).

    Three steps, each of which may refuse the socket with its own close code: admission (who
    is asking, from where, with what token: nothing of the canvas is touched before it passes),
    opening the room (the canvas must exist), and the caps, counted once accepted. Only then
    does the socket become a session.
    """
    canvas_id = scope["path"][len(door.prefix if door is not None else PATH_PREFIX) :]
    if (await receive())["type"] != "websocket.connect":
        return
    token, subprotocol = _token_from(scope)
    try:
        identity = await _admit(services, scope, canvas_id, token)
        rooms, room, identity = await _open_room(services, door, identity, canvas_id, scope)
    except _Refused as no:
        await _refuse(send, no.code, no.reason, subprotocol)
        return
    try:
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        # Everything read from the headers (origin, host, token) is read: the server keeps this
        # scope for the connection's life, and the headers are most of it (issue 11).
        scope["headers"] = []
        # The caps are counted after the accept (which may suspend) and the session joins below
        # without suspending in between, so sockets connecting at the same moment cannot all slip
        # under a cap. room.sessions holds each session on this node until its socket is gone.
        refusal = _over_cap(services, room, identity)
        if refusal is not None:
            await send({"type": "websocket.close", "code": refusal[0], "reason": refusal[1]})
            return
        await _serve(services, scope, receive, send, room, identity, canvas_id, token)
    finally:
        rooms.release(room)


async def _admit(services: Services, scope: Scope, canvas_id: str, token: str | None) -> Identity:
    """Who this socket is (else raises _Refused, with why): cheap checks first (path, origin, the
    address's connection rate), then the token, then what the store says of that participant
    now (a revoked invite, a removed participant, a link from before invites named an
    organization)."""
    address = _address(scope)
    if not canvas_id or "/" in canvas_id:
        raise _Refused(closecodes.NOT_FOUND, "canvas not found")
    if not services.origin_allowed(_header(scope, b"origin"), _header(scope, b"host")):
        raise _Refused(closecodes.FORBIDDEN, "origin not allowed")
    connections = services.connections
    if connections is not None and address is not None and not connections.get(address).take():
        raise _Refused(closecodes.RATE_LIMITED, "too many new connections")
    try:
        identity, _ = services.tokens.verify(token, canvas_id)
    except TokenError as exc:
        raise _Refused(exc.code, exc.message) from None
    if identity.invite_id is not None and await services.invite_revoked(identity.invite_id):
        raise _Refused(closecodes.REVOKED, "invite link revoked")
    current = await services.current_identity(canvas_id, identity)
    if current is None:
        raise _Refused(closecodes.FORBIDDEN, "removed from this canvas")
    if current.invite_id is not None and not current.org_id and current.role == ROLE_EDITOR:
        # Redeemed from a link made before invites had to name an organization: as a member of
        # the facilitator's organization "" it could edit the facilitator's protected notes.
        raise _Refused(closecodes.REVOKED, "invite link names no organization")
    return current


async def _open_room(
    services: Services, door: Door | None, identity: Identity, canvas_id: str, scope: Scope
) -> tuple[Rooms, Room, Identity]:
    """The room to join (the canvas's, or a door's document) and who the session is inside it;
    acquired, so the caller must release it (else raises _Refused)."""
    try:
        if door is not None:
            return await door.open(identity, canvas_id, scope)
        return services.rooms, await services.rooms.acquire(canvas_id), identity
    except CanvasNotFound:
        raise _Refused(closecodes.NOT_FOUND, "canvas not found") from None
    except TokenError as exc:
        raise _Refused(exc.code, exc.message) from None


def _over_cap(services: Services, room: Room, identity: Identity) -> Refusal | None:
    """Why one more session may not join this room on this node (the canvas is full, or this
    participant has too many sockets open on it), or None."""
    settings = services.settings
    if len(room.sessions) >= settings.max_connections_per_canvas:
        return closecodes.TOO_MANY_CONNECTIONS, "canvas is full"
    mine = sum(1 for s in room.sessions if s.identity.user_id == identity.user_id)
    if mine >= settings.max_connections_per_identity:
        return closecodes.TOO_MANY_FOR_IDENTITY, "too many connections for this participant"
    return None


async def _serve(
    services: Services,
    scope: Scope,
    receive: Receive,
    send: Send,
    room: Room,
    identity: Identity,
    canvas_id: str,
    token: str | None,
) -> None:
    """The accepted socket as a session: join, read until it ends, then leave and let what is
    queued go out. The token's expiry (and so its invite link's) closes the socket too."""
    settings = services.settings
    session = WebSocketSession(
        transport_for(send, settings.ws_writer), identity, settings.send_queue_max_bytes
    )
    limiter = services.limiter_for(_address(scope))
    services.metrics.sessions.inc()
    lapses = closecodes.REVOKED if identity.invite_id else closecodes.UNAUTHORIZED
    lapse = deadlines.of().call_later(
        max(0.0, services.tokens.expires_at(token or "") - time.time()),
        session.close,
        lapses,
        "invite link expired" if lapses == closecodes.REVOKED else "token expired",
    )
    await room.join(session)
    try:
        await _read_loop(receive, session, room, limiter, settings.max_message_bytes, services)
    finally:
        lapse.cancel()
        room.leave(session)
        if identity.invite_id is not None:
            spawn(_seen(services, canvas_id, identity.user_id))
        services.metrics.sessions.dec()
        await session.finish()


def _address(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


async def _seen(services: Services, canvas_id: str, user_id: str) -> None:
    """Last seen, for the facilitator's console; best effort (a store hiccup loses one)."""
    try:
        await services.store.touch_participant(canvas_id, user_id, time.time())
    except StoreError as exc:
        log.info("could not record last seen on %s: %s", canvas_id, exc)


async def _read_loop(
    receive: Receive,
    session: WebSocketSession,
    room: Room,
    limiter: ConnectionLimiter | None,
    max_bytes: int,
    services: Services,
) -> None:
    frames = services.metrics.frames
    try:
        while not session.closed:
            data = _payload(await receive(), session, limiter, max_bytes)
            if data is None:
                return
            frames.inc()
            await room.receive(session, data)
            # An idle connection waits in receive() below: it must not keep its last frame
            # alive meanwhile (a y-websocket client's echo of a room's presence is KBs).
            del data
    except CloseSession as exc:
        log.info(
            "closing session %s on %s: %s %s", session.id, room.canvas_id, exc.code, exc.reason
        )
        session.close(exc.code, exc.reason)
    except Exception:
        log.exception("unexpected error on %s", room.canvas_id)
        session.close(closecodes.INTERNAL_ERROR, "internal error")


def _payload(
    message: Message,
    session: WebSocketSession,
    limiter: ConnectionLimiter | None,
    max_bytes: int,
) -> bytes | None:
    """The frame's bytes, or None when the session ends here: the peer disconnected, or the
    frame is one it may not send (a text frame, too large, over its rate), which closes it."""
    if message["type"] == "websocket.disconnect":
        return None
    data: bytes | None = message.get("bytes")
    if data is None:
        session.close(closecodes.UNSUPPORTED_DATA, "binary frames only")
        return None
    if len(data) > max_bytes:
        session.close(closecodes.MESSAGE_TOO_BIG, f"frame larger than {max_bytes} bytes")
        return None
    if limiter is not None and not limiter.allow(len(data)):
        session.close(closecodes.RATE_LIMITED, "rate limit exceeded")
        return None
    return data
