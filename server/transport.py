"""The seam between a session and its socket: send, close, is_open, backlog.

A Room only ever calls ``Session.send`` (never blocks, never spawns a task per frame) and
``Session.close``. :class:`AsgiTransport` implements that over any ASGI server: it drives the
server's ``send`` coroutine to completion on the spot when it does not suspend (uvicorn's sans-I/O
protocol completes a send without suspending until its write buffer is full), and otherwise
queues frames, in order, behind one writer task — the server's flow control (``pause_writing``)
then shows up here as ``backlog``. It never touches framing or the socket.

One exists per connection, so it is small (issue 11: memory per connection at 10,000 idle
connections): ``__slots__``, and the queue (a deque is ~600 bytes even when empty) only exists
while a write is suspended.

``server/uvicorn_raw.py`` is an opt-in adapter on top of it for the fan-out hot path.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


class AsgiTransport:
    """Frames over an ASGI ``send``: in order, never blocking the caller."""

    __slots__ = ("_send", "_queue", "_queued_bytes", "_writer", "_closing", "_gone")

    def __init__(self, send: Send) -> None:
        self._send = send
        # Frames behind a suspended send, in order; None while nothing waits (most of the time).
        self._queue: collections.deque[Message] | None = None
        self._queued_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._gone = False

    @property
    def is_open(self) -> bool:
        return not self._closing and not self._gone

    def backlog(self) -> int:
        """Bytes handed to this transport that the server has not taken yet."""
        return self._queued_bytes

    def send(self, frame: bytes) -> None:
        if self.is_open:
            self._emit({"type": "websocket.send", "bytes": frame}, len(frame))

    def send_many(self, frames: list[bytes]) -> None:
        for frame in frames:
            self.send(frame)

    def close(self, code: int, reason: str) -> None:
        if not self.is_open:
            return
        self._closing = True
        self._emit({"type": "websocket.close", "code": code, "reason": reason[:120]}, 0)

    def _emit(self, message: Message, size: int) -> None:
        if self._writer is not None:
            if self._queue is None:
                self._queue = collections.deque()
            self._queue.append(message)
            self._queued_bytes += size
            return
        coro: Coroutine[Any, Any, None] = self._send(message)  # type: ignore[assignment]
        try:
            blocked_on = coro.send(None)
        except StopIteration:
            return
        except Exception:
            self._gone = True  # the peer is gone; the read loop sees the disconnect
            return
        # It suspended: let one task finish it, and queue everything after it, in order.
        self._writer = asyncio.get_running_loop().create_task(self._drain(coro, blocked_on))

    async def _drain(self, first: Coroutine[Any, Any, None], blocked_on: Any) -> None:
        try:
            await _resume(first, blocked_on)
            while self._queue:
                message = self._queue.popleft()
                self._queued_bytes -= len(message.get("bytes") or b"")
                await self._send(message)
        except Exception:
            self._gone = True
        finally:
            self._writer = None
            self._queue = None

    @property
    def writing(self) -> bool:
        """A send is suspended: later frames must queue behind it to keep their order."""
        return self._writer is not None

    async def finish(self) -> None:
        """Let queued frames go out (bounded), then forget the socket."""
        if self._writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), 1.0)
            except (TimeoutError, Exception):
                self._writer.cancel()
        self._gone = True


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
