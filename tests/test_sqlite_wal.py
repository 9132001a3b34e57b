"""The SQLite store's write-ahead log stays bounded under writes that never pause.

A PASSIVE checkpoint never waits for the writer, so with a commit always in flight it never
reaches the log's end and the log never restarts: before the fix a 100,000-update history left a
675 MB WAL beside a 3 MB database. The store now truncates the log once it passes its limit.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from server.store.base import AuditEntry, CanvasRecord
from server.store.sqlite import SQLiteStore


def file_size(path: str) -> int:
    return os.path.getsize(path)


async def test_the_wal_is_truncated_under_continuous_appends(tmp_path: Path) -> None:
    limit = 256 * 1024
    store = SQLiteStore(tmp_path / "db.sqlite", fsync=False, wal_limit_bytes=limit)
    await store.start()
    try:
        await store.create_canvas(CanvasRecord("c", "t", "business-model", 1.0), None)
        wal = str(tmp_path / "db.sqlite") + "-wal"
        audit = [AuditEntry("c", 0.0, "u", "U", "o", "edit", "n", "")]
        appended = 0
        smallest_after_truncation: int | None = None
        deadline = time.monotonic() + 60
        # Appends that never pause (each waits only for its own commit), as a busy canvas
        # writes, until the checkpointer has had to truncate the log twice. Without it the log
        # only grows (every commit adds its pages at the end).
        while store.wal_truncations < 2:
            assert time.monotonic() < deadline, "the WAL was never truncated"
            await store.append("c", os.urandom(2048), audit)
            appended += 1
            if store.wal_truncations:
                size = file_size(wal)
                if smallest_after_truncation is None or size < smallest_after_truncation:
                    smallest_after_truncation = size
        # After a truncation the file starts over from empty: it does not keep its size.
        assert smallest_after_truncation is not None and smallest_after_truncation < limit
        # Nothing was lost to the truncations.
        stored = await store.load("c")
        assert stored is not None and len(stored.updates) == appended
    finally:
        await store.close()
