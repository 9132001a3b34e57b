"""uvicorn's sans-I/O WebSocket protocol, with a lighter inbox and write gate per connection.

A node holds one uvicorn protocol object per open WebSocket; at 10,000 idle connections what
each costs is what the node costs (issue 11). uvicorn gives every connection an
``asyncio.Queue`` for received messages and an ``asyncio.Event`` for flow control: four deques
(the queue's items, getters and putters, and two events' waiters), ~3.5 KB a connection, almost
always empty. The protocol only ever uses ``put_nowait`` / ``get`` / ``empty`` of the queue, with
one reader (the app's ``receive``), and ``set`` / ``clear`` / ``wait`` of the event, so
:class:`Inbox` and :class:`Gate` do exactly that and allocate nothing until someone waits.

Like server/uvicorn_raw.py this leans on uvicorn's internals (the ``queue`` and ``writable``
attributes), so :func:`ws_protocol` uses it only for the uvicorn versions that adapter was tested
with, and uvicorn's own class otherwise.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from . import deadlines
from .uvicorn_raw import uvicorn_version_tested


class Inbox:
    """A FIFO with ``put_nowait``, ``get`` and ``empty``, for one reader at a time.

    Items wait in the deque, never in the waiter's future, so a cancelled ``get`` loses nothing.
    """

    __slots__ = ("_items", "_waiter", "_loop")

    def __init__(self) -> None:
        self._items: collections.deque[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None
        # The connection's loop, kept from the first wait: asyncio.get_running_loop() makes a
        # getpid() system call on every call (CPython 3.11), and this runs once per frame.
        self._loop: asyncio.AbstractEventLoop | None = None

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = collections.deque()
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        assert self._items is not None
        item = self._items.popleft()
        if not self._items:
            self._items = None  # an idle connection holds no deque
        return item


class Gate:
    """An event with ``set``, ``clear``, ``is_set`` and ``wait``; waiters only while closed."""

    __slots__ = ("_open", "_waiters")

    def __init__(self) -> None:
        self._open = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._open

    def set(self) -> None:
        self._open = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._open = False

    async def wait(self) -> bool:
        if self._open:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


def ws_protocol() -> Any:
    """What to hand uvicorn as ``ws``: the lighter protocol class on a tested uvicorn, else the
    name of uvicorn's own sans-I/O protocol."""
    if not uvicorn_version_tested():
        return "websockets-sansio"
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    class LeanWebSocketsProtocol(WebSocketsSansIOProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.queue = Inbox()  # type: ignore[assignment]
            self.writable = Gate()  # type: ignore[assignment]
            self.writable.set()

        def schedule_ping(self) -> None:
            # uvicorn's, on the loop's shared deadlines instead of a timer per connection
            # (server/deadlines.py); the pong deadline stays uvicorn's (only while a ping is out).
            assert self.ping_interval is not None
            delay = max(0.0, self.ping_interval - getattr(self, "last_ping_rtt", 0.0))
            self.ping_timer = deadlines.of(self.loop).call_later(  # type: ignore[assignment]
                delay, self.send_keepalive_ping
            )

    return LeanWebSocketsProtocol
