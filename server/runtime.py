"""The Python runtime under a long-running node: the cyclic collector and the event loop's lag.

Why this exists: a node serving 1,000 canvases x 4 clients holds about 600,000 objects the
cyclic collector tracks (sessions, their transports and coroutines, rooms, mirrors, indexes).
CPython runs a full collection whenever the objects promoted since the last one pass 25 % of the
long-lived heap, and every young collection promotes whatever is in flight at that moment
(pending appends, queued frames), so steady traffic alone triggers one every minute or so. A full
collection walks the whole heap with the event loop stopped: 160-510 ms on the reference VM, for
every canvas of the node at once. That was the 1,000-canvas tail (issue 11, item 3).

What it does instead:

* ``gc.freeze()`` every ``freeze_s`` seconds. It is O(1): every tracked object moves to the
  permanent generation, which automatic collections never walk, so they only walk what was
  allocated since the last freeze (milliseconds).
* Frozen objects are still freed by reference counting; only garbage *cycles* among them wait.
  A full collection (unfreeze, collect, freeze) reclaims those when the process's resident
  memory has grown by ``grow`` since the last one (and by at least ``GROW_MIN_BYTES``), or every
  ``full_s`` seconds, so memory stays bounded. That pause is the one CPython took before, at a
  known, much lower rate; it is counted in the metrics.
* Growth is read as resident memory (``/proc/self/statm``, microseconds), not as the frozen
  heap's size: ``gc.get_freeze_count()`` walks the frozen list, 28-86 ms at 250,000-600,000
  objects on the reference VM, a stall of its own on every tick. Memory is also what the bound
  is for.
* The growth it waits for adapts to what collections find. A node that grows because it gained
  live work (4,000 clients joining 1,000 canvases: 90,000 -> 600,000 objects) holds almost no
  cyclic garbage, and collecting it stopped every canvas for 170-510 ms to reclaim 0.2-1.4 % of
  the heap, one of them inside the issue-11 load window. So a full collection that reclaims under
  ``YIELD_SHARE`` of the allocated memory blocks doubles the growth the next one waits for, and the
  time between them, up to ``BACKOFF_MAX`` times; one that reclaims more (sessions churning
  through reference cycles) resets both.
* A larger young-generation threshold (fewer young collections, so fewer in-flight objects
  promoted).

``LoopLag`` measures how late a timer fires (the event loop's lag: what every frame of every
canvas waits when the loop is busy or stopped); exported as a metric so a tail has a cause.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from dataclasses import dataclass

from .store.base import HistogramStats

YOUNG_THRESHOLD = 10_000
# A full collection that frees less than this share of the allocated memory blocks was not
# worth its pause: the next one waits for twice the growth and twice the time ...
YIELD_SHARE = 0.05
# ... up to this many times the configured growth and interval.
BACKOFF_MAX = 8
LAG_INTERVAL_S = 0.1
# Growth below this never triggers a full collection, whatever ``grow`` says: a young node's
# heap is small, so +50 % of it was ~40 MB, which one canvas filling with 5,000 notes reaches in
# seconds (issue 11, write rows: a 115 ms full pause inside the load window). That growth is
# live documents, not cycles; ``full_s`` still bounds how long cycles can wait.
GROW_MIN_BYTES = 256 << 20
# Upper bounds (seconds) of the loop-lag histogram's buckets.
LAG_BOUNDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident memory (0 where the system does not say: then only time counts)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class HeapStats:
    freezes: int = 0
    full_collections: int = 0
    full_seconds: float = 0.0  # total pause of the full collections this keeper ran
    last_full_seconds: float = 0.0
    last_freed_blocks: int = 0  # memory blocks the last full collection freed (its garbage)
    next_full_rss: int = 0  # resident bytes at which the next full collection runs
    backoff: int = 1  # the growth and interval the next one waits for, x the configured


_active: list[HeapKeeper] = []  # the collector is the process's: one keeper at a time acts


class HeapKeeper:
    """Keeps automatic collections young; runs the full ones itself, rarely (see module doc).

    Several apps in one process (tests, in-process nodes) may each start one: only the first
    acts; when it stops, the next one still running takes over on its own loop.
    """

    def __init__(
        self,
        freeze_s: float = 10.0,
        full_s: float = 900.0,
        grow: float = 0.5,
        grow_min_bytes: int = GROW_MIN_BYTES,
    ) -> None:
        self.freeze_s = freeze_s
        self.full_s = full_s
        self.grow = grow
        self.grow_min_bytes = grow_min_bytes
        self.stats = HeapStats()
        self._handle: asyncio.TimerHandle | None = None
        self._last_full = 0.0
        self._thresholds: tuple[int, int, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        _active.append(self)
        if _active[0] is self:
            self._act()

    def _act(self) -> None:
        if self not in _active or _active[0] is not self or self._thresholds is not None:
            return  # stopped meanwhile, or already acting
        self._thresholds = gc.get_threshold()
        _, t1, t2 = self._thresholds
        gc.set_threshold(YOUNG_THRESHOLD, t1, t2)
        self._full(adapt=False)  # the start-up heap says nothing about the node's garbage
        self._schedule()

    def stop(self) -> None:
        if self not in _active:
            return
        acting = _active[0] is self
        _active.remove(self)
        if not acting:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        gc.unfreeze()
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None
        if _active:
            successor = _active[0]
            loop = successor._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(successor._act)

    def _schedule(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(self.freeze_s, self._tick)

    def _tick(self) -> None:
        gc.freeze()
        self.stats.freezes += 1
        s = self.stats
        grown = 0 < s.next_full_rss <= resident_bytes()
        if grown or time.monotonic() - self._last_full > self.full_s * s.backoff:
            self._full()
        self._schedule()

    def _full(self, adapt: bool = True) -> None:
        s = self.stats
        started = time.perf_counter()
        blocks = sys.getallocatedblocks()  # O(1), unlike counting the heap's objects
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        took = time.perf_counter() - started
        freed = max(0, blocks - sys.getallocatedblocks())
        self._last_full = time.monotonic()
        if adapt:
            worth = freed >= YIELD_SHARE * blocks
            s.backoff = 1 if worth else min(s.backoff * 2, BACKOFF_MAX)
        rss = resident_bytes()
        s.next_full_rss = rss + int(max(rss * self.grow, self.grow_min_bytes) * s.backoff)
        s.full_collections += 1
        s.full_seconds += took
        s.last_full_seconds = took
        s.last_freed_blocks = freed


class LoopLag:
    """How late a timer armed every LAG_INTERVAL_S fires: the event loop's lag."""

    def __init__(self, interval_s: float = LAG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.stats = HistogramStats(LAG_BOUNDS)
        self.max = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        self._arm()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._due = loop.time() + self.interval_s
        self._handle = loop.call_at(self._due, self._fired)

    def _fired(self) -> None:
        lag = max(0.0, asyncio.get_running_loop().time() - self._due)
        self.stats.observe(lag)
        self.max = max(self.max, lag)
        self._arm()
