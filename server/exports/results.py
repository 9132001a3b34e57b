"""What the workshop decided, as the exports read it: closed vote rounds' tallies, each note's
dots from them, and comment counts. Pure functions of a :class:`Board`'s shared roots.

Only what every participant can already see is read: a round's ``tally`` is written into the
document when it closes (a hidden round's ballots are kept in the store, never in the
document, until then), so an export can never show an open hidden round's votes; an open
*live* round's running tally (``live``) is visible on the board, but it is not a result and is
left out here. Comments are the shared ``comments`` root's; drafts are never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..canvas.contribution import contribution_map
from .board import Board


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return 0
    return int(max(0, min(value, 1_000_000_000)))


@dataclass(frozen=True, slots=True)
class Ranked:
    note: str
    place: int
    total: int
    by_org: dict[str, int]  # organization id -> dots


@dataclass(frozen=True, slots=True)
class ClosedRound:
    id: str
    title: str
    closed_at: int
    voters: int
    anonymous: bool
    ranking: tuple[Ranked, ...]
    shared: tuple[str, ...]  # notes backed by two or more organizations
    org_names: dict[str, str]


def closed_rounds(board: Board) -> list[ClosedRound]:
    """Every closed round with a tally, in the order they closed (then id)."""
    out = []
    for rid, r in _dict(board.extra.get("rounds")).items():
        if not isinstance(r, dict) or r.get("status") != "closed":
            continue
        tally = r.get("tally")
        if not isinstance(tally, dict):
            continue
        ranking = []
        for row in tally.get("ranking") or []:
            if not isinstance(row, dict) or not isinstance(row.get("note"), str):
                continue
            by_org = {str(o): _int(n) for o, n in _dict(row.get("by_org")).items()}
            ranking.append(
                Ranked(row["note"], _int(row.get("place")), _int(row.get("total")), by_org)
            )
        shared = tuple(str(n) for n in tally.get("shared") or [] if isinstance(n, str))
        names = {str(k): str(v) for k, v in _dict(tally.get("org_names")).items()}
        title = r.get("title")
        out.append(
            ClosedRound(
                str(rid),
                title if isinstance(title, str) and title else str(rid),
                _int(r.get("closed_at")),
                _int(tally.get("voters")),
                r.get("anonymous") is not False,
                tuple(sorted(ranking, key=lambda x: (x.place, x.note))),
                shared,
                names,
            )
        )
    return sorted(out, key=lambda c: (c.closed_at, c.id))


def dots(board: Board) -> dict[str, int]:
    """Note id -> dots it received over every closed round."""
    out: dict[str, int] = {}
    for r in closed_rounds(board):
        for row in r.ranking:
            out[row.note] = out.get(row.note, 0) + row.total
    return out


@dataclass(frozen=True, slots=True)
class Comment:
    id: str
    note: str
    parent: str | None
    text: str
    author_name: str
    org: str
    created_at: float
    resolved: bool


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""


def comments(board: Board) -> list[Comment]:
    """The shared canvas's comments on notes it has, oldest first."""
    notes = {n.id for n in board.notes if not n.draft}
    out = []
    for cid, c in _dict(board.extra.get("comments")).items():
        if not isinstance(c, dict) or c.get("note") not in notes:
            continue
        parent = c.get("parent")
        created = c.get("created_at")
        out.append(
            Comment(
                str(cid),
                str(c["note"]),
                parent if isinstance(parent, str) else None,
                _s(c.get("text")),
                _s(c.get("author_name")),
                _s(c.get("org")),
                float(created) if isinstance(created, int | float) and created == created else 0.0,
                c.get("resolved") is True,
            )
        )
    return sorted(out, key=lambda c: (c.created_at, c.id))


def comment_counts(board: Board) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in comments(board):
        out[c.note] = out.get(c.note, 0) + 1
    return out


def report(board: Board) -> dict[str, Any]:
    """The JSON export's ``report``: what the roots mean, computed once for a reader that does
    not want to redo it (the roots themselves are in the export too)."""
    shared = {k: v for k, v in board.raw.items() if k != "drafts"}
    return {
        "contribution": contribution_map(shared),
        "vote_results": [
            {
                "round": r.id,
                "title": r.title,
                "closed_at": r.closed_at,
                "voters": r.voters,
                "ranking": [
                    {"note": x.note, "place": x.place, "total": x.total, "by_org": x.by_org}
                    for x in r.ranking
                ],
                "shared": list(r.shared),
                "org_names": r.org_names,
            }
            for r in closed_rounds(board)
        ],
        "dots": dots(board),
        "comment_counts": comment_counts(board),
    }
