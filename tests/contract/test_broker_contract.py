"""One contract for every Broker: two brokers are two server nodes.

MemoryBroker nodes share a MemoryHub; RedisBroker nodes share a private redis-server that the
Redis-only tests kill and restart to prove the reconnect path; RedisClusterBroker nodes share a
private Redis Cluster (one per module; tests/test_cluster_broker.py kills its nodes).
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

from server.broker.base import (
    KIND_AWARENESS,
    KIND_CONTROL,
    KIND_UPDATE,
    Broker,
    BrokerListener,
    BrokerMessage,
)
from server.broker.cluster import RedisClusterBroker
from server.broker.memory import MemoryBroker, MemoryHub
from server.broker.redis import RedisBroker
from tests.services import RedisClusterServers

from .conftest import RedisServer

REPO = Path(__file__).resolve().parents[2]


def fast_redis_broker(
    url: str, node_id: str, prefix: str = "cocanvas:", start_timeout: float = 5.0
) -> RedisBroker:
    """Fast heartbeats so lapse detection is testable in about a second."""
    return RedisBroker(
        url, node_id, prefix, heartbeat_interval=0.1, node_timeout=0.6, start_timeout=start_timeout
    )


def fast_cluster_broker(
    url: str, node_id: str, prefix: str = "cocanvas:", start_timeout: float = 5.0
) -> RedisClusterBroker:
    return RedisClusterBroker(
        url, node_id, prefix, heartbeat_interval=0.1, node_timeout=0.6, start_timeout=start_timeout
    )


@pytest.fixture(scope="module")
def redis_cluster_servers() -> Iterator[RedisClusterServers]:
    """Three primaries, no replicas: the contract does not kill cluster nodes."""
    servers = RedisClusterServers(primaries=3, replicas=0).start()
    try:
        yield servers
    finally:
        servers.stop()


class Recorder(BrokerListener):
    def __init__(self) -> None:
        self.messages: list[BrokerMessage] = []
        self.gaps = 0
        self.lost: list[str] = []
        self._changed = asyncio.Event()

    def on_broker_message(self, message: BrokerMessage) -> None:
        self.messages.append(message)
        self._changed.set()

    def on_broker_gap(self) -> None:
        self.gaps += 1
        self._changed.set()

    def on_node_lost(self, node_id: str) -> None:
        self.lost.append(node_id)
        self._changed.set()

    async def wait_for(self, cond: Callable[[], bool], within: float = 3.0) -> None:
        async with asyncio.timeout(within):
            while not cond():
                self._changed.clear()
                await self._changed.wait()


async def settle() -> None:
    """Long enough for a message to cross a local Redis, so absence means absence."""
    await asyncio.sleep(0.15)


async def until(cond: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@dataclass
class Cluster:
    kind: str
    make: Callable[[str], Broker]
    redis: RedisServer | None = None
    broker_url: str | None = None
    started: list[Broker] = field(default_factory=list)

    async def node(self, name: str) -> Broker:
        broker = self.make(name)
        await broker.start()
        self.started.append(broker)
        return broker


@pytest.fixture(params=["memory", "redis", "cluster"])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    if request.param == "memory":
        hub = MemoryHub()
        c = Cluster("memory", lambda name: MemoryBroker(node_id=name, hub=hub))
    elif request.param == "cluster":
        servers: RedisClusterServers = request.getfixturevalue("redis_cluster_servers")
        prefix = f"t{uuid.uuid4().hex[:6]}:"
        c = Cluster(
            "cluster",
            lambda name: fast_cluster_broker(servers.url, name, prefix),
            broker_url=servers.url,
        )
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        prefix = f"t{uuid.uuid4().hex[:6]}:"
        c = Cluster(
            "redis",
            lambda name: fast_redis_broker(server.url, name, prefix),
            redis=server,
            broker_url=server.url,
        )
    try:
        yield c
    finally:
        for broker in c.started:
            await broker.close()


async def two_nodes(
    cluster: Cluster, canvas: str = "c1"
) -> tuple[Broker, Broker, Recorder, Recorder]:
    a, b = await cluster.node("node-a"), await cluster.node("node-b")
    ra, rb = Recorder(), Recorder()
    await a.subscribe(canvas, ra)
    await b.subscribe(canvas, rb)
    return a, b, ra, rb


async def test_publish_reaches_other_node_not_itself(cluster: Cluster) -> None:
    a, b, ra, rb = await two_nodes(cluster)
    assert a.connected and b.connected
    a.publish("c1", KIND_UPDATE, b"\x01\x02update")
    a.publish("c1", KIND_AWARENESS, b"aw")
    a.publish("c1", KIND_CONTROL, b"close:deleted")
    await rb.wait_for(lambda: len(rb.messages) == 3)
    assert [(m.kind, m.payload) for m in rb.messages] == [
        (KIND_UPDATE, b"\x01\x02update"),
        (KIND_AWARENESS, b"aw"),
        (KIND_CONTROL, b"close:deleted"),
    ]
    assert all(m.node_id == a.node_id and m.canvas_id == "c1" for m in rb.messages)
    assert [m.seq for m in rb.messages] == [1, 2, 3]
    await settle()
    assert ra.messages == [] and rb.gaps == 0


async def test_order_is_kept_under_a_burst(cluster: Cluster) -> None:
    a, b, _, rb = await two_nodes(cluster)
    for i in range(2000):
        a.publish("c1", KIND_UPDATE, i.to_bytes(4, "big"))
    await rb.wait_for(lambda: len(rb.messages) == 2000, within=10)
    assert [int.from_bytes(m.payload, "big") for m in rb.messages] == list(range(2000))
    assert rb.gaps == 0


async def test_unsubscribed_canvas_receives_nothing(cluster: Cluster) -> None:
    a, b, _, rb = await two_nodes(cluster)
    a.publish("other", KIND_UPDATE, b"not for b")
    await settle()
    assert rb.messages == []
    await b.unsubscribe("c1")
    a.publish("c1", KIND_UPDATE, b"after unsubscribe")
    await settle()
    assert rb.messages == []
    # Subscribing again works (a may report a gap: b missed what was sent meanwhile).
    await b.subscribe("c1", rb)
    a.publish("c1", KIND_UPDATE, b"again")
    await rb.wait_for(lambda: len(rb.messages) == 1)


async def test_channels_are_independent(cluster: Cluster) -> None:
    a, b = await cluster.node("node-a"), await cluster.node("node-b")
    r1, r2 = Recorder(), Recorder()
    await b.subscribe("x", r1)
    await b.subscribe("y", r2)
    a.publish("x", KIND_UPDATE, b"to-x")
    a.publish("y", KIND_UPDATE, b"to-y")
    await r1.wait_for(lambda: len(r1.messages) == 1)
    await r2.wait_for(lambda: len(r2.messages) == 1)
    assert r1.messages[0].payload == b"to-x" and r2.messages[0].payload == b"to-y"
    # Sequence numbers are per canvas: no gap although a published on two channels.
    assert r1.gaps == r2.gaps == 0


async def test_payloads_and_ids_travel_unchanged(cluster: Cluster) -> None:
    odd = "ünï:cøde/with spaces:and:colons"
    a, b = await cluster.node("node-a"), await cluster.node("node-b")
    rb = Recorder()
    await b.subscribe(odd, rb)
    big = bytes(range(256)) * 4096  # 1 MiB, every byte value
    a.publish(odd, KIND_UPDATE, big)
    a.publish(odd, KIND_UPDATE, b"")
    await rb.wait_for(lambda: len(rb.messages) == 2)
    assert rb.messages[0].payload == big and rb.messages[1].payload == b""
    assert rb.messages[0].canvas_id == odd


class Exploding(Recorder):
    def on_broker_message(self, message: BrokerMessage) -> None:
        super().on_broker_message(message)
        if message.payload == b"boom":
            raise RuntimeError("a room bug")


async def test_failing_listener_does_not_stop_delivery(cluster: Cluster) -> None:
    a, b = await cluster.node("node-a"), await cluster.node("node-b")
    bad, good = Exploding(), Recorder()
    await b.subscribe("bad", bad)
    await b.subscribe("good", good)
    a.publish("bad", KIND_UPDATE, b"boom")
    a.publish("good", KIND_UPDATE, b"still here")
    a.publish("bad", KIND_UPDATE, b"and here")
    await good.wait_for(lambda: len(good.messages) == 1)
    await bad.wait_for(lambda: len(bad.messages) == 2)
    assert b.connected


async def test_sequence_gap_triggers_heal(cluster: Cluster) -> None:
    a, b, _, rb = await two_nodes(cluster)
    a.publish("c1", KIND_UPDATE, b"1")
    a.drop_next_publishes(2)
    a.publish("c1", KIND_UPDATE, b"2 lost")
    a.publish("c1", KIND_UPDATE, b"3 lost")
    a.publish("c1", KIND_UPDATE, b"4")
    await rb.wait_for(lambda: rb.gaps == 1)
    assert [m.payload for m in rb.messages] == [b"1", b"4"]
    assert [m.seq for m in rb.messages] == [1, 4]


async def test_three_nodes_all_hear(cluster: Cluster) -> None:
    a, b, _, rb = await two_nodes(cluster)
    c = await cluster.node("node-c")
    rc = Recorder()
    await c.subscribe("c1", rc)
    a.publish("c1", KIND_UPDATE, b"from a")
    c.publish("c1", KIND_UPDATE, b"from c")
    await rb.wait_for(lambda: len(rb.messages) == 2)
    await rc.wait_for(lambda: len(rc.messages) == 1)
    assert {m.node_id for m in rb.messages} == {"node-a", "node-c"}
    assert rc.messages[0].node_id == "node-a"


# -- Redis only: the transport can fail ----------------------------------------------------


def redis_only(cluster: Cluster) -> RedisServer:
    if cluster.redis is None:
        pytest.skip("in-process broker has no transport to lose")
    return cluster.redis


async def test_redis_restart_reconnects_resubscribes_and_heals(cluster: Cluster) -> None:
    server = redis_only(cluster)
    a, b, _, rb = await two_nodes(cluster)
    states: list[bool] = []
    b.add_state_listener(states.append)
    a.publish("c1", KIND_UPDATE, b"before")
    await rb.wait_for(lambda: len(rb.messages) == 1)

    server.kill()
    await until(lambda: not a.connected and not b.connected, within=3)
    assert states == [False]
    a.publish("c1", KIND_UPDATE, b"into the void")  # dropped, healed from the store later

    gaps_before = rb.gaps
    server.start()
    back = time.monotonic()
    await until(lambda: a.connected and b.connected, within=5)
    reconnect_s = time.monotonic() - back
    assert reconnect_s < 2.5, f"reconnect took {reconnect_s:.2f}s"
    assert states == [False, True]
    assert rb.gaps > gaps_before  # every room heals from the store after the outage

    a.publish("c1", KIND_UPDATE, b"after")
    await rb.wait_for(lambda: rb.messages[-1].payload == b"after")
    assert b"into the void" not in [m.payload for m in rb.messages]


async def test_redis_subscribe_while_down_is_honoured_on_return(cluster: Cluster) -> None:
    server = redis_only(cluster)
    a, b = await cluster.node("node-a"), await cluster.node("node-b")
    server.kill()
    await until(lambda: not b.connected, within=3)
    rb = Recorder()
    await b.subscribe("late", rb)  # must not hang or raise while Redis is away
    server.start()
    await until(lambda: a.connected and b.connected, within=5)
    a.publish("late", KIND_UPDATE, b"hello")
    await rb.wait_for(lambda: len(rb.messages) == 1)


async def test_redis_start_without_server_then_connects(cluster: Cluster) -> None:
    server = redis_only(cluster)
    server.kill()
    broker = fast_redis_broker(server.url, "early", start_timeout=0.2)
    cluster.started.append(broker)
    await broker.start()
    assert not broker.connected
    server.start()
    await until(lambda: broker.connected, within=5)


def networked(cluster: Cluster) -> str:
    """Redis or Redis Cluster: a transport with heartbeats between nodes."""
    if cluster.broker_url is None:
        pytest.skip("in-process broker has no heartbeats")
    return cluster.broker_url


async def test_redis_graceful_close_forgets_node_at_once(cluster: Cluster) -> None:
    networked(cluster)
    a, b, ra, _ = await two_nodes(cluster)
    await asyncio.sleep(0.3)  # a has heard b's heartbeat
    cluster.started.remove(b)
    await b.close()
    await ra.wait_for(lambda: ra.lost == ["node-b"], within=0.5)


async def test_redis_heartbeat_lapse_reports_lost_node(cluster: Cluster) -> None:
    """A node that dies without saying goodbye (SIGKILL) is forgotten after its heartbeats stop."""
    url = networked(cluster)
    a = await cluster.node("node-a")
    prefix = cast(RedisBroker, a)._prefix
    module, cls = (
        ("server.broker.cluster", "RedisClusterBroker")
        if cluster.kind == "cluster"
        else ("server.broker.redis", "RedisBroker")
    )
    ra = Recorder()
    await a.subscribe("c1", ra)
    script = textwrap.dedent(
        f"""
        import asyncio
        from {module} import {cls}

        async def main():
            b = {cls}(
                {url!r}, "doomed", {prefix!r}, heartbeat_interval=0.1
            )
            await b.start()
            print("up", flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=REPO, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        assert (await proc.stdout.readline()).strip() == b"up"
        await until(lambda: "doomed" in cast(RedisBroker, a)._peers, within=3)
        proc.kill()
        killed = time.monotonic()
        await ra.wait_for(lambda: ra.lost == ["doomed"], within=3)
        # node_timeout is 0.6 s here (10 s in production): detected after it, not long after.
        assert 0.4 < time.monotonic() - killed < 2.0
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_redis_silent_connection_is_noticed(cluster: Cluster) -> None:
    """A connection that stays open but carries nothing (half-open socket, stalled server)."""
    from redis.asyncio import Redis

    server = redis_only(cluster)
    a = await cluster.node("node-a")
    states: list[bool] = []
    a.add_state_listener(states.append)
    admin = Redis.from_url(server.url)
    try:
        # Redis answers nobody for 2 s: not even our own heartbeat comes back.
        await admin.execute_command("CLIENT", "PAUSE", "2000", "ALL")
        await until(lambda: states == [False], within=2)
        await until(lambda: a.connected, within=5)
        assert states == [False, True]
    finally:
        await admin.aclose()
