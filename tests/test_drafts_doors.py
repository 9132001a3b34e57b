"""Draft spaces over real doors: nothing of an organization's drafts reaches anyone else before
the reveal, on two nodes and after a restart; a reveal killed with SIGKILL is all or nothing.

The leak test writes a random marker into organization A's drafts (note id, text and presence)
and searches every byte that organization B's member and the facilitator receive for it: stock
y-websocket sessions on both nodes, every HTTP route of the OpenAPI document, the Redis channel
the nodes use for the shared canvas, and the server logs. Positive controls show the search
would find it: A's other member on the other node receives it over A's draft channel, and after
the reveal B's sessions receive it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
import websockets
from pycrdt import Map

from server import closecodes
from tests.partner_helpers import Member, auth, make_invite, member, partner_canvas
from tests.services import RedisServer, drop_machine_pg_schema, machine_pg_schema
from tests.support import ServerProcess, YClient

SECRET = "7d1c0f2b9a8e4d6c5b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c"


@pytest.fixture
def redis_proc() -> Iterator[RedisServer]:
    r = RedisServer.started()
    try:
        yield r
    finally:
        r.kill()


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = machine_pg_schema()
    try:
        yield url
    finally:
        drop_machine_pg_schema(url)


def node(tmp_path: Path, name: str, **env: str) -> ServerProcess:
    return ServerProcess(
        tmp_path / name,
        env={"COCANVAS_SECRET": SECRET, "COCANVAS_NODE_ID": name, **env},
    )


def drafts_ws(server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/drafts"


class Tap:
    """Every byte one party receives, from any door."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.clients: list[YClient] = []

    def bytes(self) -> bytes:
        frames = [f for c in self.clients for f in c.frames_received]
        return b"".join(self.chunks + frames)


def fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), path)


def sweep_http(
    server: ServerProcess,
    token: str | None,
    values: dict[str, str],
    tap: Tap,
    reads_only: bool = False,
) -> int:
    """Call every route of the OpenAPI document, every method (``reads_only``: every GET, for
    the facilitator, whose writes would delete the canvas), with this token; keep all of it."""
    schema = httpx.get(server.http + "/openapi.json").json()
    tap.chunks.append(orjson.dumps(schema))
    calls = 0
    for path, methods in schema["paths"].items():
        for method in methods:
            if method.upper() == "POST" and path == "/api/canvases":
                continue  # creating canvases reads nothing
            if reads_only and method.upper() != "GET":
                continue
            headers = auth(token) if token else {}
            r = httpx.request(
                method.upper(),
                server.http + fill(path, values),
                headers=headers,
                json={} if method.upper() in ("POST", "PUT", "PATCH") else None,
            )
            tap.chunks.append(r.content)
            tap.chunks.append(str(r.headers).encode())
            calls += 1
    for extra in ("/metrics", "/readyz", "/healthz", "/docs"):
        tap.chunks.append(httpx.get(server.http + extra).content)
    return calls


async def spy(url: str, channel: str, tap: Tap, ready: asyncio.Event) -> None:
    """Everything published on one Redis channel (what a node subscribed to it receives)."""
    client = aioredis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    ready.set()
    try:
        async for message in pubsub.listen():
            if message["type"] == "message":
                tap.chunks.append(message["data"])
    finally:
        await pubsub.aclose()
        await client.aclose()


async def refused(url: str, tap: Tap | None = None) -> int | None:
    """Open a door that must refuse: every byte it sends goes to ``tap``; the close code."""
    async with websockets.connect(url) as ws:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in ws:
                if tap is not None:
                    tap.chunks.append(frame if isinstance(frame, bytes) else frame.encode())
        return ws.close_code


async def b_side(
    servers: tuple[ServerProcess, ...], canvas: dict[str, Any], bob: Member, tap: Tap
) -> None:
    """B's member and the facilitator on every node, on the shared canvas and on doors to
    A's drafts they must not open."""
    for s in servers:
        for token, name in ((bob.token, "bob"), (canvas["facilitator_token"], "fac")):
            c = await YClient(s.ws, canvas["id"], token, f"{name}@{s.port}").connect()
            tap.clients.append(c)
        # B's own draft space, and A's (refused), and the facilitator's try (refused).
        own = await YClient(drafts_ws(s), canvas["id"], bob.token, "bob-own").connect()
        tap.clients.append(own)
        for token in (bob.token, canvas["facilitator_token"]):
            code = await refused(f"{drafts_ws(s)}/{canvas['id']}?token={token}&org=alpha", tap)
            assert code == closecodes.FORBIDDEN


async def test_drafts_never_reach_another_organization_through_any_door(
    tmp_path: Path, redis_proc: RedisServer, pg_url: str
) -> None:
    env = {"COCANVAS_STORE_URL": pg_url, "COCANVAS_REDIS_URL": redis_proc.url}
    a = node(tmp_path, "node-a", **env).start()
    b = node(tmp_path, "node-b", **env).start()
    marker = secrets.token_hex(12)
    tap = Tap()  # what B's member and the facilitator receive
    on_shared = Tap()  # the shared canvas's Redis channel
    on_draft = Tap()  # A's draft space's Redis channel (the positive control)
    spies: list[asyncio.Task[None]] = []
    try:
        canvas = partner_canvas(a)
        cid = canvas["id"]
        for channel, t in (
            (f"cocanvas:canvas:{cid}", on_shared),
            (f"cocanvas:canvas:{cid}/drafts/alpha", on_draft),
        ):
            ready = asyncio.Event()
            spies.append(asyncio.create_task(spy(redis_proc.url, channel, t, ready)))
            await asyncio.wait_for(ready.wait(), 5)
        ann = member(a, canvas, "alpha", "editor", "Ann")
        al = member(b, canvas, "alpha", "editor", "Al")
        bob = member(a, canvas, "beta", "editor", "Bob")
        invite = make_invite(a, canvas, "beta", "viewer")
        values = {"canvas_id": cid, "invite_id": invite["id"], "org_id": "alpha"}
        await b_side((a, b), canvas, bob, tap)

        ann_c = await YClient(drafts_ws(a), cid, ann.token, "ann").connect()
        al_c = await YClient(drafts_ws(b), cid, al.token, "al").connect()
        nid = "n-" + marker
        ann_c.add_note(nid, f"our price floor is {marker}", block="gains")
        await ann_c.set_awareness({"user": {"name": "Ann"}, "editing": marker})
        await al_c.wait_for(lambda: nid in al_c.notes)  # crossed nodes on A's own channel
        seen = al_c.attributed()[nid]
        assert seen["org"] == "alpha" and seen["author"] == ann.user_id
        await al_c.wait_for(
            lambda: any(s and s.get("editing") == marker for _, s in al_c.awareness.values())
        )
        # Traffic on the shared canvas meanwhile, from both nodes.
        on_a, on_b = [c for c in tap.clients if c.name.startswith("bob@")]
        on_a.add_note("shared-1", "hello", block="customer-jobs")
        await on_b.wait_for(lambda: "shared-1" in on_b.notes)
        counts = httpx.get(
            f"{a.http}/api/canvases/{cid}/drafts", headers=auth(canvas["facilitator_token"])
        ).json()["counts"]
        assert counts == {"alpha": 1, "beta": 0}
        for s in (a, b):
            for token in (bob.token, None):
                assert sweep_http(s, token, values, tap) > 15
            assert sweep_http(s, canvas["facilitator_token"], values, tap, reads_only=True) > 8

        # A restart of both nodes (graceful: rooms compact on unload), then everything again.
        for c in [*tap.clients, ann_c, al_c]:
            with contextlib.suppress(Exception):
                await c.close()
        a.stop()
        b.stop()
        a.start()
        b.start()
        await b_side((a, b), canvas, bob, tap)
        for s in (a, b):
            sweep_http(s, bob.token, values, tap)
            sweep_http(s, canvas["facilitator_token"], values, tap, reads_only=True)
        again = await YClient(drafts_ws(b), cid, ann.token, "ann-again").connect()
        assert marker in str(again.notes[nid]["text"])  # still there, still private

        logs = (a.log() + b.log()).encode()
        assert marker.encode() not in tap.bytes()
        assert marker.encode() not in b"".join(on_shared.chunks)
        assert marker.encode() not in logs
        assert marker.encode() in b"".join(on_draft.chunks)  # the spy does see draft traffic

        # The reveal: now B's sessions on both nodes receive it, with its author and org.
        r = httpx.post(
            f"{a.http}/api/canvases/{cid}/drafts/reveal",
            json={},
            headers=auth(canvas["facilitator_token"]),
        )
        assert r.status_code == 200, r.text
        assert r.json()["revealed"] == {"alpha": [nid]}
        bobs = [c for c in tap.clients if c.name.startswith("bob@")][-2:]  # after the restart
        assert {c.url.split("/ws/")[0] for c in bobs} == {a.ws[:-3], b.ws[:-3]}
        for c in bobs:
            await c.wait_for(lambda c=c: nid in c.notes)
            seen = c.attributed()[nid]
            assert seen["org"] == "alpha" and seen["author"] == ann.user_id
            assert list(c.notes.keys()).count(nid) == 1
        await again.wait_for(lambda: nid not in again.notes)
        assert marker.encode() in b"".join(on_shared.chunks)
        # A's own members, on the shared canvas on both nodes, see it exactly once too.
        for s, m in ((a, al), (b, ann)):
            mine = await YClient(s.ws, cid, m.token, f"{m.name}@{s.port}").connect()
            tap.clients.append(mine)
            assert nid in mine.notes and mine.attributed()[nid]["author_name"] == "Ann"
            assert sorted(mine.notes.keys()) == sorted([nid, "shared-1"])
        await again.close()
    finally:
        for t in spies:
            t.cancel()
        for c in tap.clients:
            with contextlib.suppress(Exception):
                await c.close()
        a.stop()
        b.stop()


@pytest.mark.parametrize("point", ["before-shared", "after-shared"])
async def test_reveal_killed_with_sigkill_is_all_or_nothing(tmp_path: Path, point: str) -> None:
    """The node kills itself with SIGKILL at a point of the reveal (the test hook): after a
    restart the shared canvas holds all four drafts or none, and finishing the reveal leaves
    each exactly once with its author and organization, and the draft spaces empty."""
    data = tmp_path / "data"
    crashing = ServerProcess(
        data, env={"COCANVAS_TEST_HOOKS": "true", "COCANVAS_TEST_REVEAL_CRASH": point}
    ).start()
    canvas = partner_canvas(crashing)
    cid = canvas["id"]
    ann = member(crashing, canvas, "alpha", "editor", "Ann")
    bob = member(crashing, canvas, "beta", "editor", "Bob")
    ann_c = await YClient(drafts_ws(crashing), cid, ann.token, "ann").connect()
    bob_c = await YClient(drafts_ws(crashing), cid, bob.token, "bob").connect()
    for i in range(3):
        ann_c.add_note(f"a{i}", f"alpha {i}", block="gains")
    bob_c.add_note("b0", "beta 0", block="pains")
    counts: dict[str, int] = {}

    def drafted() -> bool:
        r = httpx.get(
            f"{crashing.http}/api/canvases/{cid}/drafts", headers=auth(canvas["facilitator_token"])
        )
        counts.update(r.json()["counts"])
        return counts == {"alpha": 3, "beta": 1}

    await ann_c.wait_for(drafted)
    with pytest.raises(httpx.HTTPError):
        httpx.post(
            f"{crashing.http}/api/canvases/{cid}/drafts/reveal",
            json={},
            headers=auth(canvas["facilitator_token"]),
        )
    assert crashing.proc is not None
    assert crashing.proc.wait(10) == -9
    crashing.proc = None
    await ann_c.closed.wait()
    await bob_c.closed.wait()

    server = ServerProcess(data, port=crashing.port).start()
    try:
        shared = await YClient(server.ws, cid, bob.token, "bob-shared").connect()
        seen = set(shared.notes.keys())
        assert seen == (set() if point == "before-shared" else {"a0", "a1", "a2", "b0"})
        r = httpx.post(
            f"{server.http}/api/canvases/{cid}/drafts/reveal",
            json={},
            headers=auth(canvas["facilitator_token"]),
        )
        assert r.status_code == 200, r.text
        await shared.wait_for(lambda: set(shared.notes.keys()) == {"a0", "a1", "a2", "b0"})
        got = shared.attributed()
        assert {k: (v["org"], v["author"]) for k, v in got.items()} == {
            **{f"a{i}": ("alpha", ann.user_id) for i in range(3)},
            "b0": ("beta", bob.user_id),
        }
        assert got["a1"]["text"] == "alpha 1"
        ann_again = await YClient(drafts_ws(server), cid, ann.token, "ann2").connect()
        assert len(ann_again.doc.get("notes", type=Map)) == 0
        r = httpx.get(
            f"{server.http}/api/canvases/{cid}/drafts", headers=auth(canvas["facilitator_token"])
        )
        assert r.json()["counts"] == {"alpha": 0, "beta": 0}
        await ann_again.close()
        await shared.close()
    finally:
        server.stop()


async def test_draft_doors_refuse_and_revoking_a_link_closes_draft_sockets(
    server: ServerProcess,
) -> None:
    canvas = partner_canvas(server)
    cid = canvas["id"]
    bob = member(server, canvas, "beta", "editor", "Bob")
    fac = canvas["facilitator_token"]
    # The facilitator may not open draft spaces until the canvas allows it.
    probe = f"{drafts_ws(server)}/{cid}?token={fac}&org=alpha"
    assert await refused(probe) == closecodes.FORBIDDEN
    assert await refused(f"{drafts_ws(server)}/{cid}?token={bob.token}&org=alpha") == 4403
    assert await refused(f"{drafts_ws(server)}/nope?token={bob.token}") == 4403  # another canvas
    assert await refused(f"{drafts_ws(server)}/{cid}/x?token={bob.token}") == 4404
    r = httpx.put(
        f"{server.http}/api/canvases/{cid}/drafts/settings",
        json={"facilitator_access": True},
        headers=auth(fac),
    )
    assert r.status_code == 200 and r.json()["facilitator_access"] is True
    assert r.json()["self_publish"] is False
    allowed = await YClient(drafts_ws(server), cid, fac + "&org=alpha", "f2").connect()
    # A facilitator who joined through an invite link: revoking the link closes it here too.
    co = member(server, canvas, "alpha", "facilitator", "Cora")
    cora = await YClient(drafts_ws(server), cid, co.token + "&org=beta", "cora").connect()
    revoke = f"{server.http}/api/canvases/{cid}/invites/"
    invite_of_cora = [
        i["id"]
        for i in httpx.get(revoke.rstrip("/"), headers=auth(fac)).json()
        if i["role"] == "facilitator"
    ]
    assert httpx.delete(revoke + invite_of_cora[0], headers=auth(fac)).status_code == 200
    await asyncio.wait_for(cora.closed.wait(), 10)
    assert cora.close_code == closecodes.REVOKED
    # And one whose link stays good is closed when facilitator access is turned off.
    co2 = member(server, canvas, "beta", "facilitator", "Cato")
    cato = await YClient(drafts_ws(server), cid, co2.token + "&org=alpha", "cato").connect()
    # Turning access off again closes the facilitator's open draft socket.
    r = httpx.put(
        f"{server.http}/api/canvases/{cid}/drafts/settings",
        json={"facilitator_access": False},
        headers=auth(fac),
    )
    assert r.status_code == 200
    await asyncio.wait_for(allowed.closed.wait(), 10)
    assert allowed.close_code == closecodes.REVOKED
    await asyncio.wait_for(cato.closed.wait(), 10)
    assert cato.close_code == closecodes.REVOKED
    assert await refused(probe) == closecodes.FORBIDDEN
    r = httpx.put(
        f"{server.http}/api/canvases/{cid}/drafts/settings",
        json={"facilitator_access": True},
        headers=auth(bob.token),
    )
    assert r.status_code == 403
    # Editors reveal only when allowed, and only their own organization's drafts.
    url = f"{server.http}/api/canvases/{cid}/drafts/reveal"
    assert httpx.post(url, json={}, headers=auth(bob.token)).status_code == 403
    httpx.put(
        f"{server.http}/api/canvases/{cid}/drafts/settings",
        json={"self_publish": True},
        headers=auth(fac),
    )
    assert httpx.post(url, json={"orgs": ["alpha"]}, headers=auth(bob.token)).status_code == 403
    assert httpx.post(url, json={"orgs": ["zeta"]}, headers=auth(fac)).status_code == 422
    own = httpx.post(url, json={}, headers=auth(bob.token))
    assert own.status_code == 200 and own.json()["count"] == 0
    # Revoking an invite link closes the sockets it opened on draft spaces too.
    invite = make_invite(server, canvas, "beta", "editor")
    token = httpx.post(
        f"{server.http}/api/invites/{invite['id']}/redeem", json={"name": "Bea"}
    ).json()["token"]
    bea = await YClient(drafts_ws(server), cid, token, "bea").connect()
    r = httpx.delete(f"{server.http}/api/canvases/{cid}/invites/{invite['id']}", headers=auth(fac))
    assert r.status_code == 200
    await asyncio.wait_for(bea.closed.wait(), 10)
    assert bea.close_code == closecodes.REVOKED
    # Deleting the canvas closes draft sockets with 4404.
    bob_c = await YClient(drafts_ws(server), cid, bob.token, "bob").connect()
    assert httpx.delete(f"{server.http}/api/canvases/{cid}", headers=auth(fac)).status_code == 204
    await asyncio.wait_for(bob_c.closed.wait(), 10)
    assert bob_c.close_code == closecodes.NOT_FOUND


async def test_a_crafted_document_id_opens_no_draft_space_through_a_shared_door(
    server: ServerProcess,
) -> None:
    """The draft document's id put where the shared doors take a canvas id, raw and
    percent-encoded: the WebSocket refuses it, the HTTP routes match nothing, no byte of the
    draft comes back — with the facilitator's token, which names the canvas."""
    canvas = partner_canvas(server)
    cid, fac = canvas["id"], canvas["facilitator_token"]
    ann = member(server, canvas, "alpha", "editor", "Ann")
    marker = secrets.token_hex(12)
    ann_c = await YClient(drafts_ws(server), cid, ann.token, "ann").connect()
    ann_c.add_note("n-" + marker, marker, block="gains")
    await ann_c.wait_for(lambda: drafted_count(server, cid, fac) == 1)
    tap = Tap()
    for doc_id in (f"{cid}/drafts/alpha", f"{cid}%2Fdrafts%2Falpha", f"{cid}%252Fdrafts%252Falpha"):
        code = await refused(f"{server.ws}/{doc_id}?token={fac}", tap)
        assert code in (closecodes.NOT_FOUND, closecodes.FORBIDDEN)
        for path in (f"/api/canvases/{doc_id}", f"/api/canvases/{doc_id}/audit"):
            r = httpx.get(server.http + path, headers=auth(fac))
            assert r.status_code in (403, 404)
            tap.chunks.append(r.content)
    assert marker.encode() not in tap.bytes()
    await ann_c.close()


def drafted_count(server: ServerProcess, cid: str, token: str) -> int:
    r = httpx.get(f"{server.http}/api/canvases/{cid}/drafts", headers=auth(token))
    return int(r.json()["counts"]["alpha"])


async def test_reveal_killed_on_one_node_is_all_or_nothing_on_the_other(
    tmp_path: Path, redis_proc: RedisServer, pg_url: str
) -> None:
    """Node A dies (SIGKILL) right after the reveal's one update committed: node B's
    participants get all of it (never a part), and the next look at the draft spaces on B
    finishes the reveal there."""
    env = {"COCANVAS_STORE_URL": pg_url, "COCANVAS_REDIS_URL": redis_proc.url}
    a = node(
        tmp_path,
        "node-a",
        COCANVAS_TEST_HOOKS="true",
        COCANVAS_TEST_REVEAL_CRASH="after-shared",
        **env,
    ).start()
    b = node(tmp_path, "node-b", **env).start()
    clients: list[YClient] = []
    try:
        canvas = partner_canvas(b)
        cid, fac = canvas["id"], canvas["facilitator_token"]
        ann = member(b, canvas, "alpha", "editor", "Ann")
        bob = member(b, canvas, "beta", "editor", "Bob")
        ann_c = await YClient(drafts_ws(b), cid, ann.token, "ann").connect()
        bob_c = await YClient(drafts_ws(b), cid, bob.token, "bob").connect()
        watcher = await YClient(b.ws, cid, bob.token, "bob-shared").connect()
        clients += [ann_c, bob_c, watcher]
        for i in range(3):
            ann_c.add_note(f"a{i}", f"alpha {i}", block="gains")
        bob_c.add_note("b0", "beta 0", block="pains")
        counts: dict[str, int] = {}

        def drafted(on: ServerProcess) -> bool:
            r = httpx.get(f"{on.http}/api/canvases/{cid}/drafts", headers=auth(fac))
            counts.update(r.json()["counts"])
            return counts == {"alpha": 3, "beta": 1}

        await ann_c.wait_for(lambda: drafted(a))  # node A has it all, from the store
        # B must know A is alive to notice it die (a node never heard from cannot be missed).
        await ann_c.wait_for(
            lambda: "cocanvas_broker_peers 1" in httpx.get(b.http + "/metrics").text
        )
        seen: list[set[str]] = []
        watcher.doc.observe(lambda _e: seen.append(set(watcher.notes.keys())))
        with pytest.raises(httpx.HTTPError):
            httpx.post(f"{a.http}/api/canvases/{cid}/drafts/reveal", json={}, headers=auth(fac))
        assert a.proc is not None and a.proc.wait(10) == -9
        a.proc = None
        everything = {"a0", "a1", "a2", "b0"}
        await watcher.wait_for(lambda: set(watcher.notes.keys()) == everything, timeout=30)
        assert all(s in (set(), everything) for s in seen), seen  # never a part of it
        r = httpx.get(f"{b.http}/api/canvases/{cid}/drafts", headers=auth(fac))
        assert r.json()["counts"] == {"alpha": 0, "beta": 0}
        await ann_c.wait_for(lambda: len(ann_c.notes) == 0)
        await bob_c.wait_for(lambda: len(bob_c.notes) == 0)
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()
        a.kill()
        b.stop()
