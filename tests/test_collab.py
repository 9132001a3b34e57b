"""Co-editing through a real server process with pycrdt-based y-websocket clients."""

from __future__ import annotations

import asyncio

import httpx

from server.auth import Tokens
from server.session import ROLE_FACILITATOR, Identity
from tests.support import ServerProcess, YClient

SECRET = "a048e0df09aeb6e7ebf7eaf031ec1732cb27259731f9a880b1cbd9066be7011f"  # what ServerProcess sets as COCANVAS_SECRET


def participant_token(canvas: dict, name: str) -> str:
    """A facilitator token of its own for each client: one token may hold only
    COCANVAS_MAX_CONNECTIONS_PER_IDENTITY (20) sockets of a canvas."""
    identity = Identity(f"u_{name}", name, "", ROLE_FACILITATOR)
    return Tokens(SECRET).issue(canvas["id"], identity, 3600)


async def connect_many(server: ServerProcess, canvas: dict, n: int, prefix: str) -> list[YClient]:
    clients = [
        YClient(server.ws, canvas["id"], participant_token(canvas, f"{prefix}{i}"), f"{prefix}{i}")
        for i in range(n)
    ]
    await asyncio.gather(*(c.connect() for c in clients))
    return clients


async def test_two_then_twenty_clients_converge_after_concurrent_edits(
    server: ServerProcess,
) -> None:
    canvas = server.create_canvas()
    pair = await connect_many(server, canvas, 2, "p")
    # Concurrent: both edit before seeing the other's change, including the same note's text.
    pair[0].add_note("shared", "abc")
    await pair[1].wait_for(lambda: "shared" in pair[1].notes)
    with pair[0].doc.transaction():
        pair[0].notes["shared"]["text"].insert(0, "X")
    with pair[1].doc.transaction():
        pair[1].notes["shared"]["text"].insert(3, "Y")
    pair[0].add_note("a", "from a")
    pair[1].add_note("b", "from b")
    for c in pair:
        await c.wait_for(lambda c=c: set(c.notes.keys()) == {"shared", "a", "b"})
    await pair[0].wait_for(lambda: pair[0].note_texts() == pair[1].note_texts())
    assert pair[0].note_texts()["shared"] == "XabcY"

    crowd = await connect_many(server, canvas, 20, "c")
    for i, c in enumerate(crowd):
        c.add_note(f"n{i}", f"note {i}")
        if i % 3 == 0:
            with c.doc.transaction():
                c.notes["shared"]["text"].insert(0, str(i % 10))
    expected = {"shared", "a", "b"} | {f"n{i}" for i in range(20)}
    everyone = pair + crowd
    for c in everyone:
        await c.wait_for(lambda c=c: set(c.notes.keys()) == expected, timeout=15)
    inserts = len(range(0, 20, 3))
    for c in everyone:
        await c.wait_for(lambda c=c: len(c.note_texts()["shared"]) == 5 + inserts, timeout=15)
    texts = everyone[0].note_texts()
    assert all(c.note_texts() == texts for c in everyone)
    await asyncio.gather(*(c.close() for c in everyone))


async def test_late_joiner_gets_everything_and_http_json_matches(server: ServerProcess) -> None:
    canvas = server.create_canvas(template="value-proposition")
    writer = (await connect_many(server, canvas, 1, "w"))[0]
    for i in range(50):
        writer.add_note(f"n{i}", f"text {i}", block="pains")
    with writer.doc.transaction():
        del writer.notes["n7"]
    late = YClient(server.ws, canvas["id"], canvas["facilitator_token"], "late")
    # The server answers the late joiner's step 1 only with durable content, so wait briefly.
    await writer.wait_for(lambda: len(writer.notes) == 49)
    await asyncio.sleep(0.3)
    await late.connect()
    await late.wait_for(lambda: late.note_texts() == writer.note_texts())
    r = httpx.get(
        f"{server.http}/api/canvases/{canvas['id']}",
        headers={"authorization": f"Bearer {canvas['facilitator_token']}"},
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body["notes"]) == set(writer.notes.keys())
    assert body["notes"]["n3"]["text"] == "text 3"
    assert body["blocks"]["pains"]["title"] == "Pains"
    await writer.close()
    await late.close()


async def test_awareness_join_and_leave_seen_by_others(server: ServerProcess) -> None:
    canvas = server.create_canvas()
    a, b = await connect_many(server, canvas, 2, "aw")
    await a.set_awareness({"user": {"name": "Ana", "org": "acme"}, "cursor": {"x": 1, "y": 2}})
    await b.wait_for(lambda: b.awareness.get(a.client_id, (0, None))[1] is not None)
    seen = b.awareness[a.client_id][1]
    # The server stamps who it is from the token; the client's own fields pass through.
    assert seen["user"]["name"] == "aw0" and seen["cursor"] == {"x": 1, "y": 2}
    # A newcomer receives the current states on connect.
    c = YClient(server.ws, canvas["id"], canvas["facilitator_token"], "c")
    await c.connect()
    await c.wait_for(lambda: c.awareness.get(a.client_id, (0, None))[1] is not None)
    # Query-awareness is answered with every state.
    await c.send_raw(bytes([3]))
    await c.wait_for(lambda: sum(1 for cid, _ in c.awareness_events if cid == a.client_id) >= 2)
    # Leaving: everyone else is told the state is gone (null).
    await a.close()
    for other in (b, c):
        await other.wait_for(lambda o=other: o.awareness.get(a.client_id, (0, 1))[1] is None)
    await b.close()
    await c.close()


async def test_fifty_simultaneous_clients_share_one_room_load(server: ServerProcess) -> None:
    canvas = server.create_canvas()
    clients = await connect_many(server, canvas, 50, "s")
    metrics = httpx.get(server.http + "/metrics").text
    loads = [line for line in metrics.splitlines() if line.startswith("cocanvas_room_loads_total ")]
    assert loads == ["cocanvas_room_loads_total 1.0"], loads
    clients[0].add_note("x", "hi")
    for c in clients:
        await c.wait_for(lambda c=c: "x" in c.notes)
    await asyncio.gather(*(c.close() for c in clients))


async def test_updates_are_not_echoed_to_their_sender(server: ServerProcess) -> None:
    canvas = server.create_canvas()
    a, b = await connect_many(server, canvas, 2, "e")
    before = len(a.frames_received)
    a.add_note("mine", "only for others")
    await b.wait_for(lambda: "mine" in b.notes)
    await asyncio.sleep(0.2)
    # (The server may send a correction of its own, e.g. stamping the author; never the same update.)
    assert a.sent_frames
    assert not set(a.sent_frames) & set(a.frames_received[before:])
    await a.close()
    await b.close()
