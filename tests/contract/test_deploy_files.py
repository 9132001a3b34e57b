"""The deployment files stay true: parsed, checked for their essentials, and nginx run for real.

The compose file and manifests are checked structurally (test_docker_stack.py runs the image when
a Docker engine is there); the nginx config and the ingress controller's routing map are exercised
by a real nginx (when installed) in front of tiny backends. `run_nginx` here is also the runner of
test_deploy_stack.py.

Not exercised: `server ... resolve` (re-resolving the node names). It needs nginx >= 1.27.3, and
the upstreams here are local addresses, so the runner drops the parameter; Debian bookworm ships
1.22.1, which would refuse it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import free_port, require_service

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
# ingress-nginx's validation of upstream-hash-by (internal/ingress/annotations/upstreamhashby).
INGRESS_HASH_BY = re.compile(r"^[A-Za-z0-9\-_${}]*$")


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def canvas_id_map(conf: str) -> str:
    """The `map ... $canvas_id` block of an nginx config, comments and indentation dropped."""
    m = re.search(r"^\s*map \$uri \$canvas_id \{.*?^\s*\}", conf, re.M | re.S)
    assert m, "no map $uri $canvas_id"
    return "\n".join(" ".join(line.split()) for line in m.group(0).splitlines())


# -- nginx, the runner -------------------------------------------------------------------------


def nginx_binary() -> str:
    binary = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if binary is None:
        # A tool, not a service: skipped in CI too (.ci/run installs nginx-light).
        pytest.skip("nginx not installed (apt-get install nginx-light): routing not exercised")
    return binary


def local_conf(conf: str, workdir: Path, upstreams: list[str], listen: str) -> str:
    """deploy/nginx.conf with cocanvas-<i>:8000 -> upstreams[i-1] (nodes beyond them dropped) and
    its listen/pid paths moved into workdir. `resolve` goes: a literal address has nothing to
    re-resolve."""
    for i, upstream in enumerate(upstreams, start=1):
        conf = conf.replace(f"cocanvas-{i}:8000 resolve", upstream)
    # Fewer local nodes than the config has: the rest are left out.
    conf = re.sub(r"^\s*server cocanvas-\d+:8000 .*\n", "", conf, flags=re.M)
    assert not re.search(r"^\s*server .* resolve", conf, re.M), "every node gets a local address"
    conf = conf.replace("listen 8080;", f"listen {listen};")
    conf = conf.replace("pid /tmp/nginx.pid;", f"pid {workdir}/nginx.pid;")
    return conf


@contextlib.asynccontextmanager
async def run_nginx(workdir: Path, conf: str, port: int) -> AsyncIterator[int]:
    """Run a complete nginx config (listening on 127.0.0.1:port) until the block ends."""
    binary = nginx_binary()
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / temp).mkdir(exist_ok=True)
        conf = conf.replace("http {", f"http {{\n    {temp}_temp_path {workdir}/{temp};", 1)
    path = workdir / "nginx.conf"
    path.write_text(conf)
    check = await asyncio.create_subprocess_exec(
        binary, "-t", "-p", str(workdir), "-c", str(path), stderr=asyncio.subprocess.PIPE
    )
    _, err = await check.communicate()
    assert check.returncode == 0, err.decode()
    proc = await asyncio.create_subprocess_exec(
        binary, "-p", str(workdir), "-c", str(path), "-g", "daemon off; user root;",
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        await proc.wait()


@contextlib.asynccontextmanager
async def run_deploy_nginx(
    workdir: Path, upstream_ports: list[int], *, proxy_bind: str | None = None
) -> AsyncIterator[int]:
    """deploy/nginx.conf for real in front of local ports; yields its port (on 127.0.0.1).

    proxy_bind: the address nginx connects to the nodes from (a second loopback address lets a
    node tell nginx from a client that connects to it directly)."""
    port = free_port()
    conf = local_conf(
        (DEPLOY / "nginx.conf").read_text(),
        workdir,
        [f"127.0.0.1:{p}" for p in upstream_ports],
        f"127.0.0.1:{port}",
    )
    if proxy_bind is not None:
        conf = conf.replace(
            "proxy_http_version 1.1;",
            f"proxy_http_version 1.1;\n        proxy_bind {proxy_bind};",
            1,
        )
    async with run_nginx(workdir, conf, port) as p:
        yield p


# -- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_builds_client_and_serves() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    # Base images are build arguments (a machine without Docker Hub brings its own); the
    # defaults are the official images.
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M))
    stages = [
        re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        for image, _ in re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    ]
    assert stages[0].startswith("node:20") and stages[-1] == "python:3.11-slim"
    assert len(stages) >= 2
    # The venv's interpreter is a symlink into the base: build and runtime share it.
    build = re.search(r"^FROM\s+(\S+)\s+AS\s+build", text, re.M | re.I)
    assert build and build.group(1) == re.findall(r"^FROM\s+(\S+)\s*$", text, re.M)[-1]
    # No `# syntax=` frontend: naming one makes every build pull it from Docker Hub.
    assert not re.search(r"^#\s*syntax=", text, re.M)
    assert re.search(r"groupadd .*--gid 10001", text) and "--uid 10001" in text
    assert "npm ci" in text and "npm run build" in text
    # The app and exactly the locked versions of what it needs.
    assert re.search(r"pip install .*-c requirements\.lock \.", text)
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
    # nginx's upstream lists exactly the compose nodes, re-resolved (nginx >= 1.27.3).
    conf = (DEPLOY / "nginx.conf").read_text()
    upstreams = re.findall(r"server\s+([\w.-]+):8000 resolve\b", conf)
    assert sorted(upstreams) == sorted(nodes)
    assert re.search(r"^\s*resolver 127\.0\.0\.11 valid=\d+s", conf, re.M), "Docker's DNS"
    assert re.search(r"upstream cocanvas \{\s*(#.*\n\s*)*zone ", conf), "resolve needs a zone"
    version = re.match(r"nginx:(\d+)\.(\d+)", nginx["image"])
    assert version and tuple(map(int, version.groups())) >= (1, 28), nginx["image"]


def test_compose_redis_accepts_the_nodes() -> None:
    """Without a password Redis refuses non-loopback clients unless protected mode is off."""
    redis = compose()["services"]["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    assert dict(zip(command[1::2], command[2::2], strict=True)) == {
        "--save": "",
        "--appendonly": "no",
        "--protected-mode": "no",
    }
    assert "ports" not in redis, "reachable from the compose network only"


def non_loopback_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("198.51.100.1", 9))
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if ipaddress.ip_address(address).is_loopback else address


async def redis_ping(host: str, port: int) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"PING\r\n")
    reply = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return reply.decode().strip()


async def test_compose_redis_command_serves_a_non_loopback_client(tmp_path: Path) -> None:
    """redis-server started with the compose file's command answers a client that is not on
    loopback (as the nodes are not); without --protected-mode no, it refuses that client."""
    binary = shutil.which("redis-server")
    if binary is None:
        require_service("redis-server not found on PATH (apt-get install redis-server)")
        raise AssertionError  # unreachable
    address = non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback address on this machine")
    command = compose()["services"]["redis"]["command"][1:]
    at = command.index("--protected-mode")
    without = command[:at] + command[at + 2 :]
    replies = {}
    for name, args in (("compose", command), ("without", without)):
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            binary, *args, "--port", str(port), "--dir", str(tmp_path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(100):
                try:
                    replies[name] = await redis_ping(address, port)
                    break
                except OSError:
                    await asyncio.sleep(0.05)
        finally:
            proc.kill()
            await proc.wait()
    assert replies["compose"] == "+PONG", replies
    assert replies["without"].startswith("-DENIED"), replies


def test_compose_nodes_trust_only_nginx() -> None:
    c = compose()
    services = c["services"]
    nginx_ip = services["nginx"]["networks"]["backend"]["ipv4_address"]
    (subnet,) = (
        ipaddress.ip_network(s["subnet"]) for s in c["networks"]["backend"]["ipam"]["config"]
    )
    assert ipaddress.ip_address(nginx_ip) in subnet
    for name in ("cocanvas-1", "cocanvas-2"):
        svc = services[name]
        assert svc["environment"]["FORWARDED_ALLOW_IPS"] == nginx_ip, name
        assert "backend" in svc["networks"], name
    # nginx overwrites the header, never appends what the client sent.
    conf = (DEPLOY / "nginx.conf").read_text()
    assert "$proxy_add_x_forwarded_for" not in conf
    locations = re.findall(r"location [^{]*\{(.*?)\n        \}", conf, re.S)
    proxied = [body for body in locations if "proxy_pass" in body]
    assert len(proxied) == 2
    assert all("proxy_set_header X-Forwarded-For $remote_addr;" in body for body in proxied)


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
    assert notes["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$canvas_id"
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == svc["metadata"]["name"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    secret = k8s["Secret"]["stringData"]
    assert {"COCANVAS_SECRET", "COCANVAS_ADMIN_TOKEN", "COCANVAS_STORE_URL"} <= secret.keys()
    assert k8s["ConfigMap"]["data"]["COCANVAS_REDIS_URL"].startswith("redis://")


def test_k8s_ingress_hashes_on_the_canvas_id_map(k8s: dict[str, dict[str, Any]]) -> None:
    """The Ingress names $canvas_id; the controller patch defines it with deploy/nginx.conf's map."""
    key = k8s["Ingress"]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/upstream-hash-by"]
    assert INGRESS_HASH_BY.match(key), "ingress-nginx would refuse the annotation"
    patch = yaml.safe_load((DEPLOY / "k8s" / "ingress-nginx-controller-patch.yaml").read_text())
    snippet = patch["data"]["http-snippet"]
    assert canvas_id_map(snippet) == canvas_id_map((DEPLOY / "nginx.conf").read_text())
    assert re.fullmatch(r"\$\{?canvas_id\}?", key)
    assert (
        "ingress-nginx-controller-patch.yaml"
        not in (DEPLOY / "k8s" / "kustomization.yaml").read_text().split("resources:")[1]
    )


def test_k8s_nodes_trust_only_the_controller(k8s: dict[str, dict[str, Any]]) -> None:
    trusted = k8s["ConfigMap"]["data"]["FORWARDED_ALLOW_IPS"]
    assert trusted != "*"
    for part in trusted.split(","):
        ipaddress.ip_network(part.strip())  # an address or a network, nothing else
    policy = k8s["NetworkPolicy"]
    pod_labels = k8s["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    sources = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    assert all("ipBlock" not in peer for peer in sources), "pods, not address ranges"
    controller = sources[0]
    assert controller["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }


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
        async with run_deploy_nginx(tmp_path, [b.port for b in backends]) as port:
            yield port, backends
    finally:
        for b in backends:
            await b.stop()


async def http_get(port: int, path: str, headers: str = "") -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n".encode()
    )
    data = await reader.read()
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200"), head
    return body


async def ws_home(port: int, path: str, headers: str = "") -> str:
    """Open a WebSocket through nginx; the name of the backend that answers its first frame."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"{headers}\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    writer.write(b"hello")
    reply = await asyncio.wait_for(reader.read(100), 5)
    writer.close()
    name, _, echoed = reply.decode().partition(":")
    assert echoed == "hello"
    return name


def canvas_ids(n: int) -> list[str]:
    """Ids of the shapes the server makes (uuid hex) and some it accepts (dashes, underscores)."""
    ids = [uuid.uuid4().hex[:12] for _ in range(n - 3)]
    return [*ids, str(uuid.uuid4()), "a_b-c", "Z"]


async def test_nginx_routes_each_canvas_to_one_node(proxy: tuple[int, list[Backend]]) -> None:
    """A canvas's WebSocket, page and API calls reach the same node, whoever asks."""
    port, backends = proxy
    homes: dict[str, str] = {}
    for i, cid in enumerate(canvas_ids(64)):
        seen = {
            await ws_home(port, f"/ws/{cid}?token=user-{i}"),
            await ws_home(port, f"/ws/{cid}?token=someone-else"),
            await http_get(port, f"/ws/{cid}?token=user-{i}"),
            await http_get(port, f"/c/{cid}"),
            await http_get(port, f"/api/canvases/{cid}"),
            await http_get(port, f"/api/canvases/{cid}/participants?token=t"),
            await http_get(port, f"/api/canvases/{cid}/invites/inv-{i}"),
            await http_get(port, f"/api/canvases/{cid}/audit"),
        }
        assert len(seen) == 1, f"canvas {cid} split across {seen}"
        homes[cid] = seen.pop()
    assert set(homes.values()) == {"node-1", "node-2"}, "consistent hash spreads canvases"
    # Plain requests reuse upstream connections and carry the client's address.
    headers = [h for b in backends for h in b.headers]
    assert all(h["x-forwarded-for"] == "127.0.0.1" and h["host"] == "test" for h in headers)
    assert all(
        "upgrade" not in h for b in backends for h in b.headers if h not in b.upgrade_headers
    )


async def test_nginx_overwrites_a_forged_forwarded_for(proxy: tuple[int, list[Backend]]) -> None:
    """The nodes believe X-Forwarded-For from nginx: what a client sends there never passes."""
    port, backends = proxy
    forged = "X-Forwarded-For: 203.0.113.7, 10.0.0.1\r\nX-Real-IP: 203.0.113.8\r\n"
    for i in range(8):
        await http_get(port, f"/api/canvases/c{i}", forged)
        await ws_home(port, f"/ws/c{i}?token=t", forged)
    seen = [h for b in backends for h in b.headers]
    assert len(seen) == 16
    assert {h["x-forwarded-for"] for h in seen} == {"127.0.0.1"}


async def test_ingress_controller_map_keys_api_and_websocket_alike(tmp_path: Path) -> None:
    """The http-snippet for ingress-nginx, run by a real nginx: the hash key it yields
    (upstream-hash-by's value) is the canvas id for every path form of a canvas."""
    patch = yaml.safe_load((DEPLOY / "k8s" / "ingress-nginx-controller-patch.yaml").read_text())
    ingress = yaml.safe_load((DEPLOY / "k8s" / "ingress.yaml").read_text())
    key = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/upstream-hash-by"]
    port = free_port()
    snippet = "\n".join("    " + line for line in patch["data"]["http-snippet"].splitlines())
    conf = f"""worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log /dev/stderr warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
{snippet}
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type text/plain; return 200 "{key}"; }}
    }}
}}
"""
    async with run_nginx(tmp_path, conf, port):
        for i, cid in enumerate(canvas_ids(40)):
            keys = {
                await http_get(port, f"/ws/{cid}?token=user-{i}"),
                await http_get(port, f"/c/{cid}"),
                await http_get(port, f"/api/canvases/{cid}"),
                await http_get(port, f"/api/canvases/{cid}/participants"),
                await http_get(port, f"/api/canvases/{cid}/invites/x{i}"),
            }
            assert keys == {cid}, (cid, keys)
        # Requests without a canvas get a random key (they spread over the pods).
        assert len({await http_get(port, "/api/canvases") for _ in range(5)}) == 5
        assert len({await http_get(port, "/") for _ in range(5)}) == 5


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
