"""server/runtime.py: the heap keeper and the loop-lag gauge, on the process's real collector.

What a user would notice: automatic collections that walk only what is new (the heap is frozen),
garbage cycles that are still reclaimed (memory does not leak through the freeze), and a lag
metric that shows when the event loop was stopped.
"""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

from server.runtime import BACKOFF_MAX, HeapKeeper, LoopLag, resident_bytes


class Node:
    """Something that forms a reference cycle, as a closed session and its transport do."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


async def test_freeze_keeps_automatic_collections_off_the_long_lived_heap() -> None:
    thresholds = gc.get_threshold()
    keeper = HeapKeeper(freeze_s=3600)
    keeper.start()
    try:
        assert gc.get_freeze_count() > 1000  # the interpreter's own heap, at least
        assert gc.get_threshold()[0] > 700
        # An explicit collection (what CPython runs on its own) does not see frozen objects:
        # a cycle that became garbage after the freeze is not collected by it ...
        ref = cycle()
        keeper._tick()  # the periodic freeze
        gc.collect()
        assert ref() is not None
        # ... but the keeper's full collection reclaims it: nothing leaks through the freeze.
        keeper._full()
        assert ref() is None
        assert keeper.stats.full_collections == 2  # start, and this one
    finally:
        keeper.stop()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds


class Blob:
    """A reference cycle that holds memory, as a closed session holds its buffers."""

    def __init__(self, size: int) -> None:
        self.me = self
        self.payload = [bytearray(64) for _ in range(size)]  # many small blocks, as objects are


def blobs(count: int, size: int) -> list[weakref.ref[Blob]]:
    return [weakref.ref(Blob(size)) for _ in range(count)]


async def test_resident_memory_growing_by_half_triggers_a_full_collection() -> None:
    keeper = HeapKeeper(freeze_s=3600, full_s=3600, grow=0.5, grow_min_bytes=0)
    keeper.start()
    try:
        before = keeper.stats.full_collections
        keeper._tick()
        assert keeper.stats.full_collections == before  # steady heap: no full pause
        rss = resident_bytes()
        assert 0 < rss < keeper.stats.next_full_rss
        garbage: list[weakref.ref[Blob]] = []
        while resident_bytes() < keeper.stats.next_full_rss:  # cycles past +50 % of memory
            garbage += blobs(50, 2_000)
        keeper._tick()
        assert keeper.stats.full_collections == before + 1
        assert all(r() is None for r in garbage)
        assert keeper.stats.last_freed_blocks > 100_000
    finally:
        keeper.stop()


async def test_a_small_heap_growing_with_live_documents_is_not_stopped_for_a_full_collection() -> (
    None
):
    """A young node at ~80 MB gained +50 % from one canvas filling up (issue 11's write rows):
    live data, not cycles, and a full pause of 115 ms inside the load. Growth counts only past
    the floor."""
    keeper = HeapKeeper(freeze_s=3600, full_s=3600, grow=0.1, grow_min_bytes=256 << 20)
    keeper.start()
    live: list[bytearray] = []
    try:
        before = keeper.stats.full_collections
        start = resident_bytes()
        assert keeper.stats.next_full_rss >= start + (256 << 20)
        # Grow past +10 % (what ``grow`` alone would have collected at) but below the floor.
        target = start + max(start // 5, 32 << 20)
        assert target < start + (256 << 20)
        while resident_bytes() < target:
            live.append(bytearray(b"x" * (1 << 20)))  # touched pages: resident
        assert resident_bytes() > start * 1.1
        keeper._tick()
        assert keeper.stats.full_collections == before
    finally:
        keeper.stop()
        live.clear()


async def test_collections_that_find_little_garbage_back_off_and_one_that_finds_much_resets() -> (
    None
):
    keeper = HeapKeeper(freeze_s=3600, full_s=3600, grow=0.5, grow_min_bytes=0)
    keeper.start()
    live = []
    try:
        assert keeper.stats.backoff == 1
        live.append([Blob(2_000) for _ in range(20)])  # live work: nothing to reclaim
        keeper._full()
        assert keeper.stats.backoff == 2  # twice the growth and the time before the next
        far = keeper.stats.next_full_rss
        keeper._full()
        assert keeper.stats.backoff == 4
        assert keeper.stats.next_full_rss > far
        for _ in range(6):
            keeper._full()
        assert keeper.stats.backoff == BACKOFF_MAX  # bounded: memory still gets collected
        garbage = blobs(200, 2_000)  # sessions churning through cycles: worth collecting
        keeper._full()
        assert all(r() is None for r in garbage)
        assert keeper.stats.backoff == 1
    finally:
        keeper.stop()
        live.clear()


async def test_a_second_keeper_in_the_same_process_does_not_act() -> None:
    first, second = HeapKeeper(freeze_s=3600), HeapKeeper(freeze_s=3600)
    first.start()
    second.start()
    try:
        assert second.stats.full_collections == 0
        second.stop()
        assert gc.get_freeze_count() > 0  # the first still keeps the heap frozen
    finally:
        first.stop()
    assert gc.get_freeze_count() == 0


async def test_the_next_keeper_takes_over_when_the_acting_one_stops() -> None:
    """Two in-process nodes: when the first stops, the second keeps the heap young and
    frozen (before, the process ran on with the default thresholds and nothing frozen)."""
    original = gc.get_threshold()
    first, second = HeapKeeper(freeze_s=0.01), HeapKeeper(freeze_s=0.01)
    first.start()
    second.start()
    try:
        acting = gc.get_threshold()
        assert acting != original
        first.stop()
        async with asyncio.timeout(10):
            while second.stats.freezes == 0:
                await asyncio.sleep(0.01)
        assert second.stats.full_collections == 1  # its own start-up collection, at take-over
        assert gc.get_threshold() == acting
        assert gc.get_freeze_count() > 0
    finally:
        first.stop()
        second.stop()
    assert gc.get_threshold() == original
    assert gc.get_freeze_count() == 0


async def test_loop_lag_shows_a_stopped_event_loop() -> None:
    lag = LoopLag(interval_s=0.001)
    lag.start()
    try:
        while lag.stats.count < 3:
            await asyncio.sleep(0)
        time.sleep(0.06)  # the event loop stopped, as a long collection stops it
        seen = lag.stats.count
        while lag.stats.count == seen:
            await asyncio.sleep(0)
        assert lag.max >= 0.05
        assert sum(lag.stats.counts[5:]) >= 1  # counted in a bucket above 50 ms
    finally:
        lag.stop()
