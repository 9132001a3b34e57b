"""One contract for every Store, run against SQLite (embedded) and PostgreSQL (shared).

Documents are real Yjs updates made with pycrdt; "nothing lost" means the loaded document equals
the document that produced the updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
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
    KEEP_SNAPSHOTS,
    SERVER_OWNER,
    AuditEntry,
    CanvasNotFound,
    CanvasRecord,
    ClientBinding,
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


@pytest.fixture(params=["sqlite", "postgres"])
async def make_node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Every call opens a new store instance on the same database: a second server process,
    or the same one after a restart. Two SQLite stores on one file are two writers that take
    turns on SQLite's write lock, as two processes would."""
    opened: list[Store] = []
    if request.param == "sqlite":
        from server.store.sqlite import SQLiteStore

        path = tmp_path / "store.db"

        def new() -> Store:
            return SQLiteStore(path)
    else:
        url: str = request.getfixturevalue("pg_url")

        def new() -> Store:
            return PostgresStore(url, pool_min=1, pool_max=4)

    async def factory() -> Store:
        node = new()
        await node.start()
        opened.append(node)
        return node

    try:
        yield factory
    finally:
        for node in opened:
            with contextlib.suppress(StoreError):
                await node.close()  # closing twice is harmless


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


async def test_documents_a_canvas_owns_are_not_listed_and_go_with_it(store: Store) -> None:
    """Ids "<canvas>/…" (draft spaces, server/drafts.py) are the canvas's: never listed as
    canvases, deleted with it; a canvas whose id merely starts the same way is untouched."""
    author = Author()
    await store.create_canvas(canvas("c"), None)
    await store.create_canvas(canvas("cc"), None)
    await store.create_canvas(canvas("c/drafts/alpha"), author.edit("a", "private"))
    await store.create_canvas(canvas("cc/drafts/alpha"), None)
    await store.append(
        "c/drafts/alpha", author.edit("b", "2"), audit=[entry("c/drafts/alpha", 1.0, "b")]
    )
    assert sorted(c.id for c in await store.list_canvases()) == ["c", "cc"]
    assert await store.list_audit("c") == []
    assert await store.delete_canvas("c")
    assert await store.load("c/drafts/alpha") is None
    assert await store.get_canvas("cc/drafts/alpha") is not None
    assert [c.id for c in await store.list_canvases()] == ["cc"]


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


async def test_appends_queued_without_waiting_commit_in_one_go(store: Store) -> None:
    """append_nowait (the room's pipeline): many appends in flight at once, each future resolves
    once committed, in the order queued; a missing canvas fails its own future only."""
    author = Author()
    await store.create_canvas(canvas("c"), None)
    futures = [store.append_nowait("c", author.edit(f"n{i}", f"note {i}")) for i in range(50)]
    lost = store.append_nowait("nope", b"\x00\x00")
    ids = await asyncio.gather(*futures)
    assert ids == sorted(ids) and len(set(ids)) == 50
    with pytest.raises(CanvasNotFound):
        await lost
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

    # Compactors run until the writers are done, not for a fixed number of rounds: on a loaded
    # machine a commit can take longer than many compaction attempts, which then all find an
    # empty log. And halfway the writers wait until some compaction has won, so the second half
    # is appended on top of a snapshot while the compactors keep racing.
    compacted, writers_done = asyncio.Event(), asyncio.Event()

    async def writer(store: Store, tag: str) -> None:
        for i in range(60):
            if i == 30:
                await asyncio.wait_for(compacted.wait(), 30)
            await store.append("c", author.edit(f"{tag}{i}", str(i)))

    async def writers() -> None:
        try:
            await asyncio.gather(writer(a, "a"), writer(b, "b"))
        finally:
            writers_done.set()

    async def compactor(store: Store) -> int:
        won = 0
        while not writers_done.is_set():
            if await store.compact("c", merge):
                won += 1
                compacted.set()
            await asyncio.sleep(0)
        return won

    results = await asyncio.gather(writers(), compactor(a), compactor(b))
    assert results[1] + results[2] >= 1
    await a.compact("c", merge)
    doc = await b.load("c")
    assert doc is not None and notes_of(doc.parts()) == author.expected()
    assert len(author.expected()) == 120


# -- snapshot pruning -----------------------------------------------------------------------


async def test_compaction_prunes_all_but_the_newest_snapshots(store: Store) -> None:
    author = Author()
    await store.create_canvas(canvas("c"), author.edit("a", "1"))
    version = await store.save_version("c", "kept", b"named-state", "ada")
    made: list[int] = []
    for round_ in range(KEEP_SNAPSHOTS + 4):
        for i in range(5):
            await store.append("c", author.edit(f"r{round_}-{i}", str(i)))
        assert await store.compact("c", merge) is True
        doc = await store.load("c")
        assert doc is not None and doc.snapshot_id is not None
        made.append(doc.snapshot_id)
        assert notes_of(doc.parts()) == author.expected()
        snaps = await store.list_snapshots("c")
        assert [s.id for s in snaps] == made[::-1][:KEEP_SNAPSHOTS]
    assert made == sorted(made) and len(set(made)) == len(made)
    # Pruned snapshots are gone; the kept ones are intact; the newest is the document.
    assert await store.get_snapshot("c", made[0]) is None
    for sid in made[-KEEP_SNAPSHOTS:]:
        assert await store.get_snapshot("c", sid) is not None
    latest = await store.get_snapshot("c", made[-1])
    assert latest is not None and notes_of([latest]) == author.expected()
    # Named versions are never pruned.
    assert [v.id for v in await store.list_versions("c")] == [version.id]
    assert await store.get_version("c", version.id) == b"named-state"

    # Appends after the last compaction still load on top of the newest snapshot...
    late = await store.append("c", author.edit("late", "x"))
    doc = await store.load("c")
    assert doc is not None and doc.snapshot_id == made[-1]
    assert [rid for rid, _ in doc.updates] == [late]
    assert notes_of(doc.parts()) == author.expected()
    # ...and pruning one canvas leaves another's snapshots alone.
    other = Author()
    await store.create_canvas(canvas("d"), other.edit("z", "0"))
    assert await store.compact("d", merge) is True
    assert await store.compact("c", merge) is True
    assert len(await store.list_snapshots("c")) == KEEP_SNAPSHOTS
    assert len(await store.list_snapshots("d")) == 1
    d = await store.load("d")
    assert d is not None and notes_of(d.parts()) == other.expected()


async def test_compaction_that_lost_the_race_prunes_nothing(make_store: StoreFactory) -> None:
    a, b = await make_store(), await make_store()
    author = Author()
    await a.create_canvas(canvas("c"), None)
    for round_ in range(KEEP_SNAPSHOTS):
        await a.append("c", author.edit(f"r{round_}", "x"))
        assert await a.compact("c", merge) is True
    kept = [s.id for s in await a.list_snapshots("c")]
    await a.append("c", author.edit("both", "y"))
    entered_a, entered_b, gate = threading.Event(), threading.Event(), threading.Event()
    ta = asyncio.create_task(a.compact("c", gated(entered_a, gate)))
    tb = asyncio.create_task(b.compact("c", gated(entered_b, gate)))
    assert await asyncio.to_thread(entered_a.wait, 5)
    assert await asyncio.to_thread(entered_b.wait, 5)
    gate.set()
    assert sorted([await ta, await tb]) == [False, True]
    # The winner pruned exactly one (the oldest) and added one; the loser changed nothing.
    now = [s.id for s in await b.list_snapshots("c")]
    assert len(now) == KEEP_SNAPSHOTS and now[1:] == kept[:-1] and now[0] > kept[0]
    doc = await b.load("c")
    assert doc is not None and doc.updates == [] and notes_of(doc.parts()) == author.expected()


async def store_bytes(store: Store, canvas_id: str) -> int:
    """What the store holds for a canvas: the PostgreSQL rows' payloads (relation sizes
    depend on when autovacuum ran), or the SQLite files once closed (the close checkpoints
    and truncates the WAL, so the size does not depend on when the checkpointer ran)."""
    if isinstance(store, PostgresStore):
        async with store._conn() as conn:
            cur = await conn.execute(
                "SELECT (SELECT coalesce(sum(octet_length(data)), 0) FROM snapshots"
                "        WHERE canvas_id = %s)"
                "     + (SELECT coalesce(sum(octet_length(data)), 0) FROM updates"
                "        WHERE canvas_id = %s)",
                (canvas_id, canvas_id),
            )
            row = await cur.fetchone()
        assert row is not None
        return int(row[0])
    from server.store.sqlite import SQLiteStore

    assert isinstance(store, SQLiteStore)
    await store.close()
    return files_bytes(store.path, store.path + "-wal")


def files_bytes(*paths: str) -> int:
    return sum(os.path.getsize(p) for p in paths if os.path.exists(p))


async def test_store_size_stays_linear_in_the_document(store: Store) -> None:
    """3,000 small updates on a ~200 KB canvas, compacted every 100: without pruning the store
    kept every snapshot (30 here, quadratic in the history); now it holds the newest
    KEEP_SNAPSHOTS plus the log, whatever the length of the history."""
    author = Author()
    with author.doc.transaction():
        for i in range(2000):
            author.notes[f"n{i}"] = f"{i:04d}" + "x" * 90
    initial = author.doc.get_update()
    assert 180_000 < len(initial) < 260_000
    await store.create_canvas(canvas("c"), initial)
    produced = 0  # what the store would hold had it kept every snapshot
    max_log = 0
    for block in range(30):
        updates = [author.edit(f"k{(block * 100 + i) % 300}", f"v{i}") for i in range(100)]
        await asyncio.gather(*[store.append("c", u) for u in updates])
        max_log = max(max_log, (await store.log_stats("c")).bytes)
        assert await store.compact("c", merge) is True
        produced += (await store.list_snapshots("c"))[0].size
    snaps = await store.list_snapshots("c")
    assert len(snaps) == KEEP_SNAPSHOTS
    document = max(s.size for s in snaps)  # merged snapshots keep tombstones: >= the doc
    doc = await store.load("c")
    assert doc is not None and notes_of(doc.parts()) == author.expected()

    held = await store_bytes(store, "c")
    # Pages, indexes, the schema and the canvas's other tables; PostgreSQL rows have none.
    slack = 0 if is_postgres(store) else 128 * 1024
    bound = KEEP_SNAPSHOTS * document + max_log + slack
    assert held <= bound, f"store holds {held} bytes for a {document}-byte document"
    assert produced > 3 * bound  # the bound does tell pruned from unpruned


# -- client id bindings ---------------------------------------------------------------------


def bind(client_id: int, user: str, at: float = 1.0, org: str = "org-a") -> ClientBinding:
    return ClientBinding(client_id, user, org, at)


async def test_bind_fresh_client_id(store: Store) -> None:
    await store.create_canvas(canvas("c"), None)
    assert await store.list_client_ids("c") == {}
    ada = bind(1234, "u-ada", at=100.5)
    assert await store.bind_client_ids("c", [ada]) == {1234: ada}
    assert await store.list_client_ids("c") == {1234: ada}
    assert await store.bind_client_ids("c", []) == {}
    server = bind(99, SERVER_OWNER, org="")
    assert await store.bind_client_ids("c", (server,)) == {99: server}
    assert await store.list_client_ids("c") == {1234: ada, 99: server}


async def test_second_claim_returns_the_first_owner(store: Store) -> None:
    await store.create_canvas(canvas("c"), None)
    ada = bind(7, "u-ada", at=1.0)
    await store.bind_client_ids("c", [ada])
    bob = bind(7, "u-bob", at=2.0, org="org-b")
    assert await store.bind_client_ids("c", [bob]) == {7: ada}
    assert await store.bind_client_ids("c", [ada]) == {7: ada}  # claiming again is harmless
    assert await store.list_client_ids("c") == {7: ada}
    # Ids are per canvas: the same id on another canvas is a separate claim.
    await store.create_canvas(canvas("d"), None)
    assert await store.bind_client_ids("d", [bob]) == {7: bob}
    assert await store.list_client_ids("c") == {7: ada}


async def test_bind_batch_mixes_new_and_bound_ids(store: Store) -> None:
    await store.create_canvas(canvas("c"), None)
    big = 2**53  # lib0's largest varuint: JavaScript's integers
    ada = {i: bind(i, "u-ada", at=1.0) for i in (1, 2, big)}
    assert await store.bind_client_ids("c", list(ada.values())) == ada
    bob = [bind(i, "u-bob", at=2.0) for i in (3, 2, big - 1, big, 0)]
    # The same id twice in one call: the first claim of it wins there too.
    got = await store.bind_client_ids("c", [*bob, bind(3, "u-eve", at=3.0)])
    expected = {2: ada[2], big: ada[big], 3: bob[0], big - 1: bob[2], 0: bob[4]}
    assert got == expected
    assert await store.list_client_ids("c") == {**ada, **expected}
    many = [bind(10_000 + i, f"u-{i % 7}", at=float(i)) for i in range(1200)]
    assert await store.bind_client_ids("c", many) == {b.client_id: b for b in many}
    assert len(await store.list_client_ids("c")) == 6 + 1200
    with pytest.raises(ValueError):
        await store.bind_client_ids("c", [bind(-1, "u-ada")])
    with pytest.raises(ValueError):
        await store.bind_client_ids("c", [bind(5, "u-ada"), bind(2**64, "u-ada")])
    assert 5 not in await store.list_client_ids("c")  # refused calls bind nothing


async def test_client_ids_survive_a_restart(make_node: StoreFactory) -> None:
    first = await make_node()
    await first.create_canvas(canvas("c"), None)
    bound = {i: bind(i, f"u-{i}", at=float(i) + 0.25) for i in (5, 2**32, 2**53)}
    await first.bind_client_ids("c", list(bound.values()))
    await first.close()
    again = await make_node()
    assert await again.list_client_ids("c") == bound
    assert await again.bind_client_ids("c", [bind(5, "u-mallory")]) == {5: bound[5]}


async def test_concurrent_claims_have_one_winner(make_node: StoreFactory) -> None:
    a, b = await make_node(), await make_node()
    await a.create_canvas(canvas("c"), None)
    for round_ in range(20):
        cid = 1000 + round_
        claims = [
            (node, bind(cid, f"u-{node_name}{i}", at=float(i)))
            for i in range(4)
            for node_name, node in (("a", a), ("b", b))
        ]
        answers = await asyncio.gather(*[node.bind_client_ids("c", [c]) for node, c in claims])
        owners = {answer[cid] for answer in answers}
        assert len(owners) == 1  # everybody is told the same owner...
        (owner,) = owners
        assert owner in [c for _, c in claims]  # ...who is one of the claimants
        assert (await b.list_client_ids("c"))[cid] == owner == (await a.list_client_ids("c"))[cid]
    # Overlapping batches in opposite orders neither deadlock nor split an id between owners.
    ids = list(range(5000, 5040))
    ra, rb = await asyncio.gather(
        a.bind_client_ids("c", [bind(i, "u-a") for i in ids]),
        b.bind_client_ids("c", [bind(i, "u-b") for i in reversed(ids)]),
    )
    assert ra == rb and set(ra) == set(ids)
    assert {v.user_id for v in ra.values()} <= {"u-a", "u-b"}


async def test_bind_on_unknown_canvas_raises(store: Store) -> None:
    with pytest.raises(CanvasNotFound):
        await store.bind_client_ids("missing", [bind(1, "u-ada")])
    assert await store.list_client_ids("missing") == {}
    await store.create_canvas(canvas("c"), None)
    await store.bind_client_ids("c", [bind(1, "u-ada")])
    await store.delete_canvas("c")
    # Already bound ids of a deleted canvas do not make it exist.
    with pytest.raises(CanvasNotFound):
        await store.bind_client_ids("c", [bind(1, "u-ada"), bind(2, "u-ada")])


async def test_deleting_the_canvas_deletes_its_bindings(store: Store) -> None:
    await store.create_canvas(canvas("c"), None)
    await store.create_canvas(canvas("d"), None)
    await store.bind_client_ids("c", [bind(1, "u-ada"), bind(2, "u-bob")])
    await store.bind_client_ids("d", [bind(1, "u-eve")])
    assert await store.delete_canvas("c")
    assert await store.list_client_ids("c") == {}
    assert await store.list_client_ids("d") == {1: bind(1, "u-eve")}
    # Recreating the id starts from nothing: the old owners are not carried over.
    await store.create_canvas(canvas("c"), None)
    assert await store.list_client_ids("c") == {}
    assert await store.bind_client_ids("c", [bind(1, "u-bob")]) == {1: bind(1, "u-bob")}


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


async def test_versions_are_capped_dropping_automatic_ones_first(store: Store) -> None:
    from server.store.base import SERVER_OWNER, VersionLimit

    await store.create_canvas(canvas("c"), None)
    named = await store.save_version("c", "after round 1", b"n1", "ada", keep=3)
    auto1 = await store.save_version("c", "vote round closed", b"a1", SERVER_OWNER, keep=3)
    auto2 = await store.save_version("c", "drafts revealed", b"a2", SERVER_OWNER, keep=3)
    # Full: the oldest automatic version makes room, the named one stays.
    named2 = await store.save_version("c", "after round 2", b"n2", "bob", keep=3)
    assert [v.id for v in await store.list_versions("c")] == [named2.id, auto2.id, named.id]
    assert await store.get_version("c", auto1.id) is None
    await store.save_version("c", "after round 3", b"n3", "bob", keep=3)
    # Only versions kept on purpose now: the next save is refused and nothing is dropped.
    with pytest.raises(VersionLimit):
        await store.save_version("c", "one more", b"n4", "bob", keep=3)
    assert len(await store.list_versions("c")) == 3
    assert await store.delete_version("c", named.id) is True
    assert await store.delete_version("c", named.id) is False
    assert await store.delete_version("other", named2.id) is False
    await store.save_version("c", "one more", b"n4", "bob", keep=3)
    assert [v.name for v in await store.list_versions("c")] == [
        "one more",
        "after round 3",
        "after round 2",
    ]


async def test_version_cap_holds_across_nodes(make_store: StoreFactory) -> None:
    from server.store.base import SERVER_OWNER

    a, b = await make_store(), await make_store()
    await a.create_canvas(canvas("c"), None)
    # Twenty automatic saves at once through two store instances (two nodes on PostgreSQL).
    await asyncio.gather(
        *(
            (a if i % 2 else b).save_version("c", f"auto {i}", b"s", SERVER_OWNER, keep=4)
            for i in range(20)
        )
    )
    assert len(await a.list_versions("c")) == 4


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


async def test_append_whose_audit_cannot_be_written_leaves_no_update(store: Store) -> None:
    """An update and its audit rows are one: if the audit rows fail, the update is not stored
    either (a stored, broadcastable edit with no record of who made it would be a hole)."""
    author = Author()
    await store.create_canvas(canvas("c"), author.edit("a", "1"))
    bad = AuditEntry("c", 1.0, "u1", "Ada", "org-a", None, "b")  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        await store.append("c", author.edit("b", "2"), audit=[bad])
    doc = await store.load("c")
    assert doc is not None
    assert notes_of(doc.parts()) == {"a": "1"}
    assert await store.list_audit("c") == []
    # The store goes on: the next append with its audit lands (from another client: the lost
    # edit's clocks would hold back the same client's next update).
    await store.append("c", Author().edit("c", "3"), audit=[entry("c", 2.0, "c")])
    doc = await store.load("c")
    assert doc is not None
    assert notes_of(doc.parts()) == {"a": "1", "c": "3"}
    assert [e.target for e in await store.list_audit("c")] == ["c"]


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
