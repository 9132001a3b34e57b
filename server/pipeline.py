"""A room's appends in flight: durable first, then released in the order they were applied.

"Nobody sees an update before it is durable" does not need a connection to wait for its own
commit before its next frame is read. The room applies an update, hands it here and goes on;
the store commits whatever is queued (of every room) in its next batch, and each entry's
broadcast is released once it is durable *and* every entry applied before it has been released,
so other sessions and other nodes receive a room's updates in the room's order.

A failed append is retried with backoff (later entries wait: order is kept) until the store
is down for good or the retry window closes; then ``on_failure`` is told once and nothing
more is released. No task is created per update: store futures call back into :meth:`_done`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .durability import Barrier
from .store.base import AuditEntry, CanvasNotFound

Append = Callable[[bytes, Sequence[AuditEntry]], "asyncio.Future[int]"]

# A room keeps at most this many entries (and bytes) in flight; the next frame then waits for
# the oldest. The byte bound also bounds a release's burst to every receiver.
MAX_IN_FLIGHT = 1024
MAX_IN_FLIGHT_BYTES = 8 << 20


class PipelineFailed(Exception):
    """The store could not take an append (canvas gone, or down past the retry window)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _Entry:
    __slots__ = ("update", "audit", "payload", "durable", "waiter", "ticket", "delay", "deadline")

    def __init__(
        self, update: bytes, audit: Sequence[AuditEntry], payload: Any, ticket: int, retry_s: float
    ) -> None:
        self.update = update
        self.audit = audit
        self.payload = payload  # what the room releases (frames, sender): opaque here
        self.durable = False
        self.waiter: asyncio.Future[None] | None = None
        self.ticket = ticket
        self.delay = 0.05
        self.deadline = time.monotonic() + retry_s


class Pipeline:
    def __init__(
        self,
        append: Append,
        barrier: Barrier,
        *,
        on_durable: Callable[[bytes], None],
        on_release: Callable[[list[Any]], None],
        on_failure: Callable[[BaseException], None],
        store_failed: Callable[[], bool],
        retry_s: float = 30.0,
    ) -> None:
        self._append = append
        self._barrier = barrier
        self._on_durable = on_durable
        self._on_release = on_release
        self._on_failure = on_failure
        self._store_failed = store_failed
        self._retry_s = retry_s
        self._queue: deque[_Entry] = deque()
        self._bytes = 0
        self._space: asyncio.Future[None] | None = None
        self.failed: BaseException | None = None
        # One release per loop iteration: a commit resolves its appends' futures one callback
        # each, so releasing from each would hand every session one write per update.
        self._release_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def submit(
        self, update: bytes, audit: Sequence[AuditEntry], payload: Any, *, wait: bool = False
    ) -> asyncio.Future[None] | None:
        """Queue an applied update; with ``wait``, a future that resolves when it is released
        (or fails with PipelineFailed)."""
        if self.failed is not None:
            raise PipelineFailed(self.failed)
        entry = _Entry(update, audit, payload, self._barrier.begin(), self._retry_s)
        if wait:
            entry.waiter = asyncio.get_running_loop().create_future()
        self._queue.append(entry)
        self._bytes += len(update)
        self._send(entry)
        return entry.waiter

    async def room_for_more(self) -> None:
        """Return once fewer than MAX_IN_FLIGHT entries and MAX_IN_FLIGHT_BYTES are in flight
        (backpressure on the sender: its next frame is read once the oldest are released)."""
        while self._full() and self.failed is None:
            if self._space is None or self._space.done():
                self._space = asyncio.get_running_loop().create_future()
            await self._space

    async def drained(self) -> None:
        """Return once everything submitted so far is released (or the pipeline failed)."""
        while self._queue and self.failed is None:
            last = self._queue[-1]
            if last.waiter is None:
                last.waiter = asyncio.get_running_loop().create_future()
            with contextlib.suppress(PipelineFailed):
                await asyncio.shield(last.waiter)

    def _full(self) -> bool:
        return len(self._queue) >= MAX_IN_FLIGHT or self._bytes >= MAX_IN_FLIGHT_BYTES

    def _send(self, entry: _Entry) -> None:
        try:
            future = self._append(entry.update, entry.audit)
        except Exception as exc:  # closed or failed store: raised before anything was queued
            self._failed_append(entry, exc)
            return
        future.add_done_callback(functools.partial(self._done, entry))

    def _done(self, entry: _Entry, future: asyncio.Future[int]) -> None:
        if self.failed is not None:
            return
        exc = future.exception() if not future.cancelled() else asyncio.CancelledError()
        if exc is not None:
            self._failed_append(entry, exc)
            return
        entry.durable = True
        self._barrier.end(entry.ticket)
        self._on_durable(entry.update)
        if not self._release_scheduled:
            self._release_scheduled = True
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            # After the rest of this commit's callbacks, which are already queued.
            self._loop.call_soon(self._release_batch)

    def _release_batch(self) -> None:
        self._release_scheduled = False
        if self.failed is None:
            self._release()

    def _failed_append(self, entry: _Entry, exc: BaseException) -> None:
        if (
            isinstance(exc, CanvasNotFound)
            or time.monotonic() > entry.deadline
            or self._store_failed()
            or isinstance(exc, asyncio.CancelledError)
        ):
            self._fail(exc)
            return
        loop = asyncio.get_running_loop()
        loop.call_later(entry.delay, self._resend, entry)
        entry.delay = min(entry.delay * 2, 1.0)

    def _resend(self, entry: _Entry) -> None:
        if self.failed is None:
            self._send(entry)

    def _release(self) -> None:
        queue = self._queue
        released: list[_Entry] = []
        while queue and queue[0].durable:
            entry = queue.popleft()
            self._bytes -= len(entry.update)
            released.append(entry)
        if released:
            # Everything one commit made releasable goes out together, in order: a session
            # then gets the batch in one write.
            self._on_release([entry.payload for entry in released])
        for entry in released:
            if entry.waiter is not None and not entry.waiter.done():
                entry.waiter.set_result(None)
        if self._space is not None and not self._space.done() and not self._full():
            self._space.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        """Nothing more is released: what is not durable is dropped with the room."""
        self.failed = exc
        failure = PipelineFailed(exc)
        for entry in self._queue:
            if not entry.durable:
                self._barrier.end(entry.ticket)
            if entry.waiter is not None and not entry.waiter.done():
                entry.waiter.set_exception(failure)
                entry.waiter.exception()  # retrieved here; the awaiting caller still gets it
        self._queue.clear()
        self._bytes = 0
        if self._space is not None and not self._space.done():
            self._space.set_result(None)
        self._on_failure(exc)
