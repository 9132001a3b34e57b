"""The compose topology on one machine: two real nodes configured as docker-compose.yml configures
them, PostgreSQL, Redis, and deploy/nginx.conf in front. Docker is not needed to prove the shape:
a workshop reaches one node through nginx, crosses to the other through Redis, and survives the
draining of its node (clients reconnect through nginx and land on the survivor).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support import ServerProcess, YClient

from .conftest import RedisServer, run_nginx

REPO = Path(__file__).resolve().parents[2]
ADMIN = "admin-" + "y" * 24


def compose_env(service: str, pg_url: str, redis_url: str) -> dict[str, str]:
    """The node's environment from docker-compose.yml, its hosts and secrets made local."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    env = {k: str(v) for k, v in compose["services"][service]["environment"].items()}
    assert env["COCANVAS_STORE_URL"].startswith("postgresql://")
    assert env["COCANVAS_REDIS_URL"].startswith("redis://")
    env.update(
        COCANVAS_STORE_URL=pg_url,
        COCANVAS_REDIS_URL=redis_url,
        COCANVAS_SECRET="stack-secret-" + "z" * 32,
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
        async with run_nginx(tmp_path, [n.port for n in nodes]) as port:
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
