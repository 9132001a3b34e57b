"""Named versions of a canvas: save, read, compare, restore (in place or as a new canvas).

A version is the whole document state (a Yjs update) kept on purpose in the store, apart from
the compaction snapshots, up to ``MAX_VERSIONS`` per canvas (``store.base``). Facilitators
save them by name; other features save automatic ones with :func:`save_automatic` (``reason``:
"vote round closed", "drafts revealed"); a restore in place first saves the state it replaces
("before restoring …"), so a restore never loses anything, and it can itself be undone by
restoring that version.

Saves, reads of "now" and restores take the canvas's loaded Room (the caller holds it), whose
document is ahead of (or equal to) the store, so a version never misses an edit its node had
served, and a restore is ordered after everything the room has seen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Map

from .canvas import attribution
from .canvas import diff as canvas_diff
from .canvas.export import doc_to_json
from .canvas.restore import content_of, make_equal, new_document
from .canvas.schema import ROOTS, SERVER_ROOTS, server_client_id
from .room import Room
from .store.base import (
    SERVER_OWNER,
    AuditEntry,
    CanvasNotFound,
    CanvasRecord,
    Store,
    StoreError,
    Version,
    VersionLimit,
)

log = logging.getLogger("cocanvas.versions")

# Roots a restore in place rewrites. ``meta`` (title, settings) stays as it is now; the
# organizations are restored but never removed (their invite links and tokens name them).
# The workshop's server-owned state (vote rounds and their tallies, timers, the stage with its
# freeze) belongs to the session, not to the content: a restore keeps it as it is, and a copy
# starts without it (its rounds' ballots stay with the original).
RESTORED_ROOTS = tuple(r for r in ROOTS if r not in ("meta", "orgs") and r not in SERVER_ROOTS)


class VersionNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Who:
    """Who asks, for the version's ``created_by`` and the audit trail."""

    user_id: str
    name: str
    org_id: str


async def save(store: Store, room: Room, name: str, who: Who) -> Version:
    """A named version of the room's canvas as it is now. Raises VersionLimit, CanvasNotFound."""
    return await store.save_version(room.canvas_id, name, room.doc.get_update(), who.user_id)


async def save_automatic(store: Store, canvas_id: str, doc: Doc, reason: str) -> Version | None:
    """An automatic version of ``doc`` (a loaded room's document), e.g. when a vote round
    closes or drafts are revealed; None (logged) when the canvas's versions are all kept on
    purpose and at the cap, or when the store fails (logged), so the feature calling it goes on
    either way."""
    try:
        return await store.save_version(canvas_id, reason, doc.get_update(), SERVER_OWNER)
    except VersionLimit as exc:
        log.warning("automatic version %r of %s not saved: %s", reason, canvas_id, exc)
        return None
    except StoreError as exc:
        # The change it records (a close, a reveal) is already committed: a failing store
        # must not make it look failed to its caller. Logged; the next save tries again.
        log.error("automatic version %r of %s not saved: %r", reason, canvas_id, exc)
        return None


async def content(store: Store, canvas_id: str, version_id: int) -> dict[str, Any]:
    state = await store.get_version(canvas_id, version_id)
    if state is None:
        raise VersionNotFound(version_id)
    return content_of(state)


async def compare(
    store: Store,
    room: Room,
    base: int,
    target: int | None,
) -> dict[str, Any]:
    """The changes from version ``base`` to version ``target`` (None: the room's canvas now)."""
    canvas_id = room.canvas_id
    before = await content(store, canvas_id, base)
    after = doc_to_json(room.doc) if target is None else await content(store, canvas_id, target)
    voters = {p.user_id: p.org_id for p in await store.list_participants(canvas_id)}
    return canvas_diff.diff(before, after, voters)


def _keeping_attribution(doc: Doc, version: dict[str, Any]) -> dict[str, Any]:
    """The version's content, arranged so that restoring it leaves every note attributed as
    the version says (``canvas/attribution.py``) without writing over what creators wrote: a
    live note attributed the same keeps its own ``org``/``author``/``author_name`` fields; one
    attributed otherwise (its entry since replaced by someone else) is deleted here, so
    ``make_equal`` re-creates it as the server, whose fields (the version's) are trusted."""
    raw = version.get("notes")
    if not isinstance(raw, dict) or not raw:
        return version
    live = doc.get("notes", type=Map)
    attributed = doc_to_json(doc)["notes"]
    notes: dict[str, Any] = {}
    for nid, want in raw.items():
        have = attributed.get(nid)
        entry = live.get(nid) if nid in live else None
        if not isinstance(want, dict) or not isinstance(have, dict) or not isinstance(entry, Map):
            notes[nid] = want
            continue
        if any(have.get(f) != want.get(f) for f in attribution.FIELDS):
            del live[nid]
            notes[nid] = want
            continue
        kept = {k: v for k, v in want.items() if k not in attribution.FIELDS}
        for f in attribution.FIELDS:
            if f in entry:
                kept[f] = entry.get(f)
        notes[nid] = kept
    return {**version, "notes": notes}


def _restore_change(version: dict[str, Any]) -> Callable[[Doc], None]:
    raw = version.get("orgs")
    wanted: dict[str, Any] = raw if isinstance(raw, dict) else {}

    def change(doc: Doc) -> None:
        make_equal(doc, _keeping_attribution(doc, version), RESTORED_ROOTS)
        live = doc_to_json(doc)["orgs"]
        kept = {k: v for k, v in live.items() if k not in wanted}
        make_equal(doc, {"orgs": {**wanted, **kept}}, ("orgs",))

    return change


@dataclass(frozen=True, slots=True)
class Restored:
    version: Version  # the one saved first, holding what the restore replaced
    changed: bool  # False: the canvas already equalled the version


async def restore_in_place(store: Store, room: Room, version_id: int, who: Who) -> Restored:
    """Make the room's canvas equal the version, as a new change everyone receives (on every
    node, through the room's usual path: durable first, then local sessions and the broker).

    The state it replaces is saved first as an automatic version. Raises VersionNotFound, and
    VersionLimit (nothing changed) when that version cannot be kept.
    """
    canvas_id = room.canvas_id
    wanted = await content(store, canvas_id, version_id)
    listed = {v.id: v for v in await store.list_versions(canvas_id)}
    name = listed[version_id].name if version_id in listed else str(version_id)
    # Not save_automatic: a restore whose backup cannot be kept would lose the present, so
    # it is refused (VersionLimit) rather than done without one. The backup is the canvas as
    # it was when the restore was asked; an edit arriving while it is being saved (a few
    # milliseconds) is overwritten like any edit in flight when a restore lands, and stays in
    # the document's history.
    backup = await store.save_version(
        canvas_id, f"before restoring “{name}”", room.doc.get_update(), SERVER_OWNER
    )
    audit = [
        AuditEntry(
            canvas_id,
            time.time(),
            who.user_id,
            who.name,
            who.org_id,
            "restore-version",
            str(version_id),
            name,
        )
    ]
    update = await room.apply_server_change(_restore_change(wanted), audit)
    return Restored(backup, update is not None)


async def restore_as_new(
    store: Store, canvas_id: str, version_id: int, new_id: str, title: str | None
) -> CanvasRecord:
    """A new canvas holding the version's content (no history), with the settings and
    template of the original. Raises VersionNotFound, CanvasNotFound."""
    original = await store.get_canvas(canvas_id)
    if original is None:
        raise CanvasNotFound(canvas_id)
    wanted = await content(store, canvas_id, version_id)
    meta = dict(wanted.get("meta") or {})
    now = time.time()
    meta["title"] = title or f"{meta.get('title') or original.title} (restored)"
    meta["created_at"] = now
    wanted["meta"] = meta
    for name in SERVER_ROOTS:
        wanted.pop(name, None)
    record = CanvasRecord(
        new_id, str(meta["title"]), original.template, now, dict(original.settings)
    )
    await store.create_canvas(record, new_document(wanted, server_client_id()))
    return record
