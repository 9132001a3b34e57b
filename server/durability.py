"""The durability barrier of one room: "nobody is served what is not durable yet".

Every append takes a ticket when it starts and returns it once the store has committed it.
:meth:`Barrier.wait` returns once every append started before the call has committed, whatever
order commits finish in. A late joiner's sync step 2 and a rebuild wait on it, so they never hand
out or rebuild from content the store does not hold.
"""

from __future__ import annotations

import asyncio


class Barrier:
    __slots__ = ("_ticket", "_inflight", "_waiters")

    def __init__(self) -> None:
        self._ticket = 0
        self._inflight: set[int] = set()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def begin(self) -> int:
        self._ticket += 1
        self._inflight.add(self._ticket)
        return self._ticket

    def end(self, ticket: int) -> None:
        self._inflight.discard(ticket)
        if not self._waiters:
            return
        low = min(self._inflight) if self._inflight else self._ticket + 1
        keep = []
        for target, fut in self._waiters:
            if target < low:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((target, fut))
        self._waiters = keep

    async def wait(self) -> None:
        """Wait until every append begun so far has ended."""
        if not self._inflight:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._ticket, fut))
        await fut
