"""The deployment files stay true: parsed, checked for their essentials, and nginx run for real.

Docker cannot run here, so the compose file and manifests are checked structurally; the nginx
config is exercised by a real nginx (when installed) in front of two tiny backends.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import free_port, run_nginx

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# -- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_builds_client_and_serves() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    assert stages[0][0].startswith("node:") and stages[-1][0] == "python:3.11-slim"
    assert len(stages) >= 2
    assert "npm ci" in text and "npm run build" in text
    assert re.search(r"pip install \.", text)
    assert re.search(r"COPY --from=client .*dist", text)
    assert re.search(r"HEALTHCHECK .*\n?.*/healthz", text)
    assert re.search(r'CMD \["cocanvas", "serve", "--host", "0.0.0.0"\]', text)
    assert re.search(r"^USER\s+(?!root)", text, re.M), "runs as an unprivileged user"
    # Every file the build copies from the context exists.
    for src in re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+$", text, re.M):
        for part in src.split():
            assert (REPO / part.rstrip("/")).exists(), part


# -- docker-compose.yml ------------------------------------------------------------------------


def test_compose_two_nodes_behind_nginx() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services: dict[str, dict[str, Any]] = compose["services"]
    for name, svc in services.items():
        assert "healthcheck" in svc, f"{name} has no health check"
    nodes = {
        n: s for n, s in services.items() if s.get("build") or "cocanvas" in str(s.get("image"))
    }
    assert len(nodes) >= 2
    ids = set()
    for name, svc in nodes.items():
        env = svc["environment"]
        assert env["COCANVAS_STORE_URL"].startswith("postgresql://"), name
        assert env["COCANVAS_REDIS_URL"].startswith("redis://"), name
        assert env["COCANVAS_SECRET"] and env["COCANVAS_ADMIN_TOKEN"], name
        ids.add(env["COCANVAS_NODE_ID"])
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert "/readyz" in " ".join(svc["healthcheck"]["test"])
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "ports" not in svc, "nodes are reached through nginx only"
    assert len(ids) == len(nodes), "every node needs its own COCANVAS_NODE_ID"
    assert {"redis", "postgres", "nginx"} <= services.keys()
    nginx = services["nginx"]
    assert "8080:8080" in nginx["ports"]
    assert any("deploy/nginx.conf" in v for v in nginx["volumes"])
    assert set(nginx["depends_on"]) >= set(nodes)
    assert compose["volumes"], "a named data volume"
    assert any(v.split(":")[0] in compose["volumes"] for v in services["postgres"]["volumes"])
    # nginx's upstream lists exactly the compose nodes.
    upstreams = re.findall(r"server\s+([\w.-]+):8000", (DEPLOY / "nginx.conf").read_text())
    assert sorted(upstreams) == sorted(nodes)


# -- Kubernetes ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    for name in kustomization["resources"]:
        for doc in load_all(DEPLOY / "k8s" / name):
            assert doc["apiVersion"] and doc["metadata"]["name"]
            docs[doc["kind"]] = doc
    return docs


def test_k8s_deployment_probes_and_drain(k8s: dict[str, dict[str, Any]]) -> None:
    dep = k8s["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    # Room for the preStop sleep and uvicorn's 10 s graceful shutdown.
    assert pod["terminationGracePeriodSeconds"] >= int(sleep[1]) + 10
    assert dep["spec"]["replicas"] >= 2
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
    assert refs == {k8s["ConfigMap"]["metadata"]["name"], k8s["Secret"]["metadata"]["name"]}
    node_id = {e["name"]: e for e in container["env"]}["COCANVAS_NODE_ID"]
    assert node_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert (
        dep["spec"]["selector"]["matchLabels"].items()
        <= dep["spec"]["template"]["metadata"]["labels"].items()
    )


def test_k8s_service_ingress_hpa(k8s: dict[str, dict[str, Any]]) -> None:
    dep, svc, ing, hpa = (
        k8s["Deployment"],
        k8s["Service"],
        k8s["Ingress"],
        k8s["HorizontalPodAutoscaler"],
    )
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    notes = ing["metadata"]["annotations"]
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(notes["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    assert notes["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$uri"
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == svc["metadata"]["name"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    secret = k8s["Secret"]["stringData"]
    assert {"COCANVAS_SECRET", "COCANVAS_ADMIN_TOKEN", "COCANVAS_STORE_URL"} <= secret.keys()
    assert k8s["ConfigMap"]["data"]["COCANVAS_REDIS_URL"].startswith("redis://")


# -- nginx, for real ---------------------------------------------------------------------------


class Backend:
    """Answers with its name; upgrades when asked and then echoes, like a WebSocket tunnel."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.upgrade_headers: list[dict[str, str]] = []
        self.headers: list[dict[str, str]] = []
        self._conns: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in list(self._conns):  # a dead node drops its keep-alive connections too
                writer.close()
            await self.server.wait_closed()
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {
                    k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)
                }
                self.headers.append(headers)
                if headers.get("upgrade", "").lower() == "websocket":
                    self.upgrade_headers.append(headers)
                    writer.write(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\n\r\n"
                    )
                    await writer.drain()
                    while data := await reader.read(1024):
                        writer.write(self.name.encode() + b":" + data)
                        await writer.drain()
                    return
                body = self.name.encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._conns.discard(writer)
            writer.close()


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[tuple[int, list[Backend]]]:
    backends = [Backend("node-1"), Backend("node-2")]
    for b in backends:
        await b.start()
    try:
        async with run_nginx(tmp_path, [b.port for b in backends]) as port:
            yield port, backends
    finally:
        for b in backends:
            await b.stop()


async def http_get(port: int, path: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200"), head
    return body


async def test_nginx_routes_each_canvas_to_one_node(proxy: tuple[int, list[Backend]]) -> None:
    port, backends = proxy
    homes: dict[str, str] = {}
    for i in range(24):
        cid = uuid.uuid4().hex[:12]
        seen = {
            await http_get(port, f"/ws/{cid}?token=user-{i}"),
            await http_get(port, f"/ws/{cid}?token=someone-else"),
            await http_get(port, f"/c/{cid}"),
            await http_get(port, f"/api/canvases/{cid}/versions"),
            await http_get(port, f"/api/canvases/{cid}"),
        }
        assert len(seen) == 1, f"canvas {cid} split across {seen}"
        homes[cid] = seen.pop()
    assert set(homes.values()) == {"node-1", "node-2"}, "consistent hash spreads canvases"
    # Plain requests reuse upstream connections and carry the client's address.
    headers = [h for b in backends for h in b.headers]
    assert all(h["x-forwarded-for"] == "127.0.0.1" and h["host"] == "test" for h in headers)
    assert all("upgrade" not in h for h in headers)


async def test_nginx_upgrades_websockets(proxy: tuple[int, list[Backend]]) -> None:
    port, backends = proxy
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /ws/abc?token=t HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    writer.write(b"ping")
    reply = await asyncio.wait_for(reader.read(100), 2)
    assert reply.endswith(b":ping")
    writer.close()
    (headers,) = [h for b in backends for h in b.upgrade_headers]
    assert headers["connection"].lower() == "upgrade"
    assert headers["x-forwarded-for"] == "127.0.0.1"


async def test_nginx_fails_over_when_a_node_is_down(proxy: tuple[int, list[Backend]]) -> None:
    port, backends = proxy
    cids = [uuid.uuid4().hex[:12] for _ in range(12)]
    before = {cid: await http_get(port, f"/ws/{cid}") for cid in cids}
    await backends[0].stop()
    after = {cid: await http_get(port, f"/ws/{cid}") for cid in cids}
    assert set(after.values()) == {"node-2"}
    # Canvases that lived on node-2 did not move.
    assert all(after[c] == "node-2" for c in cids if before[c] == "node-2")
