"""The compose topology on one machine: two real nodes configured as docker-compose.yml configures
them, PostgreSQL, Redis, and deploy/nginx.conf in front. Docker is not needed to prove the shape:
a workshop reaches one node through nginx, crosses to the other through Redis, and survives the
draining of its node (clients reconnect through nginx and land on the survivor). And behind that
nginx a client cannot choose the address its per-address limits are counted on.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import ServerProcess, YClient

from .conftest import RedisServer
from .test_deploy_files import run_deploy_nginx

REPO = Path(__file__).resolve().parents[2]
ADMIN = "admin-" + "y" * 24


def compose_env(service: str, pg_url: str, redis_url: str) -> dict[str, str]:
    """The node's environment from docker-compose.yml, its hosts and secrets made local."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    env = {k: str(v) for k, v in compose["services"][service]["environment"].items()}
    assert env["COCANVAS_STORE_URL"].startswith("postgresql://")
    assert env["COCANVAS_REDIS_URL"].startswith("redis://")
    nginx_ip = compose["services"]["nginx"]["networks"]["backend"]["ipv4_address"]
    assert env["FORWARDED_ALLOW_IPS"] == nginx_ip
    env.update(
        COCANVAS_STORE_URL=pg_url,
        COCANVAS_REDIS_URL=redis_url,
        # nginx's address here (it connects from 127.0.0.1), as nginx_ip is in compose.
        FORWARDED_ALLOW_IPS="127.0.0.1",
        COCANVAS_SECRET="eb17725c440f40098d30e579f37999061ed9c4eca1bdbd9b89fd2dbd2dcd0289",
        COCANVAS_ADMIN_TOKEN=ADMIN,
    )
    return env


@contextlib.asynccontextmanager
async def stack(
    tmp_path: Path, pg_url: str, redis: RedisServer
) -> AsyncIterator[tuple[int, list[ServerProcess]]]:
    nodes = [
        ServerProcess(tmp_path / name, env=compose_env(name, pg_url, redis.url))
        for name in ("cocanvas-1", "cocanvas-2")
    ]
    try:
        await asyncio.gather(*(asyncio.to_thread(n.start) for n in nodes))
        async with httpx.AsyncClient() as http:
            for n in nodes:
                ready = (await http.get(n.http + "/readyz")).json()
                assert ready["status"] == "ready", ready
        async with run_deploy_nginx(tmp_path, [n.port for n in nodes]) as port:
            yield port, nodes
    finally:
        for n in nodes:
            await asyncio.to_thread(n.stop)


async def home_of(nodes: list[ServerProcess], canvas_id: str) -> int:
    """Which node holds the canvas's room (the one nginx sent the WebSockets to)."""
    async with httpx.AsyncClient() as http:
        for i, n in enumerate(nodes):
            metrics = (await http.get(n.http + "/metrics")).text
            for line in metrics.splitlines():
                if line.startswith("cocanvas_rooms ") and float(line.split()[1]) >= 1:
                    return i
    raise AssertionError(f"no node holds {canvas_id}")


def holds(client: YClient, keys: set[str]) -> Callable[[], bool]:
    return lambda: set(client.note_texts()) >= keys


async def test_workshop_through_nginx_survives_its_node_draining(
    tmp_path: Path, pg_url: str, redis_server: RedisServer
) -> None:
    async with stack(tmp_path, pg_url, redis_server) as (port, nodes):
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as http:
            denied = await http.post(base + "/api/canvases", json={"title": "x"})
            assert denied.status_code in (401, 403), "COCANVAS_ADMIN_TOKEN guards creation"
            r = await http.post(
                base + "/api/canvases",
                json={"title": "Stack", "template": "business-model"},
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
            assert r.status_code == 201, r.text
            canvas: dict[str, Any] = r.json()
        cid, token = canvas["id"], canvas["facilitator_token"]
        via_nginx = f"ws://127.0.0.1:{port}/ws"

        clients = [YClient(via_nginx, cid, token, f"n{i}") for i in range(3)]
        await asyncio.gather(*(c.connect() for c in clients))
        home = await home_of(nodes, cid)
        other = nodes[1 - home]
        # A client pinned to the other node: its edits must cross through Redis.
        remote = await YClient(other.ws, cid, token, "remote").connect()
        everyone = [*clients, remote]
        try:
            for i, c in enumerate(everyone):
                c.add_note(f"k{i}", f"note {i}", block="customer-segments")
            keys = {f"k{i}" for i in range(len(everyone))}
            for c in everyone:
                await c.wait_for(holds(c, keys))

            # Drain the canvas's node: its sockets close (1012), nginx sends the reconnects to
            # the survivor, which loads the canvas from PostgreSQL.
            await asyncio.to_thread(nodes[home].stop)
            for c in clients:
                await asyncio.wait_for(c.closed.wait(), 10)
                assert c.close_code == 1012, c.close_code
            back = await YClient(via_nginx, cid, token, "back").connect()
            everyone.append(back)
            await back.wait_for(lambda: set(back.note_texts()) >= keys)
            back.add_note("after", "written after the drain", block="customer-segments")
            await remote.wait_for(lambda: "after" in remote.note_texts())
        finally:
            for c in everyone:
                with contextlib.suppress(Exception):
                    await c.close()


# -- per-address limits behind nginx ---------------------------------------------------------

PROXY = "127.0.0.2"  # nginx connects to the node from here (proxy_bind), as from its compose IP


async def create_canvases(base: str, n: int, *, source: str, forged: bool) -> tuple[int, int]:
    """n canvas creations from one local address; (created, refused with 429)."""
    created = refused = 0
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(transport=transport, base_url=base) as http:
        for i in range(n):
            headers = {"Authorization": f"Bearer {ADMIN}"}
            if forged:  # a fresh address every time, as the 300-of-300 attack did
                headers["X-Forwarded-For"] = f"198.51.100.{i % 250 + 1}, 10.{i}.0.1"
                headers["X-Real-IP"] = f"203.0.113.{i % 250 + 1}"
            r = await http.post(
                "/api/canvases",
                json={"title": f"t{i}", "template": "business-model"},
                headers=headers,
            )
            assert r.status_code in (201, 429), r.text
            created += r.status_code == 201
            refused += r.status_code == 429
    return created, refused


@pytest.mark.parametrize("trusted", [PROXY, "*"], ids=["trust-nginx-only", "trust-everyone"])
async def test_forged_forwarded_for_does_not_escape_the_address_limit(
    tmp_path: Path, trusted: str
) -> None:
    """docker-compose.yml's node behind deploy/nginx.conf: a client that forges X-Forwarded-For on
    every request is still counted on its real address, and another address keeps its own budget.
    Either safeguard holds alone: nginx overwriting the header (checked with the node trusting
    everyone) and the node trusting nginx's address only (then the header sent straight to the
    node is ignored too)."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    env = {k: str(v) for k, v in compose["services"]["cocanvas-1"]["environment"].items()}
    assert env["FORWARDED_ALLOW_IPS"] != "*"
    for key in ("COCANVAS_STORE_URL", "COCANVAS_REDIS_URL"):  # one node: SQLite, in-process
        env.pop(key)
    env.update(
        COCANVAS_SECRET=uuid.uuid4().hex + uuid.uuid4().hex,
        COCANVAS_ADMIN_TOKEN=ADMIN,
        FORWARDED_ALLOW_IPS=trusted,
        # 2 creations/s, a 5 s burst (partners.install_flood_guard): 10 at once, then 2/s.
        COCANVAS_RATE_CONNECTIONS_PER_S="2",
    )
    node = ServerProcess(tmp_path / "node", env=env)
    await asyncio.to_thread(node.start)
    try:
        async with run_deploy_nginx(tmp_path, [node.port], proxy_bind=PROXY) as port:
            via_nginx = f"http://127.0.0.1:{port}"
            loop = asyncio.get_running_loop()
            started = loop.time()
            created, refused = await create_canvases(via_nginx, 60, source="127.0.0.3", forged=True)
            budget = 10 + 2 * (loop.time() - started) + 1
            assert refused > 0 and created <= budget, (created, refused, budget)
            # Another client is counted apart: the node sees real addresses, not nginx's.
            other, _ = await create_canvases(via_nginx, 3, source="127.0.0.4", forged=True)
            assert other == 3
            if trusted != "*":
                # Straight to the node (not from nginx's address) the header is ignored too.
                direct, refused_direct = await create_canvases(
                    node.http, 5, source="127.0.0.3", forged=True
                )
                assert refused_direct >= 4, (direct, refused_direct)
    finally:
        await asyncio.to_thread(node.stop)
