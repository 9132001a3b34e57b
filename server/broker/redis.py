"""Redis pub/sub transport: the fan-out between server nodes.

Three long-lived tasks and nothing per message:

* the reader owns the subscriber connection, supervised by ``supervisor.py`` (shared with the
  cluster broker): when the connection breaks (or goes silent longer than our own heartbeat
  allows) it reports the loss, reconnects with capped exponential backoff, re-subscribes every
  channel in one command and reports the return, which makes every room heal from the store.
* the publisher drains a bounded deque into pipelined PUBLISH batches on its own connection, so
  ``publish`` never waits for the network and order per canvas is kept (one connection, FIFO).
  While Redis is down messages are dropped, not buffered: the store has them, and the sequence
  gap or the reconnect makes the receivers heal.
* the heartbeat publishes ``hb:<node>`` on ``<prefix>nodes`` and notices nodes whose heartbeat
  lapsed, so their awareness states disappear well before the clients' own 30 s timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .base import Broker, BrokerStats
from .supervisor import CONN_ERRORS as _CONN_ERRORS
from .supervisor import Supervised, read_until_silent, supervise

log = logging.getLogger("cocanvas.broker.redis")

_HB = b"hb:"
_BYE = b"bye:"


class RedisBroker(Broker):
    def __init__(
        self,
        url: str,
        node_id: str | None = None,
        channel_prefix: str = "cocanvas:",
        *,
        heartbeat_interval: float = 2.0,
        node_timeout: float = 10.0,
        max_backoff: float = 2.0,
        queue_max: int = 100_000,
        batch_max: int = 512,
        start_timeout: float = 5.0,
    ) -> None:
        super().__init__(node_id)
        self.url = url
        self._prefix = channel_prefix
        self._canvas_prefix = f"{channel_prefix}canvas:".encode()
        self._nodes_channel = f"{channel_prefix}nodes".encode()
        self._hb_interval = heartbeat_interval
        self._node_timeout = node_timeout
        # We hear our own heartbeat: silence longer than this means a dead (half-open) socket.
        self._silence_limit = max(3 * heartbeat_interval + 0.5, 1.0)
        self._max_backoff = max_backoff
        self._batch_max = batch_max
        self._start_timeout = start_timeout

        self._channels: set[bytes] = set()
        self._queue: deque[tuple[bytes, bytes]] = deque(maxlen=queue_max)
        self._wake = asyncio.Event()
        self._up = False
        self._up_event = asyncio.Event()
        self._closing = False
        self._redis: Redis | None = None  # publishing and heartbeats
        self._sub_redis: Redis | None = None  # the subscriber connection only
        self._pubsub: PubSub | None = None
        self._confirm: dict[bytes, asyncio.Future[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # Other nodes, by id -> monotonic time of their last heartbeat.
        self._peers: dict[str, float] = {}
        # Messages lost to a full queue or a down Redis (gaps heal them; stats() reports them),
        # and connection losses (also in stats() as disconnects).
        self.dropped = 0
        self.outages = 0

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        # The subscriber gets no retries inside redis-py: a failed read means "down", and
        # recovery (resubscribe, heal) is ours. Publishing retries once, so a pooled connection
        # left stale by a Redis restart costs a reconnect, not a lost batch.
        self._sub_redis = Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=1.0,
            socket_timeout=5.0,
            protocol=2,
        )
        self._redis = Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 1),
            socket_connect_timeout=1.0,
            socket_timeout=5.0,
            protocol=2,
        )
        self._closing = False
        self._tasks = [
            asyncio.create_task(self._reader(), name="redis-broker-reader"),
            asyncio.create_task(self._publisher(), name="redis-broker-publisher"),
            asyncio.create_task(self._heartbeat(), name="redis-broker-heartbeat"),
        ]
        try:
            async with asyncio.timeout(self._start_timeout):
                await self._up_event.wait()
        except TimeoutError:
            # Keep trying in the background; readiness reports us not connected meanwhile.
            log.warning("Redis at %s unreachable at start; retrying in background", self.url)

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._stop_marker()
        # Let the publisher drain what is queued (in order, on its connection), then say goodbye
        # so peers forget our awareness states at once instead of after the heartbeat timeout.
        self._wake.set()
        publisher = self._tasks[1] if len(self._tasks) > 1 else None
        if publisher is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(publisher), 1.0)
        if self._up and self._redis is not None:
            with contextlib.suppress(*_CONN_ERRORS):
                async with asyncio.timeout(1.0):
                    await self._redis.publish(self._nodes_channel, _BYE + self.node_id.encode())
        self._up = False
        self._up_event.clear()
        for task in self._tasks:
            task.cancel()
        # Bounded: a task stuck inside the client library must not hang shutdown.
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=2.0)
            if stuck:
                log.warning("Redis broker tasks did not stop: %s", stuck)
        self._tasks = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self._drop_pubsub()
                for client in (self._redis, self._sub_redis):
                    if client is not None:
                        with contextlib.suppress(*_CONN_ERRORS):
                            await client.aclose()
        self._redis = self._sub_redis = None
        self._channels.clear()
        self._queue.clear()

    @property
    def connected(self) -> bool:
        return self._up

    def stats(self) -> BrokerStats:
        out = super().stats()
        out.peers = len(self._peers)
        return out

    # -- channels -----------------------------------------------------------------------

    def _channel(self, canvas_id: str) -> bytes:
        return self._canvas_prefix + canvas_id.encode()

    async def _subscribe(self, canvas_id: str) -> None:
        channel = self._channel(canvas_id)
        self._channels.add(channel)
        pubsub = self._pubsub
        if pubsub is None or not self._up:
            return  # the reader subscribes everything when it (re)connects
        # Wait for Redis to confirm, so a message published right after we return is ours.
        future = self._confirm.get(channel)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._confirm[channel] = future
        try:
            await pubsub.subscribe(channel)
            async with asyncio.timeout(2.0):
                await future
        except _CONN_ERRORS:
            pass  # the reader notices the broken connection and resubscribes
        finally:
            if self._confirm.get(channel) is future:
                del self._confirm[channel]

    async def _unsubscribe(self, canvas_id: str) -> None:
        channel = self._channel(canvas_id)
        self._channels.discard(channel)
        pubsub = self._pubsub
        if pubsub is None or not self._up:
            return
        with contextlib.suppress(*_CONN_ERRORS):
            await pubsub.unsubscribe(channel)
        # We read raw responses, so redis-py never sees the confirmation that would drop the
        # channel from its own bookkeeping; without this a long-lived node would accumulate
        # every canvas it ever served.
        pubsub.channels.pop(channel, None)
        pubsub.pending_unsubscribe_channels.discard(channel)

    # -- publishing ---------------------------------------------------------------------

    def _send(self, canvas_id: str, raw: bytes) -> None:
        if not self._up:
            self.dropped += 1
            return
        queue = self._queue
        if len(queue) == queue.maxlen:
            self.dropped += 1  # the deque drops the oldest; its receivers see a gap
        queue.append((self._channel(canvas_id), raw))
        if not self._wake.is_set():
            self._wake.set()

    async def _publisher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush()
            except _CONN_ERRORS as exc:
                log.debug("publish batch lost: %s", exc)
            if self._closing:
                return

    async def _flush(self) -> None:
        redis = self._redis
        queue = self._queue
        while queue and redis is not None:
            count = min(len(queue), self._batch_max)
            batch = [queue.popleft() for _ in range(count)]
            if not self._up:
                self.dropped += count
                continue
            pipe = redis.pipeline(transaction=False)
            for channel, raw in batch:
                pipe.publish(channel, raw)
            try:
                await pipe.execute()
            except _CONN_ERRORS:
                self.dropped += count
                raise

    # -- receiving and supervision --------------------------------------------------------

    async def _reader(self) -> None:
        await supervise(
            Supervised(
                name="Redis broker reader",
                connect=self._connect,
                serve=self._read_until_broken,
                lost=self._went_down,
                drop=self._drop_pubsub,
                closing=lambda: self._closing,
                max_backoff=self._max_backoff,
                log=log,
            )
        )

    async def _connect(self) -> None:
        assert self._sub_redis is not None
        pubsub = self._sub_redis.pubsub()
        self._pubsub = pubsub
        # One SUBSCRIBE for everything. Channels added from here on are not sent by _subscribe
        # (we are not up yet), so they are picked up below before we claim to be up.
        sent = {self._nodes_channel, *self._channels}
        await pubsub.subscribe(*sent)
        await self._await_confirmations(pubsub, set(sent))
        while missing := self._channels - sent:
            sent |= missing
            await pubsub.subscribe(*missing)
            await self._await_confirmations(pubsub, set(missing))
        if stale := sent - self._channels - {self._nodes_channel}:
            await pubsub.unsubscribe(*stale)
        now = time.monotonic()
        # We heard nothing while down: give every known peer a fresh grace period.
        for node in self._peers:
            self._peers[node] = now
        self._up = True
        self._up_event.set()
        log.info("Redis broker %s connected (%d channels)", self.node_id, len(self._channels))
        self._notify_state(True)

    async def _await_confirmations(self, pubsub: PubSub, pending: set[bytes]) -> None:
        """Read until Redis confirmed every channel, so healing starts after we listen."""
        async with asyncio.timeout(max(self._silence_limit, 2.0)):
            while pending:
                message = await pubsub.parse_response(block=True)
                if isinstance(message, list) and len(message) >= 3:
                    if message[0] == b"subscribe":
                        pending.discard(message[1])
                    else:
                        self._dispatch(message)

    async def _read_until_broken(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        await read_until_silent(
            lambda: pubsub.parse_response(block=True), self._dispatch, self._silence_limit
        )

    def _dispatch(self, message: list[bytes]) -> None:
        try:
            self._dispatch_unguarded(message)
        except Exception:
            # A failing listener must not take the node's only reader down with it.
            log.exception("broker listener failed on %r", message[1])

    def _dispatch_unguarded(self, message: list[bytes]) -> None:
        mtype, channel = message[0], message[1]
        if mtype == b"message" and len(message) >= 3:
            data = message[2]
            if channel == self._nodes_channel:
                self._on_node_message(data)
            elif channel.startswith(self._canvas_prefix):
                self._on_raw(channel[len(self._canvas_prefix) :].decode(), data)
        elif mtype == b"subscribe":
            future = self._confirm.get(channel)
            if future is not None and not future.done():
                future.set_result(None)

    def _went_down(self, exc: BaseException) -> None:
        if self._up:
            log.warning("Redis broker %s lost its connection: %s", self.node_id, exc)
            self._up = False
            self._up_event.clear()
            self._queue.clear()
            for future in self._confirm.values():
                if not future.done():
                    future.set_result(None)  # subscribers stop waiting; reconnect covers them
            self.outages += 1
            self._notify_state(False)
        else:
            log.debug("Redis still unreachable: %s", exc)

    def _notify_state(self, up: bool) -> None:
        try:
            self._set_connected(up)
        except Exception:
            log.exception("broker state listener failed")

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*_CONN_ERRORS):
                await pubsub.aclose()

    # -- node liveness ------------------------------------------------------------------

    def _heard_from(self, node_id: str) -> None:
        self._peers[node_id] = time.monotonic()

    def _on_node_message(self, data: bytes) -> None:
        if data.startswith(_HB):
            node = data[len(_HB) :].decode(errors="replace")
            if node != self.node_id:
                self._peers[node] = time.monotonic()
        elif data.startswith(_BYE):
            node = data[len(_BYE) :].decode(errors="replace")
            if node != self.node_id and self._peers.pop(node, None) is not None:
                self._node_lost(node)

    async def _heartbeat(self) -> None:
        beat = _HB + self.node_id.encode()
        while not self._closing:
            if self._up and self._redis is not None:
                try:
                    await self._redis.publish(self._nodes_channel, beat)
                except _CONN_ERRORS as exc:
                    log.debug("heartbeat failed: %s", exc)
                try:
                    self._reap_peers()
                except Exception:
                    log.exception("forgetting a lost node failed")
            await asyncio.sleep(self._hb_interval)

    def _reap_peers(self) -> None:
        deadline = time.monotonic() - self._node_timeout
        for node, seen in list(self._peers.items()):
            if seen < deadline:
                del self._peers[node]
                log.info("node %s missed its heartbeats; forgetting its state", node)
                self._node_lost(node)
