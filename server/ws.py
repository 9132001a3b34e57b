"""The WebSocket endpoint ``/ws/{canvas_id}``: authenticate, join the room, pump frames.

This is the hot path, so it is a plain ASGI handler that the app calls before FastAPI's routing and
middleware (each of which would otherwise wrap every single send). Nothing of a canvas is sent
before the token is verified. The read loop handles one frame at a time per connection, so a fast
writer waits for its own updates to be durable (natural backpressure) while other connections'
updates share the same group commit.

Sending never spawns a task: uvicorn's sans-I/O WebSocket protocol completes an ASGI send without
suspending, so :class:`WebSocketSession` drives the send coroutine to completion on the spot and a
fan-out to 100 sessions is 100 buffered writes. If a server's send ever does suspend, the session
falls back to one writer task that drains a queue in order.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from websockets.protocol import State

from . import closecodes
from .auth import TokenError
from .closecodes import CloseSession
from .limits import ConnectionLimiter
from .room import Room
from .session import ROLE_EDITOR, Identity, Session
from .store.base import CanvasNotFound

if TYPE_CHECKING:
    from .app import Services

log = logging.getLogger("cocanvas.ws")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PATH_PREFIX = "/ws/"
_OPEN = State.OPEN


def ws_binary_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented binary WebSocket frame (RFC 6455 5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        head = bytes((0x82, n))
    elif n < 65536:
        head = bytes((0x82, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x82, 127)) + n.to_bytes(8, "big")
    return head + payload


# The frame last encoded, and its wire form: a fan-out sends one bytes object to every session
# in a row, so a one-entry cache encodes each broadcast once, not once per recipient.
_last_frame: list[bytes] = [b"", b""]


def _wire(frame: bytes) -> bytes:
    if frame is not _last_frame[0]:
        _last_frame[0] = frame
        _last_frame[1] = ws_binary_frame(frame)
    return _last_frame[1]


class WebSocketSession(Session):
    """A Session over a raw ASGI WebSocket."""

    def __init__(self, send: Send, identity: Identity, max_backlog_bytes: int) -> None:
        super().__init__(identity)
        self._send = send
        self._max_backlog = max_backlog_bytes
        # Behind uvicorn's sans-I/O protocol: the transport tells how far the peer lags, and,
        # with no extension negotiated (compression is off), data frames can be written to it
        # directly, pre-encoded once per broadcast. Any other server takes the ASGI path.
        protocol = getattr(send, "__self__", None)
        self._protocol = protocol
        self._transport = getattr(protocol, "transport", None)
        conn = getattr(protocol, "conn", None)
        self._conn = conn
        self._direct = (
            self._transport is not None
            and conn is not None
            and getattr(conn, "extensions", None) == []
            and hasattr(protocol, "close_sent")
        )
        self._queue: collections.deque[Message] = collections.deque()
        self._writer: asyncio.Task[None] | None = None
        self._close: tuple[int, str] | None = None
        self._done = False

    @property
    def closed(self) -> bool:
        return self._close is not None or self._done

    def send(self, frame: bytes) -> None:
        if self._close is not None or self._done:
            return
        transport = self._transport
        if transport is not None:
            if transport.get_write_buffer_size() > self._max_backlog:
                self.close(closecodes.TRY_AGAIN_LATER, "connection too slow to keep up")
                return
            if (
                self._direct
                and self._writer is None
                and self._conn.state is _OPEN  # type: ignore[union-attr]
                and not self._protocol.close_sent  # type: ignore[union-attr]
                and not transport.is_closing()
            ):
                transport.write(_wire(frame))
                return
        self._emit({"type": "websocket.send", "bytes": frame})

    def close(self, code: int, reason: str) -> None:
        if self._close is not None or self._done:
            return
        self._close = (code, reason[:120])
        self._emit({"type": "websocket.close", "code": code, "reason": reason[:120]})

    def _emit(self, message: Message) -> None:
        if self._writer is not None:
            self._queue.append(message)
            return
        coro: Coroutine[Any, Any, None] = self._send(message)  # type: ignore[assignment]
        try:
            blocked_on = coro.send(None)
        except StopIteration:
            return
        except Exception:
            self._done = True  # the peer is gone; the read loop sees the disconnect
            return
        # It suspended: let one task finish it, and queue everything after it, in order.
        self._writer = asyncio.get_running_loop().create_task(self._drain(coro, blocked_on))

    async def _drain(self, first: Coroutine[Any, Any, None], blocked_on: Any) -> None:
        try:
            await _resume(first, blocked_on)
            while self._queue:
                await self._send(self._queue.popleft())
        except Exception:
            self._done = True
        finally:
            self._writer = None

    async def finish(self) -> None:
        if self._writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), 1.0)
            except (TimeoutError, Exception):
                self._writer.cancel()
        self._done = True


async def _resume(coro: Coroutine[Any, Any, None], blocked_on: Any) -> None:
    """Finish, inside a task, a coroutine that was started by hand and then suspended.

    A suspended asyncio coroutine yields the future it waits for (or None to be rescheduled);
    wait for that, then step it again, exactly as a Task would.
    """
    while True:
        if asyncio.isfuture(blocked_on):
            await asyncio.wait((blocked_on,))
        else:
            await asyncio.sleep(0)
        try:
            blocked_on = coro.send(None)
        except StopIteration:
            return


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


async def handle(services: Services, scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI handler for ``/ws/{canvas_id}``."""
    canvas_id = scope["path"][len(PATH_PREFIX) :]
    if (await receive())["type"] != "websocket.connect":
        return
    settings = services.settings
    address = scope["client"][0] if scope.get("client") else None
    token, subprotocol = _token_from(scope)
    if not canvas_id or "/" in canvas_id:
        await _refuse(send, closecodes.NOT_FOUND, "canvas not found", subprotocol)
        return
    if not services.origin_allowed(_header(scope, b"origin"), _header(scope, b"host")):
        await _refuse(send, closecodes.FORBIDDEN, "origin not allowed", subprotocol)
        return
    connections = services.connections
    if connections is not None and address is not None and not connections.get(address).take():
        await _refuse(send, closecodes.RATE_LIMITED, "too many new connections", subprotocol)
        return
    try:
        identity, _ = services.tokens.verify(token, canvas_id)
    except TokenError as exc:
        await _refuse(send, exc.code, exc.message, subprotocol)
        return
    if identity.invite_id is not None and await services.invite_revoked(identity.invite_id):
        await _refuse(send, closecodes.REVOKED, "invite link revoked", subprotocol)
        return
    if identity.invite_id is not None and not identity.org_id and identity.role == ROLE_EDITOR:
        # Redeemed from a link made before invites had to name an organization: as a member of
        # the facilitator's organization "" it could edit the facilitator's protected notes.
        await _refuse(send, closecodes.REVOKED, "invite link names no organization", subprotocol)
        return
    try:
        room = await services.rooms.acquire(canvas_id)
    except CanvasNotFound:
        await _refuse(send, closecodes.NOT_FOUND, "canvas not found", subprotocol)
        return
    try:
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        # The caps are counted after the accept (which may suspend) and the session joins below
        # without suspending in between, so sockets connecting at the same moment cannot all slip
        # under a cap. room.sessions holds each session on this node until its socket is gone.
        refusal: tuple[int, str] | None = None
        if len(room.sessions) >= settings.max_connections_per_canvas:
            refusal = closecodes.TOO_MANY_CONNECTIONS, "canvas is full"
        elif (
            sum(1 for s in room.sessions if s.identity.user_id == identity.user_id)
            >= settings.max_connections_per_identity
        ):
            refusal = closecodes.TOO_MANY_FOR_IDENTITY, "too many connections for this participant"
        if refusal is not None:
            await send({"type": "websocket.close", "code": refusal[0], "reason": refusal[1]})
            return
        session = WebSocketSession(send, identity, settings.send_queue_max_bytes)
        limiter = services.limiter_for(address)
        services.metrics.sessions.inc()
        # A token (and so the invite link it came from) that lapses closes its socket too.
        lapse = asyncio.get_running_loop().call_later(
            max(0.0, services.tokens.expires_at(token or "") - time.time()),
            session.close,
            closecodes.REVOKED if identity.invite_id else closecodes.UNAUTHORIZED,
            "invite link expired" if identity.invite_id else "token expired",
        )
        await room.join(session)
        try:
            await _read_loop(receive, session, room, limiter, settings.max_message_bytes, services)
        finally:
            lapse.cancel()
            room.leave(session)
            services.metrics.sessions.dec()
            await session.finish()
    finally:
        services.rooms.release(room)


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
            message = await receive()
            mtype = message["type"]
            if mtype == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                session.close(closecodes.UNSUPPORTED_DATA, "binary frames only")
                return
            if len(data) > max_bytes:
                session.close(closecodes.MESSAGE_TOO_BIG, f"frame larger than {max_bytes} bytes")
                return
            if limiter is not None and not limiter.allow(len(data)):
                session.close(closecodes.RATE_LIMITED, "rate limit exceeded")
                return
            frames.inc()
            await room.receive(session, data)
    except CloseSession as exc:
        log.info(
            "closing session %s on %s: %s %s", session.id, room.canvas_id, exc.code, exc.reason
        )
        session.close(exc.code, exc.reason)
    except Exception:
        log.exception("unexpected error on %s", room.canvas_id)
        session.close(closecodes.INTERNAL_ERROR, "internal error")
