"""Where a SQLite commit's time goes, on a running node: ``python scripts/writer_steps.py``.

Two commands:

* ``serve [cocanvas serve arguments]`` runs the node with the store's writer connection wrapped:
  every statement's wall time by its first words (BEGIN, INSERT-updates, COMMIT, ...), the file
  check after each commit, and the writer thread's CPU per batch, written as one cumulative line
  a second to ``$WRITER_STEPS_OUT`` (default ``/tmp/writer-steps.txt``);
* ``report [file]`` prints, for the seconds where commits ran at ``--min-rate`` or more (the
  load window of a benchmark), how many of each statement a commit ran and what each cost.

Why: a statement gives up the GIL while SQLite works and must take it back from a busy event loop
before the writer can go on, so a step's wall time is its work plus that wait. Session 24 used it
to show that the commit's cost at 1,000 live canvases is the fsync and the GIL hand-off after it,
not the number of statements (docs/performance.md). A benchmark tool, not a test.
"""

from __future__ import annotations

import argparse
import ast
import collections
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

Stats = dict[str, list[float]]  # key -> [count, seconds]


def _key(sql: str) -> str:
    words = sql.split()
    if words[:2] == ["INSERT", "INTO"] and len(words) > 2:
        return "INSERT-" + words[2].split("(")[0]
    return words[0] if words else "?"


class _Timed:
    """The writer's connection, timing each statement (everything else passes through)."""

    def __init__(self, conn: sqlite3.Connection, stats: Stats) -> None:
        self._conn = conn
        self._stats = stats

    def _time(self, key: str, started: float) -> None:
        entry = self._stats[key]
        entry[0] += 1
        entry[1] += time.perf_counter() - started

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        started = time.perf_counter()
        try:
            return self._conn.execute(sql, *args)
        finally:
            self._time(_key(sql), started)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        started = time.perf_counter()
        try:
            return self._conn.executemany(sql, *args)
        finally:
            self._time(_key(sql) + "*many", started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def serve(argv: list[str], out: Path) -> None:
    from server.cli import main
    from server.store import sqlite as store

    stats: Stats = collections.defaultdict(lambda: [0, 0.0])
    write_loop = store.SQLiteStore._write_loop
    run_batch = store.SQLiteStore._run_batch
    files_ok = store.SQLiteStore._files_ok

    def timed_write_loop(self: store.SQLiteStore, conn: sqlite3.Connection) -> None:
        write_loop(self, _Timed(conn, stats))  # type: ignore[arg-type]

    def timed_run_batch(self: store.SQLiteStore, conn: sqlite3.Connection, batch: Any) -> Any:
        started = time.thread_time()
        try:
            return run_batch(self, conn, batch)
        finally:
            entry = stats["writer-cpu-per-op"]
            entry[0] += len(batch)
            entry[1] += time.thread_time() - started

    def timed_files_ok(self: store.SQLiteStore) -> bool:
        started = time.perf_counter()
        try:
            return files_ok(self)
        finally:
            entry = stats["file-check"]
            entry[0] += 1
            entry[1] += time.perf_counter() - started

    store.SQLiteStore._write_loop = timed_write_loop  # type: ignore[method-assign]
    store.SQLiteStore._run_batch = timed_run_batch  # type: ignore[method-assign]
    store.SQLiteStore._files_ok = timed_files_ok  # type: ignore[method-assign]

    def dump() -> None:
        out.write_text("")
        while True:
            time.sleep(1)
            snapshot = {k: (int(n), s) for k, (n, s) in list(stats.items())}
            with out.open("a") as f:
                f.write(repr((time.time(), snapshot)) + "\n")

    threading.Thread(target=dump, daemon=True).start()
    sys.argv = ["cocanvas", *argv]
    main()


def report(path: Path, min_rate: float) -> None:
    rows = [ast.literal_eval(line) for line in path.read_text().splitlines() if line]

    def get(row: Any, key: str) -> tuple[int, float]:
        value: tuple[int, float] = row[1].get(key, (0, 0.0))
        return value

    busy = [
        (a, b)
        for a, b in zip(rows, rows[1:], strict=False)
        if get(b, "COMMIT")[0] - get(a, "COMMIT")[0] >= min_rate * (b[0] - a[0])
    ]
    if not busy:
        print(f"no second with {min_rate:g} commits/s or more")
        return
    first, last = busy[0][0], busy[-1][1]
    commits = get(last, "COMMIT")[0] - get(first, "COMMIT")[0]
    print(f"window {last[0] - first[0]:.1f} s, {commits} commits")
    for key in sorted(last[1]):
        n = get(last, key)[0] - get(first, key)[0]
        seconds = get(last, key)[1] - get(first, key)[1]
        if n:
            print(
                f"  {key:28s} {n / commits:6.2f} per commit, {1e3 * seconds / n:7.3f} ms each,"
                f" {1e3 * seconds / commits:7.3f} ms per commit"
            )


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run cocanvas serve with the writer timed")
    rep = sub.add_parser("report", help="summarise the load window of a timed run")
    rep.add_argument("file", nargs="?", default=None)
    rep.add_argument("--min-rate", type=float, default=100.0, help="commits/s of the window")
    args, rest = parser.parse_known_args()
    default = Path(__import__("os").environ.get("WRITER_STEPS_OUT", "/tmp/writer-steps.txt"))
    if args.command == "serve":
        serve(rest, default)
    else:
        report(Path(args.file) if args.file else default, args.min_rate)


if __name__ == "__main__":
    run()
