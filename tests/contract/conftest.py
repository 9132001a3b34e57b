"""Real services for the contract suites: a private redis-server and a private PostgreSQL schema.

Nothing is faked. A missing service skips the test with the reason on a developer's machine, and
fails it in CI (CI=true), where a silently skipped suite would hide a broken deployment path.
"""

from __future__ import annotations

import glob
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

# The suites import `server` from the work tree even when the package is not installed.
_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from tests.services import PG_BASE_URL, PrivatePostgres, RedisServer  # noqa: E402
from tests.support import free_port, require  # noqa: E402

__all__ = ["PrivatePostgres", "RedisServer", "free_port", "require_service"]


def require_service(reason: str) -> None:
    """Skip (visibly) outside CI; in CI an absent service is a failure."""
    require(False, reason)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        require_service("redis-server not found on PATH (apt-get install redis-server)")
        raise AssertionError  # unreachable: require_service raises
    server = RedisServer(binary, free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _pg_available() -> str | None:
    import psycopg

    try:
        with psycopg.connect(PG_BASE_URL, connect_timeout=2):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL unreachable at {PG_BASE_URL}: {exc}".strip()


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema, dropped afterwards: runs (and parallel developers) never collide."""
    import psycopg

    problem = _pg_available()
    if problem is not None:
        require_service(problem)
    schema = f"cc_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with psycopg.connect(PG_BASE_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def pg_url(pg_schema: str) -> str:
    """Connections land in the test's schema and carry its name, so a test can find them."""
    sep = "&" if "?" in PG_BASE_URL else "?"
    options = quote(f"-c search_path={pg_schema}")
    return f"{PG_BASE_URL}{sep}options={options}&application_name={pg_schema}"


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins or shutil.which("runuser") is None:
        require_service("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    pg = PrivatePostgres(Path(bins[-1]).parent)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.remove()
