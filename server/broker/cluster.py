"""Redis Cluster sharded pub/sub transport: fan-out that spreads over the cluster's primaries.

Plain PUBLISH on a Redis Cluster is broadcast to every node over the cluster bus, so adding
shards adds no pub/sub capacity. ``SPUBLISH``/``SSUBSCRIBE`` route a channel by its hash slot
like a key: one channel per canvas (``<prefix>canvas:<id>``) puts each canvas on one shard, and
canvases spread over all of them.

What comes from redis-py (``redis.asyncio.cluster.RedisCluster``): the slot map and topology
refresh after a failover (``nodes_manager.initialize``). What is written here, and why:
redis-py's async ``ClusterPubSub`` multiplexes its per-node subscribers through
``get_sharded_message``, which polls them round-robin with a timeout (latency or a busy loop),
and it notices a dead node only on the next read. The broker instead keeps one supervised
subscriber connection per primary (a :class:`_Shard`) whose reader blocks on that socket alone,
as ``server/broker/redis.py`` does for one Redis: silence (no reply to our own PINGs) or an error
means the shard is down; its canvases then refresh the topology, move to the slot's new owner
(a promoted replica) or wait for the node to return, and heal from the store once subscribed
again. A slot migrated away (Redis sends an unrequested ``sunsubscribe``) moves the same way.

Publishing is split the same way, one :class:`_Lane` per primary (its own connection, queue and
task): a cluster-wide pipeline waits for its slowest node, so one silently dead shard (SIGSTOP, a
TCP black hole: no error, just no answer) held every canvas's fan-out for the socket timeout. A
lane's batch that is not answered within ``publish_timeout`` marks that lane stuck: what it held
is dropped (the store has it) and its canvases' marks wait, while the other lanes and their marks
go on; the lane probes its primary (PING) with backoff and, once answered, the waiting marks go out
and reveal the loss to the receivers, whose rooms heal from the store. Both the subscribers and
the lanes run in the shared supervision loop of ``supervisor.py``. One shard down stalls only the
canvases whose slot lives on it: they alone heal when it returns (``heal_all=False``).

The subscriber sends ``SSUBSCRIBE``/``SUNSUBSCRIBE`` as plain commands and reads raw replies:
redis-py's async ``PubSub`` gained ``ssubscribe`` only in later releases, and its bookkeeping
would replay subscriptions on a reconnect that the shard's supervisor does itself.

Framing, sequence numbers, gap detection and marks are the base class's; node heartbeats travel
on the sharded channel ``<prefix>nodes`` (one shard carries them; while that shard is down no
peer is declared lost, and every peer gets a fresh grace period when it returns).

Selected by a ``redis+cluster://host:port[,host:port...]`` URL in ``COCANVAS_REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.cluster import PRIMARY, key_slot
from redis.exceptions import AskError, MovedError

from .base import Broker, BrokerStats
from .supervisor import CONN_ERRORS as _CONN_ERRORS
from .supervisor import Backoff, Supervised, read_until_silent, supervise

log = logging.getLogger("cocanvas.broker.cluster")

SCHEME = "redis+cluster"

_HB = b"hb:"
_BYE = b"bye:"
# How often an idle publishing lane checks that its node still owns slots.
_LANE_IDLE_CHECK_S = 5.0


def cluster_startup_nodes(url: str) -> list[tuple[str, int]]:
    """``redis+cluster://h1:p1,h2:p2`` -> [(h1, p1), (h2, p2)]: any reachable one is enough."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        raise ValueError(f"not a {SCHEME}:// URL: {url!r}")
    nodes = []
    for item in parts.netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = item.strip().rpartition(":")
        if not host:
            host, port = port, "6379"
        nodes.append((host.strip("[]"), int(port or 6379)))
    if not nodes:
        raise ValueError(f"no cluster node in {url!r}")
    return nodes


class _Shard:
    """One primary's subscriber connection and the channels placed on it."""

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name, self.host, self.port = name, host, port
        self.channels: set[bytes] = set()
        self.pubsub: PubSub | None = None
        self.client: Redis | None = None
        self.up = False
        self.was_up = False
        self.failed = False  # a connection attempt failed since the last success
        self.up_event = asyncio.Event()
        self.confirm: dict[bytes, asyncio.Future[None]] = {}
        self.task: asyncio.Task[None] | None = None


class _Lane:
    """One primary's publishing connection and the queue that feeds it, in order."""

    def __init__(self, name: str, host: str, port: int, queue_max: int) -> None:
        self.name, self.host, self.port = name, host, port
        self.queue: deque[tuple[bytes, bytes]] = deque(maxlen=queue_max)
        self.inflight: list[tuple[bytes, bytes]] = []
        self.wake = asyncio.Event()
        self.client: Redis | None = None
        # Optimistic until a batch goes unanswered: a new lane queues while it connects.
        self.healthy = True
        self.task: asyncio.Task[None] | None = None


class RedisClusterBroker(Broker):
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
        publish_timeout: float = 1.0,
    ) -> None:
        super().__init__(node_id)
        self.url = url
        self._startup = cluster_startup_nodes(url)
        self._prefix = channel_prefix
        self._canvas_prefix = f"{channel_prefix}canvas:".encode()
        self._nodes_channel = f"{channel_prefix}nodes".encode()
        self._hb_interval = heartbeat_interval
        self._node_timeout = node_timeout
        self._silence_limit = max(3 * heartbeat_interval + 0.5, 1.0)
        self._max_backoff = max_backoff
        self._batch_max = batch_max
        self._start_timeout = start_timeout
        # A primary that leaves a publish batch unanswered this long is stuck (not just slow).
        self._publish_timeout = publish_timeout
        self._queue_max = queue_max

        self._cluster: RedisCluster | None = None
        self._ready = False  # the slot map is known
        self._channels: set[bytes] = set()  # every channel we want, the nodes channel included
        self._placed: dict[bytes, _Shard] = {}
        self._shards: dict[str, _Shard] = {}
        self._lanes: dict[str, _Lane] = {}  # by primary name; as many as primaries published to
        self._up = False
        self._up_event = asyncio.Event()
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._following: set[asyncio.Task[None]] = set()  # channels following a moved slot
        self._peers: dict[str, float] = {}
        self.dropped = 0
        self.outages = 0

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._cluster = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in self._startup],
            protocol=2,
            socket_connect_timeout=1.0,
            socket_timeout=2.0,
            retry=Retry(NoBackoff(), 1),
        )
        self._closing = False
        self._channels.add(self._nodes_channel)
        self._tasks = [
            asyncio.create_task(self._starter(), name="cluster-broker-start"),
            asyncio.create_task(self._heartbeat(), name="cluster-broker-heartbeat"),
        ]
        try:
            async with asyncio.timeout(self._start_timeout):
                await self._up_event.wait()
        except TimeoutError:
            log.warning("Redis Cluster at %s unreachable at start; retrying", self.url)

    async def close(self) -> None:
        if self._closing:
            return
        # Say goodbye (so peers forget our awareness states at once), then let every healthy
        # lane drain what it holds, in order, in parallel; a stuck one is not waited for long.
        if self._up:
            self._send_channel(self._nodes_channel, _BYE + self.node_id.encode())
        self._closing = True
        self._stop_marker()
        lanes = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for lane in self._lanes.values():
            lane.wake.set()
        if lanes:
            await asyncio.wait(lanes, timeout=1.0)
        self._up = False
        self._up_event.clear()
        tasks = self._tasks + [s.task for s in self._shards.values() if s.task is not None]
        tasks += [lane.task for lane in self._lanes.values() if lane.task is not None]
        tasks += list(self._following)
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=2.0)
            if stuck:
                log.warning("cluster broker tasks did not stop: %s", stuck)
        self._tasks = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                for shard in self._shards.values():
                    await self._drop_conn(shard)
                for lane in self._lanes.values():
                    await self._drop_lane(lane)
                if self._cluster is not None:
                    with contextlib.suppress(*_CONN_ERRORS):
                        await self._cluster.aclose()
        self._cluster = None
        self._shards.clear()
        self._placed.clear()
        self._channels.clear()
        self._lanes.clear()
        self._ready = False

    @property
    def connected(self) -> bool:
        return self._up

    def stats(self) -> BrokerStats:
        out = super().stats()
        out.peers = len(self._peers)
        return out

    def shard_of(self, canvas_id: str) -> str | None:
        """The primary (host:port) whose subscriber carries this canvas (tests, diagnostics)."""
        shard = self._placed.get(self._channel(canvas_id))
        return shard.name if shard is not None else None

    # -- placement ----------------------------------------------------------------------

    def _channel(self, canvas_id: str) -> bytes:
        return self._canvas_prefix + canvas_id.encode()

    async def _starter(self) -> None:
        """Learn the slot map (retrying while no node answers), then place every channel."""
        backoff = Backoff(self._max_backoff)
        while not self._closing:
            try:
                assert self._cluster is not None
                await self._cluster.initialize()
                break
            except _CONN_ERRORS as exc:
                log.debug("Redis Cluster not reachable yet: %s", exc)
                await backoff.wait()
        self._ready = True
        for channel in list(self._channels):
            try:
                self._place(channel)
            except _CONN_ERRORS as exc:  # its slot is not served right now
                log.warning("cannot place %r yet: %s", channel, exc)

    def _owner(self, channel: bytes) -> tuple[str, str, int]:
        assert self._cluster is not None
        node = self._cluster.get_node_from_key(channel.decode())
        if node is None:
            raise ConnectionError(f"no primary serves the slot of {channel!r}")
        return node.name, node.host, int(node.port)

    def _place(self, channel: bytes) -> _Shard:
        """Put ``channel`` on the shard of its slot's current primary (starting that shard)."""
        name, host, port = self._owner(channel)
        shard = self._shards.get(name)
        if shard is None:
            shard = self._shards[name] = _Shard(name, host, port)
        old = self._placed.get(channel)
        if old is not None and old is not shard:
            old.channels.discard(channel)
        shard.channels.add(channel)
        self._placed[channel] = shard
        if shard.task is None or shard.task.done():
            shard.task = asyncio.get_running_loop().create_task(
                self._run_shard(shard), name=f"cluster-broker-shard-{name}"
            )
            self._update_up()
        return shard

    async def _subscribe(self, canvas_id: str) -> None:
        channel = self._channel(canvas_id)
        self._channels.add(channel)
        if not self._ready:
            return  # the starter places it
        try:
            shard = self._place(channel)
        except _CONN_ERRORS:
            return  # slot not covered right now; a shard's re-placement picks it up
        if not shard.up and not shard.was_up and not shard.failed:
            # A shard we are connecting to for the first time subscribes the channel itself:
            # wait for it, so a message published right after we return is ours.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await shard.up_event.wait()
        elif shard.up and shard.pubsub is not None:
            await self._ssubscribe_confirmed(shard, [channel])

    async def _ssubscribe_confirmed(self, shard: _Shard, channels: list[bytes]) -> None:
        """Subscribe on a live shard and wait for Redis to confirm: a message published right
        after we return is ours."""
        pubsub = shard.pubsub
        if pubsub is None:
            return
        loop = asyncio.get_running_loop()
        futures = []
        for channel in channels:
            future = shard.confirm.get(channel)
            if future is None or future.done():
                future = shard.confirm[channel] = loop.create_future()
            futures.append(future)
        try:
            for group in self._by_slot(channels):
                await pubsub.execute_command("SSUBSCRIBE", *group)
            async with asyncio.timeout(2.0):
                await asyncio.gather(*futures)
        except _CONN_ERRORS:
            pass  # the shard's reader notices and resubscribes
        finally:
            for channel, future in zip(channels, futures, strict=True):
                if shard.confirm.get(channel) is future:
                    del shard.confirm[channel]

    @staticmethod
    def _by_slot(channels: list[bytes] | set[bytes]) -> list[list[bytes]]:
        """One SSUBSCRIBE may only name channels of one slot (else CROSSSLOT)."""
        groups: dict[int, list[bytes]] = defaultdict(list)
        for channel in channels:
            groups[key_slot(channel)].append(channel)
        return list(groups.values())

    async def _unsubscribe(self, canvas_id: str) -> None:
        channel = self._channel(canvas_id)
        self._channels.discard(channel)
        shard = self._placed.pop(channel, None)
        if shard is None:
            return
        shard.channels.discard(channel)
        pubsub = shard.pubsub
        if pubsub is None or not shard.up:
            return
        with contextlib.suppress(*_CONN_ERRORS):
            await pubsub.execute_command("SUNSUBSCRIBE", channel)

    # -- one shard's subscriber -----------------------------------------------------------

    async def _run_shard(self, shard: _Shard) -> None:
        await supervise(
            Supervised(
                name=f"cluster shard {shard.name}",
                connect=lambda: self._connect_shard(shard),
                serve=lambda: self._read_shard(shard),
                lost=lambda exc: self._shard_down(shard, exc),
                drop=lambda: self._drop_conn(shard),
                closing=lambda: self._closing,
                max_backoff=self._max_backoff,
                log=log,
                idle=lambda: self._retire_if_idle(shard),
                retry=lambda: self._replace(shard),
            )
        )

    async def _retire_if_idle(self, shard: _Shard) -> bool:
        """Nothing left to carry: retire, unless a channel arrived while we let go."""
        if shard.channels:
            return False
        shard.up = False
        shard.up_event.clear()
        await self._drop_conn(shard)
        if shard.channels:
            return False
        if self._shards.get(shard.name) is shard:
            del self._shards[shard.name]
        self._update_up()
        return True

    async def _connect_shard(self, shard: _Shard) -> None:
        shard.client = Redis(
            host=shard.host,
            port=shard.port,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=1.0,
            socket_timeout=5.0,
            protocol=2,
        )
        pubsub = shard.client.pubsub()
        shard.pubsub = pubsub
        sent: set[bytes] = set()
        while missing := shard.channels - sent:
            sent |= missing
            for group in self._by_slot(missing):
                await pubsub.execute_command("SSUBSCRIBE", *group)
            await self._await_confirmations(shard, set(missing))
        if stale := sent - shard.channels:
            for group in self._by_slot(stale):
                await pubsub.execute_command("SUNSUBSCRIBE", *group)
        shard.up = True
        shard.up_event.set()
        # Back after a loss, or up late (a room subscribed meanwhile did not wait for us).
        healing = shard.was_up or shard.failed
        shard.was_up = True
        shard.failed = False
        log.info("cluster shard %s subscribed (%d channels)", shard.name, len(shard.channels))
        if self._nodes_channel in shard.channels:
            now = time.monotonic()
            for node in self._peers:  # we heard nothing while down: a fresh grace period
                self._peers[node] = now
        if not self._update_up() and healing:
            self._heal(set(shard.channels))

    async def _await_confirmations(self, shard: _Shard, pending: set[bytes]) -> None:
        assert shard.pubsub is not None
        async with asyncio.timeout(max(self._silence_limit, 2.0)):
            while pending:
                message = await shard.pubsub.parse_response(block=True)
                if isinstance(message, list) and len(message) >= 3:
                    if message[0] == b"ssubscribe":
                        pending.discard(message[1])
                    else:
                        self._dispatch(shard, message)

    async def _read_shard(self, shard: _Shard) -> None:
        pubsub = shard.pubsub
        assert pubsub is not None
        await read_until_silent(
            lambda: pubsub.parse_response(block=True),
            lambda message: self._dispatch(shard, message),
            self._silence_limit,
            keep_reading=lambda: bool(shard.channels) or self._closing,
        )

    def _dispatch(self, shard: _Shard, message: list[bytes]) -> None:
        try:
            mtype, channel = message[0], message[1]
            if mtype == b"smessage" and len(message) >= 3:
                data = message[2]
                if channel == self._nodes_channel:
                    self._on_node_message(data)
                elif channel.startswith(self._canvas_prefix):
                    self._on_raw(channel[len(self._canvas_prefix) :].decode(), data)
            elif mtype == b"ssubscribe":
                future = shard.confirm.get(channel)
                if future is not None and not future.done():
                    future.set_result(None)
            elif mtype == b"sunsubscribe" and channel in shard.channels:
                # Not asked for: the slot moved to another primary. Follow it and heal.
                log.info("slot of %r left shard %s; following it", channel, shard.name)
                task = asyncio.get_running_loop().create_task(self._follow(channel, shard))
                self._following.add(task)
                task.add_done_callback(self._following.discard)
        except Exception:
            log.exception("broker listener failed on %r", message[1])

    async def _follow(self, channel: bytes, old: _Shard) -> None:
        assert self._cluster is not None
        # The node we ask for the slot map may not have heard of the move yet (gossip): ask
        # again until the slot has another owner.
        delay = 0.05
        for _ in range(30):
            with contextlib.suppress(*_CONN_ERRORS):
                await self._cluster.nodes_manager.initialize()
            if channel not in self._channels or self._closing:
                return
            with contextlib.suppress(*_CONN_ERRORS):
                if self._owner(channel)[0] != old.name:
                    break
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)
        try:
            shard = self._place(channel)
        except _CONN_ERRORS:
            return
        # Heal only once we listen on the new primary, or updates published meanwhile are lost
        # with nothing to reveal them. A shard still connecting subscribes the channel itself.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await shard.up_event.wait()
        if shard.up:
            await self._ssubscribe_confirmed(shard, [channel])
        self._heal({channel})

    async def _replace(self, shard: _Shard) -> None:
        """After a shard failed: refresh the slot map and move channels whose slot now belongs
        to another primary (a promoted replica); the rest wait for this node to return."""
        assert self._cluster is not None
        try:
            async with asyncio.timeout(3.0):  # a stopped startup node costs a socket timeout
                await self._cluster.nodes_manager.initialize()
        except _CONN_ERRORS as exc:
            log.debug("topology refresh failed: %s", exc)
            return
        moved: dict[str, list[bytes]] = defaultdict(list)
        for channel in list(shard.channels):
            try:
                target = self._place(channel)
            except _CONN_ERRORS:
                continue
            if target is not shard:
                moved[target.name].append(channel)
        for name, channels in moved.items():
            target = self._shards[name]
            if target.up:
                await self._ssubscribe_confirmed(target, channels)
                self._heal(set(channels))
            # else: the target's own connect subscribes them and heals
            target.was_up = True

    def _shard_down(self, shard: _Shard, exc: BaseException) -> None:
        shard.failed = True
        shard.up_event.clear()
        if shard.up:
            log.warning("cluster shard %s lost: %s", shard.name, exc)
            shard.up = False
            for future in shard.confirm.values():
                if not future.done():
                    future.set_result(None)
            self.outages += 1
        else:
            log.debug("cluster shard %s still unreachable: %s", shard.name, exc)
        self._update_up()

    def _update_up(self) -> bool:
        """Connected means every shard that carries a channel is subscribed (readiness). Returns
        True when this call brought the broker up for the first time, which healed every room;
        later returns heal nothing here: the shard that came back heals its own canvases, the
        others never stopped delivering."""
        # A shard still making its first connection does not count as down; one that failed does.
        nodes = self._placed.get(self._nodes_channel)
        up = (
            self._ready
            and nodes is not None
            and nodes.up
            and all(s.up for s in self._shards.values() if s.channels and (s.was_up or s.failed))
        )
        if up == self._up:
            return False
        self._up = up
        if up:
            self._up_event.set()
        else:
            self._up_event.clear()
        first = up and not self._was_up
        try:
            self._set_connected(up, heal_all=first)
        except Exception:
            log.exception("broker state listener failed")
        return first

    def _heal(self, channels: set[bytes]) -> None:
        """Messages on these channels may have been missed: their rooms heal from the store."""
        for channel in channels:
            if not channel.startswith(self._canvas_prefix):
                continue
            canvas_id = channel[len(self._canvas_prefix) :].decode()
            for key in [k for k in self._in_seq if k[0] == canvas_id]:
                del self._in_seq[key]
            listener = self._listeners.get(canvas_id)
            if listener is not None:
                try:
                    listener.on_broker_gap()
                except Exception:
                    log.exception("healing %s failed", canvas_id)

    async def _drop_conn(self, shard: _Shard) -> None:
        pubsub, shard.pubsub = shard.pubsub, None
        client, shard.client = shard.client, None
        # Bounded: closing a socket to a stopped server must not hold the supervisor.
        with contextlib.suppress(*_CONN_ERRORS):
            async with asyncio.timeout(1.0):
                if pubsub is not None:
                    with contextlib.suppress(*_CONN_ERRORS):
                        await pubsub.aclose()
                if client is not None:
                    await client.aclose()

    # -- publishing: one lane per primary -------------------------------------------------

    def _send(self, canvas_id: str, raw: bytes) -> None:
        self._send_channel(self._channel(canvas_id), raw)

    def _send_channel(self, channel: bytes, raw: bytes) -> None:
        lane = self._lane_for(channel)
        if lane is None or not lane.healthy:
            # No primary for its slot, or a stuck one: dropped, and the canvas's mark waits for
            # the lane, so the receivers learn of the loss and heal from the store.
            self.dropped += 1
            return
        queue = lane.queue
        if len(queue) == queue.maxlen:
            self.dropped += 1  # the deque drops the oldest; its receivers see a gap
        queue.append((channel, raw))
        if not lane.wake.is_set():
            lane.wake.set()

    def _can_mark(self, canvas_id: str) -> bool:
        """A canvas's mark waits only for its own primary's lane."""
        lane = self._lane_for(self._channel(canvas_id))
        return lane is not None and lane.healthy

    def _lane_for(self, channel: bytes) -> _Lane | None:
        """The lane to the primary of the channel's slot, started on first use: the subscriber's
        shard while it is subscribed there (a dict lookup on the hot path), else the slot map
        (a shard that is down may be waiting for a slot that has moved on)."""
        if not self._ready:
            return None
        shard = self._placed.get(channel)
        if shard is not None and shard.up:
            name, host, port = shard.name, shard.host, shard.port
        else:
            try:
                name, host, port = self._owner(channel)
            except _CONN_ERRORS:
                return None
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = _Lane(name, host, port, self._queue_max)
        if (lane.task is None or lane.task.done()) and not self._closing:
            lane.task = asyncio.get_running_loop().create_task(
                self._run_lane(lane), name=f"cluster-broker-lane-{name}"
            )
        return lane

    async def _run_lane(self, lane: _Lane) -> None:
        await supervise(
            Supervised(
                name=f"cluster lane {lane.name}",
                connect=lambda: self._connect_lane(lane),
                serve=lambda: self._serve_lane(lane),
                lost=lambda exc: self._lane_lost(lane, exc),
                drop=lambda: self._drop_lane(lane),
                closing=lambda: self._closing,
                max_backoff=self._max_backoff,
                log=log,
                idle=lambda: self._retire_lane_if_gone(lane),
            )
        )

    async def _retire_lane_if_gone(self, lane: _Lane) -> bool:
        """A lane whose node is no longer a primary (failed over, removed) stops: its slots'
        channels already route to their new owner's lane. A stuck primary that still owns its
        slots is waited for."""
        if self._is_primary(lane.name):
            return False
        if self._lanes.get(lane.name) is lane:
            del self._lanes[lane.name]
        self._lost_messages(list(lane.queue))
        lane.queue.clear()
        log.info("cluster lane %s retired: no longer a primary", lane.name)
        return True

    def _is_primary(self, name: str) -> bool:
        if self._cluster is None:
            return False
        node = self._cluster.nodes_manager.nodes_cache.get(name)
        return node is not None and node.server_type == PRIMARY

    def lanes(self) -> dict[str, bool]:
        """Publishing lanes by primary (host:port) and whether each is healthy (tests,
        diagnostics)."""
        return {name: lane.healthy for name, lane in self._lanes.items()}

    async def _connect_lane(self, lane: _Lane) -> None:
        lane.client = Redis(
            host=lane.host,
            port=lane.port,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=1.0,
            socket_timeout=max(self._publish_timeout, 1.0),
            protocol=2,
        )
        # A stuck primary accepts the connection (the kernel does) but never answers.
        async with asyncio.timeout(self._publish_timeout):
            await lane.client.ping()
        if not lane.healthy:
            log.info("cluster lane %s answers again", lane.name)
        lane.healthy = True
        if lane.queue:
            lane.wake.set()

    async def _serve_lane(self, lane: _Lane) -> None:
        """Drain the queue into pipelined ``SPUBLISH`` batches on this primary only, in order."""
        client = lane.client
        assert client is not None
        while True:
            if not lane.queue:
                if self._closing or not self._is_primary(lane.name):
                    return  # the supervisor retires a lane whose node lost its slots
                # Idle: look again now and then whether the node still owns slots.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_LANE_IDLE_CHECK_S):
                        await lane.wake.wait()
                lane.wake.clear()
                continue
            count = min(len(lane.queue), self._batch_max)
            batch = lane.inflight = [lane.queue.popleft() for _ in range(count)]
            pipe = client.pipeline(transaction=False)
            for channel, raw in batch:
                pipe.execute_command("SPUBLISH", channel, raw)
            async with asyncio.timeout(self._publish_timeout):
                results = await pipe.execute(raise_on_error=False)
            lane.inflight = []
            failed = [
                item for item, r in zip(batch, results, strict=True) if isinstance(r, Exception)
            ]
            if failed:
                # MOVED: the slot has another primary now (the subscriber follows it too).
                self._lost_messages(failed)
                if any(isinstance(r, MovedError | AskError) for r in results):
                    await self._refresh_topology()

    def _lane_lost(self, lane: _Lane, exc: BaseException) -> None:
        lost = lane.inflight + list(lane.queue)
        lane.inflight = []
        lane.queue.clear()
        self._lost_messages(lost)
        if lane.healthy:
            log.warning(
                "cluster lane %s stuck or lost (%r); dropping its publishes", lane.name, exc
            )
            lane.healthy = False

    def _lost_messages(self, lost: list[tuple[bytes, bytes]]) -> None:
        """Published, accepted, then lost: count them and re-mark their canvases, so receivers
        notice even when nothing else is published there."""
        self.dropped += len(lost)
        prefix = self._canvas_prefix
        self._mark_soon({c[len(prefix) :].decode() for c, _ in lost if c.startswith(prefix)})

    async def _drop_lane(self, lane: _Lane) -> None:
        client, lane.client = lane.client, None
        if client is not None:
            with contextlib.suppress(*_CONN_ERRORS):
                async with asyncio.timeout(1.0):
                    await client.aclose()

    async def _refresh_topology(self) -> None:
        assert self._cluster is not None
        with contextlib.suppress(*_CONN_ERRORS):
            async with asyncio.timeout(2.0):
                await self._cluster.nodes_manager.initialize()

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
            if self._ready and self._cluster is not None:
                # Every live subscriber gets a PING, so a silent shard is noticed by its reader
                # (bounded: a black-holed socket whose send buffer is full must not hold us).
                for shard in list(self._shards.values()):
                    if shard.up and shard.pubsub is not None:
                        with contextlib.suppress(*_CONN_ERRORS):
                            async with asyncio.timeout(0.2):
                                await shard.pubsub.ping()
                nodes_shard = self._placed.get(self._nodes_channel)
                if nodes_shard is not None and nodes_shard.up:
                    # Through its lane's queue: this loop never waits on a slow shard.
                    self._send_channel(self._nodes_channel, beat)
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
