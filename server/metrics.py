"""Prometheus metrics, one registry per app so several apps can live in one test process.

Sessions and frames are counted where they happen. Everything the store, the broker and the rooms
count themselves is read from their ``stats()`` at scrape time by one collector and exposed with
its true type: totals since start as counters (``*_total``), current values as gauges,
distributions as histograms. Nothing is copied into a gauge between scrapes, so a counter never
goes backwards and a restart shows as a reset, which ``rate()`` handles.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .store.base import HistogramStats

if TYPE_CHECKING:
    from .broker.base import Broker
    from .runtime import HeapKeeper, LoopLag
    from .store.base import Store


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sessions = Gauge(
            "cocanvas_sessions", "Open WebSocket sessions", registry=self.registry
        )
        self.frames = Counter("cocanvas_frames_received", "Frames received", registry=self.registry)
        self.store: Store | None = None
        self.broker: Broker | None = None
        self.rooms: Any = None  # server.rooms.Rooms: len() and .loads
        self.heap: HeapKeeper | None = None
        self.lag: LoopLag | None = None
        self.registry.register(_StatsCollector(self))

    def watch(self, store: Store | None, broker: Broker | None, rooms: Any = None) -> None:
        """Which store, broker and rooms the collector reads (set once the app has them)."""
        self.store, self.broker, self.rooms = store, broker, rooms


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _histogram(name: str, doc: str, h: HistogramStats) -> HistogramMetricFamily:
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, n in zip(h.bounds, h.counts, strict=False):
        running += n
        buckets.append((floatToGoString(bound), running))
    buckets.append(("+Inf", running + h.counts[-1]))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=h.sum)


def _by_kind(name: str, doc: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=["kind"])
    for kind, n in sorted(counts.items()):
        family.add_metric([kind], n)
    return family


class _StatsCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def _runtime(self) -> Iterator[Metric]:
        lag = self._m.lag
        if lag is not None:
            yield _histogram(
                "cocanvas_event_loop_lag_seconds",
                "How late a timer armed every 100 ms fired: what every frame waits when busy",
                lag.stats,
            )
            yield _gauge("cocanvas_event_loop_lag_max_seconds", "Largest lag since start", lag.max)
        heap = self._m.heap
        if heap is not None:
            h = heap.stats
            yield _counter(
                "cocanvas_gc_full_collections",
                "Full cyclic collections the node ran itself (server/runtime.py)",
                h.full_collections,
            )
            yield _counter(
                "cocanvas_gc_full_seconds",
                "Total pause of those full collections (every canvas of the node waits)",
                h.full_seconds,
            )
            yield _gauge(
                "cocanvas_gc_last_freed_blocks",
                "Memory blocks the last full collection freed (its cyclic garbage)",
                h.last_freed_blocks,
            )
            yield _gauge(
                "cocanvas_gc_next_full_resident_bytes",
                "Resident memory at which the next full collection runs (or when full_s passes)",
                h.next_full_rss,
            )

    def describe(self) -> Iterable[Metric]:
        return []  # names vary with what is watched; never collect at registration

    def collect(self) -> Iterator[Metric]:
        yield from self._runtime()
        rooms = self._m.rooms
        if rooms is not None:
            yield _gauge("cocanvas_rooms", "Canvases loaded on this node", len(rooms))
            yield _counter(
                "cocanvas_room_loads", "Rooms loaded from the store since start", rooms.loads
            )
        store = self._m.store
        if store is not None:
            s = store.stats()
            yield _counter(
                "cocanvas_store_commits",
                "Write transactions committed (SQLite: every write; PostgreSQL: append batches)",
                s.commits,
            )
            yield _counter(
                "cocanvas_store_commit_errors",
                "Write transactions that failed; nothing of them was committed",
                s.commit_errors,
            )
            yield _counter(
                "cocanvas_store_appended_updates",
                "Document updates durably appended",
                s.appended_updates,
            )
            yield _counter(
                "cocanvas_store_appended_bytes",
                "Bytes of document updates durably appended",
                s.appended_bytes,
            )
            yield _counter(
                "cocanvas_store_append_errors",
                "Appends that raised instead of committing (the room retries, then closes 1011)",
                s.append_errors,
            )
            yield _histogram(
                "cocanvas_store_batch_operations",
                "Operations per committed transaction",
                s.batch_size,
            )
            yield _histogram(
                "cocanvas_store_commit_seconds",
                "Time from BEGIN to COMMIT returned, per committed transaction",
                s.commit_seconds,
            )
            yield _gauge(
                "cocanvas_store_pending_operations",
                "Operations queued for or inside the running commit",
                s.pending,
            )
            yield _gauge(
                "cocanvas_store_commit_running_seconds",
                "How long the commit running now has taken (0 when idle)",
                s.commit_running_s,
            )
            yield _gauge(
                "cocanvas_store_failed",
                "1 when the store stopped accepting writes until restart (database file gone)",
                1 if s.failed else 0,
            )
        broker = self._m.broker
        if broker is not None:
            b = broker.stats()
            yield _by_kind(
                "cocanvas_broker_published", "Broker messages published by this node", b.published
            )
            yield _by_kind(
                "cocanvas_broker_received", "Broker messages heard from other nodes", b.received
            )
            yield _counter(
                "cocanvas_broker_gaps",
                "Sequence gaps noticed; each makes a room heal from the store",
                b.gaps,
            )
            yield _counter("cocanvas_broker_disconnects", "Broker connection losses", b.disconnects)
            yield _counter(
                "cocanvas_broker_reconnects",
                "Broker connections regained after a loss (every room heals)",
                b.reconnects,
            )
            yield _counter(
                "cocanvas_broker_dropped",
                "Published messages lost before reaching the transport; healed from the store",
                b.dropped,
            )
            yield _gauge(
                "cocanvas_broker_connected", "1 while the broker transport is up", int(b.connected)
            )
            yield _gauge("cocanvas_broker_peers", "Other nodes heard from recently", b.peers)
