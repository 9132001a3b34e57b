"""One loop timer for every connection's far-off deadlines (server/deadlines.py): the token's
expiry and uvicorn's keepalive ping. What a user would notice if it broke: a socket whose token
expired staying open (tests/test_invites.py, tests/test_auth_doors.py cover that through the
server), a dead peer never dropped, or a live one dropped; and the node's memory (the reason for
the module) growing with connections that came and went."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from server import deadlines
from server.deadlines import RESOLUTION_S, Deadline, Deadlines
from server.uvicorn_ws import ws_protocol


async def test_deadlines_run_in_order_never_early_and_cancelled_ones_never() -> None:
    loop = asyncio.get_running_loop()
    d = Deadlines(loop)
    ran: list[tuple[str, float, float]] = []
    done = asyncio.Event()

    def note(name: str, due: float) -> None:
        ran.append((name, due, loop.time()))
        if name == "last":
            done.set()

    start = loop.time()
    for name, delay in (("b", 0.06), ("a", 0.01), ("last", 0.12), ("c", 0.06)):
        d.call_later(delay, note, name, start + delay)
    gone = d.call_later(0.03, note, "cancelled", start + 0.03)
    gone.cancel()
    assert len(d) == 4
    await asyncio.wait_for(done.wait(), 5)
    assert [name for name, _, _ in ran] == ["a", "b", "c", "last"]
    assert all(at >= due for _, due, at in ran)  # late by up to RESOLUTION_S, never early
    assert len(d) == 0


async def test_a_failing_callback_does_not_stop_the_others_and_callbacks_may_chain() -> None:
    loop = asyncio.get_running_loop()
    d = Deadlines(loop)
    seen: list[str] = []
    done = asyncio.Event()

    def boom() -> None:
        raise RuntimeError("one connection's bug")

    def ping(n: int) -> None:  # like the keepalive: each ping schedules the next
        seen.append(f"ping {n}")
        if n < 3:
            d.call_later(0.01, ping, n + 1)
        else:
            done.set()

    d.call_later(0.0, boom)
    d.call_later(0.0, ping, 1)
    await asyncio.wait_for(done.wait(), 5)
    assert seen == ["ping 1", "ping 2", "ping 3"]


async def test_connections_that_left_do_not_stay_in_the_heap() -> None:
    """A token's deadline is hours away; its connection leaves long before. 10,000 such
    connections coming and going must not leave 10,000 entries behind."""
    d = Deadlines(asyncio.get_running_loop())
    for _ in range(100):
        batch = [d.call_later(3600.0, print) for _ in range(100)]
        for entry in batch:
            entry.cancel()
    assert len(d) == 0
    assert len(d._heap) <= 2 * 64 + 2  # rebuilt whenever cancelled entries pass half
    kept = d.call_later(3600.0, print)
    assert len(d) == 1 and not kept.cancelled()


async def test_one_set_of_deadlines_per_loop() -> None:
    assert deadlines.of() is deadlines.of(asyncio.get_running_loop())
    other = asyncio.new_event_loop()
    try:
        assert deadlines.of(other) is not deadlines.of()
    finally:
        other.close()


# -- uvicorn's keepalive on the shared deadlines ------------------------------------------------


async def _echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


@contextlib.asynccontextmanager
async def _server(ping_s: float, timeout_s: float) -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        _echo_app,
        ws=ws_protocol(),
        ws_ping_interval=ping_s,
        ws_ping_timeout=timeout_s,
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def _handshake(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    status = await reader.readuntil(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 101"), status
    return reader, writer


async def _frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One server frame (unmasked): (opcode, payload)."""
    head = await reader.readexactly(2)
    n = head[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    return head[0] & 0x0F, await reader.readexactly(n)


def _pong(payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((0x8A, 0x80 | len(payload))) + mask + masked


async def test_keepalive_pings_a_live_peer_on_and_drops_a_silent_one() -> None:
    """A peer that answers every ping stays connected through many; once it stops answering,
    the server closes it (1011, keepalive ping timeout). The pings are timed by the shared
    deadlines, not a loop timer per connection."""
    shared = deadlines.of()
    scheduled: list[str] = []
    call_later = shared.call_later

    def spy(delay: float, callback: Any, *args: Any) -> Deadline:
        scheduled.append(getattr(callback, "__name__", ""))
        return call_later(delay, callback, *args)

    shared.call_later = spy  # type: ignore[method-assign]
    async with _server(ping_s=0.1, timeout_s=0.5) as port:
        reader, writer = await _handshake(port)
        try:
            for _ in range(5):
                opcode, payload = await asyncio.wait_for(_frame(reader), 10)
                assert opcode == 0x9  # ping
                writer.write(_pong(payload))
            # Now silent: the next ping goes unanswered and the server closes the socket.
            opcode, _ = await asyncio.wait_for(_frame(reader), 10)
            assert opcode == 0x9
            opcode, payload = await asyncio.wait_for(_frame(reader), 10)
            assert opcode == 0x8  # close
            assert struct.unpack("!H", payload[:2])[0] == 1011
            assert await asyncio.wait_for(reader.read(), 10) == b""
        finally:
            writer.close()
            del shared.call_later
    # every ping after the first answered one was timed by the shared deadlines
    assert scheduled.count("send_keepalive_ping") >= 5, scheduled


def test_resolution_is_coarse_enough_to_share_wakeups() -> None:
    # 10,000 connections pinging every 20 s are 500 pings a second: at 50 ms, ~20 wake-ups.
    assert 0.01 <= RESOLUTION_S <= 0.1
