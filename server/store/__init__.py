"""Stores: pick one by URL (``sqlite:///path`` or ``postgresql://...``)."""

from __future__ import annotations

from .base import CanvasNotFound, CanvasRecord, Store, StoreError

__all__ = ["CanvasNotFound", "CanvasRecord", "Store", "StoreError", "open_store"]


def open_store(url: str, batch_max: int = 512, durability: str = "fsync") -> Store:
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteStore

        return SQLiteStore(
            url.removeprefix("sqlite:///"), batch_max=batch_max, fsync=durability == "fsync"
        )
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url, batch_max=batch_max, synchronous_commit=durability == "fsync")
    raise ValueError(f"unsupported store URL {url!r} (use sqlite:///... or postgresql://...)")
