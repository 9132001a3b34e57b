"""Real services that tests own, so they can kill and restart them: a redis-server on a free
port, a throw-away PostgreSQL cluster, and a schema of its own in the machine's PostgreSQL."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.support import free_port, require

PG_BASE_URL = os.environ.get("COCANVAS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


class RedisServer:
    """A redis-server subprocess that tests may kill and restart on the same port."""

    def __init__(self, binary: str, port: int) -> None:
        self.binary = binary
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not come up on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    @classmethod
    def started(cls) -> RedisServer:
        binary = shutil.which("redis-server")
        require(binary is not None, "redis-server not found on PATH (apt-get install redis-server)")
        assert binary is not None
        server = cls(binary, free_port())
        server.start()
        return server


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free port, so a test may stop and restart it."""

    def __init__(self, bindir: Path) -> None:
        self.bin = bindir
        # Outside pytest's tmp tree, which the postgres user cannot enter.
        self.root = Path(tempfile.mkdtemp(prefix="cocanvas-pg-"))
        os.chmod(self.root, 0o755)
        self.data = self.root / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / args[0]), *args[1:]],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def init(self) -> None:
        self.data.mkdir()
        shutil.chown(self.data, "postgres", "postgres")
        shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl", "-D", str(self.data), "-w", "-l", str(self.root / "log"), "-o", opts, "start"
        )

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop")

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    @classmethod
    def started(cls) -> PrivatePostgres:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        require(
            bool(bins) and shutil.which("runuser") is not None,
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed",
        )
        pg = cls(Path(bins[-1]).parent)
        try:
            pg.init()
            pg.start()
        except BaseException:
            pg.remove()
            raise
        return pg


def machine_pg_schema() -> str:
    """A fresh schema in the machine's PostgreSQL, as a store URL that uses only it."""
    import psycopg

    try:
        with psycopg.connect(PG_BASE_URL, connect_timeout=3, autocommit=True) as conn:
            schema = "t_" + uuid.uuid4().hex[:10]
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as exc:
        require(False, f"PostgreSQL unreachable at {PG_BASE_URL}: {exc}")
        raise
    return f"{PG_BASE_URL}?options=-csearch_path%3D{schema}"


def drop_machine_pg_schema(url: str) -> None:
    import psycopg

    schema = url.rsplit("%3D", 1)[1]
    with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


class RedisClusterServers:
    """A private Redis Cluster: ``primaries`` redis-servers with ``replicas`` replicas each, on
    free ports, created with ``redis-cli --cluster create`` and waited for by condition
    (``cluster_state:ok`` on every node, every slot covered). Tests may kill one node and start it
    again (it rejoins from its own ``nodes.conf``), or freeze it (``pause_node``: SIGSTOP, the
    socket stays open and nothing answers) and thaw it. ``extra_args`` go to every redis-server.
    """

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 1000,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        binary = shutil.which("redis-server")
        cli = shutil.which("redis-cli")
        require(
            binary is not None and cli is not None,
            "redis-server / redis-cli not found on PATH (apt-get install redis-server)",
        )
        assert binary is not None and cli is not None
        self.binary, self.cli = binary, cli
        self.count = primaries * (1 + replicas)
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.extra_args = extra_args
        self.paused: set[int] = set()
        self.root = Path(tempfile.mkdtemp(prefix="cocanvas-rc-"))
        self.ports = [self._cluster_port() for _ in range(self.count)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @staticmethod
    def _cluster_port() -> int:
        """A free port whose cluster bus port (port + 10000) is free too; Redis refuses a port
        above 55535 for that reason."""
        for _ in range(200):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port > 55535:
                port = 20000 + port % 30000
            try:
                with socket.socket() as a, socket.socket() as b:
                    a.bind(("127.0.0.1", port))
                    b.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                continue
        raise RuntimeError("no free port pair for a Redis Cluster node")

    @property
    def url(self) -> str:
        """The broker's URL: any one node; the client discovers the rest."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start_node(self, port: int) -> None:
        workdir = self.root / str(port)
        workdir.mkdir(exist_ok=True)
        self.procs[port] = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                "--cluster-replica-validity-factor",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
                *self.extra_args,
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait(lambda: self._info(port, b"PING").startswith(b"+PONG"), f"node {port} up")

    def kill_node(self, port: int) -> None:
        proc = self.procs.pop(port, None)
        if proc is not None:
            proc.kill()
            proc.wait()

    def pause_node(self, port: int) -> None:
        """SIGSTOP: a silently dead server (its connections stay open, nothing answers)."""
        self.procs[port].send_signal(signal.SIGSTOP)
        self.paused.add(port)

    def resume_node(self, port: int) -> None:
        proc = self.procs.get(port)
        if proc is not None and port in self.paused:
            proc.send_signal(signal.SIGCONT)
        self.paused.discard(port)

    def start(self) -> RedisClusterServers:
        for port in self.ports:
            self.start_node(port)
        done = subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Every running node says cluster_state:ok (all slots served, failovers finished)."""
        self._wait(
            lambda: all(
                b"cluster_state:ok" in self._info(p, b"CLUSTER INFO") for p in list(self.procs)
            ),
            "cluster_state:ok",
            timeout,
        )

    def primary_ports(self) -> list[int]:
        """Ports of the running primaries that serve slots, from CLUSTER NODES."""
        for port in self.procs:
            text = self._info(port, b"CLUSTER NODES").decode(errors="replace")
            out = []
            for line in text.splitlines():
                parts = line.split()
                if len(parts) > 8 and "master" in parts[2] and "fail" not in parts[2]:
                    out.append(int(parts[1].split("@")[0].rsplit(":", 1)[1]))
            if out:
                return sorted(out)
        return []

    def stop(self) -> None:
        for port in list(self.paused):
            self.resume_node(port)
        for port in list(self.procs):
            self.kill_node(port)
        shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def _info(port: int, command: bytes) -> bytes:
        """One inline command's raw reply, or b"" when the node does not answer."""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(command + b"\r\n")
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    if data.startswith(b"+") and data.endswith(b"\r\n"):
                        break
                    if data.startswith(b"$"):
                        header, _, body = data.partition(b"\r\n")
                        if len(body) >= int(header[1:]) + 2:
                            break
                    if data.startswith(b"-"):
                        break
                return data
        except OSError:
            return b""

    @staticmethod
    def _wait(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis Cluster: {what} not reached in {timeout:.0f}s")
            time.sleep(0.05)
