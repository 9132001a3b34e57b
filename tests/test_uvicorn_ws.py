"""The lighter inbox and write gate of server/uvicorn_ws.py keep asyncio.Queue's and Event's
behaviour that uvicorn's WebSocket protocol relies on: order, no message lost to a cancelled
read, a closed gate holding every writer until it opens (the connection-level tests in
tests/test_transport.py and tests/test_smoke_ws.py run the whole protocol on a real server)."""

from __future__ import annotations

import asyncio

from server.uvicorn_ws import Gate, Inbox, ws_protocol


async def test_inbox_keeps_order_across_bursts_and_waits() -> None:
    inbox = Inbox()
    for i in range(100):
        inbox.put_nowait(i)
    assert [await inbox.get() for _ in range(100)] == list(range(100))
    assert inbox.empty()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done()  # waits for the next message
    inbox.put_nowait("a")
    inbox.put_nowait("b")
    assert await reader == "a"
    assert await inbox.get() == "b"


async def test_a_cancelled_read_loses_no_message() -> None:
    inbox = Inbox()
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("kept")  # wakes the reader, which is cancelled before it runs
    reader.cancel()
    try:
        await reader
    except asyncio.CancelledError:
        pass
    assert await asyncio.wait_for(inbox.get(), 1) == "kept"


async def test_closed_gate_holds_every_writer_until_it_opens() -> None:
    gate = Gate()
    gate.set()
    assert await gate.wait() is True  # open: no suspension
    gate.clear()
    writers = [asyncio.create_task(gate.wait()) for _ in range(3)]
    cancelled = asyncio.create_task(gate.wait())
    await asyncio.sleep(0)
    assert not any(w.done() for w in writers)
    cancelled.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*writers) == [True, True, True]
    assert cancelled.cancelled()


def test_the_served_protocol_is_uvicorns_own_underneath() -> None:
    protocol = ws_protocol()
    if isinstance(protocol, str):
        assert protocol == "websockets-sansio"  # an untested uvicorn: its own class
    else:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

        assert issubclass(protocol, WebSocketsSansIOProtocol)
