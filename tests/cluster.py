"""Real services for multi-node tests: a redis-server and a PostgreSQL cluster the tests own
(so they can kill and restart them), and a schema of their own in the machine's PostgreSQL."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import redis

from tests.support import free_port, require

MACHINE_PG = "postgresql://postgres@127.0.0.1:5432/test"


class RedisProcess:
    def __init__(self, port: int | None = None) -> None:
        require(shutil.which("redis-server") is not None, "redis-server is not installed")
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                if client.ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        self.kill()


def machine_pg_schema() -> str:
    """A fresh schema in the machine's PostgreSQL, as a store URL that uses only it."""
    try:
        with psycopg.connect(MACHINE_PG, connect_timeout=3, autocommit=True) as conn:
            schema = "t_" + uuid.uuid4().hex[:10]
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as exc:
        require(False, f"PostgreSQL at 127.0.0.1:5432 (database test) is not reachable: {exc}")
        raise
    return f"{MACHINE_PG}?options=-csearch_path%3D{schema}"


def drop_machine_pg_schema(url: str) -> None:
    schema = url.rsplit("%3D", 1)[1]
    with psycopg.connect(MACHINE_PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


class PostgresInstance:
    """A throw-away PostgreSQL cluster on a free port, run as the postgres user."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        require(
            bool(bins) and shutil.which("runuser") is not None,
            "PostgreSQL server binaries are not installed",
        )
        self.bin = Path(bins[-1]).parent
        # Outside pytest's tmp tree, which the postgres user cannot enter.
        self.root = Path(tempfile.mkdtemp(prefix="cocanvas-pg-"))
        os.chmod(self.root, 0o755)
        self.dir = self.root / "pgdata"
        self.sock = self.root / "pgsock"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def init(self) -> PostgresInstance:
        for d in (self.dir, self.sock):
            d.mkdir(parents=True, exist_ok=True)
            shutil.chown(d, "postgres", "postgres")
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.dir), "-A", "trust", "-U", "postgres"
        )
        return self

    def start(self) -> PostgresInstance:
        self._as_postgres(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.dir),
            "-w",
            "-l",
            str(self.dir / "log"),
            "-o",
            f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=on",
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.dir), "-w", "-m", mode, "stop")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
