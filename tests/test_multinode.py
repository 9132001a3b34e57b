"""Two server processes, one Redis, one PostgreSQL: a workshop split across nodes behaves as one.

Every fault here is real: redis-server and PostgreSQL are processes these tests kill and restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server import closecodes, protocol
from server import yupdate as y
from server.vouch import decode_state_vector
from tests.partner_helpers import attempt, member
from tests.services import PrivatePostgres, RedisServer, drop_machine_pg_schema, machine_pg_schema
from tests.support import ServerProcess, YClient
from tests.yenc import S, encode

SECRET = "5943a8d7b45709c0159820c6ed48b08587daf4c28436b72e6bbe6cb1fb358e21"


@pytest.fixture
def redis_proc() -> Iterator[RedisServer]:
    r = RedisServer.started()
    try:
        yield r
    finally:
        r.kill()


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = machine_pg_schema()
    try:
        yield url
    finally:
        drop_machine_pg_schema(url)


def node(tmp_path: Path, name: str, store_url: str, redis_url: str, **env: str) -> ServerProcess:
    return ServerProcess(
        tmp_path / name,
        env={
            "COCANVAS_STORE_URL": store_url,
            "COCANVAS_REDIS_URL": redis_url,
            "COCANVAS_SECRET": SECRET,
            "COCANVAS_NODE_ID": name,
            "COCANVAS_TEST_HOOKS": "true",
            **env,
        },
    )


@contextlib.asynccontextmanager
async def two_nodes(
    tmp_path: Path, store_url: str, redis_url: str
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    a = node(tmp_path, "node-a", store_url, redis_url).start()
    b = node(tmp_path, "node-b", store_url, redis_url).start()
    try:
        yield a, b
    finally:
        for n in (a, b):
            n.stop()


async def split_clients(
    nodes: tuple[ServerProcess, ...], canvas: dict[str, Any], n: int, prefix: str = "c"
) -> list[YClient]:
    clients = [
        YClient(nodes[i % len(nodes)].ws, canvas["id"], canvas["facilitator_token"], f"{prefix}{i}")
        for i in range(n)
    ]
    await asyncio.gather(*(c.connect() for c in clients))
    return clients


async def converged(clients: list[YClient], keys: set[str], timeout: float = 10.0) -> float:
    """Wait until every client holds at least ``keys`` and all hold the same notes."""
    start = time.monotonic()

    def same() -> bool:
        first = clients[0].note_texts()
        return set(first) >= keys and all(c.note_texts() == first for c in clients[1:])

    try:
        await clients[0].wait_for(same, timeout=timeout)
    except AssertionError:
        for c in clients:
            print(c.name, sorted(c.note_texts().items()))
        raise
    return time.monotonic() - start


async def close_all(clients: list[YClient]) -> None:
    for c in clients:
        with contextlib.suppress(Exception):
            await c.close()


async def test_clients_split_across_nodes_converge_and_see_each_others_cursors(
    tmp_path: Path, redis_proc: RedisServer, pg_url: str
) -> None:
    async with two_nodes(tmp_path, pg_url, redis_proc.url) as (a, b):
        canvas = a.create_canvas(template="partner-co-creation")
        clients = await split_clients((a, b), canvas, 6)
        try:
            for i, c in enumerate(clients):
                c.add_note(f"n{i}", f"note {i}", block="customer-jobs")
            # Concurrent typing into one note from both nodes.
            await clients[1].wait_for(lambda: "n0" in clients[1].notes)
            with clients[1].doc.transaction():
                clients[1].notes["n0"]["text"].insert(0, "B:")
            with clients[0].doc.transaction():
                clients[0].notes["n0"]["text"].insert(6, ":A")
            await converged(clients, {f"n{i}" for i in range(6)})
            await clients[0].wait_for(lambda: len(clients[0].note_texts()["n0"]) == 10)
            # Awareness crosses nodes, both ways, and so does leaving.
            await clients[0].set_awareness({"user": {"name": "on-a"}, "cursor": {"x": 1, "y": 1}})
            await clients[1].set_awareness({"user": {"name": "on-b"}, "cursor": {"x": 2, "y": 2}})
            await clients[1].wait_for(
                lambda: (clients[1].awareness.get(clients[0].client_id) or (0, None))[1] is not None
            )
            await clients[0].wait_for(
                lambda: (clients[0].awareness.get(clients[1].client_id) or (0, None))[1] is not None
            )
            await clients[0].close()
            await clients[3].wait_for(
                lambda: (clients[3].awareness.get(clients[0].client_id) or (0, 1))[1] is None
            )
        finally:
            await close_all(clients)


async def test_dropped_pubsub_message_is_detected_and_healed(
    tmp_path: Path, redis_proc: RedisServer, pg_url: str
) -> None:
    async with two_nodes(tmp_path, pg_url, redis_proc.url) as (a, b):
        canvas = a.create_canvas()
        on_a, on_b = await split_clients((a, b), canvas, 2)
        try:
            # on_a's first structs are preceded by its client id's ``ids`` entry (a message of
            # its own): write once first, so the message dropped is the note itself.
            on_a.add_note("warm-up", "introduces on_a's client id")
            await on_b.wait_for(lambda: "warm-up" in on_b.notes)
            r = httpx.post(a.http + "/api/_test/drop-publishes", params={"count": 1})
            assert r.status_code == 200
            on_a.add_note("lost-in-transit", "dropped on the way to node b")
            await asyncio.sleep(0.3)
            assert "lost-in-transit" not in on_b.notes  # the message really was dropped
            on_a.add_note("next", "this one arrives and reveals the gap")
            await on_b.wait_for(
                lambda: {"lost-in-transit", "next"} <= set(on_b.notes.keys()), timeout=5
            )
        finally:
            await close_all([on_a, on_b])


async def test_redis_outage_nodes_keep_serving_and_converge_when_it_returns(
    tmp_path: Path, redis_proc: RedisServer, pg_url: str
) -> None:
    async with two_nodes(tmp_path, pg_url, redis_proc.url) as (a, b):
        canvas = a.create_canvas()
        clients = await split_clients((a, b), canvas, 4)
        try:
            clients[0].add_note("before", "before the outage")
            await converged(clients, {"before"})
            redis_proc.kill()
            # Each node keeps serving its own clients, and says it is not ready.
            deadline = time.monotonic() + 10
            while httpx.get(a.http + "/readyz").status_code != 503:
                assert time.monotonic() < deadline, "node a still reports ready without Redis"
                await asyncio.sleep(0.1)
            for i, c in enumerate(clients):
                c.add_note(f"during-{i}", f"written during the outage via {c.name}")
            await clients[2].wait_for(lambda: "during-0" in clients[2].notes)  # same node (a)
            redis_proc.start()  # same port
            back = time.monotonic()
            elapsed = await converged(
                clients, {"before"} | {f"during-{i}" for i in range(4)}, timeout=10
            )
            print(
                f"\nconverged {time.monotonic() - back:.2f}s after Redis returned (wait {elapsed:.2f}s)"
            )
            deadline = time.monotonic() + 10
            while httpx.get(a.http + "/readyz").status_code != 200:
                assert time.monotonic() < deadline, "node a never became ready again"
                await asyncio.sleep(0.1)
        finally:
            await close_all(clients)


async def test_kill9_of_a_node_loses_nothing_and_its_cursors_vanish(
    tmp_path: Path, redis_proc: RedisServer, pg_url: str
) -> None:
    async with two_nodes(tmp_path, pg_url, redis_proc.url) as (a, b):
        canvas = a.create_canvas()
        on_a = await split_clients((a,), canvas, 2, "a")
        on_b = await split_clients((b,), canvas, 2, "b")
        try:
            await on_a[0].set_awareness({"user": {"name": "doomed"}})
            await on_b[0].wait_for(
                lambda: (on_b[0].awareness.get(on_a[0].client_id) or (0, None))[1] is not None
            )
            stop = asyncio.Event()

            async def write(c: YClient) -> None:
                i = 0
                while not stop.is_set() and not c.closed.is_set():
                    c.add_note(f"{c.name}-{i}", "x")
                    i += 1
                    await asyncio.sleep(0.005)

            tasks = [asyncio.create_task(write(c)) for c in on_a + on_b]
            await on_b[1].wait_for(
                lambda: (
                    sum(1 for k in on_b[1].notes.keys() if k.startswith("a")) >= 40
                    or len(on_b[1].notes) >= 200
                )
            )
            a.kill()
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*tasks)
            seen_on_b = set(on_b[1].notes.keys())
            # The dead node's clients reconnect to the surviving node and resend what it lacks.
            moved = [
                YClient(b.ws, canvas["id"], canvas["facilitator_token"], f"moved{i}")
                for i in range(2)
            ]
            for old, new in zip(on_a, moved, strict=True):
                new.doc.apply_update(old.doc.get_update())
                await new.connect()
            everyone = on_b + moved
            # Every note any client wrote (each writer's own doc holds all its writes).
            keys: set[str] = set()
            for c in on_a + on_b:
                keys |= {k for k in c.notes.keys() if k.startswith(c.name + "-")}
            assert seen_on_b <= keys
            await converged(everyone, keys, timeout=15)
            fresh = await split_clients((b,), canvas, 1, "fresh")
            assert seen_on_b <= set(fresh[0].notes.keys())  # nothing another client saw was lost
            assert set(fresh[0].notes.keys()) == keys  # and every write, exactly once
            # The dead node's cursors vanish on the survivor (heartbeat lapse), before Yjs's 30 s.
            await on_b[0].wait_for(
                lambda: (on_b[0].awareness.get(on_a[0].client_id) or (0, 1))[1] is None, timeout=25
            )
            await close_all(moved + fresh)
        finally:
            await close_all(on_a + on_b)


async def test_postgres_restart_under_load_resumes_and_loses_nothing_acknowledged(
    tmp_path: Path, redis_proc: RedisServer
) -> None:
    pg = PrivatePostgres.started()
    try:
        async with two_nodes(tmp_path, pg.url, redis_proc.url) as (a, b):
            canvas = a.create_canvas()
            writers = await split_clients((a, b), canvas, 2)
            watcher = (await split_clients((b,), canvas, 1))[0]
            stop = asyncio.Event()

            async def write(c: YClient) -> None:
                i = 0
                while not stop.is_set():
                    if not c.closed.is_set():
                        c.add_note(f"{c.name}-{i}", "x")
                        i += 1
                    await asyncio.sleep(0.01)

            tasks = [asyncio.create_task(write(c)) for c in writers]
            await watcher.wait_for(lambda: len(watcher.notes) >= 50)
            pg.stop(mode="immediate")  # a crash-like stop: no checkpoint
            await asyncio.sleep(1.0)
            pg.start()
            count_at_restart = len(watcher.notes)
            await watcher.wait_for(lambda: len(watcher.notes) >= count_at_restart + 40, timeout=30)
            stop.set()
            await asyncio.gather(*tasks)
            acknowledged = set(watcher.notes.keys())  # every note another client received
            await asyncio.sleep(0.5)
        # Both nodes are gone: what is left is only what PostgreSQL kept.
        async with two_nodes(tmp_path, pg.url, redis_proc.url) as (a2, _):
            fresh = (await split_clients((a2,), canvas, 1))[0]
            missing = acknowledged - set(fresh.notes.keys())
            assert not missing, f"{len(missing)} acknowledged notes lost: {sorted(missing)[:5]}"
            await fresh.close()
    finally:
        pg.remove()


async def test_a_client_id_is_owned_on_every_node(
    tmp_path: Path, redis_proc: RedisServer, pg_url: str
) -> None:
    """The binding of a Yjs client id to its user lives in the store: a tab that moves to the
    other node keeps writing with its id; another user on the other node cannot use it."""

    def tab(server: ServerProcess, canvas: dict[str, Any], token: str, cid: int) -> YClient:
        return YClient(server.ws, canvas["id"], token, f"tab-{cid}").use_client_id(cid)

    async with two_nodes(tmp_path, pg_url, redis_proc.url) as (a, b):
        canvas = a.create_canvas(
            "Partners", "partner-co-creation", orgs=[{"name": "Alpha"}, {"name": "Beta"}]
        )
        ann = member(a, canvas, "alpha", "editor", "Ann")
        bob = member(a, canvas, "beta", "editor", "Bob")
        watcher = await YClient(b.ws, canvas["id"], canvas["facilitator_token"], "w").connect()
        first = await tab(a, canvas, ann.token, 5151).connect()
        try:
            first.add_note("a1", "Ann on A", block="gains", org="alpha")
            await watcher.wait_for(lambda: "a1" in watcher.notes)
            # Bob, on node B, claims Ann's id: node B learns the owner from the store.
            impostor = await tab(b, canvas, bob.token, 5151).connect()
            # Starting exactly where Ann's clocks end, so that ownership is what decides.
            nxt = decode_state_vector(watcher.doc.get_state())[5151]
            forged = encode([S(5151, nxt, ("type", y.MAP), parent="notes", sub="x")])
            await impostor.send_raw(protocol.sync_update(forged))
            await asyncio.wait_for(impostor.closed.wait(), 10)
            assert impostor.close_code == closecodes.POLICY_VIOLATION
            assert "belongs to someone else" in impostor.close_reason
            # Ann's tab moves to node B with its document and goes on writing.
            await first.close()
            moved = tab(b, canvas, ann.token, 5151)
            moved.doc.apply_update(first.doc.get_update())
            await moved.connect()
            moved.add_note("a2", "Ann on B", block="gains", org="alpha")
            await watcher.wait_for(lambda: "a2" in watcher.notes)
            assert not moved.closed.is_set()
            assert "x" not in watcher.notes
            await moved.close()
        finally:
            await close_all([watcher, first])


async def test_deleting_a_canvas_closes_its_sockets_on_every_node(
    tmp_path: Path, redis_proc: RedisServer, pg_url: str
) -> None:
    """The node that takes the DELETE need not have the canvas loaded: it tells the others."""
    async with two_nodes(tmp_path, pg_url, redis_proc.url) as (a, b):
        canvas = a.create_canvas()
        on_b = await YClient(b.ws, canvas["id"], canvas["facilitator_token"], "on-b").connect()
        try:
            r = httpx.delete(
                f"{a.http}/api/canvases/{canvas['id']}",
                headers={"Authorization": f"Bearer {canvas['facilitator_token']}"},
            )
            assert r.status_code == 204
            await asyncio.wait_for(on_b.closed.wait(), 10)
            assert on_b.close_code == closecodes.NOT_FOUND
            frames, code = await attempt(b, canvas["id"], canvas["facilitator_token"])
            assert (frames, code) == ([], closecodes.NOT_FOUND)
        finally:
            await close_all([on_b])
