"""One participant may not take every slot of a canvas: COCANVAS_MAX_CONNECTIONS_PER_IDENTITY.

Sessions of the same token user on the same canvas on this node are counted; past the cap the new
socket is accepted and closed at once with 4408, before anything of the canvas is sent. Other
participants (also of the same organization) are not affected, and a socket that closes frees
its slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from server.config import Settings
from tests.partner_helpers import connect, member, partner_canvas
from tests.support import ServerProcess, YClient

REASON = "too many connections for this participant"


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path / "data", env={"COCANVAS_MAX_CONNECTIONS_PER_IDENTITY": "3"}
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


async def settle(server: ServerProcess, canvas: dict[str, Any], token: str, name: str) -> YClient:
    """Connect without waiting for sync; return once the socket is either synced or closed."""
    client = YClient(server.ws, canvas["id"], token, name)
    try:
        await client.connect(wait_sync=False)
    except websockets.ConnectionClosed:
        pass  # refused before the client's first frame went out; the reader records the code
    synced = asyncio.ensure_future(client.synced.wait())
    closed = asyncio.ensure_future(client.closed.wait())
    await asyncio.wait({synced, closed}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    synced.cancel()
    closed.cancel()
    assert client.synced.is_set() or client.closed.is_set(), f"{name}: neither synced nor closed"
    return client


def refused(client: YClient) -> bool:
    return (
        client.closed.is_set()
        and client.close_code == 4408
        and client.close_reason == REASON
        and client.frames_received == []  # nothing of the canvas before the refusal
    )


async def test_fourth_socket_of_one_token_gets_4408_others_still_connect(
    capped: ServerProcess,
) -> None:
    canvas = partner_canvas(capped)
    ann = member(capped, canvas, "alpha", "editor", "Ann")
    first = [await connect(capped, canvas, ann.token, f"ann{i}") for i in range(3)]

    fourth = await settle(capped, canvas, ann.token, "ann3")
    assert refused(fourth), (fourth.close_code, fourth.close_reason, fourth.frames_received)

    # Another participant, also of Ann's organization, and the facilitator still get in.
    amy = member(capped, canvas, "alpha", "editor", "Amy")
    others = [
        await connect(capped, canvas, amy.token, "amy"),
        await connect(capped, canvas, canvas["facilitator_token"], "fac"),
    ]
    watcher = others[0]
    # Ann's three sockets are unaffected and still work.
    first[0].add_note("n1", "from Ann", block="customer-jobs")
    await watcher.wait_for(lambda: "n1" in watcher.notes)
    assert not any(c.closed.is_set() for c in first + others)

    # One of Ann's sockets closes: once the server has let it go (its presence vanishes for
    # the others), Ann connects again, and the cap holds at three.
    leaving = first[1]
    await leaving.set_awareness({"user": {"name": "Ann"}})
    cid = leaving.client_id
    await watcher.wait_for(lambda: watcher.awareness.get(cid, (0, None))[1] is not None)
    await leaving.close()
    await watcher.wait_for(lambda: watcher.awareness[cid][1] is None)
    again = await settle(capped, canvas, ann.token, "ann-again")
    assert again.synced.is_set() and not again.closed.is_set(), again.close_code
    assert "n1" in again.notes
    assert refused(await settle(capped, canvas, ann.token, "ann-fifth"))

    for c in [first[0], first[2], again, *others]:
        assert not c.closed.is_set()
        await c.close()


async def test_concurrent_sockets_of_one_token_cannot_slip_past_the_cap(
    capped: ServerProcess,
) -> None:
    canvas = partner_canvas(capped)
    bob = member(capped, canvas, "beta", "editor", "Bob")
    clients = await asyncio.gather(*(settle(capped, canvas, bob.token, f"b{i}") for i in range(8)))
    admitted = [c for c in clients if c.synced.is_set() and not c.closed.is_set()]
    assert len(admitted) == 3, [(c.name, c.close_code) for c in clients]
    assert all(refused(c) for c in clients if c not in admitted)
    for c in admitted:
        await c.close()


def test_cap_must_be_below_the_canvas_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Set explicitly at or above the canvas cap: the server refuses to start and says why.
    proc = ServerProcess(
        tmp_path / "data",
        env={
            "COCANVAS_MAX_CONNECTIONS_PER_CANVAS": "5",
            "COCANVAS_MAX_CONNECTIONS_PER_IDENTITY": "5",
        },
    )
    with pytest.raises(RuntimeError, match="server exited early"):
        proc.start()
    assert (
        "COCANVAS_MAX_CONNECTIONS_PER_IDENTITY (5) must be below "
        "COCANVAS_MAX_CONNECTIONS_PER_CANVAS (5)" in proc.log()
    )

    # Left at its default, it follows a canvas cap lowered to 20 or less.
    for name in ("COCANVAS_MAX_CONNECTIONS_PER_CANVAS", "COCANVAS_MAX_CONNECTIONS_PER_IDENTITY"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().max_connections_per_identity == 20
    assert Settings(max_connections_per_canvas=4).max_connections_per_identity == 3
    explicit = Settings(max_connections_per_canvas=4, max_connections_per_identity=2)
    assert explicit.max_connections_per_identity == 2
