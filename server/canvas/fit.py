"""The vocabulary of fit across partners: which notes may be linked, with which kind, and what
may flow between the partners. One home, used by the policy (``server/fit_policy.py``), the
contribution map (``server/canvas/contribution.py``), the HTTP API and the exporter.

A **fit link** (root ``links``: link id -> Map) goes from a note that offers something to the
note it addresses. Its kind is not the client's to choose: it follows from the two blocks' kinds
(:data:`LINK_KINDS`), so a "relieves" link always ends on a pain. The Value Proposition Canvas
pairs are the ones Osterwalder's fit is judged on; the Business Model Canvas gets the key
partner -> key resource / activity pairs, so "which partner provides what" is the same question.

A **value exchange arrow** (root ``exchange``: arrow id -> Map) says what flows from one
organization to another organization or to the customer.

An **overlap mark** (root ``overlaps``: row note id -> "complement" | "competition") is the
facilitator's reading of a row two or more partners address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# (kind of the "from" block, kind of the "to" block) -> the link's kind
LINK_KINDS: dict[tuple[str, str], str] = {
    ("relievers", "pains"): "relieves",
    ("creators", "gains"): "creates",
    ("products", "jobs"): "helps-with",
    ("key-partners", "key-resources"): "provides",
    ("key-partners", "key-activities"): "performs",
}
STRENGTHS = ("essential", "nice-to-have")
DEFAULT_STRENGTH = "nice-to-have"

# The fields of a link; ``from``/``to`` never change once written (delete and link anew).
LINK_ENDS = ("from", "to")
LINK_STAMPS = ("org", "author", "author_name")

EXCHANGE_KINDS = ("product", "service", "data", "money", "referral", "support")
CUSTOMER = "customer"  # the one "to" of an arrow that is not an organization
EXCHANGE_NOTE_MAX = 500  # characters of an arrow's note

OVERLAP_MARKS = ("complement", "competition")

# Blocks whose notes are rows of the contribution map, with how a row is "addressed".
ROW_KINDS: dict[str, tuple[str, str]] = {  # block kind -> (plural label, verb)
    "jobs": ("jobs", "helped with"),
    "pains": ("pains", "relieved"),
    "gains": ("gains", "created"),
    "key-resources": ("key resources", "provided"),
    "key-activities": ("key activities", "performed"),
}
KEY_PARTNERS = "key-partners"  # notes of this block kind may name an organization
PARTNER_ORG = "partner_org"  # ... in this note field


def block_kind(blocks: Mapping[str, Any], block: Any) -> str | None:
    info = blocks.get(block) if isinstance(block, str) else None
    kind = info.get("kind") if isinstance(info, Mapping) else None
    return kind if isinstance(kind, str) else None


def link_kind(from_kind: str | None, to_kind: str | None) -> str | None:
    """The kind a link between blocks of these kinds has, or None: such notes are not linked."""
    if from_kind is None or to_kind is None:
        return None
    return LINK_KINDS.get((from_kind, to_kind))


def wrong_ends(from_kind: str | None, to_kind: str | None) -> str:
    return (
        f"a link goes from an offer to what it addresses "
        f"({', '.join(f'{a} -> {b}' for a, b in LINK_KINDS)}), "
        f"not from {from_kind or 'nothing'} to {to_kind or 'nothing'}"
    )


def exchange_problem(arrow: Mapping[str, Any], orgs: Mapping[str, Any]) -> str | None:
    """Why an arrow is not a valid value exchange on a canvas with these organizations."""
    frm, to, kind, note = (arrow.get(k) for k in ("from_org", "to", "kind", "note"))
    if not isinstance(frm, str) or frm not in orgs:
        return "an arrow starts at one of the canvas's organizations"
    if not isinstance(to, str) or (to != CUSTOMER and to not in orgs):
        return f"an arrow ends at one of the canvas's organizations or at {CUSTOMER!r}"
    if to == frm:
        return "an arrow goes to another organization or to the customer"
    if kind not in EXCHANGE_KINDS:
        return f"an arrow's kind is one of {', '.join(EXCHANGE_KINDS)}"
    if note is not None and not isinstance(note, str):
        return "an arrow's note is text"
    if isinstance(note, str) and len(note) > EXCHANGE_NOTE_MAX:
        return f"an arrow's note is at most {EXCHANGE_NOTE_MAX} characters"
    return None
