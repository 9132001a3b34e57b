"""One contract for every Store, run against SQLite (embedded) and PostgreSQL (shared).

Documents are real Yjs updates made with pycrdt; "nothing lost" means the loaded document equals
the document that produced the updates.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psycopg
import pycrdt
import pytest
from pycrdt import Doc, Map

from server.store.base import (
    AuditEntry,
    CanvasNotFound,
    CanvasRecord,
    Invite,
    Participant,
    Store,
    StoreError,
)
from server.store.postgres import PostgresStore

from .conftest import PrivatePostgres, free_port

StoreFactory = Callable[[], Awaitable[Store]]


def merge(parts: list[bytes]) -> bytes:
    return pycrdt.merge_updates(*parts)


def notes_of(parts: list[bytes]) -> dict[str, object]:
    doc: Doc = Doc()
    for part in parts:
        doc.apply_update(part)
    return doc.get("notes", type=Map).to_py() or {}


class Author:
    """Makes real Yjs updates, one note each, and remembers what the document should be."""

    def __init__(self) -> None:
        self.doc: Doc = Doc()
        self.notes = self.doc.get("notes", type=Map)

    def edit(self, key: str, value: str) -> bytes:
        before = self.doc.get_state()
        self.notes[key] = value
        return self.doc.get_update(before)

    def expected(self) -> dict[str, object]:
        return self.notes.to_py() or {}


def canvas(cid: str | None = None, created_at: float | None = None) -> CanvasRecord:
    return CanvasRecord(
        id=cid or uuid.uuid4().hex[:10],
        title="Workshop",
        template="bmc",
        created_at=time.time() if created_at is None else created_at,
        settings={"protect_notes": True},
    )


def entry(cid: str, at: float, target: str, action: str = "edit") -> AuditEntry:
    return AuditEntry(cid, at, "u1", "Ada", "org-a", action, target, "detail")


def invite(cid: str, **kw: object) -> Invite:
    now = time.time()
    fields: dict[str, object] = {
        "id": uuid.uuid4().hex,
        "canvas_id": cid,
        "org_id": "org-a",
        "role": "editor",
        "created_at": now,
        "expires_at": now + 3600,
        "created_by": "admin",
    }
    fields.update(kw)
    return Invite(**fields)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens store instances on one database: several Postgres instances are several nodes.

    SQLite is embedded in one process, so its "second node" is the same instance.
    """
    opened: list[Store] = []
    if request.param == "sqlite":
        try:
            from server.store.sqlite import SQLiteStore
        except ImportError as exc:  # pragma: no cover - until the embedded store lands
            pytest.skip(f"SQLite store not available yet: {exc}")
        path = tmp_path / "store.db"

        async def factory() -> Store:
            if not opened:
                store = SQLiteStore(path)
                await store.start()
                opened.append(store)
            return opened[0]
    else:
        url: str = request.getfixturevalue("pg_url")

        async def factory() -> Store:
            store = PostgresStore(url, pool_min=1, pool_max=4)
            await store.start()
            opened.append(store)
            return store

    try:
        yield factory
    finally:
        for store in opened:
            await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> Store:
    return await make_store()


def is_postgres(store: Store) -> bool:
    return isinstance(store, PostgresStore)


# -- canvases -----------------------------------------------------------------------------


async def test_canvas_lifecycle(store: Store) -> None:
    await store.ping()
    old = canvas("old", created_at=1000.0)
    new = canvas("new", created_at=2000.0)
    await store.create_canvas(old, None)
    await store.create_canvas(new, None)
    assert await store.get_canvas("old") == old
    assert await store.get_canvas("missing") is None
    assert [c.id for c in await store.list_canvases()] == ["new", "old"]

    old.title, old.settings = "Renamed", {"protect_notes": False, "locked": ["b1"]}
    await store.update_canvas(old)
    got = await store.get_canvas("old")
    assert got is not None and got.title == "Renamed" and got.settings == old.settings
    with pytest.raises(CanvasNotFound):
        await store.update_canvas(canvas("missing"))

    with pytest.raises(StoreError):
        await store.create_canvas(canvas("old"), None)

    assert await store.delete_canvas("old") is True
    assert await store.delete_canvas("old") is False
    assert await store.get_canvas("old") is None
    assert await store.load("old") is None
    assert [c.id for c in await store.list_canvases()] == ["new"]


async def test_delete_removes_everything_the_canvas_owns(store: Store) -> None:
    author = Author()
    await store.create_canvas(canvas("c"), author.edit("a", "1"))
    await store.append("c", author.edit("b", "2"), audit=[entry("c", 1.0, "b")])
    await store.compact("c", merge)
    await store.append("c", author.edit("c", "3"))
    await store.save_version("c", "v1", b"state", "admin")
    inv = invite("c")
    await store.create_invite(inv)
    await store.add_participant(Participant("u1", "c", "Ada", "org-a", "editor", inv.id, 1.0))
    assert await store.delete_canvas("c")
    # Recreating the id starts from nothing: no orphaned rows come back.
    await store.create_canvas(canvas("c"), None)
    doc = await store.load("c")
    assert doc is not None and doc.parts() == []
    assert await store.list_snapshots("c") == []
    assert await store.list_versions("c") == []
    assert await store.list_audit("c") == []
    assert await store.list_invites("c") == []
    assert await store.get_invite(inv.id) is None
    assert await store.list_participants("c") == []
    assert (await store.log_stats("c")).count == 0


# -- the document -------------------------------------------------------------------------


async def test_append_then_load(store: Store) -> None:
    author = Author()
    first = author.edit("n0", "hello")
    await store.create_canvas(canvas("c"), first)
    ids = [await store.append("c", author.edit(f"n{i}", f"note {i}")) for i in range(1, 6)]
    assert ids == sorted(ids) and len(set(ids)) == 5

    doc = await store.load("c")
    assert doc is not None and doc.snapshot is None and doc.snapshot_id is None
    assert [rid for rid, _ in doc.updates][1:] == ids
    assert doc.updates[0][1] == first
    assert notes_of(doc.parts()) == author.expected()
    stats = await store.log_stats("c")
    assert stats.count == 6 and stats.bytes == sum(len(u) for _, u in doc.updates)


async def test_binary_payloads_round_trip_exactly(store: Store) -> None:
    await store.create_canvas(canvas("c"), None)
    blobs = [bytes(range(256)), b"\x00" * 1000, b"", b"\\x00'\""]
    for blob in blobs:
        await store.append("c", blob)
    doc = await store.load("c")
    assert doc is not None and [u for _, u in doc.updates] == blobs


async def test_append_to_missing_canvas_fails_alone(store: Store) -> None:
    author = Author()
    await store.create_canvas(canvas("c"), None)
    results = await asyncio.gather(
        store.append("c", author.edit("a", "1")),
        store.append("nope", b"\x00\x00"),
        store.append("c", author.edit("b", "2")),
        return_exceptions=True,
    )
    assert isinstance(results[1], CanvasNotFound)
    assert isinstance(results[0], int) and isinstance(results[2], int)
    doc = await store.load("c")
    assert doc is not None and notes_of(doc.parts()) == author.expected()


async def test_concurrent_appends_all_commit(make_store: StoreFactory) -> None:
    a, b = await make_store(), await make_store()
    authors = {cid: Author() for cid in ("c1", "c2", "c3")}
    for cid in authors:
        await a.create_canvas(canvas(cid), None)
    work = [
        (a if i % 2 else b).append(
            cid, authors[cid].edit(f"n{i}", str(i)), [entry(cid, i, f"n{i}")]
        )
        for i in range(300)
        for cid in authors
    ]
    ids = await asyncio.gather(*work)
    assert len(set(ids)) == len(ids)
    # Appends sharing a commit keep their submission order in the log.
    burst = await asyncio.gather(*[a.append("c1", b"\x00\x00") for _ in range(50)])
    assert burst == sorted(burst)
    for cid, author in authors.items():
        doc = await a.load(cid)
        assert doc is not None and len(doc.updates) == 300 + (50 if cid == "c1" else 0)
        assert notes_of(doc.parts()) == author.expected()
        assert len(await a.list_audit(cid, limit=1000)) == 300


async def test_compaction_keeps_the_document_and_history(store: Store) -> None:
    author = Author()
    await store.create_canvas(canvas("c"), author.edit("a", "1"))
    for i in range(20):
        await store.append("c", author.edit(f"n{i}", str(i)))
    assert await store.compact("c", merge) is True
    doc = await store.load("c")
    assert doc is not None and doc.updates == [] and doc.snapshot is not None
    assert notes_of(doc.parts()) == author.expected()
    assert (await store.log_stats("c")).count == 0
    assert await store.compact("c", merge) is False  # nothing to merge

    first = await store.list_snapshots("c")
    assert len(first) == 1 and first[0].merged_updates == 21 and first[0].id == doc.snapshot_id
    assert first[0].size == len(doc.snapshot)

    await store.append("c", author.edit("late", "x"))
    assert await store.compact("c", merge) is True
    snaps = await store.list_snapshots("c")
    assert [s.id for s in snaps][1:] == [first[0].id]  # newest first, old one kept
    assert snaps[0].merged_updates == 1  # log rows merged (the previous snapshot not counted)
    old = await store.get_snapshot("c", first[0].id)
    assert old is not None and notes_of([old]) == {
        k: v for k, v in author.expected().items() if k != "late"
    }
    latest = await store.load("c")
    assert latest is not None and notes_of(latest.parts()) == author.expected()
    assert await store.get_snapshot("other", first[0].id) is None
    assert await store.compact("missing", merge) is False


def gated(entered: threading.Event, gate: threading.Event) -> Callable[[list[bytes]], bytes]:
    """A merge that holds until the test has done its racing (merge runs off the event loop)."""

    def slow(parts: list[bytes]) -> bytes:
        entered.set()
        gate.wait(5)
        return merge(parts)

    return slow


async def test_append_during_compaction_is_kept(store: Store) -> None:
    author = Author()
    await store.create_canvas(canvas("c"), None)
    for i in range(10):
        await store.append("c", author.edit(f"before{i}", "x"))
    entered, gate = threading.Event(), threading.Event()
    compaction = asyncio.create_task(store.compact("c", gated(entered, gate)))
    assert await asyncio.to_thread(entered.wait, 5)
    late = [await store.append("c", author.edit(f"during{i}", "y")) for i in range(5)]
    gate.set()
    assert await compaction is True
    doc = await store.load("c")
    assert doc is not None
    assert [rid for rid, _ in doc.updates] == late  # exactly the rows the merge did not see
    assert notes_of(doc.parts()) == author.expected()


async def test_concurrent_compactions_one_wins(make_store: StoreFactory) -> None:
    a, b = await make_store(), await make_store()
    author = Author()
    await a.create_canvas(canvas("c"), None)
    for i in range(30):
        await a.append("c", author.edit(f"n{i}", str(i)))
    entered_a, entered_b, gate = threading.Event(), threading.Event(), threading.Event()
    ta = asyncio.create_task(a.compact("c", gated(entered_a, gate)))
    tb = asyncio.create_task(b.compact("c", gated(entered_b, gate)))
    # Both have read the same snapshot and log before either writes.
    assert await asyncio.to_thread(entered_a.wait, 5)
    assert await asyncio.to_thread(entered_b.wait, 5)
    extra = await a.append("c", author.edit("racing", "z"))
    gate.set()
    assert sorted([await ta, await tb]) == [False, True]
    assert len(await a.list_snapshots("c")) == 1
    doc = await b.load("c")
    assert doc is not None and [rid for rid, _ in doc.updates] == [extra]
    assert notes_of(doc.parts()) == author.expected()


async def test_compaction_races_appends_without_loss(make_store: StoreFactory) -> None:
    """Free-running race: two nodes append and compact at once, in many rounds."""
    a, b = await make_store(), await make_store()
    author = Author()
    await a.create_canvas(canvas("c"), None)

    async def writer(store: Store, tag: str) -> None:
        for i in range(60):
            await store.append("c", author.edit(f"{tag}{i}", str(i)))

    async def compactor(store: Store) -> int:
        won = 0
        for _ in range(15):
            won += await store.compact("c", merge)
            await asyncio.sleep(0)
        return won

    results = await asyncio.gather(writer(a, "a"), writer(b, "b"), compactor(a), compactor(b))
    assert results[2] + results[3] >= 1
    await a.compact("c", merge)
    doc = await b.load("c")
    assert doc is not None and notes_of(doc.parts()) == author.expected()
    assert len(author.expected()) == 120


# -- versions, audit ------------------------------------------------------------------------


async def test_versions(store: Store) -> None:
    await store.create_canvas(canvas("c"), None)
    v1 = await store.save_version("c", "Before lunch", b"\x01state-1", "ada")
    v2 = await store.save_version("c", "After lunch", b"\x02state-22", "bob")
    assert (v1.canvas_id, v1.name, v1.created_by, v1.size) == ("c", "Before lunch", "ada", 8)
    assert v2.id != v1.id and v2.created_at >= v1.created_at
    listed = await store.list_versions("c")
    assert [v.id for v in listed] == [v2.id, v1.id]
    assert listed[1] == v1
    assert await store.get_version("c", v1.id) == b"\x01state-1"
    assert await store.get_version("other", v1.id) is None
    assert await store.get_version("c", 10**9) is None
    with pytest.raises(CanvasNotFound):
        await store.save_version("missing", "x", b"", "ada")


async def test_audit_newest_first(store: Store) -> None:
    await store.create_canvas(canvas("c"), None)
    await store.create_canvas(canvas("d"), None)
    await store.append("c", b"\x00\x00", audit=[entry("c", 10.0, "n1", "create")])
    await store.append(
        "c", b"\x00\x00", audit=[entry("c", 30.0, "n1", "move"), entry("c", 20.0, "n2", "create")]
    )
    await store.append("d", b"\x00\x00", audit=[entry("d", 40.0, "n9")])
    got = await store.list_audit("c")
    assert [(e.at, e.action, e.target) for e in got] == [
        (30.0, "move", "n1"),
        (20.0, "create", "n2"),
        (10.0, "create", "n1"),
    ]
    assert got[0] == entry("c", 30.0, "n1", "move")
    assert [e.at for e in await store.list_audit("c", limit=2)] == [30.0, 20.0]
    assert [e.at for e in await store.list_audit("c", before=30.0)] == [20.0, 10.0]
    with pytest.raises(CanvasNotFound):
        await store.append("missing", b"\x00\x00", audit=[entry("missing", 1.0, "x")])


# -- invites and participants -------------------------------------------------------------


async def test_invites(store: Store) -> None:
    await store.create_canvas(canvas("c"), None)
    now = time.time()
    open_ = invite("c", max_uses=None)
    twice = invite("c", max_uses=2)
    expired = invite("c", expires_at=now - 1)
    for inv in (open_, twice, expired):
        await store.create_invite(inv)
    assert await store.get_invite(twice.id) == twice
    assert await store.get_invite("unknown") is None
    assert {i.id for i in await store.list_invites("c")} == {open_.id, twice.id, expired.id}

    first = await store.redeem_invite(twice.id, now)
    assert first is not None and first.uses == 1 and first.role == "editor"
    assert (await store.redeem_invite(twice.id, now)) is not None
    assert await store.redeem_invite(twice.id, now) is None  # used up
    assert (await store.get_invite(twice.id)).uses == 2  # type: ignore[union-attr]

    assert await store.redeem_invite(expired.id, now) is None
    assert await store.redeem_invite(open_.id, open_.expires_at + 1) is None  # expires in time
    for _ in range(5):
        assert await store.redeem_invite(open_.id, now) is not None

    assert await store.revoke_invite("other-canvas", open_.id) is False
    assert await store.revoke_invite("c", "unknown") is False
    assert await store.revoke_invite("c", open_.id) is True
    assert (await store.get_invite(open_.id)).revoked is True  # type: ignore[union-attr]
    assert await store.redeem_invite(open_.id, now) is None
    assert await store.redeem_invite("unknown", now) is None
    with pytest.raises(CanvasNotFound):
        await store.create_invite(invite("missing"))


async def test_concurrent_redeem_of_last_use(make_store: StoreFactory) -> None:
    a, b = await make_store(), await make_store()
    await a.create_canvas(canvas("c"), None)
    for _ in range(3):
        inv = invite("c", max_uses=1)
        await a.create_invite(inv)
        now = time.time()
        results = await asyncio.gather(
            *[(a if i % 2 else b).redeem_invite(inv.id, now) for i in range(20)]
        )
        assert sum(r is not None for r in results) == 1
        assert (await b.get_invite(inv.id)).uses == 1  # type: ignore[union-attr]


async def test_participants(store: Store) -> None:
    await store.create_canvas(canvas("c"), None)
    await store.create_canvas(canvas("d"), None)
    ada = Participant("u-ada", "c", "Ada", "org-a", "editor", None, 1.0)
    bob = Participant("u-bob", "c", "Bob", "org-b", "viewer", "inv-1", 2.0)
    await store.add_participant(ada)
    await store.add_participant(bob)
    # The same person may take part in several canvases.
    await store.add_participant(Participant("u-ada", "d", "Ada", "org-a", "owner", None, 3.0))
    assert {p.user_id: p for p in await store.list_participants("c")} == {
        "u-ada": ada,
        "u-bob": bob,
    }
    # Joining again does not duplicate the participant and keeps the latest role.
    await store.add_participant(Participant("u-bob", "c", "Bob B.", "org-b", "editor", None, 5.0))
    again = {p.user_id: p for p in await store.list_participants("c")}
    assert len(again) == 2 and again["u-bob"].role == "editor" and again["u-bob"].name == "Bob B."
    assert [p.user_id for p in await store.list_participants("d")] == ["u-ada"]
    assert await store.list_participants("missing") == []


# -- PostgreSQL only: it runs as a separate server ------------------------------------------


def postgres_only(store: Store) -> PostgresStore:
    if not isinstance(store, PostgresStore):
        pytest.skip("embedded store has no server to lose")
    return store


async def test_pg_close_flushes_pending_appends(store: Store) -> None:
    pg = postgres_only(store)
    await pg.create_canvas(canvas("c"), None)
    pending = [asyncio.create_task(pg.append("c", bytes([i]))) for i in range(50)]
    await asyncio.sleep(0)  # queued, not yet committed
    await pg.close()
    ids = [await t for t in pending]
    again = PostgresStore(pg.url)
    await again.start()
    try:
        doc = await again.load("c")
        assert doc is not None and [rid for rid, _ in doc.updates] == ids
    finally:
        await again.close()


async def test_pg_group_commit_batches(store: Store) -> None:
    pg = postgres_only(store)
    await pg.create_canvas(canvas("c"), None)
    before = pg.batches
    await asyncio.gather(*[pg.append("c", b"\x00\x00") for _ in range(500)])
    # 500 concurrent appends share a handful of transactions, not 500.
    assert pg.batches - before <= 10


async def test_pg_concurrent_start_migrates_once(make_store: StoreFactory, pg_url: str) -> None:
    stores = await asyncio.gather(*[make_store() for _ in range(4)])
    postgres_only(stores[0])
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))


async def test_pg_unreachable_raises_store_error(store: Store) -> None:
    postgres_only(store)
    dead = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/test", connect_timeout=1)
    with pytest.raises(StoreError):
        await dead.start()
    await dead.close()


async def test_pg_connections_killed_under_load(store: Store, pg_url: str, pg_schema: str) -> None:
    """What a PostgreSQL restart looks like from here: every connection dies mid-flight.

    In-flight appends fail with StoreError (the caller closes the client socket so it resends);
    later appends and reads succeed on fresh connections.
    """
    pg = postgres_only(store)
    author = Author()
    await pg.create_canvas(canvas("c"), None)
    committed: list[int] = []
    failed = 0
    stop = asyncio.Event()

    async def load_gen() -> None:
        nonlocal failed
        i = 0
        while not stop.is_set():
            update = author.edit(f"n{i}", str(i))
            i += 1
            try:
                committed.append(await pg.append("c", update))
            except StoreError:
                failed += 1

    tasks = [asyncio.create_task(load_gen()) for _ in range(4)]
    await asyncio.sleep(0.2)
    with psycopg.connect(pg_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (pg_schema,),
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    await asyncio.sleep(0.3)
    count_after_kill = len(committed)
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*tasks)
    assert len(committed) > count_after_kill  # appends succeed again after the loss
    await pg.ping()
    doc = await pg.load("c")
    assert doc is not None
    # Every acknowledged append is durable; failed ones may or may not be (caller resends).
    assert set(committed) <= {rid for rid, _ in doc.updates}


async def test_pg_server_restart_under_load(private_pg: PrivatePostgres) -> None:
    """A real restart: appends fail while the server is away and succeed soon after it returns."""
    pg = PostgresStore(private_pg.url, connect_timeout=1)
    await pg.start()
    try:
        author = Author()
        await pg.create_canvas(canvas("c"), None)
        committed: list[int] = []
        failures = 0
        stop = asyncio.Event()

        async def load_gen() -> None:
            nonlocal failures
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    committed.append(await pg.append("c", author.edit(f"{id(stop)}-{i}", "x")))
                except StoreError:
                    failures += 1
                    await asyncio.sleep(0.05)

        tasks = [asyncio.create_task(load_gen()) for _ in range(4)]
        await asyncio.sleep(0.3)
        await asyncio.to_thread(private_pg.stop, "immediate")
        await asyncio.sleep(1.0)
        with pytest.raises(StoreError):
            await pg.ping()
        assert failures > 0
        down_count = len(committed)
        await asyncio.to_thread(private_pg.start)
        back = time.monotonic()
        while len(committed) == down_count:
            assert time.monotonic() - back < 5, "appends did not resume after the restart"
            await asyncio.sleep(0.02)
        recovered_s = time.monotonic() - back
        stop.set()
        await asyncio.gather(*tasks)
        assert recovered_s < 3, f"took {recovered_s:.2f}s to resume"
        await pg.ping()
        doc = await pg.load("c")
        assert doc is not None and set(committed) <= {rid for rid, _ in doc.updates}
    finally:
        await pg.close()


async def test_pg_relaxed_durability_still_commits(pg_url: str) -> None:
    pg = PostgresStore(pg_url, synchronous_commit=False)
    await pg.start()
    try:
        await pg.create_canvas(canvas("c"), None)
        ids = await asyncio.gather(*[pg.append("c", bytes([i])) for i in range(20)])
        doc = await pg.load("c")
        assert doc is not None and [rid for rid, _ in doc.updates] == ids
    finally:
        await pg.close()
