"""In-process broker: the embedded default for one node.

Several brokers created on the same :class:`MemoryHub` behave like nodes sharing one Redis, which
lets tests run two "nodes" in one process. Delivery is deferred with ``call_soon`` so a publisher
never re-enters a subscriber synchronously, as with a real network.
"""

from __future__ import annotations

import asyncio

from .base import Broker


class MemoryHub:
    def __init__(self) -> None:
        self.brokers: set[MemoryBroker] = set()


class MemoryBroker(Broker):
    def __init__(self, node_id: str | None = None, hub: MemoryHub | None = None) -> None:
        super().__init__(node_id)
        self._hub = hub or MemoryHub()
        self._channels: set[str] = set()
        self._started = False

    async def start(self) -> None:
        self._hub.brokers.add(self)
        self._started = True

    async def close(self) -> None:
        self._stop_marker()
        self._hub.brokers.discard(self)
        self._channels.clear()
        self._started = False

    @property
    def connected(self) -> bool:
        return self._started

    async def _subscribe(self, canvas_id: str) -> None:
        self._channels.add(canvas_id)

    async def _unsubscribe(self, canvas_id: str) -> None:
        self._channels.discard(canvas_id)

    def _send(self, canvas_id: str, raw: bytes) -> None:
        if len(self._hub.brokers) < 2:
            return  # alone on the hub: nobody to tell
        loop = asyncio.get_running_loop()
        for broker in self._hub.brokers:
            if broker is not self and canvas_id in broker._channels:
                loop.call_soon(broker._on_raw, canvas_id, raw)
