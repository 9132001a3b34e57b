"""The text exports of a board: JSON (everything, machine-readable), Markdown (a workshop
report) and CSV (one row per note, for spreadsheets). Pure functions of a :class:`Board`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from typing import Any

import orjson

from ..canvas import fit
from . import results
from .board import Board, Note

EXPORT_FORMAT = "cocanvas-export"
EXPORT_VERSION = 1


def to_json(board: Board, canvas: dict[str, Any] | None = None) -> bytes:
    """Every root as the document has it (attribution, votes and any further roots: links,
    exchange, comments), plus the canvas record; keys sorted so equal content is equal bytes."""
    body: dict[str, Any] = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION}
    if canvas is not None:
        body["canvas"] = canvas
    body.update(board.raw)
    # What the roots mean (contribution map, closed rounds' results, dots, comment counts).
    body["report"] = results.report(board)
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


# -- Markdown -------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~])")


def md_escape(text: str) -> str:
    """Text a partner typed, shown as text: no markup, links, HTML or headings of its own."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _links_of(board: Board) -> dict[str, list[str]]:
    """Note id -> the notes it links to or is linked from (root ``links``, when present)."""
    out: dict[str, list[str]] = {}
    links = board.extra.get("links")
    if isinstance(links, dict):
        for link in links.values():
            if isinstance(link, dict):
                a, b = link.get("from"), link.get("to")
                if isinstance(a, str) and isinstance(b, str):
                    out.setdefault(a, []).append(b)
                    out.setdefault(b, []).append(a)
    return {k: sorted(set(v)) for k, v in out.items()}


def _note_line(board: Board, n: Note, dots: int = 0) -> str:
    who = [f"**{md_escape(board.org_name(n.org) or 'no organization')}**"]
    if n.author_name:
        who.append(md_escape(n.author_name))
    if n.vote_count:
        who.append(f"{n.vote_count} vote{'s' if n.vote_count != 1 else ''}")
    if dots and not n.draft:
        who.append(f"{dots} dot{'s' if dots != 1 else ''} in closed rounds")
    draft = " *(draft)*" if n.draft else ""
    return f"- {md_escape(n.text) or '*(empty)*'}{draft} — {' · '.join(who)}"


# Further sections other features register (e.g. the contribution map): (title, render) where
# render returns Markdown lines, or [] when the board has nothing for it.
MarkdownSection = Callable[[Board], list[str]]
MARKDOWN_SECTIONS: list[tuple[str, MarkdownSection]] = []


def _links_section(board: Board) -> list[str]:
    links = board.extra.get("links")
    if not isinstance(links, dict) or not links:
        return []
    text = {n.id: n.text for n in board.notes}
    block_of = {n.id: n.block for n in board.notes}
    blocks = board.raw.get("blocks") or {}
    out = []
    for _, link in sorted(links.items()):
        if isinstance(link, dict):
            a, b = str(link.get("from")), str(link.get("to"))
            if a in text and b in text:
                # The kind follows from the two blocks (canvas/fit.py), never from the client.
                kind = fit.link_kind(
                    fit.block_kind(blocks, block_of[a]), fit.block_kind(blocks, block_of[b])
                )
                kind = md_escape(kind or "links to")
                out.append(f"- {md_escape(text[a])} → *{kind}* → {md_escape(text[b])}")
    return out


def to_markdown(board: Board) -> bytes:
    dots = {} if not board.extra.get("rounds") else results.dots(board)
    lines = [f"# {md_escape(board.title)}", ""]
    if board.template:
        lines += [f"Template: {md_escape(board.template)}", ""]
    if board.orgs:
        lines += ["## Organizations", "", "| Organization | Notes | Votes |", "|---|---:|---:|"]
        for oid, org in board.orgs.items():
            mine = [n for n in board.notes if n.org == oid]
            votes = sum(n.vote_count for n in mine)
            lines.append(f"| {md_escape(org.name)} | {len(mine)} | {votes} |")
        lines.append("")
    known = {b.id for b in board.blocks}
    for block in board.blocks:
        lines += [f"## {md_escape(block.title)}", ""]
        notes = board.notes_in(block.id)
        lines += [_note_line(board, n, dots.get(n.id, 0)) for n in notes] or ["*(no notes)*"]
        lines.append("")
    stray = [n for n in board.notes if n.block not in known]
    if stray:
        lines += ["## Notes outside any block", ""]
        lines += [_note_line(board, n, dots.get(n.id, 0)) for n in stray]
        lines.append("")
    sections = [("Fit links", _links_section)]
    for title, render in sections + MARKDOWN_SECTIONS:
        body = render(board)
        if body:
            lines += [f"## {title}", "", *body, ""]
    return ("\n".join(lines).rstrip() + "\n").encode("utf-8")


# -- CSV ------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "note_id",
    "block_id",
    "block",
    "text",
    "organization_id",
    "organization",
    "author",
    "votes",
    "linked_notes",
    "comments",  # comments on the note (replies included)
    "dots",  # dots the note received in closed vote rounds
)
# A cell a spreadsheet would run as a formula (OWASP "CSV injection"): shown with a leading '.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA) else value


def to_csv(board: Board) -> bytes:
    """RFC 4180 (CRLF rows, quoted where needed), UTF-8 with a BOM so spreadsheets read
    non-ASCII text right."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    links = _links_of(board)
    dots = results.dots(board)
    counts = results.comment_counts(board)
    for n in board.notes:
        block = board.block(n.block)
        w.writerow(
            [
                csv_cell(v)
                for v in (
                    n.id,
                    n.block,
                    block.title if block else "",
                    n.text,
                    n.org,
                    board.org_name(n.org),
                    n.author_name,
                    str(n.vote_count),
                    " ".join(links.get(n.id, [])),
                    str(0 if n.draft else counts.get(n.id, 0)),
                    str(0 if n.draft else dots.get(n.id, 0)),
                )
            ]
        )
    return b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8")
