"""The WebSocket endpoint ``/ws/{canvas_id}``: authenticate, join the room, pump frames.

Nothing of a canvas is sent before the token is verified. The read loop handles one frame at a
time per connection, so a fast writer waits for its own updates to be durable (natural
backpressure) while other connections' updates share the same group commit.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import TYPE_CHECKING

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketState

from . import closecodes
from .auth import TokenError
from .closecodes import CloseSession
from .session import Identity, Session
from .store.base import CanvasNotFound

if TYPE_CHECKING:
    from .app import Services

log = logging.getLogger("cocanvas.ws")

router = APIRouter()


class WebSocketSession(Session):
    """A Session over an ASGI WebSocket, with one writer task draining a frame queue."""

    def __init__(self, websocket: WebSocket, identity: Identity, max_queue_bytes: int) -> None:
        super().__init__(identity)
        self._ws = websocket
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0
        self._max_queue_bytes = max_queue_bytes
        self._wake = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._done = False
        self.writer = asyncio.get_running_loop().create_task(self._write_loop())

    @property
    def closed(self) -> bool:
        return self._close is not None or self._done

    def send(self, frame: bytes) -> None:
        if self._close is not None or self._done:
            return
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        if self._queued_bytes > self._max_queue_bytes:
            self._queue.clear()
            self._queued_bytes = 0
            self.close(closecodes.TRY_AGAIN_LATER, "connection too slow to keep up")
        self._wake.set()

    def close(self, code: int, reason: str) -> None:
        if self._close is None and not self._done:
            self._close = (code, reason[:120])
            self._wake.set()

    async def _write_loop(self) -> None:
        ws = self._ws
        queue = self._queue
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while queue:
                    frame = queue.popleft()
                    self._queued_bytes -= len(frame)
                    await ws.send({"type": "websocket.send", "bytes": frame})
                if self._close is not None:
                    code, reason = self._close
                    await ws.close(code, reason)
                    return
        except Exception:
            # The peer went away mid-send; the read loop notices the disconnect.
            pass
        finally:
            self._done = True

    async def finish(self) -> None:
        """Stop the writer once the connection is over."""
        if not self.writer.done():
            self.close(closecodes.NORMAL, "")
            try:
                await asyncio.wait_for(asyncio.shield(self.writer), 1.0)
            except (TimeoutError, Exception):
                self.writer.cancel()


def _token_from(websocket: WebSocket) -> tuple[str | None, str | None]:
    """Token from ``?token=`` or the ``Sec-WebSocket-Protocol`` header (``token.<jwt>``)."""
    token = websocket.query_params.get("token")
    if token:
        return token, None
    for proto in websocket.scope.get("subprotocols", []):
        if proto.startswith("token."):
            return proto[len("token.") :], proto
    return None, None


async def _refuse(websocket: WebSocket, code: int, reason: str, subprotocol: str | None = None) -> None:
    await websocket.accept(subprotocol=subprotocol)
    await websocket.close(code, reason)


@router.websocket("/ws/{canvas_id}")
async def canvas_socket(websocket: WebSocket, canvas_id: str) -> None:
    services: Services = websocket.app.state.services
    settings = services.settings

    if not services.origin_allowed(websocket.headers.get("origin"), websocket.headers.get("host")):
        await _refuse(websocket, closecodes.FORBIDDEN, "origin not allowed")
        return
    token, subprotocol = _token_from(websocket)
    connections = services.connections
    if connections is not None and websocket.client is not None:
        if not connections.get(websocket.client.host).take():
            await _refuse(websocket, closecodes.RATE_LIMITED, "too many new connections", subprotocol)
            return
    try:
        identity, _ = services.tokens.verify(token, canvas_id)
    except TokenError as exc:
        await _refuse(websocket, exc.code, exc.message, subprotocol)
        return
    if identity.invite_id is not None and await services.invite_revoked(identity.invite_id):
        await _refuse(websocket, closecodes.REVOKED, "invite link revoked", subprotocol)
        return
    try:
        room = await services.rooms.acquire(canvas_id)
    except CanvasNotFound:
        await _refuse(websocket, closecodes.NOT_FOUND, "canvas not found", subprotocol)
        return
    try:
        if len(room.sessions) >= settings.max_connections_per_canvas:
            await _refuse(websocket, closecodes.TOO_MANY_CONNECTIONS, "canvas is full", subprotocol)
            return
        await websocket.accept(subprotocol=subprotocol)
        session = WebSocketSession(websocket, identity, settings.send_queue_max_bytes)
        limiter = services.limiter_for(websocket)
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
            await _read_loop(websocket, session, room, limiter, settings.max_message_bytes, services)
        finally:
            lapse.cancel()
            room.leave(session)
            services.metrics.sessions.dec()
            await session.finish()
    finally:
        services.rooms.release(room)


async def _read_loop(websocket, session, room, limiter, max_bytes, services) -> None:  # type: ignore[no-untyped-def]
    receive = websocket.receive
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
        log.info("closing session %s on %s: %s %s", session.id, room.canvas_id, exc.code, exc.reason)
        session.close(exc.code, exc.reason)
    except RuntimeError:
        # Starlette raises RuntimeError when receiving on a socket that already closed.
        return
    except Exception:
        log.exception("unexpected error on %s", room.canvas_id)
        session.close(closecodes.INTERNAL_ERROR, "internal error")
    finally:
        if websocket.application_state == WebSocketState.CONNECTED and not session.closed:
            session.close(closecodes.NORMAL, "")
