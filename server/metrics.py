"""Prometheus metrics, one registry per app so several apps can live in one test process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sessions = Gauge(
            "cocanvas_sessions", "Open WebSocket sessions", registry=self.registry
        )
        self.rooms = Gauge("cocanvas_rooms", "Canvases loaded on this node", registry=self.registry)
        self.frames = Counter("cocanvas_frames_received", "Frames received", registry=self.registry)
        self.broker_dropped = Gauge(
            "cocanvas_broker_dropped",
            "Broker messages lost (Redis down); healed from the store",
            registry=self.registry,
        )
        self.broker_outages = Gauge(
            "cocanvas_broker_outages",
            "Broker connection losses since start",
            registry=self.registry,
        )
        self.store_commits = Gauge(
            "cocanvas_store_commits", "Store group commits since start", registry=self.registry
        )
        self.room_loads = Gauge(
            "cocanvas_room_loads", "Rooms loaded from the store since start", registry=self.registry
        )
