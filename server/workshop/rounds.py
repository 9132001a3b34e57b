"""Dot-voting rounds: what a round is, what a valid ballot is, and the tally.

A round's definition and state are in the document (``rounds[id]``, written by the server
only): title, blocks (empty: the whole canvas), dots per participant, at most ``per_note`` on a
note, ``anonymous``, ``visibility`` ("hidden" until closed, or "live"), status, and, once
revealed, ``tally`` (a live round shows ``live`` meanwhile). Ballots are not: they are cast over HTTP and kept in the store
(``BallotBox``), one per participant and round, replaced whole on each change, so a round whose
results are hidden has no ballot in any byte a socket receives until it closes. A live round's
tally is rewritten after every ballot.

The tally ranks notes by dots, then by how many organizations back them; it breaks each note's
dots down by organization, and says where partners agree (backed by two or more organizations)
and which notes only one backs. A named round also lists each note's voters.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Map

from ..store.base import Ballot

VISIBILITIES = ("hidden", "live")


@dataclass(slots=True)
class RoundConfig:
    title: str
    blocks: list[str]  # empty: every block
    dots: int
    per_note: int
    anonymous: bool
    visibility: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "blocks": list(self.blocks),
            "dots": self.dots,
            "per_note": self.per_note,
            "anonymous": self.anonymous,
            "visibility": self.visibility,
        }


@dataclass(slots=True)
class RoundState:
    id: str
    config: RoundConfig
    status: str  # "open" | "closed"
    opened_at: int
    closed_at: int | None
    voters: int
    tally: dict[str, Any] | None = None
    live: dict[str, Any] | None = None


class BallotError(ValueError):
    """A ballot the round does not allow; ``field`` names the part of the request."""

    def __init__(self, message: str, where: tuple[str | int, ...] = ("body", "dots")) -> None:
        super().__init__(message)
        self.where = where


def _root(doc: Doc) -> Map:
    return doc.get("rounds", type=Map)


def read(doc: Doc, round_id: str) -> RoundState | None:
    entry = _root(doc).get(round_id)
    if not isinstance(entry, Map):
        return None
    d = entry.to_py() or {}
    cfg = RoundConfig(
        str(d.get("title", "")),
        [str(b) for b in d.get("blocks") or []],
        int(d.get("dots", 0)),
        int(d.get("per_note", 0)),
        bool(d.get("anonymous", True)),
        str(d.get("visibility", "hidden")),
    )
    return RoundState(
        round_id,
        cfg,
        str(d.get("status", "open")),
        int(d.get("opened_at", 0)),
        None if d.get("closed_at") is None else int(d["closed_at"]),
        int(d.get("voters", 0)),
        d.get("tally") if isinstance(d.get("tally"), dict) else None,
        d.get("live") if isinstance(d.get("live"), dict) else None,
    )


def all_rounds(doc: Doc) -> list[RoundState]:
    out = [r for r in (read(doc, k) for k in _root(doc).keys()) if r is not None]
    return sorted(out, key=lambda r: (r.opened_at, r.id))


def write_open(doc: Doc, round_id: str, config: RoundConfig, by: str, now_ms: int) -> None:
    _root(doc)[round_id] = Map(
        {
            **config.as_dict(),
            "status": "open",
            "opened_at": now_ms,
            "opened_by": by,
            "closed_at": None,
            "voters": 0,
        }
    )


def write_progress(doc: Doc, round_id: str, ballots: list[Ballot], names: dict[str, str]) -> None:
    """After a ballot: how many voted, and for a live round the tally so far (``live``).

    Two nodes taking ballots at the same moment write these concurrently and the document
    keeps one of the two, so ``voters`` and ``live`` are progress that the next ballot
    corrects; the close writes ``tally`` (its own key, exact: read from the store after the
    round stopped taking ballots), which no progress write touches."""
    entry = _root(doc).get(round_id)
    if not isinstance(entry, Map):
        return
    state = read(doc, round_id)
    assert state is not None
    # Written only when they change: a hidden round's document then moves only when someone
    # starts or stops voting, however often ballots are replaced.
    voters = sum(1 for b in ballots if b.dots)
    if entry.get("voters") != voters:
        entry["voters"] = voters
    if state.config.visibility == "live":
        live = tally(doc, state.config, ballots, names)
        if state.live != live:
            entry["live"] = live


def write_close(
    doc: Doc, round_id: str, ballots: list[Ballot], names: dict[str, str], now_ms: int
) -> None:
    """Close a round in the document and reveal its tally (idempotent)."""
    entry = _root(doc).get(round_id)
    state = read(doc, round_id)
    if not isinstance(entry, Map) or state is None:
        return
    entry["status"] = "closed"
    entry["closed_at"] = state.closed_at or now_ms
    entry["voters"] = sum(1 for b in ballots if b.dots)
    entry["tally"] = tally(doc, state.config, ballots, names)
    if "live" in entry:
        del entry["live"]


def eligible_notes(doc: Doc, config: RoundConfig) -> dict[str, str]:
    """note id -> block, for the notes this round votes on."""
    out: dict[str, str] = {}
    for nid, note in doc.get("notes", type=Map).items():
        if not isinstance(note, Map):
            continue
        block = note.get("block")
        if isinstance(block, str) and (not config.blocks or block in config.blocks):
            out[nid] = block
    return out


def check_ballot(doc: Doc, config: RoundConfig, dots: dict[str, int]) -> dict[str, int]:
    """The ballot without zero entries; raises BallotError for one the round does not allow."""
    eligible = eligible_notes(doc, config)
    clean: dict[str, int] = {}
    for nid, n in dots.items():
        if n < 0:
            raise BallotError(f"dots on {nid!r} cannot be negative", ("body", "dots", nid))
        if n == 0:
            continue
        if nid not in eligible:
            raise BallotError(f"{nid!r} is not a note this round votes on", ("body", "dots", nid))
        if n > config.per_note:
            raise BallotError(
                f"at most {config.per_note} dot(s) on one note", ("body", "dots", nid)
            )
        clean[nid] = n
    total = sum(clean.values())
    if total > config.dots:
        raise BallotError(f"{total} dots placed, the budget is {config.dots}")
    return clean


def tally(
    doc: Doc, config: RoundConfig, ballots: list[Ballot], names: dict[str, str]
) -> dict[str, Any]:
    """Ranking, totals and the breakdown by organization; notes deleted since are left out."""
    notes = doc.get("notes", type=Map)
    totals: dict[str, int] = defaultdict(int)
    by_org: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    voters: dict[str, list[dict[str, Any]]] = defaultdict(list)
    orgs_voting: dict[str, int] = defaultdict(int)
    for b in sorted(ballots, key=lambda b: b.user_id):
        if b.dots:
            orgs_voting[b.org_id] += 1
        for nid, n in sorted(b.dots.items()):
            if nid not in notes or n <= 0:
                continue
            totals[nid] += n
            by_org[nid][b.org_id] += n
            if not config.anonymous:
                voters[nid].append({"user": b.user_id, "name": b.user_name, "dots": n})
    ranked = sorted(totals, key=lambda nid: (-totals[nid], -len(by_org[nid]), nid))
    ranking = []
    for place, nid in enumerate(ranked, start=1):
        row: dict[str, Any] = {
            "place": place,
            "note": nid,
            "total": totals[nid],
            "by_org": dict(sorted(by_org[nid].items())),
            "orgs": len(by_org[nid]),
        }
        if not config.anonymous:
            row["voters"] = voters[nid]
        ranking.append(row)
    return {
        "ranking": ranking,
        "voters": sum(1 for b in ballots if b.dots),
        "dots_cast": sum(totals.values()),
        "orgs_voting": dict(sorted(orgs_voting.items())),
        "shared": [r["note"] for r in ranking if r["orgs"] >= 2],
        "single_org": {r["note"]: next(iter(r["by_org"])) for r in ranking if r["orgs"] == 1},
        # The facilitator's own token has organization "" (not a partner).
        "org_names": {o: names.get(o, o) or "Facilitation" for o in sorted(orgs_voting)},
    }
