"""A canvas as the exports read it: plain values, typed, with what each reader may see.

Every export is a pure function of this view, built from the document's JSON
(``server.canvas.export.doc_to_json``), so the HTTP API, a version's read-only view and CI
produce byte-identical files from the same content. The JSON may come from a hostile
partner's edits: every field is read defensively (wrong types become defaults, never errors).

Roots other features add (``links``, ``exchange``, comments, …) are kept in ``extra`` as they
are, so the JSON export carries them and the other formats can render them when they land.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The four roots every canvas has; anything else in the JSON (links, exchange, …) is ``extra``.
CORE = ("meta", "blocks", "notes", "orgs")


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _num(value: Any, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    if value != value or value in (float("inf"), float("-inf")):  # NaN, infinities
        return default
    return float(value)


def _fraction(value: Any) -> float:
    return min(1.0, max(0.0, _num(value)))


def vote_total(votes: Any) -> int:
    """Votes on a note: ``{user id: n}``; what is not a positive number counts as nothing."""
    if not isinstance(votes, dict):
        return 0
    total = 0
    for v in votes.values():
        if v is True:
            total += 1
        elif not isinstance(v, bool) and isinstance(v, int | float) and v > 0 and v == v:
            total += int(min(v, 1_000_000))
    return total


@dataclass(frozen=True, slots=True)
class Org:
    id: str
    name: str
    color: str
    initials: str


@dataclass(frozen=True, slots=True)
class Block:
    id: str
    title: str
    hint: str
    order: float
    section: str
    kind: str
    org: str
    locked: bool


@dataclass(frozen=True, slots=True)
class Note:
    id: str
    block: str
    text: str
    org: str
    author: str
    author_name: str
    color: str
    x: float
    y: float
    created_at: float
    votes: dict[str, Any]
    draft: bool  # from the reader's own draft space (see board_from_json)

    @property
    def vote_count(self) -> int:
        return vote_total(self.votes)


def _note(nid: str, n: dict[str, Any], draft: bool) -> Note:
    votes = n.get("votes")
    return Note(
        nid,
        _str(n.get("block")),
        _str(n.get("text")),
        _str(n.get("org")),
        _str(n.get("author")),
        _str(n.get("author_name")),
        _str(n.get("color")),
        _fraction(n.get("x")),
        _fraction(n.get("y")),
        _num(n.get("created_at")),
        dict(votes) if isinstance(votes, dict) else {},
        draft,
    )


@dataclass(frozen=True, slots=True)
class Board:
    title: str
    template: str
    meta: dict[str, Any]
    blocks: tuple[Block, ...]  # in reading order of their ``order``, then id
    notes: tuple[Note, ...]  # by block order, then position (top to bottom), then id
    orgs: dict[str, Org]
    extra: dict[str, Any] = field(default_factory=dict)  # roots beyond the core four
    raw: dict[str, Any] = field(default_factory=dict)  # the JSON this came from (+ drafts)

    def block(self, block_id: str) -> Block | None:
        return next((b for b in self.blocks if b.id == block_id), None)

    def org_name(self, org_id: str) -> str:
        org = self.orgs.get(org_id)
        return org.name if org else org_id

    def notes_in(self, block_id: str) -> list[Note]:
        return [n for n in self.notes if n.block == block_id]


def board_from_json(content: dict[str, Any], drafts: dict[str, Any] | None = None) -> Board:
    """The board of the shared canvas ``content``, plus ``drafts``.

    The shared canvas holds nothing private: an organization's drafts live in a document of
    their own (its private draft space), so every participant's export of the canvas is the
    same, and a field a client writes into a shared note (say ``draft: true``) hides nothing.
    ``drafts``: the notes (id -> note JSON) of the *reader's own* organization's draft space,
    which the caller looked up with the reader's token; they are shown marked as drafts and kept
    under ``drafts`` in the JSON, never among the shared notes. A draft whose id the shared
    canvas already has (revealed meanwhile) is left out.
    """

    def root(name: str) -> dict[str, Any]:
        value = content.get(name)
        return value if isinstance(value, dict) else {}

    meta = root("meta")
    orgs = {
        oid: Org(
            oid,
            _str(o.get("name"), oid),
            _str(o.get("color"), "#888888"),
            _str(o.get("initials")),
        )
        for oid, o in sorted(root("orgs").items())
        if isinstance(o, dict)
    }
    blocks = sorted(
        (
            Block(
                bid,
                _str(b.get("title"), bid),
                _str(b.get("hint")),
                _num(b.get("order")),
                _str(b.get("section")),
                _str(b.get("kind")),
                _str(b.get("org")),
                bool(b.get("locked_by")),
            )
            for bid, b in root("blocks").items()
            if isinstance(b, dict)
        ),
        key=lambda b: (b.order, b.id),
    )
    rank = {b.id: i for i, b in enumerate(blocks)}
    shared = {nid: n for nid, n in root("notes").items() if isinstance(n, dict)}
    own = {nid: n for nid, n in (drafts or {}).items() if isinstance(n, dict) and nid not in shared}
    notes = [_note(nid, n, False) for nid, n in shared.items()]
    notes += [_note(nid, n, True) for nid, n in own.items()]
    notes.sort(key=lambda n: (rank.get(n.block, len(rank)), n.draft, n.y, n.x, n.id))
    extra = {k: v for k, v in content.items() if k not in CORE}
    raw = {name: root(name) for name in CORE}
    raw.update(extra)
    if own:
        raw["drafts"] = own
    return Board(
        _str(meta.get("title"), "Canvas"),
        _str(meta.get("template")),
        meta,
        tuple(blocks),
        tuple(notes),
        orgs,
        extra,
        raw,
    )
