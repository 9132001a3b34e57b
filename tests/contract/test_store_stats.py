"""Store.stats(): the same counters from every backend, counted once per committed thing."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psycopg
import pytest

from server.store.base import CanvasNotFound, CanvasRecord, Store, StoreError
from server.store.postgres import PostgresStore
from server.store.sqlite import SQLiteStore


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "stats.db", fsync=False)
    else:
        s = PostgresStore(request.getfixturevalue("pg_url"), pool_min=1, pool_max=4)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


async def test_appends_commits_and_batches_are_counted_exactly(store: Store) -> None:
    await store.create_canvas(CanvasRecord("c", "t", "business-model", 0.0), None)
    before = store.stats()
    sizes = [3 + i % 7 for i in range(40)]
    # Sequential appends, then a burst that shares commits.
    for n in sizes[:10]:
        await store.append("c", b"\x00" * n)
    await asyncio.gather(*(store.append("c", b"\x00" * n) for n in sizes[10:]))
    after = store.stats()

    assert after.appended_updates - before.appended_updates == len(sizes)
    assert after.appended_bytes - before.appended_bytes == sum(sizes)
    assert after.append_errors == before.append_errors
    assert after.commit_errors == before.commit_errors
    commits = after.commits - before.commits
    assert 10 < commits < len(sizes)  # the burst was group-committed
    assert after.batch_size.count - before.batch_size.count == commits
    assert after.commit_seconds.count - before.commit_seconds.count == commits
    assert after.batch_size.sum - before.batch_size.sum >= len(sizes)
    assert sum(after.batch_size.counts[1:]) > sum(before.batch_size.counts[1:])  # a batch > 1
    assert after.commit_seconds.sum > before.commit_seconds.sum
    assert after.pending == 0 and after.commit_running_s == 0.0 and after.failed is None

    with pytest.raises(CanvasNotFound):
        await store.append("missing", b"\x00\x00")
    assert store.stats().append_errors == after.append_errors + 1
    assert store.stats().appended_updates == after.appended_updates


async def test_stats_are_copies(store: Store) -> None:
    snapshot = store.stats()
    await store.create_canvas(CanvasRecord("c", "t", "business-model", 0.0), None)
    await store.append("c", b"\x00\x00")
    assert snapshot.appended_updates == 0 and snapshot.batch_size.count == 0


async def test_ping_commits(store: Store) -> None:
    await store.ping()
    await asyncio.gather(*(store.ping() for _ in range(5)))  # concurrent pings share the work


async def test_a_closed_store_is_not_ready(store: Store) -> None:
    await store.close()
    with pytest.raises(StoreError):
        await store.ping()


async def _until(predicate: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.05)


async def test_a_commit_blocked_by_another_session_makes_ping_fail_until_it_is_released(
    store: Store, tmp_path: Path
) -> None:
    """Another session holds the write lock the next commit needs: not ready, then ready."""
    await store.create_canvas(CanvasRecord("c", "t", "business-model", 0.0), None)
    release: Callable[[], Awaitable[None]]
    if isinstance(store, SQLiteStore):
        other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN EXCLUSIVE")

        async def release() -> None:
            other.execute("ROLLBACK")
            other.close()
    else:
        assert isinstance(store, PostgresStore)
        other_pg = await psycopg.AsyncConnection.connect(store.url)
        await other_pg.execute("LOCK TABLE updates IN ACCESS EXCLUSIVE MODE")

        async def release() -> None:
            await other_pg.rollback()
            await other_pg.close()

    append = asyncio.create_task(store.append("c", b"\x00\x00"))
    try:

        async def failing() -> bool:
            try:
                await store.ping()
            except StoreError:
                return True
            return False

        await _until(failing, timeout=10)
        assert store.stats().pending >= 1 and store.stats().commit_running_s > 0
        assert not append.done()
    finally:
        await release()

    async def passing() -> bool:
        try:
            await store.ping()
        except StoreError:
            return False
        return True

    await _until(passing, timeout=10)
    assert await append > 0
