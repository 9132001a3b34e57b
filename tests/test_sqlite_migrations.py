"""SQLite's schema is a versioned list of steps (PRAGMA user_version), as PostgreSQL's is: an old
database is brought forward without losing anything; a newer one is refused, not misread."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from server.store import sqlite as sq
from server.store.base import CanvasRecord, ClientBinding, StoreError


async def test_a_database_from_before_versioning_is_migrated_and_keeps_its_canvases(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(sq.MIGRATIONS[0])  # the tables as they were, user_version 0
    con.execute(
        "INSERT INTO canvases(id, title, template, created_at) VALUES ('c', 'Old', 'business-model', 1)"
    )
    con.execute("INSERT INTO updates(canvas_id, data, at) VALUES ('c', x'0000', 1)")
    con.commit()
    con.close()
    store = sq.SQLiteStore(path, fsync=False)
    await store.start()
    try:
        record = await store.get_canvas("c")
        assert record is not None and record.title == "Old"
        bound = await store.bind_client_ids("c", [ClientBinding(7, "u", "o", 1.0)])
        assert bound[7].user_id == "u"
    finally:
        await store.close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == len(sq.MIGRATIONS)
    con.close()


async def test_starting_twice_applies_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "db"
    for _ in range(2):
        store = sq.SQLiteStore(path, fsync=False)
        await store.start()
        await store.create_canvas(CanvasRecord(f"c{_}", "t", "business-model", 1.0), None)
        await store.close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == len(sq.MIGRATIONS)
    assert con.execute("SELECT count(*) FROM canvases").fetchone()[0] == 2
    con.close()


async def test_a_database_from_a_newer_server_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {len(sq.MIGRATIONS) + 1}")
    con.close()
    store = sq.SQLiteStore(path, fsync=False)
    with pytest.raises(StoreError, match="newer than this server"):
        await store.start()
