"""The workshop report's closing sections of the Markdown export: the contribution map (gaps,
overlaps and their marks, coverage, each partner's contribution), the value exchange, the closed
vote rounds' results by organization, and the comment threads.

Registered in ``documents.MARKDOWN_SECTIONS`` when the package loads. Computed from the shared
canvas only (``contribution_map`` of the board's shared roots; drafts never count), with every
piece of partner text escaped like the rest of the report.
"""

from __future__ import annotations

from typing import Any

from ..canvas import fit
from ..canvas.contribution import contribution_map
from . import results
from .board import Board
from .documents import MARKDOWN_SECTIONS, md_escape


def _shared(board: Board) -> dict[str, Any]:
    return {k: v for k, v in board.raw.items() if k != "drafts"}


def _org(board: Board, org_id: str) -> str:
    if org_id == fit.CUSTOMER:
        return "the customer"
    return md_escape(board.org_name(org_id) or "Facilitation")


def contribution_section(board: Board) -> list[str]:
    cmap = contribution_map(_shared(board))
    rows = cmap["rows"]
    if not rows:
        return []
    text = {r["note"]: r["text"] for r in rows}
    out = [f"- {md_escape(c['sentence'])}" for c in cmap["coverage"]]
    out.append("")
    out.append("**Gaps** (no partner addresses them; most-voted first):")
    out.append("")
    out += [f"- {md_escape(text[g]) or '*(empty)*'}" for g in cmap["gaps"]] or ["*(none)*"]
    out += ["", "**Overlaps** (two or more partners address them):", ""]
    overlaps = []
    for o in cmap["overlaps"]:
        who = ", ".join(_org(board, org) for org in o["orgs"])
        mark = f" — marked *{md_escape(o['mark'])}*" if o["mark"] else " — not marked yet"
        overlaps.append(f"- {md_escape(text[o['note']]) or '*(empty)*'}: {who}{mark}")
    out += overlaps or ["*(none)*"]
    out += ["", "**Each partner's contribution:**", ""]
    out += [f"- {md_escape(p['sentence'])}" for p in cmap["partners"]]
    orgs = cmap["organizations"]
    out += [
        "",
        "| Row | Kind | " + " | ".join(md_escape(o["name"]) for o in orgs) + " |",
        "|---|---|" + "---|" * len(orgs),
    ]
    for r in rows:
        cells = [
            "; ".join(
                md_escape(c["text"]) + (" (essential)" if c["strength"] == "essential" else "")
                for c in r["cells"][o["id"]]
            )
            for o in orgs
        ]
        out.append(
            f"| {md_escape(r['text']) or '*(empty)*'} | {md_escape(str(r['kind']))} | "
            + " | ".join(cells)
            + " |"
        )
    return out


def exchange_section(board: Board) -> list[str]:
    arrows = contribution_map(_shared(board))["exchange"]
    out = []
    for a in arrows:
        note = md_escape(a["note"])
        line = f"- {_org(board, a['from_org'])} → {_org(board, a['to'])}: {md_escape(a['kind'])}"
        out.append(line + (f" — {note}" if note else ""))
    return out


def votes_section(board: Board) -> list[str]:
    text = {n.id: n.text for n in board.notes if not n.draft}
    out: list[str] = []
    for r in results.closed_rounds(board):
        out += [f"### {md_escape(r.title)}", ""]
        out.append(f"{r.voters} voter{'s' if r.voters != 1 else ''}.")
        out.append("")
        for x in r.ranking:
            if x.note not in text:
                continue
            by = ", ".join(
                f"{md_escape(r.org_names.get(o) or board.org_name(o) or 'Facilitation')} {n}"
                for o, n in sorted(x.by_org.items())
            )
            agree = " — backed by several partners" if x.note in r.shared else ""
            out.append(
                f"{x.place}. {md_escape(text[x.note]) or '*(empty)*'} — {x.total} ({by}){agree}"
            )
        out.append("")
    return out[:-1] if out else []


def comments_section(board: Board) -> list[str]:
    text = {n.id: n.text for n in board.notes if not n.draft}
    threads: dict[str, list[results.Comment]] = {}
    for c in results.comments(board):
        threads.setdefault(c.note, []).append(c)
    out = []
    for n in board.notes:
        if n.id not in threads:
            continue
        out.append(f"- On “{md_escape(text[n.id]) or '(empty)'}”:")
        for c in threads[n.id]:
            indent = "    - " if c.parent else "  - "
            who = md_escape(c.author_name or "someone")
            org = md_escape(board.org_name(c.org) or "Facilitation")
            done = " *(resolved)*" if c.resolved else ""
            out.append(f"{indent}{who} ({org}): {md_escape(c.text)}{done}")
    return out


MARKDOWN_SECTIONS.extend(
    [
        ("Contribution map", contribution_section),
        ("Value exchange", exchange_section),
        ("Vote results", votes_section),
        ("Comments", comments_section),
    ]
)
