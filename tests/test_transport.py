"""The transport seam: the plain ASGI path keeps order and counts its backlog whatever the server's
``send`` does; the raw uvicorn adapter is used only where it was tested, and both paths give
clients the same canvas."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import websockets

from server import closecodes, uvicorn_raw
from server.session import Identity
from server.transport import AsgiTransport
from server.ws import WebSocketSession
from tests.support import ServerProcess, YClient


class SlowSend:
    """An ASGI ``send`` that suspends while ``gate`` is closed, as a server under flow control."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.sent: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        await self.gate.wait()
        self.sent.append(message)


async def test_sends_complete_on_the_spot_when_the_server_does_not_suspend() -> None:
    send = SlowSend()
    t = AsgiTransport(send)
    for i in range(5):
        t.send(bytes([i]))
    assert [m["bytes"] for m in send.sent] == [bytes([i]) for i in range(5)]
    assert t.backlog() == 0 and not t.writing


async def test_a_suspended_send_queues_the_rest_in_order_and_counts_the_backlog() -> None:
    send = SlowSend()
    t = AsgiTransport(send)
    send.gate.clear()
    t.send(b"first")  # suspends inside the server
    for i in range(10):
        t.send(b"x" * 100 + bytes([i]))
    t.close(1000, "bye")
    assert t.writing and t.backlog() == 10 * 101
    assert not t.is_open
    send.gate.set()
    await t.finish()
    assert [m.get("bytes") for m in send.sent[:11]] == [b"first"] + [
        b"x" * 100 + bytes([i]) for i in range(10)
    ]
    assert send.sent[-1] == {"type": "websocket.close", "code": 1000, "reason": "bye"}
    assert t.backlog() == 0


async def test_a_send_that_fails_marks_the_peer_gone() -> None:
    async def broken(message: dict[str, Any]) -> None:
        raise OSError("peer went away")

    t = AsgiTransport(broken)
    t.send(b"x")
    assert not t.is_open


def test_the_raw_adapter_is_only_for_tested_uvicorn_versions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    low, high = uvicorn_raw.TESTED_UVICORN
    assert uvicorn_raw.uvicorn_version_tested(f"{low[0]}.{low[1]}.0")
    assert uvicorn_raw.uvicorn_version_tested(f"{high[0]}.{high[1]}.9")
    assert not uvicorn_raw.uvicorn_version_tested(f"{high[0]}.{high[1] + 1}.0")
    assert not uvicorn_raw.uvicorn_version_tested("1.0.0")
    assert not uvicorn_raw.uvicorn_version_tested("garbage")
    # The installed uvicorn is one of them (CI would notice an upgrade here).
    assert uvicorn_raw.uvicorn_version_tested()


def test_the_raw_adapter_ignores_anything_but_uvicorns_sansio_protocol() -> None:
    async def plain(message: dict[str, Any]) -> None:
        return None

    assert uvicorn_raw.raw_transport(plain) is None


def test_raw_frames_are_rfc6455_server_frames() -> None:
    import websockets.frames

    for n in (0, 125, 126, 65535, 65536, 70000):
        payload = bytes(range(256)) * (n // 256) + bytes(n % 256)
        wire = uvicorn_raw.ws_binary_frame(payload)
        reader = websockets.frames.Frame.parse(
            _reader(wire), mask=False, max_size=None, extensions=None
        )
        frame = _run_parser(reader)
        assert frame.opcode == websockets.frames.Opcode.BINARY and frame.fin
        assert frame.data == payload


def _reader(data: bytes) -> Any:
    from websockets.streams import StreamReader

    r = StreamReader()
    r.feed_data(data)
    r.feed_eof()
    return r.read_exact


def _run_parser(gen: Any) -> Any:
    try:
        next(gen)
    except StopIteration as done:
        return done.value
    raise AssertionError("parser wanted more data")


@pytest.mark.parametrize("writer", ["asgi", "auto"])
async def test_both_paths_give_every_client_the_same_canvas(tmp_path: Path, writer: str) -> None:
    server = ServerProcess(tmp_path / "data", env={"COCANVAS_WS_WRITER": writer}).start()
    try:
        canvas = server.create_canvas()
        clients = [
            await YClient(server.ws, canvas["id"], canvas["facilitator_token"], f"c{i}").connect()
            for i in range(4)
        ]
        for i, c in enumerate(clients):
            c.add_note(f"n{i}", f"note {i} " + "x" * (i * 40_000))  # 0 B .. 120 KB frames
        want = {f"n{i}" for i in range(4)}
        for c in clients:
            await c.wait_for(lambda c=c: set(c.note_texts()) == want)
        texts = [c.note_texts() for c in clients]
        assert all(t == texts[0] for t in texts)
        for c in clients:
            await c.close()
    finally:
        server.stop()


@pytest.mark.parametrize("writer", ["asgi", "auto"])
async def test_a_burst_released_by_one_commit_reaches_every_client_whole(
    tmp_path: Path, writer: str
) -> None:
    """A commit releases its batch to each session in one write (frames joined back to back on
    the raw path): each frame must still arrive as its own WebSocket message, in order."""
    server = ServerProcess(tmp_path / "data", env={"COCANVAS_WS_WRITER": writer}).start()
    try:
        canvas = server.create_canvas()
        token = canvas["facilitator_token"]
        writer_client = await YClient(server.ws, canvas["id"], token, "w").connect()
        readers = [
            await YClient(server.ws, canvas["id"], token, f"r{i}").connect() for i in range(3)
        ]
        for i in range(300):  # sent without waiting: many per commit
            writer_client.add_note(f"b{i:03}", f"burst {i} " + "y" * (i % 7) * 30)
        want = {f"b{i:03}" for i in range(300)}
        for c in readers:
            await c.wait_for(lambda c=c: want <= set(c.note_texts()))
        assert all(c.note_texts() == readers[0].note_texts() for c in readers)
        assert not any(c.closed.is_set() for c in readers)
        for c in [writer_client, *readers]:
            await c.close()
    finally:
        server.stop()


class _Unread(AsgiTransport):
    """A socket whose peer stopped reading: every frame handed to it stays in the backlog (the
    server test below is the real thing; this one controls when, and whether, it drains)."""

    def __init__(self) -> None:
        super().__init__(self._never)
        self.held = 0
        self.closed_with: tuple[int, str] | None = None

    async def _never(self, message: Any) -> None:
        raise AssertionError("nothing reaches the socket in this test")

    def backlog(self) -> int:
        return self.held

    def send(self, frame: bytes) -> None:
        self.held += len(frame)

    def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


async def _until(condition: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_reader_that_stops_after_its_last_burst_is_closed_without_another_send() -> None:
    """The backlog rule used to be looked at only when the next frame was sent. A reader that
    stopped reading after the last burst the room had for it then held that burst (up to 4x the
    limit plus two rooms' bytes in flight) for as long as the canvas stayed quiet."""
    socket = _Unread()
    session = WebSocketSession(socket, Identity("u", "U", "o", "editor"), max_backlog_bytes=1000)
    session.send_many([b"x" * 600, b"x" * 600])  # over the limit, far under the hard bound
    assert socket.closed_with is None  # within the grace: a healthy reader drains a burst
    await _until(lambda: socket.closed_with is not None)
    assert socket.closed_with == (closecodes.TRY_AGAIN_LATER, "connection too slow to keep up")


async def test_a_reader_that_catches_up_within_the_grace_stays_open() -> None:
    socket = _Unread()
    session = WebSocketSession(socket, Identity("u", "U", "o", "editor"), max_backlog_bytes=1000)
    session.send(b"x" * 1500)
    socket.held = 0  # it read everything
    await _until(lambda: session._watch is None)  # the look after the grace has run
    assert socket.closed_with is None and not session.closed
    session.send(b"x" * 1500)  # over again: a new grace, not the old one
    assert socket.closed_with is None


@pytest.mark.parametrize("writer", ["asgi", "auto"])
async def test_a_reader_that_stops_reading_is_closed_1013_and_others_keep_up(
    tmp_path: Path, writer: str
) -> None:
    server = ServerProcess(
        tmp_path / "data",
        env={
            "COCANVAS_WS_WRITER": writer,
            "COCANVAS_SEND_QUEUE_MAX_BYTES": str(1 << 20),
            "COCANVAS_RATE_BYTES_PER_S": str(64 << 20),
        },
    ).start()
    try:
        canvas = server.create_canvas()
        url = f"{server.ws}/{canvas['id']}?token={canvas['facilitator_token']}"
        # A peer that stops reading: the client library stops reading the socket after one
        # queued message, so the server's backlog for it grows.
        slow = await websockets.connect(url, max_queue=1, max_size=None)
        fast = await YClient(server.ws, canvas["id"], canvas["facilitator_token"], "fast").connect()
        writer_client = await YClient(
            server.ws, canvas["id"], canvas["facilitator_token"], "writer"
        ).connect()
        for i in range(120):  # 120 x 256 KB: far beyond loopback socket buffers
            writer_client.add_note(f"n{i}", "y" * (256 << 10))
        await fast.wait_for(lambda: len(fast.note_texts()) == 120, timeout=60)
        try:
            async with asyncio.timeout(60):
                async for _ in slow:
                    pass
        except websockets.ConnectionClosed:
            pass
        code = slow.close_code
        assert code == closecodes.TRY_AGAIN_LATER, (code, slow.close_reason)
        assert f"WebSocket writes: {'ASGI' if writer == 'asgi' else 'raw uvicorn adapter'}" in (
            server.log()
        )
        for c in (fast, writer_client):
            await c.close()
    finally:
        server.stop()
