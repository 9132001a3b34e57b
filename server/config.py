"""Settings, read from ``COCANVAS_*`` environment variables.

Every default runs on one machine with nothing else installed: SQLite under ``./data``, the
in-process broker, a secret generated on first run. The multi-node deployment overrides the store
and broker URLs; nothing else has to change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COCANVAS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("./data")
    # sqlite:///path/to/file.db (default: <data_dir>/cocanvas.db) or postgresql://user@host/db
    store_url: str | None = None
    # redis://host:port/0 selects the Redis broker; unset means the in-process broker (one node).
    redis_url: str | None = None
    # Signs tokens. Unset: generated once and kept in <data_dir>/secret. Checked at startup
    # (server.auth.check_secret): empty, a placeholder or guessable, the node refuses to start.
    secret: str | None = None
    # When set, creating canvases needs "Authorization: Bearer <admin_token>".
    admin_token: str | None = None
    # Browser origins allowed to open WebSockets ("*" allows any; empty list allows only
    # same-origin and non-browser clients, which send no Origin header).
    allowed_origins: list[str] = []
    node_id: str | None = None

    # HTTP request bodies (every route's is a small JSON object): a larger one answers 413, before
    # it is read when Content-Length says so, and as soon as it passes the limit when chunked.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    # Protocol limits.
    max_message_bytes: int = 8 * 1024 * 1024
    max_document_bytes: int = 64 * 1024 * 1024
    max_connections_per_canvas: int = Field(default=1000, ge=1)
    # Sessions of one participant (the token's user) per canvas per node, so that one token cannot
    # take every slot of the canvas. Must be below max_connections_per_canvas; left unset, it is
    # 20, or one less than max_connections_per_canvas (at least 1) when that is 20 or lower.
    max_connections_per_identity: int = Field(default=20, ge=1)
    # Per-connection token bucket: sustained messages/s and bytes/s, with bursts of `burst` seconds.
    rate_messages_per_s: float = 200.0
    rate_bytes_per_s: float = 4 * 1024 * 1024
    rate_burst_s: float = 2.0
    # Per-address token bucket for new connections (connections per second, burst = 5 s worth).
    rate_connections_per_s: float = 20.0
    # A session whose unsent backlog exceeds this is too slow to keep up and is closed (1013).
    send_queue_max_bytes: int = 32 * 1024 * 1024
    # How fan-out frames reach sockets: "auto" uses the raw uvicorn adapter when the installed
    # uvicorn is one it was tested with (server/uvicorn_raw.py), "asgi" always the ASGI path.
    ws_writer: Literal["auto", "asgi", "raw"] = "auto"
    # Tests only, honoured with test_hooks: kill -9 the node at this point of a draft reveal
    # ("before-shared" or "after-shared", server/drafts.py).
    test_reveal_crash: str = ""

    # Room lifecycle.
    room_idle_seconds: float = 30.0
    # Awareness updates are coalesced and flushed at most once per this many milliseconds
    # (the first update after a quiet period goes out at once).
    awareness_tick_ms: float = 5.0

    # The cyclic collector (server/runtime.py): freeze the heap this often so automatic
    # collections walk only what is new, and run the full ones here, rarely. 0: CPython's own.
    gc_freeze_s: float = Field(default=10.0, ge=0)

    # Compaction thresholds: merge the update log into a snapshot past either.
    compact_updates: int = 500
    compact_bytes: int = 1024 * 1024

    # Group commit: at most this many operations in one transaction.
    store_batch_max: int = 512
    # "fsync": a commit is on disk before anyone sees the update (survives power loss).
    # "os": a commit is in the OS page cache (survives kill -9 of the server, not a power cut);
    # saves the disk's flush latency (~3 ms on the reference VM) on every broadcast.
    durability: Literal["fsync", "os"] = "fsync"

    # Mounts /api/_test fault-injection routes (dropping broker messages). Tests only.
    test_hooks: bool = False

    log_level: str = "info"
    log_json: bool = False
    # Directory of the built web client (client/dist). Unset: the packaged copy if present.
    client_dir: Path | None = None

    @model_validator(mode="after")
    def _identity_below_canvas_cap(self) -> Settings:
        # An explicit value at or above the canvas cap is refused at startup rather than clamped:
        # it is a security limit, and one silently different from what the operator set would
        # hide the typo. The default follows a lowered canvas cap instead, so setting only
        # COCANVAS_MAX_CONNECTIONS_PER_CANVAS keeps working.
        per_canvas = self.max_connections_per_canvas
        if self.max_connections_per_identity < per_canvas:
            return self
        if "max_connections_per_identity" in self.model_fields_set:
            raise ValueError(
                f"COCANVAS_MAX_CONNECTIONS_PER_IDENTITY ({self.max_connections_per_identity}) "
                f"must be below COCANVAS_MAX_CONNECTIONS_PER_CANVAS ({per_canvas})"
            )
        self.max_connections_per_identity = max(1, per_canvas - 1)
        return self

    def resolved_store_url(self) -> str:
        if self.store_url:
            return self.store_url
        return f"sqlite:///{(self.data_dir / 'cocanvas.db').resolve()}"
