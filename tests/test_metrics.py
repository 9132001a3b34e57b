"""/metrics from real servers: counters that count, with the right types; JSON logs, every line.

Counters come from the store's and broker's own ``stats()``: after a known number of edits they
have moved by exactly that many, and they are exposed as Prometheus counters and histograms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.services import RedisServer, drop_machine_pg_schema, machine_pg_schema
from tests.support import ServerProcess, YClient

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: ServerProcess) -> tuple[str, Samples]:
    text = httpx.get(server.http + "/metrics").text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


COUNTERS = (
    "cocanvas_frames_received_total",
    "cocanvas_room_loads_total",
    "cocanvas_store_commits_total",
    "cocanvas_store_commit_errors_total",
    "cocanvas_store_appended_updates_total",
    "cocanvas_store_appended_bytes_total",
    "cocanvas_store_append_errors_total",
    "cocanvas_broker_published_total",
    "cocanvas_broker_received_total",
    "cocanvas_broker_gaps_total",
    "cocanvas_broker_reconnects_total",
    "cocanvas_broker_disconnects_total",
    "cocanvas_broker_dropped_total",
    "cocanvas_gc_full_collections_total",
    "cocanvas_gc_full_seconds_total",
)
GAUGES = (
    "cocanvas_sessions",
    "cocanvas_rooms",
    "cocanvas_store_pending_operations",
    "cocanvas_store_commit_running_seconds",
    "cocanvas_store_failed",
    "cocanvas_broker_connected",
    "cocanvas_broker_peers",
    "cocanvas_event_loop_lag_max_seconds",
    "cocanvas_gc_last_freed_blocks",
    "cocanvas_gc_next_full_resident_bytes",
)
HISTOGRAMS = (
    "cocanvas_store_batch_operations",
    "cocanvas_store_commit_seconds",
    "cocanvas_event_loop_lag_seconds",
)


def log_rows(db: Path, after_id: int) -> list[tuple[int, int]]:
    """(row id, length) of the update rows past ``after_id``, read from the file itself."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute(
            "SELECT id, length(data) FROM updates WHERE id > ? ORDER BY id", (after_id,)
        ).fetchall()


async def test_counters_move_by_what_was_done_and_have_counter_types(
    server: ServerProcess,
) -> None:
    canvas = server.create_canvas()
    token = canvas["facilitator_token"]
    writer = await YClient(server.ws, canvas["id"], token, "writer").connect()
    watcher = await YClient(server.ws, canvas["id"], token, "watcher").connect()
    writer.add_note("warm-up", "binds the writer's client id")
    await watcher.wait_for(lambda: "warm-up" in watcher.notes)
    db = server.data_dir / "cocanvas.db"
    last_row = log_rows(db, 0)[-1][0]

    text, before = scrape(server)
    for family in COUNTERS:
        assert f"# TYPE {family} counter" in text, family
    for family in GAUGES:
        assert f"# TYPE {family} gauge" in text, family
    for family in HISTOGRAMS:
        assert f"# TYPE {family} histogram" in text, family
    # The runtime's own: the heap keeper ran its start-up collection and froze the heap, and
    # the loop-lag timer has been firing since start.
    assert value(before, "cocanvas_gc_full_collections_total") >= 1
    assert value(before, "cocanvas_gc_next_full_resident_bytes") > 10_000_000  # above a start-up
    lagged = before
    while value(lagged, "cocanvas_event_loop_lag_seconds_count") < 1:  # fires every 100 ms
        await asyncio.sleep(0.05)
        lagged = scrape(server)[1]

    edits = 25
    frames_before = len(writer.sent_frames)
    for i in range(edits):
        writer.add_note(f"n{i}", f"note {i}")
    await watcher.wait_for(lambda: all(f"n{i}" in watcher.notes for i in range(edits)))
    assert len(writer.sent_frames) - frames_before == edits
    _, after = scrape(server)

    rows = log_rows(db, last_row)
    assert len(rows) == edits  # one durable row per update, nothing else was appended
    assert delta(before, after, "cocanvas_store_appended_updates_total") == edits
    assert delta(before, after, "cocanvas_store_appended_bytes_total") == sum(n for _, n in rows)
    assert delta(before, after, "cocanvas_store_append_errors_total") == 0
    assert delta(before, after, "cocanvas_store_commit_errors_total") == 0
    commits = delta(before, after, "cocanvas_store_commits_total")
    assert 1 <= commits <= edits
    # Every commit is observed once in each histogram; the batch sizes add up to the work done.
    assert delta(before, after, "cocanvas_store_batch_operations_count") == commits
    assert delta(before, after, "cocanvas_store_commit_seconds_count") == commits
    assert delta(before, after, "cocanvas_store_batch_operations_sum") >= edits
    assert delta(before, after, "cocanvas_store_commit_seconds_sum") > 0
    assert value(after, "cocanvas_store_batch_operations_bucket", le="+Inf") == value(
        after, "cocanvas_store_batch_operations_count"
    )
    # The in-process broker numbered and published one message per update.
    assert delta(before, after, "cocanvas_broker_published_total", kind="update") == edits
    assert delta(before, after, "cocanvas_broker_received_total", kind="update") == 0
    assert delta(before, after, "cocanvas_frames_received_total") >= edits
    assert value(after, "cocanvas_room_loads_total") == 1
    assert value(after, "cocanvas_rooms") == 1
    assert value(after, "cocanvas_sessions") == 2
    assert value(after, "cocanvas_store_failed") == 0
    assert value(after, "cocanvas_broker_connected") == 1
    await writer.close()
    await watcher.close()


# -- two nodes: what crosses Redis ---------------------------------------------------------------

SECRET = "b4c680e055d56eb560096d0d4f9a086364f424e3360d85387bc0060a8053391c"


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


@contextlib.asynccontextmanager
async def two_nodes(
    tmp_path: Path, pg_url: str, redis_url: str
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    nodes = [
        ServerProcess(
            tmp_path / name,
            env={
                "COCANVAS_STORE_URL": pg_url,
                "COCANVAS_REDIS_URL": redis_url,
                "COCANVAS_SECRET": SECRET,
                "COCANVAS_NODE_ID": name,
                "COCANVAS_TEST_HOOKS": "true",
            },
        )
        for name in ("m1", "m2")
    ]
    try:
        await asyncio.gather(*(asyncio.to_thread(n.start) for n in nodes))
        yield nodes[0], nodes[1]
    finally:
        for n in nodes:
            await asyncio.to_thread(n.stop)


async def wait_metric(
    server: ServerProcess, name: str, want: float, timeout: float = 15, **labels: str
) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        _, samples = scrape(server)
        if value(samples, name, **labels) == want:
            return samples
        assert time.monotonic() < deadline, (name, labels, value(samples, name, **labels), want)
        await asyncio.sleep(0.1)


async def test_broker_counters_across_two_nodes_published_received_gaps_reconnects(
    tmp_path: Path, redis_proc: RedisServer, pg_url: str
) -> None:
    async with two_nodes(tmp_path, pg_url, redis_proc.url) as (a, b):
        canvas = a.create_canvas()
        token = canvas["facilitator_token"]
        on_a = await YClient(a.ws, canvas["id"], token, "on-a").connect()
        on_b = await YClient(b.ws, canvas["id"], token, "on-b").connect()
        try:
            on_a.add_note("warm-up", "x")
            await on_b.wait_for(lambda: "warm-up" in on_b.notes)
            await wait_metric(a, "cocanvas_broker_peers", 1)  # b's heartbeat reached a
            _, a0 = scrape(a)
            _, b0 = scrape(b)

            edits = 20
            for i in range(edits):
                on_a.add_note(f"n{i}", str(i))
            await on_b.wait_for(lambda: all(f"n{i}" in on_b.notes for i in range(edits)))
            _, a1 = scrape(a)
            b1 = await wait_metric(
                b,
                "cocanvas_broker_received_total",
                value(b0, "cocanvas_broker_received_total", kind="update") + edits,
                kind="update",
            )
            assert delta(a0, a1, "cocanvas_broker_published_total", kind="update") == edits
            assert delta(a0, a1, "cocanvas_store_appended_updates_total") == edits
            assert delta(b0, b1, "cocanvas_store_appended_updates_total") == 0
            assert delta(b0, b1, "cocanvas_broker_gaps_total") == 0

            # One message lost on the way: node b notices exactly one gap and heals.
            r = httpx.post(a.http + "/api/_test/drop-publishes", params={"count": 1})
            assert r.status_code == 200
            on_a.add_note("lost", "dropped in transit")
            on_a.add_note("next", "reveals the gap")
            await on_b.wait_for(lambda: {"lost", "next"} <= set(on_b.notes.keys()))
            b2 = await wait_metric(b, "cocanvas_broker_gaps_total", 1)
            _, a2 = scrape(a)
            assert delta(a1, a2, "cocanvas_broker_dropped_total") == 1
            assert delta(b1, b2, "cocanvas_broker_reconnects_total") == 0

            # Redis goes away and comes back: one loss and one return on each node.
            redis_proc.kill()
            for n in (a, b):
                await wait_metric(n, "cocanvas_broker_connected", 0)
            redis_proc.start()
            for n in (a, b):
                s = await wait_metric(n, "cocanvas_broker_connected", 1)
                assert value(s, "cocanvas_broker_disconnects_total") == 1
                assert value(s, "cocanvas_broker_reconnects_total") == 1
        finally:
            for c in (on_a, on_b):
                with contextlib.suppress(Exception):
                    await c.close()


# -- logs ------------------------------------------------------------------------------------


def json_lines(log: str) -> list[dict[str, object]]:
    out = []
    for line in log.splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return out


@pytest.mark.parametrize("level", ["info", "debug"])
async def test_json_logs_every_line_of_output_is_json(tmp_path: Path, level: str) -> None:
    server = ServerProcess(
        tmp_path / "data", env={"COCANVAS_LOG_JSON": "true", "COCANVAS_LOG_LEVEL": level}
    ).start()
    try:
        canvas = server.create_canvas()
        assert httpx.get(server.http + "/healthz").status_code == 200
        assert httpx.get(server.http + "/api/canvases/nope").status_code in (401, 404)
        c = await YClient(server.ws, canvas["id"], canvas["facilitator_token"]).connect()
        c.add_note("n", "x")
        await c.close()
        with contextlib.suppress(websockets.InvalidStatus, websockets.InvalidHandshake):
            async with websockets.connect(f"{server.ws}/{canvas['id']}?token=forged"):
                pass
        # Not HTTP at all: uvicorn itself complains (a warning, so at every level).
        _, w = await asyncio.open_connection("127.0.0.1", server.port)
        w.write(b"\x16\x03\x01 not http\r\n\r\n")
        await w.drain()
        w.close()
        deadline = time.monotonic() + 10
        while "Invalid HTTP request" not in server.log():
            assert time.monotonic() < deadline, server.log()[-2000:]
            await asyncio.sleep(0.05)
    finally:
        server.stop()
    assert canvas["facilitator_token"] not in server.log()  # query-string tokens are redacted
    entries = json_lines(server.log())
    loggers = {e["logger"] for e in entries}
    assert "cocanvas.app" in loggers and "uvicorn.error" in loggers, loggers
    assert all({"ts", "level", "logger", "msg"} <= e.keys() for e in entries)
    if level == "debug":
        access = [e for e in entries if e["logger"] == "uvicorn.access"]
        assert any(e.get("path") == "/healthz" and e.get("status") == 200 for e in access), access
