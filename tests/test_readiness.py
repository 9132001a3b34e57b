"""Readiness tells the truth about the store, and the embedded server protects itself.

Real server processes and real faults: the SQLite files deleted under a running node, the write
lock held by another process, the file system frozen (fsfreeze on a loop-mounted ext4, when the
machine allows it), half-sent HTTP requests; and the database file's mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.cli import HEADER_TIMEOUT_S, MAX_HEADER_BYTES
from server.store.base import CanvasRecord, StoreError
from server.store.sqlite import COMMIT_STALL_S, SQLiteStore
from tests.support import ServerProcess, YClient, free_port

DB_FILES = ("", "-wal", "-shm")


async def wait_ready(server: ServerProcess, status: int, timeout: float) -> dict[str, Any]:
    """Poll /readyz until it answers ``status``; its body then."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            r = await http.get(server.http + "/readyz")
            if r.status_code == status:
                return r.json()  # type: ignore[no-any-return]
            assert time.monotonic() < deadline, f"/readyz still {r.status_code}: {r.text}"
            await asyncio.sleep(0.1)


async def pair(server: ServerProcess, canvas: dict[str, Any]) -> tuple[YClient, YClient]:
    token = canvas["facilitator_token"]
    writer = await YClient(server.ws, canvas["id"], token, "writer").connect()
    watcher = await YClient(server.ws, canvas["id"], token, "watcher").connect()
    writer.add_note("before", "durable")
    await watcher.wait_for(lambda: "before" in watcher.notes)
    return writer, watcher


# -- the store cannot commit ---------------------------------------------------------------


async def test_deleted_database_files_make_the_node_unready_and_refuse_every_update(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "data").start()
    clients: list[YClient] = []
    try:
        canvas = server.create_canvas()
        writer, watcher = await pair(server, canvas)
        clients += [writer, watcher]
        await wait_ready(server, 200, timeout=5)

        db = server.data_dir / "cocanvas.db"
        for suffix in DB_FILES:
            os.unlink(f"{db}{suffix}")
        body = await wait_ready(server, 503, timeout=5)
        assert "deleted" in body["checks"]["store"], body

        # The next update is never acknowledged: nobody else receives it, and its session is
        # closed with 1011 once the room gives up on the store (the client resends it later).
        writer.add_note("after", "would be lost on restart")
        await asyncio.wait_for(writer.closed.wait(), 60)
        assert writer.close_code == 1011, (writer.close_code, writer.close_reason)
        assert "after" not in watcher.notes
        # Permanent until a restart: the files under the node are not the ones it writes.
        assert httpx.get(server.http + "/readyz").status_code == 503
        metrics = httpx.get(server.http + "/metrics").text
        assert "cocanvas_store_failed 1.0" in metrics
        assert "SQLite store stops accepting writes" in server.log()
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()
        server.stop()


LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
print("released", flush=True)
"""


async def test_a_commit_stalled_by_another_process_lock_is_unready_then_ready(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "data").start()
    clients: list[YClient] = []
    locker: asyncio.subprocess.Process | None = None
    try:
        canvas = server.create_canvas()
        writer, watcher = await pair(server, canvas)
        clients += [writer, watcher]
        await wait_ready(server, 200, timeout=5)

        locker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            LOCKER,
            str(server.data_dir / "cocanvas.db"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert locker.stdin is not None and locker.stdout is not None
        assert await asyncio.wait_for(locker.stdout.readline(), 10) == b"locked\n"
        writer.add_note("during", "waits for the lock")
        t0 = time.monotonic()
        body = await wait_ready(server, 503, timeout=COMMIT_STALL_S + 5)
        assert "commit" in body["checks"]["store"], body
        assert httpx.get(server.http + "/healthz").status_code == 200
        assert "during" not in watcher.notes  # not acknowledged while it is not durable
        print(f"\n503 {time.monotonic() - t0:.2f}s after the lock was taken: {body}")

        locker.stdin.write(b"\n")
        await locker.stdin.drain()
        assert await asyncio.wait_for(locker.stdout.readline(), 10) == b"released\n"
        await wait_ready(server, 200, timeout=10)
        await watcher.wait_for(lambda: "during" in watcher.notes)
        assert not writer.closed.is_set()
    finally:
        if locker is not None and locker.returncode is None:
            locker.kill()
            await locker.wait()
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()
        server.stop()


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def loop_mounted_ext4(tmp_path: Path) -> Iterator[Path]:
    """A small ext4 file system on a loop device, so fsfreeze can freeze it alone."""
    tools = [shutil.which(t, path="/usr/sbin:/sbin:/usr/bin") for t in ("mkfs.ext4", "fsfreeze")]
    if os.geteuid() != 0 or None in tools:
        pytest.skip("fsfreeze needs root, mkfs.ext4 and fsfreeze (util-linux)")
    image, mnt = tmp_path / "fs.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    made = _run(str(tools[0]), "-q", "-F", str(image))
    if made.returncode != 0:
        pytest.skip(f"mkfs.ext4 failed: {made.stderr.strip()}")
    mounted = _run("mount", "-o", "loop", str(image), str(mnt))
    if mounted.returncode != 0:
        pytest.skip(f"cannot loop-mount a file system here: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        _run(str(tools[1]), "-u", str(mnt))  # never leave it frozen, whatever happened
        if _run("umount", str(mnt)).returncode != 0:
            _run("umount", "-l", str(mnt))


async def test_a_frozen_file_system_is_unready_while_frozen_and_ready_after(
    tmp_path: Path,
) -> None:
    with loop_mounted_ext4(tmp_path) as mnt:
        fsfreeze = shutil.which("fsfreeze", path="/usr/sbin:/sbin:/usr/bin")
        assert fsfreeze is not None
        # Only the database is on the frozen file system; the log and the secret are not, so
        # the server's own logging keeps working while its disk is frozen.
        server = ServerProcess(
            tmp_path / "data", env={"COCANVAS_STORE_URL": f"sqlite:///{mnt}/cocanvas.db"}
        ).start()
        clients: list[YClient] = []
        frozen = False
        try:
            canvas = server.create_canvas()
            writer, watcher = await pair(server, canvas)
            clients += [writer, watcher]
            await wait_ready(server, 200, timeout=5)

            froze = await asyncio.to_thread(_run, fsfreeze, "-f", str(mnt))
            assert froze.returncode == 0, froze.stderr
            frozen = True
            writer.add_note("frozen", "written while the disk is frozen")
            body = await wait_ready(server, 503, timeout=COMMIT_STALL_S + 5)
            assert httpx.get(server.http + "/healthz").status_code == 200
            assert "frozen" not in watcher.notes
            print(f"\nfrozen: {body}")

            thawed = await asyncio.to_thread(_run, fsfreeze, "-u", str(mnt))
            assert thawed.returncode == 0, thawed.stderr
            frozen = False
            await wait_ready(server, 200, timeout=15)
            await watcher.wait_for(lambda: "frozen" in watcher.notes, timeout=15)
        finally:
            if frozen:
                await asyncio.to_thread(_run, fsfreeze, "-u", str(mnt))
            for c in clients:
                with contextlib.suppress(Exception):
                    await c.close()
            server.stop()


# -- the store as a library -------------------------------------------------------------------


async def test_sqlite_store_refuses_writes_once_its_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = SQLiteStore(path, fsync=False)
    await store.start()
    try:
        await store.create_canvas(CanvasRecord("c", "t", "business-model", 0.0), None)
        await store.append("c", b"\x00\x00")
        await store.ping()
        os.rename(path, tmp_path / "moved.db")
        path.write_bytes(b"")  # someone put another file at the path
        with pytest.raises(StoreError, match="replaced"):
            await store.ping()
        with pytest.raises(StoreError):
            await store.append("c", b"\x00\x00")
        with pytest.raises(StoreError):
            await store.load("c")
        s = store.stats()
        assert s.failed is not None and s.appended_updates == 1 and s.append_errors == 1
    finally:
        await store.close()


async def test_sqlite_files_are_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        server = ServerProcess(tmp_path / "data").start()
    finally:
        os.umask(old)
    try:
        canvas = server.create_canvas()
        c = await YClient(server.ws, canvas["id"], canvas["facilitator_token"]).connect()
        c.add_note("n", "x")
        await c.close()
        for suffix in DB_FILES:
            path = f"{server.data_dir / 'cocanvas.db'}{suffix}"
            mode = stat.S_IMODE(os.stat(path).st_mode)
            assert mode == 0o600, (path, oct(mode))
    finally:
        server.stop()


async def test_an_existing_world_readable_database_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    first = SQLiteStore(path, fsync=False)
    await first.start()
    await first.close()
    os.chmod(path, 0o644)
    store = SQLiteStore(path, fsync=False)
    await store.start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        await store.close()


# -- half-sent requests ------------------------------------------------------------------------


async def test_half_sent_requests_are_closed_within_the_header_timeout_while_healthz_answers(
    server: ServerProcess,
) -> None:
    canvas = server.create_canvas()
    # A WebSocket outlives the header timeout untouched (its connection left HTTP behind).
    ws = await YClient(server.ws, canvas["id"], canvas["facilitator_token"], "ws").connect()
    conns: list[tuple[str, asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def open_conn(kind: str, first: bytes) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        if first:
            writer.write(first)
            await writer.drain()
        conns.append((kind, reader, writer))

    t0 = time.monotonic()
    for _ in range(50):
        await open_conn("half request line", b"GET /heal")
    for _ in range(5):
        await open_conn("nothing sent", b"")
    for _ in range(5):
        await open_conn("headers never end", b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    # Kept alive: one full request answered, then half of the next.
    for _ in range(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        await reader.readexactly(int(head.split(b"content-length: ")[1].split(b"\r\n")[0]))
        writer.write(b"GET /healthz HT")
        conns.append(("kept alive, then half a request", reader, writer))

    async def closed_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float:
        with contextlib.suppress(ConnectionError):
            while await reader.read(4096):
                pass
        writer.close()
        return time.monotonic() - t0

    waits = [asyncio.create_task(closed_after(r, w)) for _, r, w in conns]
    slowest_health = 0.0
    async with httpx.AsyncClient(timeout=5) as http:
        while not all(w.done() for w in waits):
            assert time.monotonic() - t0 < HEADER_TIMEOUT_S + 10, "connections still held"
            started = time.monotonic()
            assert (await http.get(server.http + "/healthz")).status_code == 200
            slowest_health = max(slowest_health, time.monotonic() - started)
            await asyncio.sleep(0.1)
    times: dict[str, list[float]] = {kind: [] for kind, _, _ in conns}
    for (kind, _, _), w in zip(conns, waits, strict=True):
        times[kind].append(w.result())
    print(f"\nclosed after (s): { {k: round(max(v), 2) for k, v in times.items()} }")
    print(f"slowest /healthz meanwhile: {slowest_health * 1000:.1f} ms")
    for kind, ts in times.items():
        assert max(ts) < HEADER_TIMEOUT_S + 3, (kind, ts)
    assert slowest_health < 1.0
    # The WebSocket is still there and still works.
    assert not ws.closed.is_set()
    other = await YClient(server.ws, canvas["id"], canvas["facilitator_token"], "o").connect()
    other.add_note("still", "here")
    await ws.wait_for(lambda: "still" in ws.notes)
    await other.close()
    await ws.close()


async def test_an_endless_header_block_is_cut_off_at_the_size_limit(server: ServerProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    t0 = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    sent = 0
    with contextlib.suppress(ConnectionError):
        while sent < 100 * MAX_HEADER_BYTES:
            line = b"X-Pad-%d: %s\r\n" % (sent, b"a" * 100)
            writer.write(line)
            await writer.drain()
            sent += len(line)
        raise AssertionError(f"{sent} bytes of headers accepted")
    assert time.monotonic() - t0 < HEADER_TIMEOUT_S / 2
    assert sent < 16 * MAX_HEADER_BYTES  # cut near the limit (plus what the sockets buffer)
    writer.close()
    assert httpx.get(server.http + "/healthz").status_code == 200


@pytest.mark.parametrize("impl", ["httptools", "h11"])
async def test_a_trickled_body_is_cut_off_an_honest_one_is_not(
    monkeypatch: pytest.MonkeyPatch, impl: str
) -> None:
    """The protocol wrapper on its own, in-process, with short deadlines."""
    import uvicorn

    from server import cli

    monkeypatch.setattr(cli, "HEADER_TIMEOUT_S", 1.0)
    monkeypatch.setattr(cli, "BODY_TIMEOUT_S", 1.0)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        if scope["path"] == "/slow":
            await asyncio.sleep(2.5)  # handling may take longer than any read deadline
        body = str(size).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=cli.http_protocol(impl), log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done()
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            assert (await http.post("/", content=b"x" * 100_000)).text == "100000"
            assert (await http.post("/slow", content=b"abc")).text == "3"

        for first in (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
            b"GET / HTTP/1.1\r\nHost",
            b"",
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            t0 = time.monotonic()
            writer.write(first)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing answered
            assert 0.8 < time.monotonic() - t0 < 3, first
            writer.close()
    finally:
        server.should_exit = True
        await serving
