"""PostgreSQL store: the shared source of truth when several nodes serve canvases.

Appends are group-committed: callers queue, one flusher writes whatever queued meanwhile in one
transaction and resolves every caller after COMMIT. Under load that turns N fsyncs into one, and a
lone caller never waits for company: a batch is whatever queued while the previous one committed.
The flusher keeps its own connection and writes a batch in one statement, so a commit costs three
round trips whatever its size. Payloads travel as binary parameters (BYTEA), never JSON.

Row ids come from a sequence, which is not commit-ordered across nodes; compaction therefore
deletes exactly the rows it merged (by id) and never "everything up to id N".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import AsyncConnection, errors, sql
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from .base import (
    KEEP_SNAPSHOTS,
    MAX_VERSIONS,
    OWNED_SEPARATOR,
    SERVER_OWNER,
    AuditEntry,
    Ballot,
    CanvasNotFound,
    CanvasRecord,
    ClientBinding,
    ClosedRound,
    Invite,
    LogStats,
    Merge,
    Participant,
    SnapshotInfo,
    Store,
    StoredDoc,
    StoreError,
    StoreStats,
    Version,
    VersionLimit,
)

log = logging.getLogger("cocanvas.store.postgres")

# Readiness: the ping must commit within this many seconds, and a group commit running longer
# than this makes the store not ready.
COMMIT_STALL_S = 2.0

AConn = AsyncConnection[TupleRow]

# Each entry is one schema version; never edit a released entry, append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE canvases (
        id          TEXT PRIMARY KEY,
        title       TEXT NOT NULL,
        template    TEXT NOT NULL,
        created_at  DOUBLE PRECISION NOT NULL,
        settings    JSONB NOT NULL DEFAULT '{}'
    );
    CREATE INDEX canvases_created_at ON canvases (created_at DESC);
    CREATE TABLE updates (
        id          BIGSERIAL PRIMARY KEY,
        canvas_id   TEXT NOT NULL REFERENCES canvases (id) ON DELETE CASCADE,
        data        BYTEA NOT NULL
    );
    CREATE INDEX updates_canvas ON updates (canvas_id, id);
    CREATE TABLE snapshots (
        id              BIGSERIAL PRIMARY KEY,
        canvas_id       TEXT NOT NULL REFERENCES canvases (id) ON DELETE CASCADE,
        created_at      DOUBLE PRECISION NOT NULL,
        merged_updates  INTEGER NOT NULL,
        data            BYTEA NOT NULL
    );
    CREATE INDEX snapshots_canvas ON snapshots (canvas_id, id DESC);
    CREATE TABLE versions (
        id          BIGSERIAL PRIMARY KEY,
        canvas_id   TEXT NOT NULL REFERENCES canvases (id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        created_at  DOUBLE PRECISION NOT NULL,
        created_by  TEXT NOT NULL,
        data        BYTEA NOT NULL
    );
    CREATE INDEX versions_canvas ON versions (canvas_id, id DESC);
    CREATE TABLE audit (
        id          BIGSERIAL PRIMARY KEY,
        canvas_id   TEXT NOT NULL REFERENCES canvases (id) ON DELETE CASCADE,
        at          DOUBLE PRECISION NOT NULL,
        user_id     TEXT NOT NULL,
        user_name   TEXT NOT NULL,
        org_id      TEXT NOT NULL,
        action      TEXT NOT NULL,
        target      TEXT NOT NULL,
        detail      TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_canvas_at ON audit (canvas_id, at DESC, id DESC);
    CREATE TABLE invites (
        id          TEXT PRIMARY KEY,
        canvas_id   TEXT NOT NULL REFERENCES canvases (id) ON DELETE CASCADE,
        org_id      TEXT NOT NULL,
        role        TEXT NOT NULL,
        created_at  DOUBLE PRECISION NOT NULL,
        expires_at  DOUBLE PRECISION NOT NULL,
        created_by  TEXT NOT NULL,
        max_uses    INTEGER,
        uses        INTEGER NOT NULL DEFAULT 0,
        revoked     BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE INDEX invites_canvas ON invites (canvas_id);
    CREATE TABLE participants (
        canvas_id   TEXT NOT NULL REFERENCES canvases (id) ON DELETE CASCADE,
        user_id     TEXT NOT NULL,
        name        TEXT NOT NULL,
        org_id      TEXT NOT NULL,
        role        TEXT NOT NULL,
        invite_id   TEXT,
        joined_at   DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (canvas_id, user_id)
    );
    """,
    # v2: which identity owns each Yjs client id of a canvas (first claim wins).
    """
    CREATE TABLE client_ids (
        canvas_id   TEXT NOT NULL REFERENCES canvases (id) ON DELETE CASCADE,
        client_id   BIGINT NOT NULL CHECK (client_id >= 0),
        user_id     TEXT NOT NULL,
        org_id      TEXT NOT NULL,
        bound_at    DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (canvas_id, client_id)
    );
    """,
    # v3: vote rounds and their ballots (server/workshop/rounds.py).
    """
    CREATE TABLE vote_rounds (
        canvas_id   TEXT NOT NULL REFERENCES canvases (id) ON DELETE CASCADE,
        round_id    TEXT NOT NULL,
        status      TEXT NOT NULL,
        opened_at   DOUBLE PRECISION NOT NULL,
        closed_at   DOUBLE PRECISION,
        PRIMARY KEY (canvas_id, round_id)
    );
    CREATE TABLE ballots (
        canvas_id   TEXT NOT NULL,
        round_id    TEXT NOT NULL,
        user_id     TEXT NOT NULL,
        user_name   TEXT NOT NULL,
        org_id      TEXT NOT NULL,
        dots        JSONB NOT NULL,
        at          DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (canvas_id, round_id, user_id),
        FOREIGN KEY (canvas_id, round_id) REFERENCES vote_rounds (canvas_id, round_id)
            ON DELETE CASCADE
    );
    ALTER TABLE participants ADD COLUMN removed BOOLEAN NOT NULL DEFAULT FALSE;
    ALTER TABLE participants ADD COLUMN last_seen DOUBLE PRECISION;
    """,
]

# Client ids travel as lib0 varuints (up to 2**53 from JavaScript); BIGINT holds any
# non-negative 64-bit integer, and anything beyond is refused before it reaches the server.
_MAX_CLIENT_ID = 2**63 - 1

_INVITE_COLS = (
    "id, canvas_id, org_id, role, created_at, expires_at, created_by, max_uses, uses, revoked"
)


@dataclass(slots=True)
class _Append:
    canvas_id: str
    update: bytes
    audit: Sequence[AuditEntry]
    future: asyncio.Future[int] = field(repr=False)


def _invite(row: Sequence[Any]) -> Invite:
    return Invite(
        id=row[0],
        canvas_id=row[1],
        org_id=row[2],
        role=row[3],
        created_at=row[4],
        expires_at=row[5],
        created_by=row[6],
        max_uses=row[7],
        uses=row[8],
        revoked=row[9],
    )


def _first_claims(bindings: Sequence[ClientBinding]) -> list[ClientBinding]:
    """One binding per client id (the first one asked wins within a call too), range-checked,
    in client-id order: concurrent calls then take the index's row locks in the same order and
    cannot deadlock on each other."""
    seen: dict[int, ClientBinding] = {}
    for b in bindings:
        if not 0 <= b.client_id <= _MAX_CLIENT_ID:
            raise ValueError(f"client id out of range: {b.client_id}")
        seen.setdefault(b.client_id, b)
    return [seen[k] for k in sorted(seen)]


def _canvas(row: Sequence[Any]) -> CanvasRecord:
    return CanvasRecord(
        id=row[0], title=row[1], template=row[2], created_at=row[3], settings=dict(row[4] or {})
    )


class PostgresStore(Store):
    def __init__(
        self,
        url: str,
        pool_min: int = 1,
        pool_max: int = 10,
        *,
        batch_max: int = 512,
        connect_timeout: float = 5.0,
        synchronous_commit: bool = True,
    ) -> None:
        self.url = url
        # False trades the last fraction of a second of appends on a PostgreSQL crash (not a
        # node crash: the server still has them) for commits that do not wait for the WAL
        # flush; never corrupts. Matches the SQLite store's durability="os".
        self._synchronous_commit = synchronous_commit
        self._batch_max = batch_max
        self._connect_timeout = connect_timeout
        self._pool = AsyncConnectionPool(
            url,
            min_size=pool_min,
            max_size=pool_max,
            open=False,
            timeout=connect_timeout,
            # autocommit: a plain SELECT never leaves a session idle in transaction; every
            # write opens an explicit transaction block.
            kwargs={"autocommit": True, "connect_timeout": max(1, int(connect_timeout))},
            # A restarted server leaves dead connections in the pool; check each on checkout
            # so one failure does not become one per pooled connection.
            check=AsyncConnectionPool.check_connection,
            # Give up a failed background reconnect at once instead of retrying with growing
            # backoff: the next request then connects on demand, so we resume within
            # milliseconds of the server's return rather than at the next backoff tick.
            reconnect_timeout=0,
        )
        self._pending: list[_Append] = []
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._flush_conn: AConn | None = None
        self._closing = False
        # Numbers for /metrics and the benchmark.
        self.batches = 0
        self.batched_appends = 0
        self._stats = StoreStats()
        self._inflight = 0  # appends in the batch being committed
        self._batch_started: float | None = None  # monotonic start of that batch

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=self._connect_timeout)
        except (PoolTimeout, psycopg.Error) as exc:
            raise StoreError(f"PostgreSQL unreachable: {exc}") from exc
        try:
            async with self._conn() as conn:
                await self._migrate(conn)
        except BaseException:
            await self._pool.close()
            raise
        self._closing = False
        self._flusher = asyncio.create_task(self._flush_loop(), name="postgres-group-commit")

    async def _migrate(self, conn: AConn) -> None:
        """Idempotent; the transaction-scoped advisory lock makes concurrent starts queue."""
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':cocanvas-schema'))"
            )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
            cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
            row = await cur.fetchone()
            current = int(row[0]) if row else 0
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"database schema v{current} is newer than this server (v{len(MIGRATIONS)})"
                )
            for version in range(current + 1, len(MIGRATIONS) + 1):
                log.info("migrating PostgreSQL schema to v%d", version)
                await conn.execute(sql.SQL(MIGRATIONS[version - 1]))  # type: ignore[arg-type]
                await conn.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (%s, %s)",
                    (version, time.time()),
                )

    async def close(self) -> None:
        self._closing = True
        if self._flusher is not None:
            self._wake.set()
            await self._flusher
            self._flusher = None
        if self._flush_conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._flush_conn.close()
            self._flush_conn = None
        await self._pool.close()

    async def ping(self) -> None:
        """Fail unless a transaction commits within COMMIT_STALL_S and group commits flow.

        ``txid_current()`` assigns a transaction id, so the ping's autocommit transaction writes
        a commit record and waits for its WAL flush (and for synchronous standbys): a read-only
        server, a server in recovery or one that cannot flush fails it, where ``SELECT 1``
        would pass.
        """
        started = self._batch_started
        if started is not None and time.monotonic() - started > COMMIT_STALL_S:
            raise StoreError(
                f"a group commit has been running for {time.monotonic() - started:.1f} s"
                f" ({len(self._pending) + self._inflight} appends pending)"
            )
        if self._flusher is not None and self._flusher.done():
            raise StoreError("the group-commit task has stopped")
        try:
            async with asyncio.timeout(COMMIT_STALL_S):
                async with self._conn(wait=COMMIT_STALL_S) as conn:
                    await conn.execute("SELECT txid_current()")
        except TimeoutError:
            raise StoreError(f"PostgreSQL did not commit within {COMMIT_STALL_S:g} s") from None

    def stats(self) -> StoreStats:
        s = self._stats
        started = self._batch_started
        return StoreStats(
            commits=s.commits,
            commit_errors=s.commit_errors,
            appended_updates=s.appended_updates,
            appended_bytes=s.appended_bytes,
            append_errors=s.append_errors,
            pending=len(self._pending) + self._inflight,
            commit_running_s=max(0.0, time.monotonic() - started) if started else 0.0,
            batch_size=s.batch_size.copy(),
            commit_seconds=s.commit_seconds.copy(),
        )

    @asynccontextmanager
    async def _conn(self, wait: float | None = None) -> AsyncIterator[AConn]:
        """A pooled connection; driver and pool failures surface as StoreError."""
        try:
            async with self._pool.connection(timeout=wait) as conn:
                yield conn
        except StoreError:
            raise
        except errors.ForeignKeyViolation as exc:
            raise CanvasNotFound(str(exc)) from exc
        except (psycopg.Error, PoolTimeout) as exc:
            raise StoreError(str(exc)) from exc

    # -- canvases -------------------------------------------------------------------------

    async def create_canvas(self, record: CanvasRecord, initial_update: bytes | None) -> None:
        async with self._conn() as conn, conn.transaction():
            try:
                await conn.execute(
                    "INSERT INTO canvases (id, title, template, created_at, settings)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (
                        record.id,
                        record.title,
                        record.template,
                        record.created_at,
                        Jsonb(record.settings),
                    ),
                )
            except errors.UniqueViolation as exc:
                raise StoreError(f"canvas {record.id} already exists") from exc
            if initial_update is not None:
                await conn.execute(
                    "INSERT INTO updates (canvas_id, data) VALUES (%s, %b)",
                    (record.id, initial_update),
                )

    async def get_canvas(self, canvas_id: str) -> CanvasRecord | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT id, title, template, created_at, settings FROM canvases WHERE id = %s",
                (canvas_id,),
            )
            row = await cur.fetchone()
        return _canvas(row) if row else None

    async def list_canvases(self) -> list[CanvasRecord]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT id, title, template, created_at, settings FROM canvases"
                " WHERE strpos(id, '/') = 0 ORDER BY created_at DESC, id DESC"
            )
            return [_canvas(r) for r in await cur.fetchall()]

    async def update_canvas(self, record: CanvasRecord) -> None:
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE canvases SET title = %s, settings = %s WHERE id = %s",
                (record.title, Jsonb(record.settings), record.id),
            )
            if cur.rowcount == 0:
                raise CanvasNotFound(record.id)

    async def delete_canvas(self, canvas_id: str) -> bool:
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute("DELETE FROM canvases WHERE id = %s", (canvas_id,))
            found = cur.rowcount > 0
            # Documents the canvas owns (its draft spaces, "<id>/drafts/<org>") go with it.
            await conn.execute(
                "DELETE FROM canvases WHERE left(id, %s) = %s",
                (len(canvas_id) + 1, canvas_id + OWNED_SEPARATOR),
            )
            return found

    # -- the document: group-committed appends ------------------------------------------------

    async def append(self, canvas_id: str, update: bytes, audit: Sequence[AuditEntry] = ()) -> int:
        return await self.append_nowait(canvas_id, update, audit)

    def append_nowait(
        self, canvas_id: str, update: bytes, audit: Sequence[AuditEntry] = ()
    ) -> asyncio.Future[int]:
        if self._closing or self._flusher is None or self._flusher.done():
            raise StoreError("store is closed")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append(_Append(canvas_id, update, audit, future))
        if not self._wake.is_set():
            self._wake.set()
        return future

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._batch_max]
                del self._pending[: self._batch_max]
                await self._write_batch(batch)
            if self._closing:
                return

    async def _write_batch(self, batch: list[_Append]) -> None:
        started = time.monotonic()
        self._batch_started = started
        self._inflight = len(batch)
        try:
            await self._write_batch_timed(batch, started)
        finally:
            self._batch_started = None
            self._inflight = 0

    async def _write_batch_timed(self, batch: list[_Append], started: float) -> None:
        try:
            conn = await self._flush_connection()
            try:
                async with conn.transaction():
                    ids = await self._insert_batch(conn, batch)
            except psycopg.Error as exc:
                if conn.broken or conn.closed:
                    self._flush_conn = None  # reconnect for the next batch
                    with contextlib.suppress(psycopg.Error):
                        await conn.close()
                if isinstance(exc, errors.ForeignKeyViolation):
                    raise CanvasNotFound(str(exc)) from exc  # deleted mid-batch: cannot happen
                raise StoreError(str(exc)) from exc
        except Exception as exc:
            # The commit may or may not have happened (connection lost mid-COMMIT): callers
            # treat it as failed and resend, which Yjs updates tolerate (they are idempotent).
            if not isinstance(exc, StoreError):
                log.exception("group commit failed")
            self._stats.commit_errors += 1
            self._stats.append_errors += len(batch)
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(StoreError(f"append not committed: {exc}"))
            return
        except BaseException:  # cancelled: nobody may wait for ever
            self._stats.commit_errors += 1
            self._stats.append_errors += len(batch)
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(StoreError("store closed during append"))
            raise
        self.batches += 1
        self.batched_appends += len(batch)
        s = self._stats
        s.commits += 1
        s.batch_size.observe(len(batch))
        s.commit_seconds.observe(time.monotonic() - started)
        for item, row_id in zip(batch, ids, strict=True):
            if row_id is None:
                s.append_errors += 1
            else:
                s.appended_updates += 1
                s.appended_bytes += len(item.update)
        for item, row_id in zip(batch, ids, strict=True):
            if item.future.done():
                continue  # the caller gave up (cancelled); its row is committed all the same
            if row_id is None:
                item.future.set_exception(CanvasNotFound(item.canvas_id))
            else:
                item.future.set_result(row_id)

    async def _flush_connection(self) -> AConn:
        """The flusher's own connection: no pool checkout or health probe per batch."""
        conn = self._flush_conn
        if conn is None or conn.closed or conn.broken:
            try:
                conn = await AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=max(1, int(self._connect_timeout))
                )
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL unreachable: {exc}") from exc
            if not self._synchronous_commit:
                await conn.execute("SET synchronous_commit = off")
            self._flush_conn = conn
        return conn

    async def _insert_batch(self, conn: AConn, batch: list[_Append]) -> list[int | None]:
        """Insert the batch's rows in one statement; None for appends whose canvas is missing.

        KEY SHARE locks the canvases until COMMIT, so a concurrent delete waits instead of
        failing the whole batch with a foreign-key error (compaction's NO KEY UPDATE lock does
        not conflict with it). Ids are drawn in a CTE that is evaluated once and returned with
        each row's position, so every caller gets its own row's id without relying on
        RETURNING order.
        """
        wanted = sorted({item.canvas_id for item in batch})
        cur = await conn.execute(
            "WITH ok AS (SELECT id FROM canvases WHERE id = ANY(%s) ORDER BY id FOR KEY SHARE),"
            " src AS MATERIALIZED ("
            "  SELECT t.n, t.c, t.d, nextval(pg_get_serial_sequence('updates', 'id')) AS id"
            "  FROM unnest(%s::text[], %b::bytea[]) WITH ORDINALITY AS t(c, d, n)"
            "  WHERE t.c IN (SELECT id FROM ok) ORDER BY t.n),"
            " ins AS (INSERT INTO updates (id, canvas_id, data) SELECT id, c, d FROM src)"
            " SELECT n, id FROM src",
            (wanted, [item.canvas_id for item in batch], [item.update for item in batch]),
        )
        position = {int(n): int(row_id) for n, row_id in await cur.fetchall()}
        ids: list[int | None] = [position.get(i) for i in range(1, len(batch) + 1)]
        entries = [
            e
            for item, row_id in zip(batch, ids, strict=True)
            if row_id is not None
            for e in item.audit
        ]
        if entries:
            await conn.execute(
                "INSERT INTO audit"
                " (canvas_id, at, user_id, user_name, org_id, action, target, detail)"
                " SELECT * FROM unnest(%s::text[], %s::float8[], %s::text[], %s::text[],"
                " %s::text[], %s::text[], %s::text[], %s::text[])",
                (
                    [e.canvas_id for e in entries],
                    [e.at for e in entries],
                    [e.user_id for e in entries],
                    [e.user_name for e in entries],
                    [e.org_id for e in entries],
                    [e.action for e in entries],
                    [e.target for e in entries],
                    [e.detail for e in entries],
                ),
            )
        return ids

    # -- the document: reads and compaction -----------------------------------------------

    async def load(self, canvas_id: str) -> StoredDoc | None:
        async with self._conn() as conn:
            async with conn.transaction():
                # One snapshot of the database for all three reads.
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                return await self._load(conn, canvas_id)

    async def _load(self, conn: AConn, canvas_id: str) -> StoredDoc | None:
        cur = await conn.execute("SELECT 1 FROM canvases WHERE id = %s", (canvas_id,))
        if await cur.fetchone() is None:
            return None
        cur = await conn.execute(
            "SELECT id, data FROM snapshots WHERE canvas_id = %s ORDER BY id DESC LIMIT 1",
            (canvas_id,),
            binary=True,
        )
        snap = await cur.fetchone()
        cur = await conn.execute(
            "SELECT id, data FROM updates WHERE canvas_id = %s ORDER BY id",
            (canvas_id,),
            binary=True,
        )
        updates = [(int(r[0]), bytes(r[1])) for r in await cur.fetchall()]
        return StoredDoc(
            snapshot=bytes(snap[1]) if snap else None,
            snapshot_id=int(snap[0]) if snap else None,
            updates=updates,
        )

    async def log_stats(self, canvas_id: str) -> LogStats:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT count(*), coalesce(sum(octet_length(data)), 0)"
                " FROM updates WHERE canvas_id = %s",
                (canvas_id,),
            )
            row = await cur.fetchone()
        assert row is not None
        return LogStats(count=int(row[0]), bytes=int(row[1]))

    async def compact(self, canvas_id: str, merge: Merge) -> bool:
        doc = await self.load(canvas_id)
        if doc is None or not doc.updates:
            return False
        # Merging may take a while on a big canvas: off the event loop, and with no transaction
        # or lock held meanwhile.
        merged = await asyncio.to_thread(merge, doc.parts())
        row_ids = [row_id for row_id, _ in doc.updates]
        async with self._conn() as conn:
            try:
                async with conn.transaction():
                    # NO KEY UPDATE serialises compactions of this canvas without blocking the
                    # appends' KEY SHARE locks (FOR UPDATE would stall them for the duration).
                    cur = await conn.execute(
                        "SELECT 1 FROM canvases WHERE id = %s FOR NO KEY UPDATE", (canvas_id,)
                    )
                    if await cur.fetchone() is None:
                        raise _Lost
                    cur = await conn.execute(
                        "SELECT max(id) FROM snapshots WHERE canvas_id = %s", (canvas_id,)
                    )
                    row = await cur.fetchone()
                    if (row[0] if row else None) != doc.snapshot_id:
                        raise _Lost  # another compaction replaced the snapshot we merged from
                    await conn.execute(
                        "INSERT INTO snapshots (canvas_id, created_at, merged_updates, data)"
                        " VALUES (%s, %s, %s, %b)",
                        (canvas_id, time.time(), len(row_ids), merged),
                    )
                    # Keep the newest KEEP_SNAPSHOTS (the one just inserted among them). The
                    # row lock above orders this canvas's compactions, so its snapshot ids
                    # grow in commit order and "newest" is "highest id", as load() reads it;
                    # the max(id) check is unaffected because the newest is never pruned.
                    await conn.execute(
                        "DELETE FROM snapshots WHERE canvas_id = %s AND id NOT IN ("
                        " SELECT id FROM snapshots WHERE canvas_id = %s"
                        " ORDER BY id DESC LIMIT %s)",
                        (canvas_id, canvas_id, KEEP_SNAPSHOTS),
                    )
                    cur = await conn.execute(
                        "DELETE FROM updates WHERE canvas_id = %s AND id = ANY(%s)",
                        (canvas_id, row_ids),
                    )
                    if cur.rowcount != len(row_ids):
                        raise _Lost  # rows vanished under us: merged from a stale view
            except _Lost:
                return False
        return True

    async def list_snapshots(self, canvas_id: str) -> list[SnapshotInfo]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT id, created_at, octet_length(data), merged_updates FROM snapshots"
                " WHERE canvas_id = %s ORDER BY id DESC",
                (canvas_id,),
            )
            return [
                SnapshotInfo(id=int(r[0]), created_at=r[1], size=int(r[2]), merged_updates=r[3])
                for r in await cur.fetchall()
            ]

    async def get_snapshot(self, canvas_id: str, snapshot_id: int) -> bytes | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT data FROM snapshots WHERE canvas_id = %s AND id = %s",
                (canvas_id, snapshot_id),
                binary=True,
            )
            row = await cur.fetchone()
        return bytes(row[0]) if row else None

    # -- client id bindings ---------------------------------------------------------------

    async def bind_client_ids(
        self, canvas_id: str, bindings: Sequence[ClientBinding]
    ) -> dict[int, ClientBinding]:
        wanted = _first_claims(bindings)
        if not wanted:
            return {}
        ids = [b.client_id for b in wanted]
        async with self._conn() as conn, conn.transaction():
            # KEY SHARE holds the canvas until COMMIT (a concurrent delete waits), so the
            # read-back below finds every id unless the canvas is gone. A concurrent claim of
            # the same id makes this INSERT wait for that transaction: if it commits, ours does
            # nothing, and the SELECT (a new statement, so a new snapshot under READ COMMITTED)
            # reads the winner's row.
            await conn.execute(
                "WITH ok AS (SELECT id FROM canvases WHERE id = %s FOR KEY SHARE)"
                " INSERT INTO client_ids (canvas_id, client_id, user_id, org_id, bound_at)"
                " SELECT ok.id, t.client_id, t.user_id, t.org_id, t.bound_at"
                " FROM ok, unnest(%s::bigint[], %s::text[], %s::text[], %s::float8[])"
                " WITH ORDINALITY AS t(client_id, user_id, org_id, bound_at, n)"
                " ORDER BY t.n ON CONFLICT (canvas_id, client_id) DO NOTHING",
                (
                    canvas_id,
                    ids,
                    [b.user_id for b in wanted],
                    [b.org_id for b in wanted],
                    [b.bound_at for b in wanted],
                ),
            )
            cur = await conn.execute(
                "SELECT client_id, user_id, org_id, bound_at FROM client_ids"
                " WHERE canvas_id = %s AND client_id = ANY(%s::bigint[])",
                (canvas_id, ids),
            )
            found = {
                int(r[0]): ClientBinding(int(r[0]), r[1], r[2], r[3]) for r in await cur.fetchall()
            }
        if len(found) != len(ids):
            raise CanvasNotFound(canvas_id)  # no canvas row to lock: nothing was inserted
        return found

    async def list_client_ids(self, canvas_id: str) -> dict[int, ClientBinding]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT client_id, user_id, org_id, bound_at FROM client_ids WHERE canvas_id = %s",
                (canvas_id,),
            )
            return {
                int(r[0]): ClientBinding(int(r[0]), r[1], r[2], r[3]) for r in await cur.fetchall()
            }

    # -- named versions -----------------------------------------------------------------

    async def save_version(
        self, canvas_id: str, name: str, state: bytes, created_by: str, keep: int = MAX_VERSIONS
    ) -> Version:
        now = time.time()
        async with self._conn() as conn, conn.transaction():
            # The canvas row locked: saves of one canvas on every node take turns, so the
            # count below cannot be passed by a concurrent save. NO KEY UPDATE does not wait
            # for (nor block) appends, whose foreign key check takes KEY SHARE.
            cur = await conn.execute(
                "SELECT 1 FROM canvases WHERE id = %s FOR NO KEY UPDATE", (canvas_id,)
            )
            if await cur.fetchone() is None:
                raise CanvasNotFound(canvas_id)
            cur = await conn.execute(
                "SELECT count(*) FROM versions WHERE canvas_id = %s", (canvas_id,)
            )
            counted = await cur.fetchone()
            count = int(counted[0]) if counted else 0
            if count >= keep:
                excess = count - keep + 1
                cur = await conn.execute(
                    "SELECT id FROM versions WHERE canvas_id = %s AND created_by = %s"
                    " ORDER BY id LIMIT %s",
                    (canvas_id, SERVER_OWNER, excess),
                )
                oldest = [r[0] for r in await cur.fetchall()]
                if len(oldest) < excess:
                    raise VersionLimit(f"canvas keeps {keep} versions; delete one first")
                await conn.execute("DELETE FROM versions WHERE id = ANY(%s)", (oldest,))
            cur = await conn.execute(
                "INSERT INTO versions (canvas_id, name, created_at, created_by, data)"
                " VALUES (%s, %s, %s, %s, %b) RETURNING id",
                (canvas_id, name, now, created_by, state),
            )
            row = await cur.fetchone()
        assert row is not None
        return Version(int(row[0]), canvas_id, name, now, created_by, len(state))

    async def delete_version(self, canvas_id: str, version_id: int) -> bool:
        async with self._conn() as conn:
            cur = await conn.execute(
                "DELETE FROM versions WHERE canvas_id = %s AND id = %s", (canvas_id, version_id)
            )
            return cur.rowcount > 0

    async def list_versions(self, canvas_id: str) -> list[Version]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT id, canvas_id, name, created_at, created_by, octet_length(data)"
                " FROM versions WHERE canvas_id = %s ORDER BY created_at DESC, id DESC",
                (canvas_id,),
            )
            return [
                Version(int(r[0]), r[1], r[2], r[3], r[4], int(r[5])) for r in await cur.fetchall()
            ]

    async def get_version(self, canvas_id: str, version_id: int) -> bytes | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT data FROM versions WHERE canvas_id = %s AND id = %s",
                (canvas_id, version_id),
                binary=True,
            )
            row = await cur.fetchone()
        return bytes(row[0]) if row else None

    # -- audit --------------------------------------------------------------------------

    async def list_audit(
        self, canvas_id: str, limit: int = 200, before: float | None = None
    ) -> list[AuditEntry]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT canvas_id, at, user_id, user_name, org_id, action, target, detail"
                " FROM audit WHERE canvas_id = %s AND (%s::float8 IS NULL OR at < %s::float8)"
                " ORDER BY at DESC, id DESC LIMIT %s",
                (canvas_id, before, before, limit),
            )
            return [AuditEntry(*r) for r in await cur.fetchall()]

    # -- invites and participants ---------------------------------------------------------

    async def create_invite(self, invite: Invite) -> None:
        async with self._conn() as conn:
            try:
                await conn.execute(
                    f"INSERT INTO invites ({_INVITE_COLS})"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        invite.id,
                        invite.canvas_id,
                        invite.org_id,
                        invite.role,
                        invite.created_at,
                        invite.expires_at,
                        invite.created_by,
                        invite.max_uses,
                        invite.uses,
                        invite.revoked,
                    ),
                )
            except errors.UniqueViolation as exc:
                raise StoreError(f"invite {invite.id} already exists") from exc

    async def get_invite(self, invite_id: str) -> Invite | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_INVITE_COLS} FROM invites WHERE id = %s", (invite_id,)
            )
            row = await cur.fetchone()
        return _invite(row) if row else None

    async def list_invites(self, canvas_id: str) -> list[Invite]:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_INVITE_COLS} FROM invites WHERE canvas_id = %s"
                " ORDER BY created_at DESC, id",
                (canvas_id,),
            )
            return [_invite(r) for r in await cur.fetchall()]

    async def revoke_invite(self, canvas_id: str, invite_id: str) -> bool:
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE invites SET revoked = TRUE WHERE id = %s AND canvas_id = %s",
                (invite_id, canvas_id),
            )
            return cur.rowcount > 0

    async def redeem_invite(self, invite_id: str, now: float) -> Invite | None:
        # One statement: the row lock makes concurrent redeems of the last use queue, and the
        # loser re-evaluates the WHERE clause against the winner's committed row.
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE invites SET uses = uses + 1"
                " WHERE id = %s AND NOT revoked AND expires_at > %s"
                " AND (max_uses IS NULL OR uses < max_uses)"
                f" RETURNING {_INVITE_COLS}",
                (invite_id, now),
            )
            row = await cur.fetchone()
        return _invite(row) if row else None

    async def add_participant(self, participant: Participant) -> None:
        """Joining again refreshes name, org, role and invite; the first join time stays."""
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO participants"
                " (canvas_id, user_id, name, org_id, role, invite_id, joined_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (canvas_id, user_id) DO UPDATE SET name = excluded.name,"
                " org_id = excluded.org_id, role = excluded.role,"
                " invite_id = coalesce(excluded.invite_id, participants.invite_id)",
                (
                    participant.canvas_id,
                    participant.user_id,
                    participant.name,
                    participant.org_id,
                    participant.role,
                    participant.invite_id,
                    participant.joined_at,
                ),
            )

    async def list_participants(self, canvas_id: str) -> list[Participant]:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_PARTICIPANT_COLS}"
                " FROM participants WHERE canvas_id = %s ORDER BY joined_at, user_id",
                (canvas_id,),
            )
            return [_participant(r) for r in await cur.fetchall()]

    async def get_participant(self, canvas_id: str, user_id: str) -> Participant | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_PARTICIPANT_COLS} FROM participants"
                " WHERE canvas_id = %s AND user_id = %s",
                (canvas_id, user_id),
            )
            row = await cur.fetchone()
        return _participant(row) if row else None

    async def update_participant(
        self,
        canvas_id: str,
        user_id: str,
        *,
        role: str | None = None,
        removed: bool | None = None,
        audit: AuditEntry | None = None,
    ) -> Participant | None:
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE participants SET role = coalesce(%s, role),"
                " removed = coalesce(%s, removed) WHERE canvas_id = %s AND user_id = %s"
                f" RETURNING {_PARTICIPANT_COLS}",
                (role, removed, canvas_id, user_id),
            )
            row = await cur.fetchone()
            if row is not None and audit is not None:
                a = audit
                await conn.execute(
                    "INSERT INTO audit"
                    " (canvas_id, at, user_id, user_name, org_id, action, target, detail)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        a.canvas_id,
                        a.at,
                        a.user_id,
                        a.user_name,
                        a.org_id,
                        a.action,
                        a.target,
                        a.detail,
                    ),
                )
        return _participant(row) if row else None

    async def touch_participant(self, canvas_id: str, user_id: str, at: float) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE participants SET last_seen = greatest(coalesce(last_seen, 0), %s)"
                " WHERE canvas_id = %s AND user_id = %s",
                (at, canvas_id, user_id),
            )

    # -- vote rounds (BallotBox) ------------------------------------------------------------

    async def open_round(self, canvas_id: str, round_id: str, at: float) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO vote_rounds (canvas_id, round_id, status, opened_at)"
                " VALUES (%s, %s, 'open', %s)",
                (canvas_id, round_id, at),
            )

    async def round_status(self, canvas_id: str, round_id: str) -> str | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT status FROM vote_rounds WHERE canvas_id = %s AND round_id = %s",
                (canvas_id, round_id),
            )
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def put_ballot(self, ballot: Ballot) -> bool:
        b = ballot
        async with self._conn() as conn, conn.transaction():
            # FOR SHARE: a concurrent close (UPDATE) waits for this ballot to commit, then
            # counts it; a ballot arriving after the close sees status 'closed'.
            cur = await conn.execute(
                "SELECT status FROM vote_rounds WHERE canvas_id = %s AND round_id = %s FOR SHARE",
                (b.canvas_id, b.round_id),
            )
            row = await cur.fetchone()
            if row is None or row[0] != "open":
                return False
            await conn.execute(
                "INSERT INTO ballots (canvas_id, round_id, user_id, user_name, org_id, dots, at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (canvas_id, round_id, user_id) DO UPDATE SET"
                " user_name = excluded.user_name, org_id = excluded.org_id,"
                " dots = excluded.dots, at = excluded.at",
                (b.canvas_id, b.round_id, b.user_id, b.user_name, b.org_id, Jsonb(b.dots), b.at),
            )
            return True

    async def get_ballot(self, canvas_id: str, round_id: str, user_id: str) -> Ballot | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_BALLOT_COLS} FROM ballots"
                " WHERE canvas_id = %s AND round_id = %s AND user_id = %s",
                (canvas_id, round_id, user_id),
            )
            row = await cur.fetchone()
        return _ballot(row) if row else None

    async def list_ballots(self, canvas_id: str, round_id: str) -> list[Ballot]:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_BALLOT_COLS} FROM ballots WHERE canvas_id = %s AND round_id = %s"
                " ORDER BY user_id",
                (canvas_id, round_id),
            )
            rows = await cur.fetchall()
        return [_ballot(r) for r in rows]

    async def close_round(self, canvas_id: str, round_id: str, at: float) -> ClosedRound | None:
        async with self._conn() as conn, conn.transaction():
            # The row lock orders racing closes: the second reads the first one's 'closed'.
            cur = await conn.execute(
                "SELECT status FROM vote_rounds WHERE canvas_id = %s AND round_id = %s FOR UPDATE",
                (canvas_id, round_id),
            )
            was = await cur.fetchone()
            cur = await conn.execute(
                "UPDATE vote_rounds SET status = 'closed', closed_at = coalesce(closed_at, %s)"
                " WHERE canvas_id = %s AND round_id = %s",
                (at, canvas_id, round_id),
            )
            if cur.rowcount == 0:
                return None
            cur = await conn.execute(
                f"SELECT {_BALLOT_COLS} FROM ballots WHERE canvas_id = %s AND round_id = %s"
                " ORDER BY user_id",
                (canvas_id, round_id),
            )
            rows = await cur.fetchall()
        return ClosedRound([_ballot(r) for r in rows], was is not None and was[0] == "open")


class _Lost(Exception):
    """Compaction lost a race; the transaction rolls back."""


_BALLOT_COLS = "canvas_id, round_id, user_id, user_name, org_id, dots, at"


def _ballot(row: Sequence[Any]) -> Ballot:
    return Ballot(row[0], row[1], row[2], row[3], row[4], dict(row[5] or {}), row[6])


_PARTICIPANT_COLS = (
    "user_id, canvas_id, name, org_id, role, invite_id, joined_at, removed, last_seen"
)


def _participant(row: Sequence[Any]) -> Participant:
    return Participant(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]), row[8])
