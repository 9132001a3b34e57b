"""SQLite store: the embedded default.

One writer thread owns the only write connection and commits in groups: it takes every operation
queued while the previous commit was running and writes them in one transaction, so a burst of
updates costs one fsync (WAL, ``synchronous=FULL``: a commit survives power loss, not just a
crash). Readers use their own connections from a small thread pool; WAL lets them read a consistent
snapshot while the writer works.

Readiness and the files under it. ``ping`` commits a one-row write through the writer and fails
when that takes longer than ``COMMIT_STALL_S`` (a frozen or dying disk, a lock held by another
process), or at once while a commit has been running that long. The database, ``-wal`` and
``-shm`` files are the ones the store opened: their device and inode are recorded at start and
compared after every commit, on every ping and once a second. A file deleted or replaced under a
running node means every later commit goes to a file nobody will ever read again, so the store
then fails for good: every write and read raises StoreError (rooms close their sessions with
1011 instead of acknowledging updates that go nowhere) and ``ping`` fails until a restart.

The database is created 0600 (it holds invite ids and every canvas); SQLite gives ``-wal`` and
``-shm`` the database's mode.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

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

T = TypeVar("T")

log = logging.getLogger("cocanvas.store.sqlite")

# The schema as versioned steps, applied in order on start; PRAGMA user_version says how far a
# database is. Never edit a step that has shipped: add one. (Step 1 is written "IF NOT EXISTS" so
# that databases made before versioning, at user_version 0 with these tables, pass through it.)
MIGRATIONS: tuple[str, ...] = (
    """
CREATE TABLE IF NOT EXISTS canvases (
  id TEXT PRIMARY KEY, title TEXT NOT NULL, template TEXT NOT NULL,
  created_at REAL NOT NULL, settings BLOB NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS updates (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  canvas_id TEXT NOT NULL REFERENCES canvases(id) ON DELETE CASCADE,
  data BLOB NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS updates_by_canvas ON updates(canvas_id, id);
CREATE TABLE IF NOT EXISTS snapshots (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  canvas_id TEXT NOT NULL REFERENCES canvases(id) ON DELETE CASCADE,
  data BLOB NOT NULL, created_at REAL NOT NULL, merged_updates INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS snapshots_by_canvas ON snapshots(canvas_id, id);
CREATE TABLE IF NOT EXISTS versions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  canvas_id TEXT NOT NULL REFERENCES canvases(id) ON DELETE CASCADE,
  name TEXT NOT NULL, data BLOB NOT NULL, created_at REAL NOT NULL, created_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  canvas_id TEXT NOT NULL REFERENCES canvases(id) ON DELETE CASCADE,
  at REAL NOT NULL, user_id TEXT NOT NULL, user_name TEXT NOT NULL, org_id TEXT NOT NULL,
  action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_by_canvas ON audit(canvas_id, at);
CREATE TABLE IF NOT EXISTS invites (
  id TEXT PRIMARY KEY,
  canvas_id TEXT NOT NULL REFERENCES canvases(id) ON DELETE CASCADE,
  org_id TEXT NOT NULL, role TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL,
  created_by TEXT NOT NULL, max_uses INTEGER, uses INTEGER NOT NULL DEFAULT 0,
  revoked INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS invites_by_canvas ON invites(canvas_id);
CREATE TABLE IF NOT EXISTS participants (
  canvas_id TEXT NOT NULL REFERENCES canvases(id) ON DELETE CASCADE,
  user_id TEXT NOT NULL,
  name TEXT NOT NULL, org_id TEXT NOT NULL, role TEXT NOT NULL, invite_id TEXT,
  joined_at REAL NOT NULL,
  PRIMARY KEY (canvas_id, user_id));
""",
    # 2: who owns each Yjs client id (server/bindings.py)
    """CREATE TABLE IF NOT EXISTS client_ids (
  canvas_id TEXT NOT NULL REFERENCES canvases(id) ON DELETE CASCADE,
  client_id INTEGER NOT NULL,
  user_id TEXT NOT NULL, org_id TEXT NOT NULL, bound_at REAL NOT NULL,
  PRIMARY KEY (canvas_id, client_id)) WITHOUT ROWID;
""",
    # 3: the readiness heartbeat, committed through the writer
    """CREATE TABLE IF NOT EXISTS heartbeat (id INTEGER PRIMARY KEY, at REAL NOT NULL);
""",
    # 4: vote rounds and their ballots (server/workshop/rounds.py)
    """CREATE TABLE IF NOT EXISTS vote_rounds (
  canvas_id TEXT NOT NULL REFERENCES canvases(id) ON DELETE CASCADE,
  round_id TEXT NOT NULL, status TEXT NOT NULL, opened_at REAL NOT NULL, closed_at REAL,
  PRIMARY KEY (canvas_id, round_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ballots (
  canvas_id TEXT NOT NULL, round_id TEXT NOT NULL, user_id TEXT NOT NULL,
  user_name TEXT NOT NULL, org_id TEXT NOT NULL, dots BLOB NOT NULL, at REAL NOT NULL,
  PRIMARY KEY (canvas_id, round_id, user_id),
  FOREIGN KEY (canvas_id, round_id) REFERENCES vote_rounds(canvas_id, round_id)
    ON DELETE CASCADE) WITHOUT ROWID;
ALTER TABLE participants ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE participants ADD COLUMN last_seen REAL;
""",
)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the database to the newest schema, one committed step at a time."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise StoreError(
            f"database schema v{version} is newer than this server (v{len(MIGRATIONS)})"
        )
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.executescript(f"BEGIN IMMEDIATE;\n{step}\nPRAGMA user_version = {number};\nCOMMIT;")


# Client ids travel as lib0 varuints (up to 2**53 from JavaScript); the column holds any
# non-negative 64-bit integer, and anything beyond is refused before it reaches SQLite.
_MAX_CLIENT_ID = 2**63 - 1


CHECKPOINT_INTERVAL_S = 1.0
# Past this the WAL is checkpointed with TRUNCATE. A PASSIVE checkpoint never blocks the writer,
# so under writes that never pause it never catches up with the WAL's end, the WAL never
# restarts and its file grows without bound (measured: 277 MB after 20,000 small updates at
# 900/s, 675 MB after 100,000; the database itself was 3 MB). TRUNCATE waits for the writer's
# current batch, copies the rest and empties the file: a pause of one checkpoint, rarely.
WAL_LIMIT_BYTES = 32 << 20

# Readiness: the store must be able to commit within this many seconds (a ping's own commit, or
# whatever commit is running when the ping comes).
COMMIT_STALL_S = 2.0

_FILES = ("", "-wal", "-shm")


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    # Appends with no audit rows validate before writing, so they need no savepoint; everything
    # else (an append with audit rows included) gets one.
    atomic: bool
    # An append's update size (counted once committed); -1 for every other operation.
    nbytes: int = -1


def _uri(path: str) -> str:
    # mode=rw: never create the file. A connection opened after the database was deleted would
    # otherwise make a new, empty one (with the umask's mode) for the next start to trust.
    return Path(path).absolute().as_uri() + "?mode=rw"


def _create_private(path: str) -> None:
    """Create the database file 0600 if missing; tighten one that others may read."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        os.close(fd)
        return
    for suffix in _FILES:
        try:
            mode = os.stat(path + suffix).st_mode & 0o777
            if mode & 0o077:
                os.chmod(path + suffix, mode & 0o700)
                log.warning("%s was mode %o; now %o", path + suffix, mode, mode & 0o700)
        except FileNotFoundError:
            continue
        except OSError as exc:  # not ours to change: say so, keep serving
            log.warning("cannot restrict the mode of %s: %s", path + suffix, exc)


def _heartbeat(c: sqlite3.Connection) -> None:
    c.execute(
        "INSERT INTO heartbeat(id, at) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET at=excluded.at",
        (time.time(),),
    )


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # a ping nobody awaits any more must not log "never retrieved"


def _connect(path: str, fsync: bool = True) -> sqlite3.Connection:
    conn = sqlite3.connect(
        _uri(path), isolation_level=None, check_same_thread=False, timeout=30, uri=True
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _resolve(batch: list[_Op], results: list[tuple[bool, Any]]) -> None:
    for op, (ok, value) in zip(batch, results, strict=True):
        if op.future.done():
            continue
        if ok:
            op.future.set_result(value)
        else:
            op.future.set_exception(value)


def _first_claims(bindings: Sequence[ClientBinding]) -> list[ClientBinding]:
    """One binding per client id (the first one asked wins within a call too), range-checked."""
    seen: dict[int, ClientBinding] = {}
    for b in bindings:
        if not 0 <= b.client_id <= _MAX_CLIENT_ID:
            raise ValueError(f"client id out of range: {b.client_id}")
        seen.setdefault(b.client_id, b)
    return list(seen.values())


def _bindings(c: sqlite3.Connection, canvas_id: str, ids: list[int]) -> dict[int, ClientBinding]:
    found: dict[int, ClientBinding] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for row in c.execute(
            "SELECT client_id, user_id, org_id, bound_at FROM client_ids"
            f" WHERE canvas_id=? AND client_id IN ({marks})",
            (canvas_id, *chunk),
        ):
            found[row[0]] = ClientBinding(*row)
    return found


class SQLiteStore(Store):
    def __init__(
        self,
        path: str | Path,
        batch_max: int = 512,
        fsync: bool = True,
        wal_limit_bytes: int = WAL_LIMIT_BYTES,
    ) -> None:
        self.path = str(path)
        self.wal_limit_bytes = wal_limit_bytes
        self.wal_truncations = 0  # TRUNCATE checkpoints the WAL's size asked for
        self.batch_max = batch_max
        self.fsync = fsync
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sqlite-read")
        self._local = threading.local()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.commits = 0  # number of write transactions, for tests and metrics
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        # Counters, written by the writer thread (and by refusals on the loop) under the lock.
        self._stats = StoreStats()
        self._stats_lock = threading.Lock()
        self._enqueued = 0  # operations handed to the writer (loop thread only)
        self._done = 0  # operations the writer finished (writer thread only)
        self._batch_started: float | None = None  # monotonic start of the running commit
        # (st_dev, st_ino) of the database, -wal and -shm files as opened.
        self._identity: dict[str, tuple[int, int]] = {}
        self._failed: str | None = None
        self._ping: asyncio.Future[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._loop = asyncio.get_running_loop()
        _create_private(self.path)
        conn = _connect(self.path, self.fsync)
        _migrate(conn)
        self._identity.clear()
        self._failed = None
        problem = self._check_files()  # records what was opened
        if problem is not None:
            conn.close()
            raise StoreError(problem)
        # Checkpoints copy the WAL into the database and fsync it: tens of milliseconds on a slow
        # disk. Done inline by the committing connection they would stall every broadcast behind
        # it, so the writer never checkpoints and a separate thread does it without blocking it.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        self._writer = threading.Thread(
            target=self._write_loop, args=(conn,), name="sqlite-writer", daemon=True
        )
        self._writer.start()
        self._stop_checkpoints.clear()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()

    async def close(self) -> None:
        if self._writer is None:
            return
        self._queue.put(None)
        await asyncio.to_thread(self._writer.join)
        self._writer = None
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
        self._readers.shutdown(wait=True)

    async def ping(self) -> None:
        """Fail unless a write commits through the writer within COMMIT_STALL_S.

        Answers at once (without queueing) when the files are gone or a commit has already been
        running that long; concurrent pings share one heartbeat write.
        """
        if self._writer is None or not self._writer.is_alive():
            raise StoreError("SQLite writer is not running")
        self._raise_if_failed()
        try:
            problem = self._check_files()
        except OSError as exc:
            raise StoreError(f"cannot check the database file: {exc}") from exc
        if problem is not None:
            self._fail(problem)
            self._raise_if_failed()
        started = self._batch_started
        if started is not None and time.monotonic() - started > COMMIT_STALL_S:
            raise StoreError(
                f"a commit has been running for {time.monotonic() - started:.1f} s"
                f" ({self._enqueued - self._done} operations pending)"
            )
        ping = self._ping
        if ping is None or ping.done():
            ping = asyncio.ensure_future(self._write(_heartbeat))
            ping.add_done_callback(_retrieve)
            self._ping = ping
        try:
            async with asyncio.timeout(COMMIT_STALL_S):
                await asyncio.shield(ping)
        except TimeoutError:
            raise StoreError(
                f"the store could not commit within {COMMIT_STALL_S:g} s"
                f" ({self._enqueued - self._done} operations pending)"
            ) from None

    def stats(self) -> StoreStats:
        with self._stats_lock:
            s = self._stats
            out = StoreStats(
                commits=s.commits,
                commit_errors=s.commit_errors,
                appended_updates=s.appended_updates,
                appended_bytes=s.appended_bytes,
                append_errors=s.append_errors,
                batch_size=s.batch_size.copy(),
                commit_seconds=s.commit_seconds.copy(),
            )
        out.pending = max(0, self._enqueued - self._done)
        started = self._batch_started
        out.commit_running_s = max(0.0, time.monotonic() - started) if started else 0.0
        out.failed = self._failed
        return out

    # -- the files under the store -----------------------------------------------------------

    def _check_files(self) -> str | None:
        """Why the files at our path are not the ones we write to, or None.

        Raises OSError when a file cannot be examined for another reason (that is not proof of
        anything, so the caller decides). A -wal or -shm file not seen yet is recorded now.
        """
        for suffix in _FILES:
            path = self.path + suffix
            try:
                st = os.stat(path)
            except FileNotFoundError:
                if suffix in self._identity:
                    return f"{path} was deleted while the store had it open"
                if suffix == "":
                    return f"{path} does not exist"
                continue
            known = self._identity.setdefault(suffix, (st.st_dev, st.st_ino))
            if known != (st.st_dev, st.st_ino):
                return f"{path} was replaced while the store had it open"
        return None

    def _fail(self, reason: str) -> None:
        if self._failed is None:
            self._failed = reason
            log.error("SQLite store stops accepting writes until restarted: %s", reason)

    def _raise_if_failed(self) -> None:
        if self._failed is not None:
            raise StoreError(f"store failed: {self._failed}; restart the node")

    def _files_ok(self) -> bool:
        """Check the files from a store thread; record a failure. Unexaminable counts as ok."""
        if self._failed is not None:
            return False
        try:
            problem = self._check_files()
        except OSError:
            return True
        if problem is not None:
            self._fail(problem)
            return False
        return True

    # -- plumbing ------------------------------------------------------------------------

    def _checkpoint_loop(self) -> None:
        conn = _connect(self.path, self.fsync)
        try:
            while not self._stop_checkpoints.wait(CHECKPOINT_INTERVAL_S):
                # Also the periodic look at the files, so an idle node notices a deleted
                # database within a second and refuses the next append at once.
                if not self._files_ok():
                    continue
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    if self._wal_bytes() > self.wal_limit_bytes:
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                        self.wal_truncations += 1
                except sqlite3.Error:
                    pass  # busy or locked: the next round catches up
            if self._failed is None:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def _wal_bytes(self) -> int:
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:
            return 0

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        loop = self._loop
        assert loop is not None
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self.batch_max:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            started = time.monotonic()
            self._batch_started = started
            try:
                results, committed = self._run_batch(conn, batch)
            finally:
                self._batch_started = None
            self._count(batch, results, committed, time.monotonic() - started)
            self._done += len(batch)
            loop.call_soon_threadsafe(_resolve, batch, results)
        conn.close()

    def _count(
        self, batch: list[_Op], results: list[tuple[bool, Any]], committed: bool, seconds: float
    ) -> None:
        with self._stats_lock:
            s = self._stats
            if committed:
                s.commits += 1
                s.batch_size.observe(len(batch))
                s.commit_seconds.observe(seconds)
            else:
                s.commit_errors += 1
            for op, (ok, _) in zip(batch, results, strict=True):
                if op.nbytes < 0:
                    continue
                if ok:
                    s.appended_updates += 1
                    s.appended_bytes += op.nbytes
                else:
                    s.append_errors += 1

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[_Op]
    ) -> tuple[list[tuple[bool, Any]], bool]:
        """Run the batch in one transaction: (per-operation results, whether it committed)."""
        results: list[tuple[bool, Any]] = []
        if self._failed is not None:
            err = StoreError(f"store failed: {self._failed}; restart the node")
            return [(False, err) for _ in batch], False
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                if op.atomic:
                    try:
                        results.append((True, op.fn(conn)))
                    except Exception as exc:  # validated before writing: nothing to undo
                        results.append((False, exc))
                    continue
                conn.execute("SAVEPOINT op")
                try:
                    results.append((True, op.fn(conn)))
                    conn.execute("RELEASE op")
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    results.append((False, exc))
            conn.execute("COMMIT")
        except Exception as exc:  # the commit itself failed (disk full, I/O error)
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            err = StoreError(f"SQLite commit failed: {exc}")
            return [(False, err) for _ in batch], False
        # Committed, but to the files we opened: if the path no longer leads to them, nobody
        # will ever read this commit again, so nobody may be told it is durable.
        if not self._files_ok():
            err = StoreError(f"store failed: {self._failed}; restart the node")
            return [(False, err) for _ in batch], False
        self.commits += 1
        return results, True

    def _submit(
        self, fn: Callable[[sqlite3.Connection], T], *, atomic: bool = False, nbytes: int = -1
    ) -> asyncio.Future[T]:
        """Queue one operation for the writer thread; the future resolves after its commit."""
        if self._writer is None:
            raise StoreError("store is closed")
        if self._failed is not None:
            if nbytes >= 0:
                with self._stats_lock:
                    self._stats.append_errors += 1
            self._raise_if_failed()
        # The store's loop, not asyncio.get_running_loop() (a getpid() system call per call on
        # CPython 3.11, once per append); the writer resolves every future on it anyway.
        loop = self._loop
        assert loop is not None
        future: asyncio.Future[T] = loop.create_future()
        self._enqueued += 1
        self._queue.put(_Op(fn, future, atomic, nbytes))
        return future

    async def _write(
        self, fn: Callable[[sqlite3.Connection], T], *, atomic: bool = False, nbytes: int = -1
    ) -> T:
        future = self._submit(fn, atomic=atomic, nbytes=nbytes)
        try:
            return await future
        except sqlite3.Error as exc:  # e.g. a duplicate id: the interface speaks StoreError
            raise StoreError(str(exc)) from exc

    def _reader_conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        self._raise_if_failed()

        def run() -> T:
            conn = self._reader_conn()
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, run)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    # -- canvases -------------------------------------------------------------------------

    async def create_canvas(self, record: CanvasRecord, initial_update: bytes | None) -> None:
        def fn(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO canvases(id, title, template, created_at, settings) VALUES (?,?,?,?,?)",
                (
                    record.id,
                    record.title,
                    record.template,
                    record.created_at,
                    orjson.dumps(record.settings),
                ),
            )
            if initial_update is not None:
                c.execute(
                    "INSERT INTO updates(canvas_id, data, at) VALUES (?,?,?)",
                    (record.id, initial_update, time.time()),
                )

        await self._write(fn)

    @staticmethod
    def _record(row: tuple[Any, ...]) -> CanvasRecord:
        return CanvasRecord(row[0], row[1], row[2], row[3], orjson.loads(row[4]))

    async def get_canvas(self, canvas_id: str) -> CanvasRecord | None:
        row = await self._read(
            lambda c: c.execute(
                "SELECT id, title, template, created_at, settings FROM canvases WHERE id=?",
                (canvas_id,),
            ).fetchone()
        )
        return self._record(row) if row else None

    async def list_canvases(self) -> list[CanvasRecord]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT id, title, template, created_at, settings FROM canvases "
                "WHERE instr(id, '/') = 0 ORDER BY created_at DESC, id"
            ).fetchall()
        )
        return [self._record(r) for r in rows]

    async def update_canvas(self, record: CanvasRecord) -> None:
        def fn(c: sqlite3.Connection) -> None:
            cur = c.execute(
                "UPDATE canvases SET title=?, settings=? WHERE id=?",
                (record.title, orjson.dumps(record.settings), record.id),
            )
            if cur.rowcount == 0:
                raise CanvasNotFound(record.id)

        await self._write(fn)

    async def delete_canvas(self, canvas_id: str) -> bool:
        def fn(c: sqlite3.Connection) -> bool:
            found = c.execute("DELETE FROM canvases WHERE id=?", (canvas_id,)).rowcount > 0
            # Documents the canvas owns (its draft spaces, "<id>/drafts/<org>") go with it.
            c.execute(
                "DELETE FROM canvases WHERE substr(id, 1, ?) = ?",
                (len(canvas_id) + 1, canvas_id + OWNED_SEPARATOR),
            )
            return found

        return await self._write(fn)

    # -- the document -------------------------------------------------------------------

    async def append(self, canvas_id: str, update: bytes, audit: Sequence[AuditEntry] = ()) -> int:
        try:
            return await self.append_nowait(canvas_id, update, audit)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def append_nowait(
        self, canvas_id: str, update: bytes, audit: Sequence[AuditEntry] = ()
    ) -> asyncio.Future[int]:
        """Queue the append; the future resolves once its batch is committed. A failure may be
        an sqlite3.Error as well as a StoreError (callers treat both as the store's)."""
        now = time.time()

        def fn(c: sqlite3.Connection) -> int:
            cur = c.execute(
                "INSERT INTO updates(canvas_id, data, at) "
                "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM canvases WHERE id=?)",
                (canvas_id, update, now, canvas_id),
            )
            if cur.rowcount == 0:
                raise CanvasNotFound(canvas_id)
            if audit:
                c.executemany(
                    "INSERT INTO audit(canvas_id, at, user_id, user_name, org_id, action, target, detail)"
                    " VALUES (?,?,?,?,?,?,?,?)",
                    [
                        (
                            a.canvas_id,
                            a.at,
                            a.user_id,
                            a.user_name,
                            a.org_id,
                            a.action,
                            a.target,
                            a.detail,
                        )
                        for a in audit
                    ],
                )
            rowid = cur.lastrowid
            assert rowid is not None
            return rowid

        # An append alone validates before writing (the canvas check), so it needs no savepoint;
        # with audit rows it gets one, or a failing audit row would leave its update committed.
        return self._submit(fn, atomic=not audit, nbytes=len(update))

    @staticmethod
    def _load(c: sqlite3.Connection, canvas_id: str) -> StoredDoc | None:
        if c.execute("SELECT 1 FROM canvases WHERE id=?", (canvas_id,)).fetchone() is None:
            return None
        snap = c.execute(
            "SELECT id, data FROM snapshots WHERE canvas_id=? ORDER BY id DESC LIMIT 1",
            (canvas_id,),
        ).fetchone()
        rows = c.execute(
            "SELECT id, data FROM updates WHERE canvas_id=? ORDER BY id", (canvas_id,)
        ).fetchall()
        return StoredDoc(
            snapshot=bytes(snap[1]) if snap else None,
            snapshot_id=snap[0] if snap else None,
            updates=[(r[0], bytes(r[1])) for r in rows],
        )

    async def load(self, canvas_id: str) -> StoredDoc | None:
        return await self._read(lambda c: self._load(c, canvas_id))

    async def log_stats(self, canvas_id: str) -> LogStats:
        row = await self._read(
            lambda c: c.execute(
                "SELECT count(*), coalesce(sum(length(data)), 0) FROM updates WHERE canvas_id=?",
                (canvas_id,),
            ).fetchone()
        )
        return LogStats(row[0], row[1])

    async def compact(self, canvas_id: str, merge: Merge) -> bool:
        stored = await self.load(canvas_id)
        if stored is None or not stored.updates:
            return False
        merged = await asyncio.to_thread(merge, stored.parts())
        ids = [rid for rid, _ in stored.updates]
        base = stored.snapshot_id

        def fn(c: sqlite3.Connection) -> bool:
            latest = c.execute(
                "SELECT max(id) FROM snapshots WHERE canvas_id=?", (canvas_id,)
            ).fetchone()[0]
            if latest != base:
                return False
            deleted = 0
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                deleted += c.execute(
                    f"DELETE FROM updates WHERE canvas_id=? AND id IN ({marks})",
                    (canvas_id, *chunk),
                ).rowcount
            if deleted != len(ids):
                raise StoreError("log changed under compaction")  # savepoint rolls it back
            # Prune before inserting, so the pages of the oldest snapshot are already on the
            # free list when the new one is written and the file peaks at KEEP_SNAPSHOTS
            # snapshots, not one more. Pruning never touches the newest snapshot, so the
            # "another compaction won" check above (max id) is unaffected, and ids are
            # AUTOINCREMENT: a pruned id is never handed out again.
            #
            # Freed pages go to SQLite's free list and the next snapshot or log rows reuse
            # them, which is what keeps the file bounded. Measured with a 220 KB canvas, 3,000
            # small updates, a compaction every 100: 7.8 MB unpruned; 0.94 MB pruned, the
            # same with auto_vacuum=INCREMENTAL plus incremental_vacuum after each compaction
            # (which only hands pages back to the OS for the next snapshot to take again, and
            # can only be enabled on a new database); 1.2 MB when inserting before pruning.
            c.execute(
                "DELETE FROM snapshots WHERE canvas_id=? AND id NOT IN ("
                " SELECT id FROM snapshots WHERE canvas_id=? ORDER BY id DESC LIMIT ?)",
                (canvas_id, canvas_id, KEEP_SNAPSHOTS - 1),
            )
            c.execute(
                "INSERT INTO snapshots(canvas_id, data, created_at, merged_updates) VALUES (?,?,?,?)",
                (canvas_id, merged, time.time(), len(ids)),
            )
            return True

        try:
            return await self._write(fn)
        except StoreError:
            return False

    async def list_snapshots(self, canvas_id: str) -> list[SnapshotInfo]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT id, created_at, length(data), merged_updates FROM snapshots "
                "WHERE canvas_id=? ORDER BY id DESC",
                (canvas_id,),
            ).fetchall()
        )
        return [SnapshotInfo(*r) for r in rows]

    async def get_snapshot(self, canvas_id: str, snapshot_id: int) -> bytes | None:
        row = await self._read(
            lambda c: c.execute(
                "SELECT data FROM snapshots WHERE canvas_id=? AND id=?", (canvas_id, snapshot_id)
            ).fetchone()
        )
        return bytes(row[0]) if row else None

    # -- client id bindings ---------------------------------------------------------------

    async def bind_client_ids(
        self, canvas_id: str, bindings: Sequence[ClientBinding]
    ) -> dict[int, ClientBinding]:
        wanted = _first_claims(bindings)
        if not wanted:
            return {}
        rows = [(canvas_id, b.client_id, b.user_id, b.org_id, b.bound_at) for b in wanted]
        ids = [b.client_id for b in wanted]

        def fn(c: sqlite3.Connection) -> dict[int, ClientBinding]:
            # The writer holds the database's write lock (BEGIN IMMEDIATE) from here to COMMIT,
            # also against other processes on the same file, so the insert and the read-back
            # see the same bindings: first claim wins.
            if c.execute("SELECT 1 FROM canvases WHERE id=?", (canvas_id,)).fetchone() is None:
                raise CanvasNotFound(canvas_id)
            # Only the primary-key conflict is ignored (OR IGNORE would also skip rows that
            # break NOT NULL).
            c.executemany(
                "INSERT INTO client_ids(canvas_id, client_id, user_id, org_id, bound_at)"
                " VALUES (?,?,?,?,?) ON CONFLICT(canvas_id, client_id) DO NOTHING",
                rows,
            )
            found = _bindings(c, canvas_id, ids)
            if len(found) != len(ids):
                raise StoreError("client id bindings went missing")  # cannot happen
            return found

        # Not atomic=True like a bare append: a row failing halfway through executemany must not
        # leave the earlier rows of the call bound, so the call gets its own savepoint.
        return await self._write(fn)

    async def list_client_ids(self, canvas_id: str) -> dict[int, ClientBinding]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT client_id, user_id, org_id, bound_at FROM client_ids WHERE canvas_id=?",
                (canvas_id,),
            ).fetchall()
        )
        return {r[0]: ClientBinding(*r) for r in rows}

    # -- named versions -----------------------------------------------------------------

    async def save_version(
        self, canvas_id: str, name: str, state: bytes, created_by: str, keep: int = MAX_VERSIONS
    ) -> Version:
        now = time.time()

        def fn(c: sqlite3.Connection) -> Version:
            if c.execute("SELECT 1 FROM canvases WHERE id=?", (canvas_id,)).fetchone() is None:
                raise CanvasNotFound(canvas_id)
            # The writer thread runs one transaction at a time: count, prune, insert are atomic.
            (count,) = c.execute(
                "SELECT count(*) FROM versions WHERE canvas_id=?", (canvas_id,)
            ).fetchone()
            if count >= keep:
                oldest = c.execute(
                    "SELECT id FROM versions WHERE canvas_id=? AND created_by=? "
                    "ORDER BY id LIMIT ?",
                    (canvas_id, SERVER_OWNER, count - keep + 1),
                ).fetchall()
                if len(oldest) < count - keep + 1:
                    raise VersionLimit(f"canvas keeps {keep} versions; delete one first")
                c.executemany("DELETE FROM versions WHERE id=?", oldest)
            cur = c.execute(
                "INSERT INTO versions(canvas_id, name, data, created_at, created_by) VALUES (?,?,?,?,?)",
                (canvas_id, name, state, now, created_by),
            )
            assert cur.lastrowid is not None
            return Version(cur.lastrowid, canvas_id, name, now, created_by, len(state))

        return await self._write(fn)

    async def delete_version(self, canvas_id: str, version_id: int) -> bool:
        def fn(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "DELETE FROM versions WHERE canvas_id=? AND id=?", (canvas_id, version_id)
            )
            return cur.rowcount > 0

        return await self._write(fn)

    async def list_versions(self, canvas_id: str) -> list[Version]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT id, canvas_id, name, created_at, created_by, length(data) FROM versions "
                "WHERE canvas_id=? ORDER BY id DESC",
                (canvas_id,),
            ).fetchall()
        )
        return [Version(*r) for r in rows]

    async def get_version(self, canvas_id: str, version_id: int) -> bytes | None:
        row = await self._read(
            lambda c: c.execute(
                "SELECT data FROM versions WHERE canvas_id=? AND id=?", (canvas_id, version_id)
            ).fetchone()
        )
        return bytes(row[0]) if row else None

    # -- audit --------------------------------------------------------------------------

    async def list_audit(
        self, canvas_id: str, limit: int = 200, before: float | None = None
    ) -> list[AuditEntry]:
        def fn(c: sqlite3.Connection) -> list[Any]:
            sql = (
                "SELECT canvas_id, at, user_id, user_name, org_id, action, target, detail "
                "FROM audit WHERE canvas_id=?"
            )
            args: list[Any] = [canvas_id]
            if before is not None:
                sql += " AND at < ?"
                args.append(before)
            sql += " ORDER BY at DESC, id DESC LIMIT ?"
            args.append(limit)
            return c.execute(sql, args).fetchall()

        return [AuditEntry(*r) for r in await self._read(fn)]

    # -- invites and participants ---------------------------------------------------------

    _INVITE_COLS = (
        "id, canvas_id, org_id, role, created_at, expires_at, created_by, max_uses, uses, revoked"
    )

    @staticmethod
    def _invite(row: tuple[Any, ...]) -> Invite:
        (iid, cid, org, role, created, expires, by, max_uses, uses, revoked) = row
        return Invite(iid, cid, org, role, created, expires, by, max_uses, uses, bool(revoked))

    async def create_invite(self, invite: Invite) -> None:
        def fn(c: sqlite3.Connection) -> None:
            if (
                c.execute("SELECT 1 FROM canvases WHERE id=?", (invite.canvas_id,)).fetchone()
                is None
            ):
                raise CanvasNotFound(invite.canvas_id)
            c.execute(
                f"INSERT INTO invites({self._INVITE_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
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
                    int(invite.revoked),
                ),
            )

        await self._write(fn)

    async def get_invite(self, invite_id: str) -> Invite | None:
        row = await self._read(
            lambda c: c.execute(
                f"SELECT {self._INVITE_COLS} FROM invites WHERE id=?", (invite_id,)
            ).fetchone()
        )
        return self._invite(row) if row else None

    async def list_invites(self, canvas_id: str) -> list[Invite]:
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {self._INVITE_COLS} FROM invites WHERE canvas_id=? ORDER BY created_at DESC",
                (canvas_id,),
            ).fetchall()
        )
        return [self._invite(r) for r in rows]

    async def revoke_invite(self, canvas_id: str, invite_id: str) -> bool:
        def fn(c: sqlite3.Connection) -> bool:
            return (
                c.execute(
                    "UPDATE invites SET revoked=1 WHERE id=? AND canvas_id=?",
                    (invite_id, canvas_id),
                ).rowcount
                > 0
            )

        return await self._write(fn)

    async def redeem_invite(self, invite_id: str, now: float) -> Invite | None:
        def fn(c: sqlite3.Connection) -> Invite | None:
            cur = c.execute(
                "UPDATE invites SET uses = uses + 1 WHERE id=? AND revoked=0 AND expires_at > ? "
                "AND (max_uses IS NULL OR uses < max_uses)",
                (invite_id, now),
            )
            if cur.rowcount == 0:
                return None
            row = c.execute(
                f"SELECT {self._INVITE_COLS} FROM invites WHERE id=?", (invite_id,)
            ).fetchone()
            return self._invite(row)

        return await self._write(fn)

    async def add_participant(self, participant: Participant) -> None:
        p = participant

        def fn(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT OR REPLACE INTO participants(user_id, canvas_id, name, org_id, role, invite_id,"
                " joined_at) VALUES (?,?,?,?,?,?,?)",
                (p.user_id, p.canvas_id, p.name, p.org_id, p.role, p.invite_id, p.joined_at),
            )

        await self._write(fn)

    async def list_participants(self, canvas_id: str) -> list[Participant]:
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {self._PARTICIPANT_COLS} FROM participants WHERE canvas_id=? "
                "ORDER BY joined_at",
                (canvas_id,),
            ).fetchall()
        )
        return [self._participant(r) for r in rows]

    _PARTICIPANT_COLS = (
        "user_id, canvas_id, name, org_id, role, invite_id, joined_at, removed, last_seen"
    )

    @staticmethod
    def _participant(row: tuple[Any, ...]) -> Participant:
        uid, cid, name, org, role, invite, joined, removed, last_seen = row
        return Participant(uid, cid, name, org, role, invite, joined, bool(removed), last_seen)

    async def get_participant(self, canvas_id: str, user_id: str) -> Participant | None:
        row = await self._read(
            lambda c: c.execute(
                f"SELECT {self._PARTICIPANT_COLS} FROM participants "
                "WHERE canvas_id=? AND user_id=?",
                (canvas_id, user_id),
            ).fetchone()
        )
        return self._participant(row) if row else None

    async def update_participant(
        self,
        canvas_id: str,
        user_id: str,
        *,
        role: str | None = None,
        removed: bool | None = None,
        audit: AuditEntry | None = None,
    ) -> Participant | None:
        def fn(c: sqlite3.Connection) -> Participant | None:
            cur = c.execute(
                "UPDATE participants SET role=COALESCE(?, role), removed=COALESCE(?, removed) "
                "WHERE canvas_id=? AND user_id=?",
                (role, None if removed is None else int(removed), canvas_id, user_id),
            )
            if cur.rowcount and audit is not None:
                a = audit
                c.execute(
                    "INSERT INTO audit(canvas_id, at, user_id, user_name, org_id, action, target,"
                    " detail) VALUES (?,?,?,?,?,?,?,?)",
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
            row = c.execute(
                f"SELECT {self._PARTICIPANT_COLS} FROM participants "
                "WHERE canvas_id=? AND user_id=?",
                (canvas_id, user_id),
            ).fetchone()
            return self._participant(row) if row else None

        return await self._write(fn)

    async def touch_participant(self, canvas_id: str, user_id: str, at: float) -> None:
        def fn(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE participants SET last_seen=MAX(COALESCE(last_seen, 0), ?) "
                "WHERE canvas_id=? AND user_id=?",
                (at, canvas_id, user_id),
            )

        await self._write(fn)

    # -- vote rounds (BallotBox) ------------------------------------------------------------

    async def open_round(self, canvas_id: str, round_id: str, at: float) -> None:
        def fn(c: sqlite3.Connection) -> None:
            if c.execute("SELECT 1 FROM canvases WHERE id=?", (canvas_id,)).fetchone() is None:
                raise CanvasNotFound(canvas_id)
            c.execute(
                "INSERT INTO vote_rounds(canvas_id, round_id, status, opened_at) "
                "VALUES (?,?,'open',?)",
                (canvas_id, round_id, at),
            )

        await self._write(fn)

    async def round_status(self, canvas_id: str, round_id: str) -> str | None:
        row = await self._read(
            lambda c: c.execute(
                "SELECT status FROM vote_rounds WHERE canvas_id=? AND round_id=?",
                (canvas_id, round_id),
            ).fetchone()
        )
        return str(row[0]) if row else None

    async def put_ballot(self, ballot: Ballot) -> bool:
        b = ballot

        def fn(c: sqlite3.Connection) -> bool:
            # One writer thread: the status read and the write are one serialized step.
            row = c.execute(
                "SELECT status FROM vote_rounds WHERE canvas_id=? AND round_id=?",
                (b.canvas_id, b.round_id),
            ).fetchone()
            if row is None or row[0] != "open":
                return False
            c.execute(
                "INSERT OR REPLACE INTO ballots(canvas_id, round_id, user_id, user_name, org_id,"
                " dots, at) VALUES (?,?,?,?,?,?,?)",
                (
                    b.canvas_id,
                    b.round_id,
                    b.user_id,
                    b.user_name,
                    b.org_id,
                    orjson.dumps(b.dots),
                    b.at,
                ),
            )
            return True

        return await self._write(fn)

    _BALLOT_COLS = "canvas_id, round_id, user_id, user_name, org_id, dots, at"

    @staticmethod
    def _ballot(row: tuple[Any, ...]) -> Ballot:
        cid, rid, uid, name, org, dots, at = row
        return Ballot(cid, rid, uid, name, org, dict(orjson.loads(dots)), at)

    async def get_ballot(self, canvas_id: str, round_id: str, user_id: str) -> Ballot | None:
        row = await self._read(
            lambda c: c.execute(
                f"SELECT {self._BALLOT_COLS} FROM ballots "
                "WHERE canvas_id=? AND round_id=? AND user_id=?",
                (canvas_id, round_id, user_id),
            ).fetchone()
        )
        return self._ballot(row) if row else None

    async def list_ballots(self, canvas_id: str, round_id: str) -> list[Ballot]:
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT {self._BALLOT_COLS} FROM ballots WHERE canvas_id=? AND round_id=? "
                "ORDER BY user_id",
                (canvas_id, round_id),
            ).fetchall()
        )
        return [self._ballot(r) for r in rows]

    async def close_round(self, canvas_id: str, round_id: str, at: float) -> ClosedRound | None:
        def fn(c: sqlite3.Connection) -> ClosedRound | None:
            # One writer at a time (BEGIN IMMEDIATE): the status read here is the one replaced.
            was = c.execute(
                "SELECT status FROM vote_rounds WHERE canvas_id=? AND round_id=?",
                (canvas_id, round_id),
            ).fetchone()
            cur = c.execute(
                "UPDATE vote_rounds SET status='closed', closed_at=COALESCE(closed_at, ?) "
                "WHERE canvas_id=? AND round_id=?",
                (at, canvas_id, round_id),
            )
            if cur.rowcount == 0:
                return None
            rows = c.execute(
                f"SELECT {self._BALLOT_COLS} FROM ballots WHERE canvas_id=? AND round_id=? "
                "ORDER BY user_id",
                (canvas_id, round_id),
            ).fetchall()
            return ClosedRound(
                [self._ballot(r) for r in rows], was is not None and was[0] == "open"
            )

        return await self._write(fn)
