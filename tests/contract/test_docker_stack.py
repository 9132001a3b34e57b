"""deploy/Dockerfile built and run for real by a Docker engine.

When the tests run: a reachable engine (``docker info`` answers) runs them anywhere. Without one
they are skipped on a developer's machine and FAIL in CI (CI=true): CI must provide the engine
(see deploy/README.md, "Docker"). A runner that cannot run containers at all says so explicitly
with COCANVAS_DOCKER_TESTS=off, which skips them with that reason, in CI too.

The build needs BuildKit (it reads deploy/Dockerfile.dockerignore): a docker CLI with the buildx
plugin, or COCANVAS_DOCKER pointing at a CLI with BuildKit built in (Debian's docker.io 20.10 is
one). Base images: cocanvas-base:bookworm and cocanvas-node-base:bookworm when present (made by
deploy/build-base-images.sh on a machine without Docker Hub), else the official ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import random
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support import IN_CI, YClient

REPO = Path(__file__).resolve().parents[2]
IMAGE = "cocanvas:test"
LOCAL_BASES = {
    "PYTHON_IMAGE": "cocanvas-base:bookworm",
    "NODE_IMAGE": "cocanvas-node-base:bookworm",
}


def docker_cli() -> str:
    """The docker CLI, or a skip (outside CI) / failure (in CI) saying why there is none."""
    if os.environ.get("COCANVAS_DOCKER_TESTS", "").lower() == "off":
        pytest.skip("COCANVAS_DOCKER_TESTS=off: this runner cannot run containers")
    cli = shutil.which(os.environ.get("COCANVAS_DOCKER") or "docker")
    problem = None
    if cli is None:
        problem = "no docker CLI on PATH (apt-get install docker.io)"
    else:
        info = subprocess.run([cli, "info", "--format", "{{json .ServerVersion}}"],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
        if info.returncode != 0:
            problem = f"Docker engine unreachable: {(info.stderr or info.stdout).strip()[:300]}"
    if problem is not None:
        if IN_CI:
            pytest.fail(f"required in CI (or set COCANVAS_DOCKER_TESTS=off): {problem}")
        pytest.skip(problem)
    assert cli is not None
    return cli


def run(cli: str, *args: str, timeout: float = 60, check: bool = True) -> str:
    done = subprocess.run([cli, *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip()


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    cli = docker_cli()
    build_args: list[str] = []
    for arg, local in LOCAL_BASES.items():
        if subprocess.run([cli, "image", "inspect", local], capture_output=True).returncode == 0:
            build_args += ["--build-arg", f"{arg}={local}"]
    done = subprocess.run(
        [cli, "build", "-f", "deploy/Dockerfile", *build_args, "-t", IMAGE, "."],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )  # fmt: skip
    hint = ""
    if "buildx component is missing" in done.stderr:
        hint = "\n(install buildx, or set COCANVAS_DOCKER to a CLI with BuildKit built in)"
    assert done.returncode == 0, f"image build failed:\n{done.stderr[-4000:]}{hint}"
    yield cli


def test_image_runs_the_compiled_reader_and_validator(image: str) -> None:
    """The build stage has a compiler: the image's reader and validator are mypyc's, not a
    silent fall back to the pure source (server/native.py)."""
    status = run(
        image, "run", "--rm", IMAGE, "python", "-c",
        "import server.vouch, server.yupdate\nfrom server import native\n"
        "print(native.status, native.compiled())",
    )  # fmt: skip
    assert status == "compiled True"


@contextlib.contextmanager
def container(cli: str, *args: str) -> Iterator[str]:
    name = f"cocanvas-test-{uuid.uuid4().hex[:8]}"
    run(cli, "run", "-d", "--name", name, *args, IMAGE)
    try:
        yield name
    finally:
        if os.environ.get("COCANVAS_DOCKER_KEEP") is None:
            run(cli, "rm", "-f", name, check=False)


def inspect(cli: str, name: str) -> dict:
    return json.loads(run(cli, "inspect", name))[0]


def address(cli: str, name: str) -> str:
    networks = inspect(cli, name)["NetworkSettings"]["Networks"]
    (ip,) = {n["IPAddress"] for n in networks.values() if n["IPAddress"]}
    return ip


def wait_ready(base: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            r = httpx.get(base + "/readyz", timeout=1)
            if r.status_code == 200:
                return r.json()
            last = r.text
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"container not ready: {last}")


async def test_image_serves_a_workshop_and_drains_on_stop(image: str) -> None:
    """One container as the image ships: non-root, healthy by its own HEALTHCHECK, the client
    built in, a canvas created and edited over WebSockets, and `docker stop` closing sockets
    with 1012 and exiting 0."""
    cli = image
    admin = uuid.uuid4().hex
    with container(
        cli, "-e", f"COCANVAS_SECRET={uuid.uuid4().hex}{uuid.uuid4().hex}",
        "-e", f"COCANVAS_ADMIN_TOKEN={admin}",
    ) as name:  # fmt: skip
        base = f"http://{address(cli, name)}:8000"
        ready = await asyncio.to_thread(wait_ready, base)
        assert ready["status"] == "ready", ready
        assert run(cli, "exec", name, "id", "-u") == "10001"
        assert run(cli, "exec", name, "id", "-g") == "10001"
        async with httpx.AsyncClient(base_url=base) as http:
            page = await http.get("/")
            assert page.status_code == 200 and "<html" in page.text.lower(), "client built in"
            r = await http.post(
                "/api/canvases",
                json={"title": "Docker", "template": "business-model"},
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert r.status_code == 201, r.text
        cid, token = r.json()["id"], r.json()["facilitator_token"]
        ws = f"ws://{address(cli, name)}:8000/ws"
        a, b = YClient(ws, cid, token, "a"), YClient(ws, cid, token, "b")
        await asyncio.gather(a.connect(), b.connect())
        try:
            a.add_note("k", "from a container", block="customer-segments")
            await b.wait_for(lambda: "k" in b.note_texts())
            # The image's own HEALTHCHECK (every 10 s) reports healthy.
            deadline = time.monotonic() + 40
            while inspect(cli, name)["State"]["Health"]["Status"] != "healthy":
                assert time.monotonic() < deadline, inspect(cli, name)["State"]["Health"]
                await asyncio.sleep(1)
            started = time.monotonic()
            await asyncio.to_thread(run, cli, "stop", "-t", "20", name)
            assert time.monotonic() - started < 15, "stopped by SIGTERM, not killed at the grace"
            await asyncio.wait_for(a.closed.wait(), 5)
            assert a.close_code == 1012, a.close_code
            assert inspect(cli, name)["State"]["ExitCode"] == 0
        finally:
            for c in (a, b):
                with contextlib.suppress(Exception):
                    await c.close()


# -- the compose stack -----------------------------------------------------------------------

# docker-compose.yml's postgres, redis and nginx images come from Docker Hub. Where it is out of
# reach (no official image present, a local base from deploy/build-base-images.sh is), stand-ins
# with Debian's packages are built: same commands, paths and health checks as compose uses.
STAND_INS = {
    "postgres": """FROM cocanvas-base:bookworm
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 \\
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data PGHOST=/tmp
RUN mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
COPY entrypoint.sh /entrypoint.sh
USER postgres
CMD ["sh", "/entrypoint.sh"]
""",
    "redis": """FROM cocanvas-base:bookworm
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server \\
    && rm -rf /var/lib/apt/lists/*
CMD ["redis-server"]
""",
    "nginx": """FROM cocanvas-base:bookworm
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wget \\
    && rm -rf /var/lib/apt/lists/*
CMD ["nginx", "-g", "daemon off;"]
""",
}
PG_ENTRYPOINT = """set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "$POSTGRES_PASSWORD" > /tmp/pw
    initdb -U "$POSTGRES_USER" --pwfile=/tmp/pw --auth-host=scram-sha-256 --auth-local=trust
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    pg_ctl -w start -o "-c listen_addresses='' -c unix_socket_directories=/tmp"
    createdb -U "$POSTGRES_USER" "$POSTGRES_DB"
    pg_ctl -w stop
fi
exec postgres -c listen_addresses='*' -c unix_socket_directories=/tmp
"""


def images_for(cli: str, compose: dict, workdir: Path) -> dict[str, str]:
    """service -> image to run: the compose file's own when present, else a stand-in."""
    chosen = {}
    for service, dockerfile in STAND_INS.items():
        official = compose["services"][service]["image"]
        if subprocess.run([cli, "image", "inspect", official], capture_output=True).returncode == 0:
            chosen[service] = official
            continue
        ctx = workdir / f"image-{service}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(dockerfile)
        (ctx / "entrypoint.sh").write_text(PG_ENTRYPOINT)
        tag = f"cocanvas-standin-{service}:bookworm"
        run(cli, "build", "-q", "-t", tag, str(ctx), timeout=600)
        chosen[service] = tag
    return chosen


def holds(client: YClient, keys: set[str]) -> bool:
    return set(client.note_texts()) >= keys


def free_subnet(cli: str) -> str:
    """A 172.28.N.0/24 that no network of this engine uses (N random, so runs rarely race)."""
    ids = run(cli, "network", "ls", "-q").split()
    taken = run(cli, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", *ids)
    free = [n for n in range(11, 255) if f"172.28.{n}.0/24" not in taken.split()]
    return f"172.28.{random.choice(free)}.0/24"


def compose_cli(cli: str) -> list[str]:
    """`docker compose` (v2) or `docker-compose` (v1); skip/fail as for the engine."""
    if subprocess.run([cli, "compose", "version"], capture_output=True).returncode == 0:
        return [cli, "compose"]
    v1 = shutil.which("docker-compose")
    if v1 is not None:
        return [v1]
    problem = (
        "no compose: neither `docker compose` nor docker-compose (apt-get install docker-compose)"
    )
    if IN_CI:
        pytest.fail(f"required in CI (or set COCANVAS_DOCKER_TESTS=off): {problem}")
    pytest.skip(problem)


def nginx_version(cli: str, image: str) -> tuple[int, ...]:
    done = subprocess.run(
        [cli, "run", "--rm", image, "nginx", "-v"], capture_output=True, text=True
    )
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", done.stderr + done.stdout)
    assert m, done.stderr
    return tuple(map(int, m.groups()))


async def test_compose_stack_two_nodes_behind_nginx(image: str, tmp_path: Path) -> None:
    """docker-compose.yml brought up for real (its images swapped for local ones when Docker Hub
    is out of reach, its published port dropped): both nodes become healthy only once PostgreSQL
    and Redis are, nginx routes a workshop to one node, and a client on the other node gets its
    edits through Redis, which therefore accepts clients off loopback (--protected-mode no)."""
    cli = image
    up = compose_cli(cli)
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    images = images_for(cli, compose, tmp_path)
    conf = (REPO / "deploy" / "nginx.conf").read_text()
    if nginx_version(cli, images["nginx"]) < (1, 27, 3):
        # Debian's 1.22 refuses `resolve` (the one difference from the shipped config).
        conf = re.sub(r"(server cocanvas-\d+:8000) resolve", r"\1", conf)
    (tmp_path / "nginx.conf").write_text(conf)
    services = compose["services"]
    for name in ("cocanvas-1", "cocanvas-2"):
        services[name].pop("build")
        services[name]["image"] = IMAGE
    for name, img in images.items():
        services[name]["image"] = img
    nginx = services["nginx"]
    nginx.pop("ports")  # reached on its compose address; the host's 8080 may be taken
    nginx["volumes"] = [f"{tmp_path}/nginx.conf:/etc/nginx/nginx.conf:ro"]
    # A subnet of its own, so two runs at once (two CI jobs on one engine) do not collide on the
    # shipped 172.28.10.0/24; nginx's address and the nodes' FORWARDED_ALLOW_IPS move with it.
    subnet = free_subnet(cli)
    proxy_ip = subnet.replace(".0/24", ".10")
    compose["networks"]["backend"]["ipam"]["config"][0]["subnet"] = subnet
    nginx["networks"]["backend"]["ipv4_address"] = proxy_ip
    for name in ("cocanvas-1", "cocanvas-2"):
        services[name]["environment"]["FORWARDED_ALLOW_IPS"] = proxy_ip
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(compose, sort_keys=False))
    project = f"cctest{uuid.uuid4().hex[:8]}"
    admin = uuid.uuid4().hex
    env = {
        **os.environ,
        "COCANVAS_SECRET": uuid.uuid4().hex + uuid.uuid4().hex,
        "COCANVAS_ADMIN_TOKEN": admin,
    }
    cmd = [*up, "-p", project, "-f", str(path)]

    def compose_run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env,
                              timeout=timeout, cwd=tmp_path)  # fmt: skip

    try:
        started = compose_run("up", "-d", "--no-build")
        logs = compose_run("logs", "--no-color").stdout[-4000:]
        assert started.returncode == 0, f"{started.stderr[-3000:]}\n{logs}"
        ids = compose_run("ps", "-q").stdout.split()
        assert len(ids) == 5
        deadline = time.monotonic() + 120
        while True:
            health = {
                inspect(cli, i)["Name"]: inspect(cli, i)["State"].get("Health", {}).get("Status")
                for i in ids
            }
            if set(health.values()) == {"healthy"}:
                break
            assert time.monotonic() < deadline, health
            await asyncio.sleep(2)
        proxy = nginx["networks"]["backend"]["ipv4_address"]
        nodes = {
            inspect(cli, i)["Config"]["Labels"]["com.docker.compose.service"]: address(cli, i)
            for i in ids
        }
        assert nodes["nginx"] == proxy
        base = f"http://{proxy}:8080"
        async with httpx.AsyncClient(base_url=base) as http:
            r = await http.post(
                "/api/canvases",
                json={"title": "Compose", "template": "business-model"},
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert r.status_code == 201, r.text
        cid, token = r.json()["id"], r.json()["facilitator_token"]
        via_nginx = YClient(f"ws://{proxy}:8080/ws", cid, token, "nginx")
        await via_nginx.connect()
        everyone = [via_nginx]
        try:
            # One client pinned to each node: whichever nginx picked, one edit crosses Redis.
            for node in ("cocanvas-1", "cocanvas-2"):
                everyone.append(
                    await YClient(f"ws://{nodes[node]}:8000/ws", cid, token, node).connect()
                )
            for i, c in enumerate(everyone):
                c.add_note(f"k{i}", f"note {i}", block="customer-segments")
            keys = {f"k{i}" for i in range(len(everyone))}
            for c in everyone:
                await c.wait_for(functools.partial(holds, c, keys), timeout=15)
        finally:
            for c in everyone:
                with contextlib.suppress(Exception):
                    await c.close()
    finally:
        if os.environ.get("COCANVAS_DOCKER_KEEP") is None:
            compose_run("down", "-v", "--remove-orphans", timeout=120)
