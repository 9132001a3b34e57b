"""Throughput of the shared backends, for the numbers quoted in design notes.

    .venv/bin/python -m tests.contract.bench_backends [--pg URL] [--redis URL]

Postgres: many concurrent appenders (as many rooms would be) against group commit.
Redis: one node publishes a burst, another receives it; messages/s end to end.
Without --redis a private redis-server is started on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time
import uuid

import psycopg

from server.broker.base import KIND_UPDATE, BrokerListener, BrokerMessage
from server.broker.redis import RedisBroker
from server.store.base import CanvasRecord
from server.store.postgres import PostgresStore

from .conftest import RedisServer, free_port


async def bench_postgres(
    base_url: str, appenders: int, seconds: float, synchronous_commit: bool = True
) -> None:
    schema = f"cc_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    store = PostgresStore(
        f"{base_url}?options=-csearch_path%3D{schema}", synchronous_commit=synchronous_commit
    )
    try:
        await store.start()
        canvases = [f"c{i}" for i in range(50)]
        for cid in canvases:
            await store.create_canvas(CanvasRecord(cid, "bench", "bmc", time.time()), None)
        payload = b"\x01" * 120
        done = 0
        latencies: list[float] = []
        stop = time.monotonic() + seconds

        async def appender(i: int) -> None:
            nonlocal done
            cid = canvases[i % len(canvases)]
            while time.monotonic() < stop:
                t = time.perf_counter()
                await store.append(cid, payload)
                latencies.append(time.perf_counter() - t)
                done += 1

        start = time.monotonic()
        await asyncio.gather(*[appender(i) for i in range(appenders)])
        elapsed = time.monotonic() - start
        latencies.sort()
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[int(len(latencies) * 0.99)] * 1000
        print(
            f"postgres append (synchronous_commit={synchronous_commit}):"
            f" {appenders} concurrent appenders, {done / elapsed:,.0f} appends/s,"
            f" {store.batched_appends / max(store.batches, 1):.1f} appends/commit,"
            f" p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        )
    finally:
        await store.close()
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


class Counter(BrokerListener):
    def __init__(self, expect: int) -> None:
        self.count = 0
        self.gaps = 0
        self.expect = expect
        self.done = asyncio.Event()

    def on_broker_message(self, message: BrokerMessage) -> None:
        self.count += 1
        if self.count >= self.expect:
            self.done.set()

    def on_broker_gap(self) -> None:
        self.gaps += 1


async def bench_redis(url: str, messages: int) -> None:
    a, b = RedisBroker(url, "bench-a"), RedisBroker(url, "bench-b")
    await a.start()
    await b.start()
    try:
        canvases = [f"c{i}" for i in range(100)]
        counter = Counter(messages)
        for cid in canvases:
            await b.subscribe(cid, counter)
        payload = b"\x01" * 120
        start = time.monotonic()
        cpu = time.process_time()
        for i in range(messages):
            a.publish(canvases[i % 100], KIND_UPDATE, payload)
            if i % 1000 == 999:
                await asyncio.sleep(0)  # a real node yields between messages
        try:
            await asyncio.wait_for(counter.done.wait(), 20)
        except TimeoutError:
            pass
        elapsed = time.monotonic() - start
        cpu_us = (time.process_time() - cpu) / max(counter.count, 1) * 1e6
        print(
            f"redis broker: {cpu_us:.0f} us CPU per message (publish + receive),"
            f" redis broker: {messages:,} messages over 100 canvases, {counter.count / elapsed:,.0f} msg/s"
            f" end to end, received {counter.count:,}, dropped {a.dropped}, gaps {counter.gaps}"
        )
    finally:
        await a.close()
        await b.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default=None)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--redis-only", action="store_true")
    parser.add_argument("--pg-only", action="store_true")
    args = parser.parse_args()
    for n in (1, 16, 256):
        if args.seconds > 0 and not args.redis_only:
            await bench_postgres(args.pg, n, args.seconds)
            await bench_postgres(args.pg, n, args.seconds, synchronous_commit=False)
    if args.pg_only:
        return
    if args.redis:
        await bench_redis(args.redis, 50_000)
    else:
        binary = shutil.which("redis-server")
        assert binary, "redis-server not installed"
        server = RedisServer(binary, free_port())
        server.start()
        try:
            await bench_redis(server.url, 50_000)
        finally:
            server.kill()


if __name__ == "__main__":
    asyncio.run(main())
