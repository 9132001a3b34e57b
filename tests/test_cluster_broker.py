"""Nodes that add up: three CoCanvas nodes on a Redis Cluster (sharded pub/sub) and on one Redis.

The cluster is real: six redis-servers (three primaries, a replica each) started once for the
module by ``redis-cli --cluster create``. Tests that kill a primary wait for its replica to be
promoted and start the killed process again afterwards (it rejoins as a replica), so the next
test finds a healthy cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from redis.cluster import RedisCluster as SyncCluster
from redis.cluster import key_slot

from server.broker.base import KIND_UPDATE
from server.broker.cluster import RedisClusterBroker, cluster_startup_nodes
from tests.contract.test_broker_contract import Recorder, fast_cluster_broker, until
from tests.services import RedisClusterServers, RedisServer
from tests.support import ServerProcess, YClient
from tests.test_multinode import close_all, converged, node, split_clients


@pytest.fixture(scope="module")
def rc() -> Iterator[RedisClusterServers]:
    servers = RedisClusterServers(primaries=3, replicas=1).start()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def healthy(rc: RedisClusterServers) -> Iterator[RedisClusterServers]:
    """Whatever a test killed is started again, and the cluster is whole before the next one."""
    ports = list(rc.ports)
    try:
        yield rc
    finally:
        for port in ports:
            if port not in rc.procs:
                rc.start_node(port)
        rc.wait_ok()


@pytest.fixture
def pg_url() -> Iterator[str]:
    from tests.services import drop_machine_pg_schema, machine_pg_schema

    url = machine_pg_schema()
    try:
        yield url
    finally:
        drop_machine_pg_schema(url)


def owner_port(rc: RedisClusterServers, channel: str) -> int:
    """The port of the primary that serves ``channel``'s slot, as the cluster says now."""
    host, port = cluster_startup_nodes(rc.url)[0]
    alive = next(p for p in rc.procs)
    client = SyncCluster(host=host, port=alive if port not in rc.procs else port)
    try:
        node = client.get_node_from_key(channel)
        assert node is not None
        return int(node.port)
    finally:
        client.close()


def last_is(r: Recorder, payload: bytes) -> Callable[[], bool]:
    return lambda: r.messages[-1:] != [] and r.messages[-1].payload == payload


def has_note(c: YClient, key: str) -> Callable[[], bool]:
    return lambda: key in c.notes


@contextlib.asynccontextmanager
async def spread_over_shards(
    servers: RedisClusterServers, tag: str, node_timeout: float = 0.6
) -> AsyncIterator[
    tuple[RedisClusterBroker, RedisClusterBroker, dict[str, Recorder], str, list[str], list[str]]
]:
    """Two brokers on twelve canvases (b records them): (a, b, recorders, the shard of the first
    canvas, the canvases on it, the canvases elsewhere). Heartbeats every 0.1 s; a node is
    lost after ``node_timeout``."""
    prefix = f"{tag}{uuid.uuid4().hex[:6]}:"
    a, b = (
        RedisClusterBroker(
            servers.url, name, prefix, heartbeat_interval=0.1, node_timeout=node_timeout
        )
        for name in "ab"
    )
    await a.start()
    await b.start()
    try:
        canvases = [f"canvas-{i}" for i in range(12)]
        recorders = {c: Recorder() for c in canvases}
        for c in canvases:
            await a.subscribe(c, Recorder())
            await b.subscribe(c, recorders[c])
        victim = b.shard_of(canvases[0])
        assert victim is not None
        hit = [c for c in canvases if b.shard_of(c) == victim]
        spared = [c for c in canvases if b.shard_of(c) != victim]
        assert spared, "every canvas landed on one primary"
        yield a, b, recorders, victim, hit, spared
    finally:
        await a.close()
        await b.close()


def test_url_names_the_startup_nodes() -> None:
    assert cluster_startup_nodes("redis+cluster://a:7000,b:7001") == [("a", 7000), ("b", 7001)]
    assert cluster_startup_nodes("redis+cluster://h") == [("h", 6379)]
    with pytest.raises(ValueError):
        cluster_startup_nodes("redis://h:6379")


async def test_canvases_spread_over_every_primary(healthy: RedisClusterServers) -> None:
    prefix = f"s{uuid.uuid4().hex[:6]}:"
    a, b = (
        fast_cluster_broker(healthy.url, "a", prefix),
        fast_cluster_broker(healthy.url, "b", prefix),
    )
    await a.start()
    await b.start()
    try:
        canvases = [f"canvas-{i}" for i in range(30)]
        recorders = {c: Recorder() for c in canvases}
        for c in canvases:
            await b.subscribe(c, recorders[c])
        shards = {b.shard_of(c) for c in canvases}
        assert shards == {f"127.0.0.1:{p}" for p in healthy.primary_ports()}
        for c in canvases:
            a.publish(c, KIND_UPDATE, c.encode())
        for c in canvases:
            await recorders[c].wait_for(lambda c=c: len(recorders[c].messages) == 1)  # type: ignore[misc]
            assert recorders[c].messages[0].payload == c.encode()
            assert recorders[c].gaps == 0
    finally:
        await a.close()
        await b.close()


async def test_a_killed_primary_its_canvases_follow_the_promoted_replica_and_heal(
    healthy: RedisClusterServers,
) -> None:
    async with spread_over_shards(healthy, "k") as (a, b, recorders, victim, hit, spared):
        port = int(victim.rsplit(":", 1)[1])
        states: list[bool] = []
        b.add_state_listener(states.append)

        a.publish(hit[0], KIND_UPDATE, b"before")
        await recorders[hit[0]].wait_for(last_is(recorders[hit[0]], b"before"))
        assert a.lanes().get(victim) is True

        healthy.kill_node(port)
        await until(lambda: not b.connected, within=5)
        # Canvases on the other primaries keep flowing while the shard fails over.
        a.publish(spared[0], KIND_UPDATE, b"unaffected")
        r = recorders[spared[0]]
        await r.wait_for(lambda: any(m.payload == b"unaffected" for m in r.messages))

        # The replica is promoted; both nodes follow the slot there, and the rooms heal.
        gaps_before = {c: recorders[c].gaps for c in hit}
        await until(lambda: b.shard_of(hit[0]) not in (None, victim), within=20)
        await until(lambda: a.connected and b.connected, within=10)
        assert states[0] is False and states[-1] is True
        assert all(recorders[c].gaps > gaps_before[c] for c in hit)
        await until(lambda: a.shard_of(hit[0]) == b.shard_of(hit[0]), within=10)
        for c in hit:
            a.publish(c, KIND_UPDATE, b"after failover")
        for c in hit:
            rec = recorders[c]
            await rec.wait_for(last_is(rec, b"after failover"))
        # The dead primary's publishing lane is retired, not probed forever.
        await until(lambda: victim not in a.lanes(), within=15)


async def test_a_migrated_slot_is_followed_to_its_new_primary(
    healthy: RedisClusterServers,
) -> None:
    """Resharding: Redis tells subscribers of a moved slot (an unrequested ``sunsubscribe``);
    the broker follows the slot to its new primary and the room heals."""
    from redis import Redis as SyncRedis

    prefix = f"m{uuid.uuid4().hex[:6]}:"
    a = fast_cluster_broker(healthy.url, "a", prefix)
    b = fast_cluster_broker(healthy.url, "b", prefix)
    await a.start()
    await b.start()
    try:
        rb = Recorder()
        await a.subscribe("moving", Recorder())
        await b.subscribe("moving", rb)
        source = b.shard_of("moving")
        assert source is not None
        source_port = int(source.rsplit(":", 1)[1])
        target_port = next(p for p in healthy.primary_ports() if p != source_port)
        slot = key_slot(f"{prefix}canvas:moving".encode())
        clients = {p: SyncRedis(port=p) for p in healthy.primary_ports()}
        try:
            target_id = clients[target_port].execute_command("CLUSTER", "MYID").decode()
            # The slot holds no keys, so moving it is SETSLOT ... NODE on the new owner, then
            # on the old one, then on the other primaries.
            order = [target_port, source_port] + [
                p for p in clients if p not in (target_port, source_port)
            ]
            for port in order:
                clients[port].execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        finally:
            for c in clients.values():
                c.close()
        gaps = rb.gaps
        await until(lambda: b.shard_of("moving") == f"127.0.0.1:{target_port}", within=10)
        await until(lambda: a.shard_of("moving") == f"127.0.0.1:{target_port}", within=10)
        await rb.wait_for(lambda: rb.gaps > gaps)
        a.publish("moving", KIND_UPDATE, b"on the new primary")
        await rb.wait_for(lambda: any(m.payload == b"on the new primary" for m in rb.messages))
    finally:
        await a.close()
        await b.close()


# -- three CoCanvas server processes ----------------------------------------------------------


@contextlib.asynccontextmanager
async def nodes(
    tmp_path: Path, store_url: str, redis_url: str, count: int = 3
) -> AsyncIterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    try:
        for i in range(count):
            started.append(node(tmp_path, f"node-{i}", store_url, redis_url).start())
        yield started
    finally:
        for n in started:
            n.stop()


async def write_until(stop: asyncio.Event, c: YClient) -> None:
    i = 0
    while not stop.is_set():
        if not c.closed.is_set():
            c.add_note(f"{c.name}-{i}", "x")
            i += 1
        await asyncio.sleep(0.01)


def written(clients: list[YClient]) -> set[str]:
    """Every note any writer wrote (each writer's own document holds all of its writes)."""
    keys: set[str] = set()
    for c in clients:
        keys |= {k for k in c.notes.keys() if k.startswith(c.name + "-")}
    return keys


async def test_three_nodes_on_a_cluster_converge_through_a_killed_primary(
    tmp_path: Path, healthy: RedisClusterServers, pg_url: str
) -> None:
    async with nodes(tmp_path, pg_url, healthy.url) as servers:
        canvas = servers[0].create_canvas()
        clients = await split_clients(tuple(servers), canvas, 6)
        try:
            clients[0].add_note("before", "before the failover")
            await converged(clients, {"before"})
            stop = asyncio.Event()
            tasks = [asyncio.create_task(write_until(stop, c)) for c in clients]
            await clients[5].wait_for(lambda: len(clients[5].notes) >= 60)
            # Kill the primary that carries this canvas's channel, under load.
            victim = owner_port(healthy, f"cocanvas:canvas:{canvas['id']}")
            healthy.kill_node(victim)
            killed_at = len(clients[5].notes)
            await clients[5].wait_for(lambda: len(clients[5].notes) >= killed_at + 60, timeout=30)
            stop.set()
            await asyncio.gather(*tasks)
            keys = written(clients) | {"before"}
            await converged(clients, keys, timeout=30)
            fresh = await split_clients((servers[2],), canvas, 1, "fresh")
            assert set(fresh[0].notes.keys()) == keys  # every write, exactly once, none lost
            await close_all(fresh)
        finally:
            await close_all(clients)


@pytest.fixture
def redis_proc() -> Iterator[RedisServer]:
    r = RedisServer.started()
    try:
        yield r
    finally:
        r.kill()


async def test_four_nodes_on_one_redis_converge_and_survive_a_killed_node(
    tmp_path: Path, redis_proc: RedisServer, pg_url: str
) -> None:
    async with nodes(tmp_path, pg_url, redis_proc.url, count=4) as servers:
        canvas = servers[0].create_canvas()
        clients = await split_clients(tuple(servers), canvas, 8)
        try:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(write_until(stop, c)) for c in clients]
            watcher = clients[1]  # on node-1, which survives
            await watcher.wait_for(lambda: len(watcher.notes) >= 80)
            servers[0].kill()
            seen = len(watcher.notes)
            await watcher.wait_for(lambda: len(watcher.notes) >= seen + 40, timeout=20)
            stop.set()
            await asyncio.gather(*tasks)
            survivors = [c for i, c in enumerate(clients) if i % 4 != 0]
            orphans = [c for i, c in enumerate(clients) if i % 4 == 0]
            seen_by_survivors = set(watcher.notes.keys())
            # The dead node's clients reconnect elsewhere with what they wrote.
            moved = []
            for i, old in enumerate(orphans):
                new = YClient(servers[1 + i].ws, canvas["id"], canvas["facilitator_token"], f"m{i}")
                new.doc.apply_update(old.doc.get_update())
                await new.connect()
                moved.append(new)
            keys = written(clients)
            assert seen_by_survivors <= keys
            await converged(survivors + moved, keys, timeout=20)
            fresh = await split_clients((servers[3],), canvas, 1, "fresh")
            assert set(fresh[0].notes.keys()) == keys
            await close_all(moved + fresh)
        finally:
            await close_all(clients)


# -- a silently dead shard: SIGSTOP, no failover ------------------------------------------------


@pytest.fixture(scope="module")
def frozen_rc() -> Iterator[RedisClusterServers]:
    """Three primaries without replicas that keep serving their own slots while one of them is
    frozen (``cluster-require-full-coverage no``): nothing fails over, the frozen shard's canvases
    can only wait for it."""
    servers = RedisClusterServers(
        primaries=3, replicas=0, extra_args=("--cluster-require-full-coverage", "no")
    ).start()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def thawed(frozen_rc: RedisClusterServers) -> Iterator[RedisClusterServers]:
    try:
        yield frozen_rc
    finally:
        for port in list(frozen_rc.paused):
            frozen_rc.resume_node(port)
        frozen_rc.wait_ok()


async def test_a_frozen_shard_stalls_only_its_own_canvases_and_they_heal_after_it_thaws(
    thawed: RedisClusterServers,
) -> None:
    # A node is lost after 3 s without heartbeats, above the 2 s reconnect backoff as in
    # production (10 s): when the heartbeats' shard is the frozen one, the sender's lane may
    # come back a backoff later than the receiver's subscriber.
    async with spread_over_shards(thawed, "f", node_timeout=3.0) as spread:
        a, b, recorders, victim, hit, spared = spread
        canvases = hit + spared
        thawed.pause_node(int(victim.rsplit(":", 1)[1]))
        # Both nodes keep writing everywhere; the spared canvases' edits arrive as fast as ever,
        # through the frozen shard being noticed (b's subscriber, a's publishing lane) and after.
        worst = 0.0
        rounds = 0
        while b.connected or a.connected or a.stats().dropped == 0 or rounds < 20:
            rounds += 1
            payload = f"round {rounds}".encode()
            sent = time.monotonic()
            for c in canvases:
                a.publish(c, KIND_UPDATE, payload)
            for c in spared:
                r = recorders[c]
                await r.wait_for(last_is(r, payload), within=5)
            worst = max(worst, time.monotonic() - sent)
            assert rounds < 2000, "the frozen shard was never noticed"
            await asyncio.sleep(0.01)  # a writer's pace, not a wait for anything
        assert worst < 0.5, f"an edit on a healthy shard took {worst:.2f}s to cross"
        assert all(recorders[c].gaps == 0 for c in spared)

        # A lost tail on a spared canvas is still revealed by its mark within about a second.
        a.drop_next_publishes(1)
        a.publish(spared[0], KIND_UPDATE, b"lost tail")
        lost_at = time.monotonic()
        r0 = recorders[spared[0]]
        await r0.wait_for(lambda: r0.gaps == 1, within=3)
        assert time.monotonic() - lost_at < 2.5

        # Thawed: the frozen shard's canvases heal on both nodes and flow again; the spared ones
        # are not disturbed (no needless reload from the store).
        spared_gaps = {c: recorders[c].gaps for c in spared}
        hit_gaps = {c: recorders[c].gaps for c in hit}
        thawed.resume_node(int(victim.rsplit(":", 1)[1]))
        await until(lambda: a.connected and b.connected, within=15)
        await until(lambda: all(recorders[c].gaps > hit_gaps[c] for c in hit), within=5)
        for c in hit:
            a.publish(c, KIND_UPDATE, b"after the thaw")
        for c in hit:
            r = recorders[c]
            await r.wait_for(last_is(r, b"after the thaw"), within=5)
        assert {c: recorders[c].gaps for c in spared} == spared_gaps
        assert all(r.lost == [] for r in recorders.values())  # nobody's cursor vanished


async def test_two_nodes_keep_converging_on_the_healthy_shards_while_one_is_frozen(
    tmp_path: Path, thawed: RedisClusterServers, pg_url: str
) -> None:
    """What a user sees: with one shard frozen, a canvas on another shard stays live across
    nodes; the canvas on the frozen shard goes on locally and, once the shard thaws, both nodes
    hold every note written on either of them meanwhile."""
    async with nodes(tmp_path, pg_url, thawed.url, count=2) as servers:
        frozen_canvas = servers[0].create_canvas()
        victim = owner_port(thawed, f"cocanvas:canvas:{frozen_canvas['id']}")
        live_canvas = servers[0].create_canvas()
        while owner_port(thawed, f"cocanvas:canvas:{live_canvas['id']}") == victim:
            live_canvas = servers[0].create_canvas()
        live = await split_clients(tuple(servers), live_canvas, 2, "live")
        cold = await split_clients(tuple(servers), frozen_canvas, 2, "cold")
        try:
            cold[0].add_note("before", "before the freeze")
            await converged(cold, {"before"})

            thawed.pause_node(victim)
            # Edits on the live canvas cross nodes at the usual pace, one after another, for
            # longer than the frozen shard takes to be noticed.
            for i in range(30):
                writer, reader = live[i % 2], live[1 - i % 2]
                writer.add_note(f"live-{i}", "x")
                sent = time.monotonic()
                await reader.wait_for(has_note(reader, f"live-{i}"), timeout=5)
                took = time.monotonic() - sent
                assert took < 1.0, f"live edit {i} took {took:.2f}s to reach the other node"
                cold[i % 2].add_note(f"cold-{i}", "y")  # written while its shard is frozen
                await asyncio.sleep(0.1)  # a person's pace, not a wait for anything

            thawed.resume_node(victim)
            keys = {"before"} | {f"cold-{i}" for i in range(30)}
            await converged(cold, keys, timeout=20)
            await converged(live, {f"live-{i}" for i in range(30)})
            fresh = await split_clients((servers[1],), frozen_canvas, 1, "fresh")
            assert set(fresh[0].notes.keys()) == keys  # nothing lost, nothing twice
            await close_all(fresh)
        finally:
            await close_all(live + cold)


def test_broker_is_chosen_by_the_url_scheme() -> None:
    from server.broker import open_broker
    from server.broker.redis import RedisBroker

    assert isinstance(open_broker("redis+cluster://127.0.0.1:7000", "n"), RedisClusterBroker)
    assert isinstance(open_broker("redis://127.0.0.1:6379/0", "n"), RedisBroker)
