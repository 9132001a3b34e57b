"""A canvas document as plain JSON (for the HTTP API and exports).

Notes come out attributed (``canvas/attribution.py``): their ``org``, ``author`` and
``author_name`` are what the rule says, not what a client wrote; the ``ids`` root it is read
from is folded in that way and not itself part of the content.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Map

from .attribution import attributed
from .schema import CONTENT_ROOTS


def doc_to_json(doc: Doc) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in CONTENT_ROOTS:
        out[name] = doc.get(name, type=Map).to_py() or {}
    return attributed(out, doc)
