"""``create_app(settings)``: the lifespan wires the store, the broker and the rooms together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from . import closecodes, drafts, ws
from .api import (
    canvases,
    console,
    contribution,
    errors,
    exports,
    favicon,
    health,
    partners,
    versions,
    workshop,
)
from .api import drafts as drafts_api
from .auth import Tokens, check_admin_token, load_or_create_secret
from .broker import open_broker
from .config import Settings
from .limits import AddressBuckets
from .policy import PolicyGate
from .rooms import Rooms
from .runtime import HeapKeeper, LoopLag
from .services import Services
from .store import open_store

log = logging.getLogger("cocanvas.app")


def _client_dir(settings: Settings) -> Path | None:
    candidates = [settings.client_dir] if settings.client_dir else []
    candidates += [
        Path(__file__).parent / "static",
        Path(__file__).resolve().parent.parent / "client" / "dist",
    ]
    for c in candidates:
        if c is not None and (c / "index.html").exists():
            return c
    return None


class CoCanvasAPI(FastAPI):
    """FastAPI, except that canvas WebSockets go straight to their handler.

    Routing and middleware would wrap every send of every fan-out; the WebSocket endpoint does its
    own authentication, so it needs none of them.
    """

    async def __call__(self, scope: ws.Scope, receive: ws.Receive, send: ws.Send) -> None:
        if scope["type"] == "websocket" and scope["path"].startswith(ws.PATH_PREFIX):
            await ws.handle(self.state.services, scope, receive, send)
            return
        if scope["type"] == "websocket" and scope["path"].startswith(drafts.WS_PREFIX):
            services = self.state.services
            assert services.drafts is not None
            await ws.handle(services, scope, receive, send, drafts.DraftDoor(services.drafts))
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # First: a placeholder or guessable secret (auth.WeakSecret) stops the node before it
        # opens anything, with a message that names COCANVAS_SECRET.
        tokens = Tokens(load_or_create_secret(settings.secret, settings.data_dir))
        if settings.admin_token is not None:
            check_admin_token(settings.admin_token)
        store = open_store(
            settings.resolved_store_url(),
            batch_max=settings.store_batch_max,
            durability=settings.durability,
        )
        await store.start()
        broker = open_broker(settings.redis_url, settings.node_id)
        await broker.start()
        room_options: dict[str, float | int] = {
            "awareness_tick_s": settings.awareness_tick_ms / 1000,
            "compact_updates": settings.compact_updates,
            "compact_bytes": settings.compact_bytes,
            "max_document_bytes": settings.max_document_bytes,
        }
        rooms = Rooms(
            store,
            broker,
            idle_seconds=settings.room_idle_seconds,
            gate_factory=PolicyGate,
            room_options=room_options,
        )
        services = Services(settings, store, broker, rooms, tokens)
        # Draft spaces: rooms of their own, so no shared door can reach one (server/drafts.py).
        draft_rooms = Rooms(
            store,
            broker,
            idle_seconds=settings.room_idle_seconds,
            gate_factory=PolicyGate,
            room_options=room_options,
        )
        services.drafts = drafts.DraftSpaces(
            store,
            broker,
            rooms,
            draft_rooms,
            crash_point=settings.test_reveal_crash if settings.test_hooks else "",
        )
        services.addresses = AddressBuckets(settings.rate_messages_per_s * 4, settings.rate_burst_s)
        services.connections = AddressBuckets(settings.rate_connections_per_s, 5.0)
        app.state.services = services
        lag = LoopLag()
        lag.start()
        heap = HeapKeeper(settings.gc_freeze_s) if settings.gc_freeze_s > 0 else None
        if heap is not None:
            heap.start()
        services.metrics.heap, services.metrics.lag = heap, lag
        log.info(
            "cocanvas node %s ready: store=%s broker=%s",
            broker.node_id,
            type(store).__name__,
            type(broker).__name__,
        )
        try:
            yield
        finally:
            lag.stop()
            if heap is not None:
                heap.stop()
            await draft_rooms.close_all()
            await rooms.close_all()
            await broker.close()
            await store.close()
            log.info("cocanvas node %s stopped", broker.node_id)

    app = CoCanvasAPI(
        title="CoCanvas",
        version="0.1.0",
        description=(
            "Real-time collaborative canvases for multi-partner workshops.\n\n"
            "Canvases sync over the y-websocket protocol at `/ws/{canvas_id}?token=JWT`. "
            "A refused socket is accepted, then closed at once with one of these codes:\n\n"
            + closecodes.markdown_table()
        ),
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(canvases.router)
    app.include_router(partners.router)
    app.include_router(exports.router)
    app.include_router(versions.router)
    app.include_router(contribution.router)
    app.include_router(drafts_api.router)
    app.include_router(workshop.router)
    app.include_router(console.router)
    if settings.test_hooks:
        from .api import testhooks

        app.include_router(testhooks.router)
    partners.install_flood_guard(app, settings.rate_connections_per_s)
    errors.install(app, settings.max_body_bytes)

    client = _client_dir(settings)
    favicon.install(app, client)
    if client is not None:
        if (client / "assets").is_dir():
            app.mount("/assets", StaticFiles(directory=client / "assets"), name="assets")
        index = client / "index.html"

        async def spa() -> FileResponse:
            return FileResponse(index)

        for path in ("/", "/c/{canvas_id}", "/c/{canvas_id}/drafts", "/i/{invite_id}"):
            app.add_api_route(path, spa, include_in_schema=False)
    else:

        async def no_client() -> JSONResponse:
            return JSONResponse(
                {"detail": "web client not built: run `make run` (or npm run build in client/)"},
                status_code=503,
            )

        app.add_api_route("/", no_client, include_in_schema=False)
    return app
