"""A canvas document as plain JSON (for the HTTP API and exports)."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Map

from .schema import ROOTS


def doc_to_json(doc: Doc) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ROOTS:
        out[name] = doc.get(name, type=Map).to_py() or {}
    return out
