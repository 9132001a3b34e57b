"""What a draft space's document holds, and the edits a reveal makes, in one place.

A draft space is a document of its own with the canvas schema (``schema.py``): the notes of one
organization that nobody else may see yet, beside a copy of the canvas's frame (``meta``,
``blocks``, ``orgs``) so that the same client code renders it and the same policy places notes in
blocks. The frame flows one way only, shared canvas -> draft space: nothing written in a draft
space is ever read back into the shared canvas except by a reveal, which copies chosen notes
with their ids, author and organization (``server/drafts.py`` makes it atomic).

Everything here takes documents and returns what it did, so the orchestration never touches
pycrdt types directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc, Map, Text

from . import attribution
from .attribution import Author
from .schema import server_client_id

# The frame copied from the shared canvas: draft notes need blocks to sit in and organizations
# to be named by. Locks are not copied: thinking alone is not editing the canvas.
FRAME_ROOTS = ("blocks", "orgs")
NOT_COPIED_BLOCK_FIELDS = frozenset(("locked_by",))
# Where the shared canvas records the last reveal (the client announces it).
LAST_REVEAL = "last_reveal"


def _plain_block(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in NOT_COPIED_BLOCK_FIELDS}
    return value


def frame_of(shared: Doc) -> dict[str, dict[str, Any]]:
    """The parts of the shared canvas a draft space mirrors, as plain values."""
    out: dict[str, dict[str, Any]] = {}
    for root in FRAME_ROOTS:
        plain = shared.get(root, type=Map).to_py() or {}
        out[root] = {k: _plain_block(v) for k, v in plain.items()} if root == "blocks" else plain
    meta = shared.get("meta", type=Map).to_py() or {}
    out["meta"] = {k: meta[k] for k in ("title", "template") if k in meta}
    return out


def initial_update(frame: dict[str, dict[str, Any]], org_id: str) -> bytes:
    """A new draft space's first update: the frame, written with a 32-bit server client id."""
    doc: Doc = Doc(client_id=server_client_id())
    with doc.transaction(origin="template"):
        sync_frame(doc, frame, org_id)
        doc.get("notes", type=Map)
    return doc.get_update()


def sync_frame(doc: Doc, frame: dict[str, dict[str, Any]], org_id: str) -> None:
    """Bring a draft space's frame up to the shared canvas's (inside the caller's transaction).

    Only entries that differ are written, so an unchanged frame writes nothing.
    """
    for root in ("meta", *FRAME_ROOTS):
        target = doc.get(root, type=Map)
        want = frame.get(root, {})
        if root == "meta":
            want = {**want, "protect_notes": False, "draft_org": org_id}
            for k, v in want.items():
                if target.get(k) != v:
                    target[k] = v
            continue
        for key in list(target.keys()):
            if key not in want:
                del target[key]
        for key, value in want.items():
            have = target.get(key)
            have_plain = have.to_py() if isinstance(have, Map) else have
            if have_plain != value:
                target[key] = Map(dict(value)) if isinstance(value, dict) else value


@dataclass(slots=True)
class Draft:
    """One draft note as plain values, with what a reveal needs to copy it faithfully."""

    id: str
    org: str
    author: str
    fields: dict[str, Any]  # every field but text, plain
    text: list[tuple[str, dict[str, Any] | None]] = field(default_factory=list)  # formatted runs


def drafts_in(doc: Doc, ids: Iterable[str] | None = None) -> list[Draft]:
    """The draft notes of a draft space (all, or those of ``ids`` that exist), attributed by
    the rule (``attribution.py``): a reveal writes them as the server, whose fields are
    trusted, so what they say must be who wrote each draft, never what its fields claimed."""
    notes = doc.get("notes", type=Map)
    authors = attribution.authors_of(doc)
    keys = list(notes.keys()) if ids is None else [i for i in ids if i in notes]
    out: list[Draft] = []
    for nid in sorted(keys):
        note = notes.get(nid)
        if not isinstance(note, Map):
            continue
        fields: dict[str, Any] = {}
        runs: list[tuple[str, dict[str, Any] | None]] = []
        for k, v in note.items():
            if k == "text":
                if isinstance(v, Text):
                    runs = [(str(chunk), attrs) for chunk, attrs in v.diff()]
                elif isinstance(v, str):
                    runs = [(v, None)]
            else:
                fields[k] = v.to_py() if isinstance(v, Map) else v
        who = authors.get(nid)
        if who is not None:
            fields.update(who.fields())
        out.append(Draft(nid, who.org if who else "", who.user if who else "", fields, runs))
    return out


def count(doc: Doc) -> int:
    return len(doc.get("notes", type=Map))


def same_note(shared: Doc, draft: Draft, authors: dict[str, Author] | None = None) -> bool:
    """The shared canvas holds this draft already (an earlier reveal of it committed), by
    attribution (``authors``: ``attribution.authors_of(shared)``, read once by the caller):
    a note someone wrote under the draft's id with its author's fields is not it."""
    if draft.id not in shared.get("notes", type=Map):
        return False
    who = (authors if authors is not None else attribution.authors_of(shared)).get(draft.id)
    return who is not None and (who.org, who.user) == (draft.org, draft.author)


def taken(shared: Doc, draft: Draft, authors: dict[str, Author] | None = None) -> bool:
    """The id is used in the shared canvas by another note: revealing would overwrite it."""
    return draft.id in shared.get("notes", type=Map) and not same_note(shared, draft, authors)


def _value(v: Any) -> Any:
    return Map({k: _value(x) for k, x in v.items()}) if isinstance(v, dict) else v


def write_revealed(shared: Doc, drafts: list[Draft], record: dict[str, Any]) -> None:
    """Put the drafts into the shared canvas under their own ids, and record the reveal in
    ``meta.last_reveal`` (inside the caller's one transaction: all of it or none)."""
    notes = shared.get("notes", type=Map)
    for d in drafts:
        notes[d.id] = Map({k: _value(v) for k, v in d.fields.items()} | {"text": Text()})
        text = notes[d.id]["text"]
        text.insert(0, "".join(chunk for chunk, _ in d.text))
        at = 0  # pycrdt counts text positions in UTF-8 bytes
        for chunk, attrs in d.text:
            size = len(chunk.encode())
            if attrs:
                text.format(at, at + size, attrs)
            at += size
    shared.get("meta", type=Map)[LAST_REVEAL] = record


def remove(doc: Doc, ids: Iterable[str], record: dict[str, Any] | None = None) -> None:
    """Delete drafts (revealed, or settled after an interrupted reveal); with ``record``, also
    tell the draft space's members about the reveal (its ``meta.last_reveal``)."""
    notes = doc.get("notes", type=Map)
    for nid in ids:
        if nid in notes:
            del notes[nid]
    if record is not None:
        doc.get("meta", type=Map)[LAST_REVEAL] = record
