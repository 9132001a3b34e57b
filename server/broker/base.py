"""Fan-out between server nodes: publish to and subscribe to one canvas.

The broker is the fast path; the store is the truth. Each message carries the sending node's id
(so a node ignores its own messages) and that node's sequence number on the canvas channel, so a
receiver that sees a jump knows it missed something and asks its room to heal from the store.
Framing, numbering and gap detection live here, shared by every transport; an implementation only
moves opaque bytes (``_send`` / ``_on_raw``) and reports connection loss and return.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..protocol import ProtocolError, read_varbytes, read_varuint, write_varbytes, write_varuint

log = logging.getLogger("cocanvas.broker")

# Message kinds on a canvas channel.
KIND_UPDATE = 0  # a Yjs update, already durable in the store
KIND_AWARENESS = 1  # an awareness update (coalesced entries)
KIND_CONTROL = 2  # between nodes about a canvas: server/control.py (deleted, invite revoked)
KIND_MARK = 3  # "my last sequence number on this canvas is N": reveals a lost tail message

# How often a node repeats its latest sequence number on canvases it published to.
MARK_INTERVAL_S = 1.0

_MAGIC = b"CC1"

KIND_NAMES = {
    KIND_UPDATE: "update",
    KIND_AWARENESS: "awareness",
    KIND_CONTROL: "control",
    KIND_MARK: "mark",
}


def _zero_by_kind() -> dict[str, int]:
    return dict.fromkeys(KIND_NAMES.values(), 0)


@dataclass(slots=True)
class BrokerStats:
    """What the broker did since it started (counters) and its state now (gauges)."""

    # Messages this node numbered and published (marks included), by kind name.
    published: dict[str, int] = field(default_factory=_zero_by_kind)
    # Messages heard from other nodes, by kind name.
    received: dict[str, int] = field(default_factory=_zero_by_kind)
    # Sequence gaps noticed (each one makes a room heal from the store).
    gaps: int = 0
    # Transport losses, and returns after a loss.
    disconnects: int = 0
    reconnects: int = 0
    # Published messages that never reached the transport (down, queue full, test hook).
    dropped: int = 0
    connected: bool = False
    # Other nodes heard from recently (the Redis transport tracks them; 0 elsewhere).
    peers: int = 0


@dataclass(slots=True, frozen=True)
class BrokerMessage:
    canvas_id: str
    node_id: str
    seq: int
    kind: int
    payload: bytes


class BrokerListener(abc.ABC):
    """What a subscriber (a Room) hears from the broker."""

    @abc.abstractmethod
    def on_broker_message(self, message: BrokerMessage) -> None: ...

    @abc.abstractmethod
    def on_broker_gap(self) -> None:
        """Messages may have been missed (sequence gap, reconnect): heal from the store."""

    def on_node_lost(self, node_id: str) -> None:  # noqa: B027 - optional hook
        """A node stopped sending heartbeats: forget state it owned (awareness)."""


def encode_message(node_id: str, seq: int, kind: int, payload: bytes) -> bytes:
    return b"".join(
        (_MAGIC, write_varuint(kind), write_varuint(seq), write_varbytes(node_id.encode()), payload)
    )


def decode_message(canvas_id: str, raw: bytes) -> BrokerMessage:
    if not raw.startswith(_MAGIC):
        raise ProtocolError("not a CoCanvas broker message")
    kind, pos = read_varuint(raw, 3)
    seq, pos = read_varuint(raw, pos)
    node, pos = read_varbytes(raw, pos)
    return BrokerMessage(canvas_id, node.decode(), seq, kind, raw[pos:])


class Broker(abc.ABC):
    def __init__(self, node_id: str | None = None) -> None:
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self._listeners: dict[str, BrokerListener] = {}
        self._out_seq: dict[str, int] = {}
        # (canvas, node) -> last sequence number seen from that node on that canvas.
        self._in_seq: dict[tuple[str, str], int] = {}
        self._drop_next = 0  # test hook: publish this many messages into the void
        self._state_listeners: list[Callable[[bool], None]] = []
        self._unmarked: set[str] = set()  # canvases published to since the last mark
        self._marker: asyncio.Task[None] | None = None
        self._counts = BrokerStats()
        self._was_up = False
        # Messages a transport lost after publish (Redis: down, queue full); see stats().
        self.dropped = 0

    # -- transport, per implementation ----------------------------------------------------

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """False while the transport is down (readiness reports it)."""

    @abc.abstractmethod
    async def _subscribe(self, canvas_id: str) -> None: ...

    @abc.abstractmethod
    async def _unsubscribe(self, canvas_id: str) -> None: ...

    @abc.abstractmethod
    def _send(self, canvas_id: str, raw: bytes) -> None:
        """Hand bytes to the transport without waiting; losing them is allowed (gaps heal)."""

    # -- shared behaviour ----------------------------------------------------------------

    async def subscribe(self, canvas_id: str, listener: BrokerListener) -> None:
        self._listeners[canvas_id] = listener
        await self._subscribe(canvas_id)

    async def unsubscribe(self, canvas_id: str) -> None:
        self._listeners.pop(canvas_id, None)
        self._out_seq.pop(canvas_id, None)
        for key in [k for k in self._in_seq if k[0] == canvas_id]:
            del self._in_seq[key]
        await self._unsubscribe(canvas_id)

    def stats(self) -> BrokerStats:
        """Counters since start and the state now (a copy)."""
        c = self._counts
        return BrokerStats(
            published=dict(c.published),
            received=dict(c.received),
            gaps=c.gaps,
            disconnects=c.disconnects,
            reconnects=c.reconnects,
            dropped=c.dropped + self.dropped,
            connected=self.connected,
        )

    def publish(self, canvas_id: str, kind: int, payload: bytes) -> None:
        seq = self._out_seq.get(canvas_id, 0) + 1
        self._out_seq[canvas_id] = seq
        self._unmarked.add(canvas_id)
        if self._marker is None:
            self._marker = asyncio.get_running_loop().create_task(self._mark_loop())
        self._count(self._counts.published, kind)
        if self._drop_next > 0:
            self._drop_next -= 1
            self._counts.dropped += 1
            return
        self._send(canvas_id, encode_message(self.node_id, seq, kind, payload))

    @staticmethod
    def _count(by_kind: dict[str, int], kind: int) -> None:
        name = KIND_NAMES.get(kind, "other")
        by_kind[name] = by_kind.get(name, 0) + 1

    async def _mark_loop(self) -> None:
        """Repeat the latest sequence number of recently used canvases.

        A gap is otherwise only noticed when the next message arrives; if the lost message was the
        last one for a while, the mark reveals it within a second. A canvas whose path is down
        right now (``_can_mark``) keeps its place and is marked once the path is back, so a tail
        lost to the outage is still revealed; the other canvases' marks keep flowing meanwhile.
        """
        try:
            while self._unmarked:
                await asyncio.sleep(MARK_INTERVAL_S)
                canvases, self._unmarked = self._unmarked, set()
                for canvas_id in canvases:
                    seq = self._out_seq.get(canvas_id)
                    if seq is None:
                        continue  # unsubscribed meanwhile
                    if not self._can_mark(canvas_id):
                        self._unmarked.add(canvas_id)
                        continue
                    self._count(self._counts.published, KIND_MARK)
                    self._send(canvas_id, encode_message(self.node_id, seq, KIND_MARK, b""))
        finally:
            self._marker = None

    def _can_mark(self, canvas_id: str) -> bool:
        """Whether a mark for ``canvas_id`` can reach the transport now. One transport (Redis,
        memory): it is connected. A sharded one answers per canvas, so one dead shard stalls
        only the canvases that live on it."""
        return self.connected

    def _mark_soon(self, canvas_ids: Iterable[str]) -> None:
        """Messages of these canvases were lost after they left ``publish`` (a transport lost
        its queue): send their marks at the next round, so receivers learn of the loss even if
        nothing else is published there."""
        self._unmarked.update(c for c in canvas_ids if c in self._out_seq)
        if self._unmarked and self._marker is None:
            self._marker = asyncio.get_running_loop().create_task(self._mark_loop())

    def _stop_marker(self) -> None:
        """Closing: the mark loop must not outlive the broker (a pending task at loop close)."""
        if self._marker is not None:
            self._marker.cancel()
            self._marker = None

    def drop_next_publishes(self, count: int = 1) -> None:
        """Test hook: the next ``count`` publishes are numbered but never sent."""
        self._drop_next += count

    def add_state_listener(self, callback: Callable[[bool], None]) -> None:
        """Called with True when the transport (re)connects, False when it drops."""
        self._state_listeners.append(callback)

    def _on_raw(self, canvas_id: str, raw: bytes) -> None:
        listener = self._listeners.get(canvas_id)
        if listener is None:
            return
        try:
            message = decode_message(canvas_id, raw)
        except (ProtocolError, UnicodeDecodeError):
            log.warning("dropping malformed broker message on %s", canvas_id)
            return
        if message.node_id == self.node_id:
            return
        self._heard_from(message.node_id)
        self._count(self._counts.received, message.kind)
        key = (canvas_id, message.node_id)
        last = self._in_seq.get(key)
        if message.kind == KIND_MARK:
            if message.seq != (last or 0):
                self._counts.gaps += 1
                self._in_seq[key] = max(message.seq, last or 0)
                log.info(
                    "missed messages on %s from %s up to %s",
                    canvas_id,
                    message.node_id,
                    message.seq,
                )
                listener.on_broker_gap()
            return
        self._in_seq[key] = message.seq
        listener.on_broker_message(message)
        # Sequences start at 1 when a node subscribes: a first message numbered higher, or any
        # jump, means something was missed.
        if message.seq != (last or 0) + 1:
            self._counts.gaps += 1
            log.info("gap on %s from %s: %s -> %s", canvas_id, message.node_id, last, message.seq)
            listener.on_broker_gap()

    def _heard_from(self, node_id: str) -> None:  # noqa: B027 - optional hook
        """A message from ``node_id`` arrived: implementations that track liveness note it, so a
        node that dies before its first heartbeat reached us is still noticed."""

    def _set_connected(self, up: bool, *, heal_all: bool = True) -> None:
        """Implementations call this on connection loss and return. ``heal_all=False``: the
        implementation knows which canvases were cut off and heals only those itself (a sharded
        transport whose other shards kept delivering)."""
        if up:
            if self._was_up:
                self._counts.reconnects += 1
            self._was_up = True
        elif self._was_up:
            self._counts.disconnects += 1
        if up and heal_all:
            # Anything may have been missed while down: every room heals.
            self._in_seq.clear()
            for listener in list(self._listeners.values()):
                listener.on_broker_gap()
        for callback in list(self._state_listeners):
            callback(up)

    def _node_lost(self, node_id: str) -> None:
        for key in [k for k in self._in_seq if k[1] == node_id]:
            del self._in_seq[key]
        for listener in list(self._listeners.values()):
            listener.on_node_lost(node_id)
