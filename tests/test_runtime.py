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

from server.runtime import HeapKeeper, LoopLag


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


async def test_the_frozen_heap_growing_by_half_triggers_a_full_collection() -> None:
    keeper = HeapKeeper(freeze_s=3600, full_s=3600, grow=0.5)
    keeper.start()
    try:
        before = keeper.stats.full_collections
        keeper._tick()
        assert keeper.stats.full_collections == before  # steady heap: no full pause
        garbage = [cycle() for _ in range(keeper._baseline)]  # grow the heap past +50 %
        keep = [r() for r in garbage]
        del keep
        keeper._tick()
        assert keeper.stats.full_collections == before + 1
        assert all(r() is None for r in garbage)
    finally:
        keeper.stop()


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
