"""The board as an SVG drawing, laid out as the web client lays it out (``layout.py``).

Everything a partner typed reaches the file only as escaped XML character data or attribute
values; characters XML 1.0 cannot carry are dropped and colours that are not ``#rrggbb`` fall
back to grey, so no content can break the document, inject markup or make the renderer fetch
anything (the SVG references no external resource at all).
"""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from ..canvas import fit
from ..canvas.contribution import contribution_map
from .board import Board, Note
from .layout import Layout, PlacedBlock, Rect, layout

FONT = "DejaVu Sans, Arial, Helvetica, sans-serif"
NEUTRAL = "#495057"  # the client's NEUTRAL_COLOR
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
# Characters XML 1.0 does not allow (C0 controls but tab/newline/return, lone surrogates, …).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
NOTE_FONT_PX = 11.0
CHAR_W = 0.6  # average glyph width of the font, in ems, for wrapping


def clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def color(value: str, default: str = NEUTRAL) -> str:
    return value if _COLOR.fullmatch(value) else default


def tint(hex_color: str, amount: float) -> str:
    """``hex_color`` mixed towards white by ``amount`` (the client's ``tint``: a pale note body)."""
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in (r, g, b))


def _luminance(hex_color: str) -> float:
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def text_on(background: str) -> str:
    """Black or white, whichever contrasts more with ``background`` (the client's rule)."""
    lum = _luminance(background)
    return "#000000" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#ffffff"


def wrap(text: str, width_px: float, font_px: float, max_lines: int) -> list[str]:
    """Greedy word wrap by an average glyph width; the last line gets an ellipsis if cut."""
    per_line = max(4, int(width_px / (font_px * CHAR_W)))
    lines: list[str] = []
    for para in clean(text).splitlines() or [""]:
        line = ""
        for word in para.split():
            while len(word) > per_line:  # a very long word is broken
                if line:
                    lines.append(line)
                    line = ""
                lines.append(word[:per_line])
                word = word[per_line:]
            candidate = f"{line} {word}" if line else word
            if len(candidate) > per_line:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(0, per_line - 1)].rstrip() + "…"
    return lines


def _attrs(**kw: Any) -> str:
    return " ".join(f"{k.replace('_', '-')}={quoteattr(str(v))}" for k, v in kw.items())


def _rect(r: Rect, **kw: Any) -> str:
    return f"<rect {_attrs(x=f'{r.x:.1f}', y=f'{r.y:.1f}', width=f'{r.w:.1f}', height=f'{r.h:.1f}', **kw)}/>"


def _text(x: float, y: float, s: str, **kw: Any) -> str:
    return f"<text {_attrs(x=f'{x:.1f}', y=f'{y:.1f}', **kw)}>{escape(clean(s))}</text>"


def _block(p: PlacedBlock, with_border: bool) -> list[str]:
    r, b = p.rect, p.block
    out = []
    if with_border:
        out.append(_rect(r, fill="none", stroke="#90a4ae", stroke_width=1))
    title = b.title + (" (locked)" if b.locked else "")
    # Bold glyphs are wider than the average: wrap the title a little early.
    lines = wrap(title, (r.w - 16) * 0.9, 13, 2)
    for i, line in enumerate(lines):
        out.append(_text(r.x + 8, r.y + 19 + i * 15, line, font_size=13, font_weight="bold"))
    if len(lines) == 1:
        hint = wrap(b.hint, r.w - 16, 10, 1)
        if hint:
            out.append(_text(r.x + 8, r.y + 36, hint[0], font_size=10, fill="#546e7a"))
    return out


def _note(board: Board, n: Note, box: Rect) -> list[str]:
    org = board.orgs.get(n.org)
    # As the client shows a note: its organization's colour (a note without one, its own).
    org_color = color(org.color if org else "") if n.org or not n.color else color(n.color)
    label = (org.name if org else n.org) or "Facilitator"
    out = [
        f'<g class="note" data-note={quoteattr(clean(n.id))}>',
        _rect(box, rx=4, fill=tint(org_color, 0.82), stroke=org_color, stroke_width=1),
        _rect(Rect(box.x, box.y, box.w, 16), rx=2, fill=org_color),
        _text(
            box.x + 4,
            box.y + 12,
            wrap(label, box.w - 8, 10, 1)[0] if label else "",
            font_size=10,
            font_weight="bold",
            fill=text_on(org_color),
        ),
    ]
    lines = wrap(n.text, box.w - 8, NOTE_FONT_PX, max(1, int((box.h - 32) // 13)))
    for i, line in enumerate(lines):
        out.append(_text(box.x + 4, box.y + 30 + i * 13, line, font_size=NOTE_FONT_PX))
    foot = n.author_name
    if n.vote_count:
        foot = f"{foot}  ▲{n.vote_count}" if foot else f"▲{n.vote_count}"
    if foot:
        out.append(
            _text(
                box.x + 4,
                box.y + box.h - 4,
                wrap(foot, box.w - 8, 9, 1)[0],
                font_size=9,
                fill="#455a64",
            )
        )
    out.append("</g>")
    return out


def _links(board: Board, lay: Layout, centres: dict[str, tuple[float, float]]) -> list[str]:
    """Fit links (root ``links``: id -> {from, to, …}) as arrows between note centres."""
    links = board.extra.get("links")
    if not isinstance(links, dict):
        return []
    out = []
    for lid, link in sorted(links.items()):
        if not isinstance(link, dict):
            continue
        a, b = centres.get(str(link.get("from"))), centres.get(str(link.get("to")))
        if a is None or b is None:
            continue
        dashed = {"stroke_dasharray": "6 4"} if link.get("strength") == "nice-to-have" else {}
        out.append(
            f"<line {_attrs(x1=f'{a[0]:.1f}', y1=f'{a[1]:.1f}', x2=f'{b[0]:.1f}', y2=f'{b[1]:.1f}', stroke='#37474f', stroke_width=2, marker_end='url(#arrow)', data_link=clean(str(lid)), **dashed)}/>"
        )
    return out


EXCHANGE_HEAD_H = 44  # the value exchange panel's title
EXCHANGE_ROW_H = 20
EXCHANGE_MAX_ROWS = 60  # more arrows than this: the rest are in the other exports


def _exchange(board: Board) -> list[dict[str, Any]]:
    """The valid value exchange arrows (the contribution map's reading of root ``exchange``)."""
    shared = {k: v for k, v in board.raw.items() if k != "drafts"}
    arrows: list[dict[str, Any]] = contribution_map(shared)["exchange"]
    return arrows[:EXCHANGE_MAX_ROWS]


def _exchange_panel(
    board: Board, arrows: list[dict[str, Any]], top: float, width: float
) -> list[str]:
    """The partners' value exchange as a list panel under the board: who gives what to whom."""
    if not arrows:
        return []
    h = EXCHANGE_HEAD_H + EXCHANGE_ROW_H * len(arrows) + 12
    out = [
        '<g class="exchange">',
        _rect(Rect(24, top, width - 48, h), fill="#fbfaf5", stroke="#37474f", stroke_width=2),
        _text(36, top + 28, "Value exchange", font_size=16, font_weight="bold"),
    ]

    def name(org_id: str) -> tuple[str, str]:
        if org_id == fit.CUSTOMER:
            return "Customer", NEUTRAL
        org = board.orgs.get(org_id)
        return (org.name, color(org.color)) if org else (org_id, NEUTRAL)

    for i, a in enumerate(arrows):
        y = top + EXCHANGE_HEAD_H + 14 + i * EXCHANGE_ROW_H
        (src, c), (dst, _) = name(a["from_org"]), name(a["to"])
        out.append(_rect(Rect(36, y - 10, 10, 10), fill=c))
        line = f"{src} → {dst}: {a['kind']}" + (f" — {a['note']}" if a["note"] else "")
        out.append(_text(52, y, wrap(line, width - 100, 12, 1)[0], font_size=12))
    out.append("</g>")
    return out


def to_svg(board: Board) -> bytes:
    lay = layout(board)
    arrows = _exchange(board)
    extra_h = EXCHANGE_HEAD_H + EXCHANGE_ROW_H * len(arrows) + 12 + 24 if arrows else 0
    height = lay.height + extra_h
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width}" height="{height}" '
        f'viewBox="0 0 {lay.width} {height}" font-family={quoteattr(FONT)}>',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" '
        'fill="#37474f"/></marker></defs>',
        _rect(Rect(0, 0, lay.width, height), fill="#ffffff"),
        _text(24, 50, board.title, font_size=26, font_weight="bold"),
    ]
    for panel in lay.panels:
        f = panel.frame
        if panel.title:
            attrs: dict[str, Any] = {
                "font_size": 16,
                "font_weight": "bold",
                "text_anchor": "middle",
            }
            out.append(_text(f.x + f.w / 2, f.y - 10, panel.title, **attrs))
            if panel.org and panel.org in board.orgs:
                c = color(board.orgs[panel.org].color)
                out.append(_rect(Rect(f.x + f.w / 2 - 60, f.y - 6, 120, 4), fill=c))
        if panel.shape == "circle":
            out.append(
                f"<circle {_attrs(cx=f'{f.x + f.w / 2:.1f}', cy=f'{f.y + f.h / 2:.1f}', r=f'{f.w / 2:.1f}', fill='#fbfaf5', stroke='#37474f', stroke_width=3)}/>"
            )
            out.append(
                f'<line x1="{f.x + f.w / 2:.1f}" y1="{f.y:.1f}" x2="{f.x + f.w / 2:.1f}" '
                f'y2="{f.y + f.h:.1f}" stroke="#607d8b" stroke-width="2"/>'
            )
            out.append(
                f'<line x1="{f.x:.1f}" y1="{f.y + f.h / 2:.1f}" x2="{f.x + f.w / 2:.1f}" '
                f'y2="{f.y + f.h / 2:.1f}" stroke="#607d8b" stroke-width="2"/>'
            )
        elif panel.shape in ("square", "grid"):
            out.append(
                _rect(
                    f,
                    fill="#fbfaf5",
                    stroke="#37474f",
                    stroke_width=3 if panel.shape == "square" else 2,
                )
            )
        for placed in panel.blocks:
            out.extend(_block(placed, with_border=panel.shape in ("grid", "square", "none")))
    centres: dict[str, tuple[float, float]] = {}
    notes_svg: list[str] = []
    for n in board.notes:
        box = lay.note_rect(n.block, n.x, n.y)
        if box is None:
            continue  # a note in a block the canvas does not have: in the other exports only
        centres[n.id] = (box.x + box.w / 2, box.y + box.h / 2)
        notes_svg.extend(_note(board, n, box))
    out.extend(notes_svg)
    out.extend(_links(board, lay, centres))
    out.extend(_exchange_panel(board, arrows, lay.height, lay.width))
    out.append("</svg>")
    return ("\n".join(out) + "\n").encode("utf-8")
