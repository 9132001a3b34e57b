"""When a room may be behind the store, catch up: once at a time, again if asked meanwhile.

Every update is in the store before it is published, so a node that missed messages (a sequence
gap, a lost tail, a broker reconnect, see broker/base.py) only has to read the store. Signals
that arrive while a catch-up runs are coalesced into one more run after it; a store that is down
postpones the catch-up until it answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .store.base import StoreError

log = logging.getLogger("cocanvas.healing")

RETRY_S = 0.5


class Healer:
    def __init__(
        self,
        canvas_id: str,
        catch_up: Callable[[], Awaitable[None]],
        closed: Callable[[], bool],
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
    ) -> None:
        self._canvas_id = canvas_id
        self._catch_up = catch_up
        self._closed = closed
        self._spawn = spawn
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def gap(self) -> None:
        """The room may have missed updates: catch up (now, or right after the running one)."""
        if self._closed():
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = self._spawn(self._run())

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                await self._catch_up()
            except StoreError:
                log.warning("heal of %s postponed: store unavailable", self._canvas_id)
                await asyncio.sleep(RETRY_S)
                self._again = True
            if not self._again or self._closed():
                return
