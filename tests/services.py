"""Real services that tests own, so they can kill and restart them: a redis-server on a free
port, a throw-away PostgreSQL cluster, and a schema of its own in the machine's PostgreSQL."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
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
