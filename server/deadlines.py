"""Far-off, per-connection deadlines on one event-loop timer.

Every open WebSocket had two loop timers of its own: its token's expiry (hours away) and uvicorn's
keepalive ping (every 20 s). A uvloop ``call_later`` handle costs ~650 bytes (handle, libuv timer,
a copy of the context, the arguments); at 10,000 idle connections the two were ~1.3 KB of each
connection's ~18 KB (issue 11, item 4). None of these needs a timer to itself or sub-millisecond
precision, so :class:`Deadlines` keeps them in one heap and arms one loop timer for the earliest,
rounded up to :data:`RESOLUTION_S`: a connection's deadline is a small slotted object, and a
thousand pings falling due in the same 50 ms cost one wake-up, not a thousand.

Cancelling marks the entry; the heap drops marked entries when they come up, and is rebuilt
without them once they are more than half of it (connections come and go long before their
token expires).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger("cocanvas.deadlines")

# Deadlines are run at most this late (and never early): the one timer is armed at the earliest
# deadline rounded up to a multiple of this.
RESOLUTION_S = 0.05
# The heap is rebuilt once cancelled entries are more than half of it and more than this many.
_REBUILD_MIN = 64


class Deadline:
    """One pending call; ``cancel()`` like an asyncio handle."""

    __slots__ = ("when", "_callback", "_args", "_owner")

    def __init__(
        self, when: float, callback: Callable[..., Any], args: tuple[Any, ...], owner: Deadlines
    ) -> None:
        self.when = when
        self._callback: Callable[..., Any] | None = callback
        self._args = args
        self._owner: Deadlines | None = owner

    def cancel(self) -> None:
        if self._callback is None:
            return
        self._callback = None
        self._args = ()
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._cancelled_one()

    def cancelled(self) -> bool:
        return self._callback is None

    def __lt__(self, other: Deadline) -> bool:
        return self.when < other.when

    def _run(self) -> None:
        callback, args = self._callback, self._args
        self._callback, self._args, self._owner = None, (), None
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:  # one connection's callback must not stop the others'
            log.exception("deadline callback failed")


class Deadlines:
    """The deadlines of one event loop (:func:`of` gives the running loop's)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution_s: float = RESOLUTION_S) -> None:
        self._loop = loop
        self._resolution = resolution_s
        self._heap: list[Deadline] = []
        self._cancelled = 0
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = float("inf")

    def __len__(self) -> int:
        """Pending (not cancelled) deadlines."""
        return len(self._heap) - self._cancelled

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Deadline:
        """Call ``callback(*args)`` in ``delay`` seconds or up to RESOLUTION_S later."""
        deadline = Deadline(self._loop.time() + max(0.0, delay), callback, args, self)
        heapq.heappush(self._heap, deadline)
        if deadline.when < self._armed_at:
            self._arm(deadline.when)
        return deadline

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        r = self._resolution
        at = (int(when / r) + 1) * r if r > 0 else when
        self._armed_at = at
        self._handle = self._loop.call_at(at, self._fire)

    def _cancelled_one(self) -> None:
        self._cancelled += 1
        if self._cancelled > _REBUILD_MIN and self._cancelled * 2 > len(self._heap):
            self._heap = [d for d in self._heap if not d.cancelled()]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def _fire(self) -> None:
        self._handle = None
        self._armed_at = float("inf")
        now = self._loop.time()
        heap = self._heap
        due: list[Deadline] = []
        while heap and heap[0].when <= now:
            deadline = heapq.heappop(heap)
            if deadline.cancelled():
                self._cancelled -= 1
            else:
                deadline._owner = None  # out of the heap: a cancel now is not counted
                due.append(deadline)
        for deadline in due:  # popped first: a callback may add deadlines (the next ping)
            deadline._run()
        while heap and heap[0].cancelled():
            heapq.heappop(heap)
            self._cancelled -= 1
        if heap and heap[0].when < self._armed_at:
            self._arm(heap[0].when)


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = (
    weakref.WeakKeyDictionary()
)


def of(loop: asyncio.AbstractEventLoop | None = None) -> Deadlines:
    """The deadlines of ``loop`` (the running loop by default), made on first use."""
    loop = loop or asyncio.get_running_loop()
    found = _BY_LOOP.get(loop)
    if found is None:
        found = _BY_LOOP[loop] = Deadlines(loop)
    return found
