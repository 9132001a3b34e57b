"""Exports of a canvas: each a pure function of its document's JSON, so the HTTP API, a
version's read-only view and CI produce the same files.

``export(content, fmt, drafts=…)`` is the one entry point; :data:`FORMATS` lists what it
makes (file extension -> media type).
"""

from __future__ import annotations

from typing import Any

from . import report  # noqa: F401  (registers the report's closing Markdown sections)
from .board import Board, board_from_json
from .documents import to_csv, to_json, to_markdown
from .render import svg_to_pdf, svg_to_png
from .svg import to_svg

FORMATS: dict[str, str] = {
    "json": "application/json",
    "md": "text/markdown; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
    "pdf": "application/pdf",
}


def export(
    content: dict[str, Any],
    fmt: str,
    drafts: dict[str, Any] | None = None,
    canvas: dict[str, Any] | None = None,
) -> bytes:
    """The canvas ``content`` (``doc_to_json``) in format ``fmt``, with ``drafts`` (the
    reader's own organization's draft notes, see :func:`board_from_json`). ``canvas``: the
    canvas record, carried by the JSON export."""
    board = board_from_json(content, drafts)
    if fmt == "json":
        return to_json(board, canvas)
    if fmt == "md":
        return to_markdown(board)
    if fmt == "csv":
        return to_csv(board)
    if fmt == "svg":
        return to_svg(board)
    if fmt == "png":
        return svg_to_png(to_svg(board))
    if fmt == "pdf":
        return svg_to_pdf(to_svg(board))
    raise ValueError(f"unknown export format {fmt!r}")


__all__ = ["FORMATS", "Board", "board_from_json", "export"]
