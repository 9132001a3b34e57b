"""The rule for the ``comments`` root: threads on notes, attributed to whoever created them.

A comment is an entry ``comments[id]`` = Map {note, parent?, text, resolved, created_at}. Its
author and organization follow from the client id that created the entry, like a note's
(``server/canvas/attribution.py``): the server no longer writes ``author``, ``author_name`` and
``org`` into every new comment (one more transaction and a bigger update per comment); what a
client writes in those fields is ignored wherever comments are read (the web client, exports,
versions, the diff). ``created_at`` (epoch ms) is the client's when it is within
:data:`CLOCK_SKEW_MS` of the server's clock, else the server writes its own, so an honest client's
comment needs no correction and nobody can back- or post-date one. Who may do what:

* editors and facilitators comment; viewers only when the facilitator allows it
  (``stage.viewer_comments``);
* a comment names an existing note; a reply's ``parent`` is a comment on the same note;
* only its author edits a comment's text; any participant who may comment resolves or reopens
  (``resolved``); its author or a facilitator deletes it;
* ``note``, ``parent``, ``created_at`` and the author fields never change after creation.

Refused changes are put right the way the notes' rules do it (the policy's fixes); a comment the
server puts back is the server's entry, so it carries its attribution in its fields. A note's
comments go when the note goes (:func:`orphans`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

from pycrdt import Map

from ..canvas import attribution
from ..canvas.attribution import Author
from ..session import ROLE_FACILITATOR, Identity

MAX_COMMENT_CHARS = 4000
# How far a new comment's created_at may be from the server's clock before the server replaces
# it: browsers' clocks are right to within seconds; a comment is not a ballot.
CLOCK_SKEW_MS = 5 * 60 * 1000
STAMPS = ("author", "author_name", "org", "created_at")
# Fields a client may write; anything else in a comment is removed.
FIELDS = frozenset(("note", "parent", "text", "resolved", *STAMPS))


class Decision(Protocol):
    """The policy's decision for one update (server/policy.py ``_Decision``)."""

    fixes: list[Callable[[], None]]
    audit: list[tuple[str, str, str]]

    def refuse(self, target: str, reason: str, fix: Callable[[], None]) -> None: ...


@dataclass
class Context:
    """What the rule reads: who writes, the roots now, and the state before the update."""

    me: Identity
    decision: Decision
    comments: Map  # the live root
    notes: Map  # the live root
    before: dict[str, Any]  # comments before the update (plain)
    stage: dict[str, Any]  # stage before the update (plain)
    # An existing comment's attribution, from its creating client id (the policy's author_of).
    author_of: Callable[[str, dict[str, Any]], Author]
    clock: Callable[[], float] = time.time


def may_comment(me: Identity, stage: dict[str, Any]) -> str | None:
    if me.can_write or stage.get("viewer_comments") is True:
        return None
    return "viewers may comment only when the facilitator allows it"


def judge(ctx: Context, changes: list[tuple[tuple[str | int, ...], dict[str, str] | None]]) -> None:
    """Judge every change to the comments root in one update."""
    entries: dict[str, str] = {}
    fields: dict[str, set[str]] = {}
    for path, keys in changes:
        if not path:
            entries.update(keys or {})
        else:
            fields.setdefault(str(path[0]), set()).update(
                (keys or {}).keys() if len(path) == 1 else {str(path[1])}
            )
    for cid, action in entries.items():
        _entry(ctx, cid, action)
    for cid, changed in fields.items():
        if cid in entries or cid not in ctx.before:
            continue
        _fields(ctx, cid, changed)


def _restore(ctx: Context, cid: str) -> Callable[[], None]:
    old = ctx.before.get(cid)
    # Re-created by the server, whose entries' fields are trusted: written as its creator was
    # attributed, never the fields the original carried.
    restored = attribution.stamped(old, ctx.author_of(cid, old)) if isinstance(old, dict) else None

    def fix() -> None:
        if restored is not None:
            ctx.comments[cid] = Map(restored)
        elif cid in ctx.comments:
            del ctx.comments[cid]

    return fix


def _author(ctx: Context, cid: str) -> str:
    old = ctx.before.get(cid)
    return ctx.author_of(cid, old).user if isinstance(old, dict) else ""


def _new_comment_refusal(ctx: Context, new: Any) -> str | None:
    if not isinstance(new, Map):
        return "a comment must be a map"
    note = new.get("note")
    if not isinstance(note, str) or note not in ctx.notes:
        return "a comment needs an existing note"
    text = new.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_COMMENT_CHARS:
        return f"a comment's text is 1 to {MAX_COMMENT_CHARS} characters"
    parent = new.get("parent")
    if parent is not None:
        up = ctx.before.get(parent) if isinstance(parent, str) else None
        if not isinstance(up, dict) or up.get("note") != note:
            return "a reply answers a comment on the same note"
    return None


def _entry(ctx: Context, cid: str, action: str) -> None:
    me, d = ctx.me, ctx.decision
    old = ctx.before.get(cid)
    reason = may_comment(me, ctx.stage)
    if reason is None and action in ("delete", "update") and isinstance(old, dict):
        if _author(ctx, cid) != me.user_id and me.role != ROLE_FACILITATOR:
            reason = "only its author or a facilitator removes a comment"
    if reason is None and action in ("add", "update"):
        reason = _new_comment_refusal(ctx, ctx.comments.get(cid))
    if reason is not None:
        d.refuse(cid, reason, _restore(ctx, cid))
        return
    if action == "delete":
        d.audit.append(("uncomment", cid, ""))
        return
    new = ctx.comments.get(cid)
    assert isinstance(new, Map)
    d.audit.append(("comment", cid, str(new.get("note"))))
    # Attribution is the creating client id's: the author fields are left as written (and
    # ignored). Only a missing or far-off time, a missing resolved and unknown fields are put
    # right: an honest client's comment needs no correction.
    wrong: dict[str, Any] = {}
    now = int(ctx.clock() * 1000)
    at = new.get("created_at")
    if not _is_ms(at) or abs(at - now) > CLOCK_SKEW_MS:
        wrong["created_at"] = now
    if not isinstance(new.get("resolved"), bool):
        wrong["resolved"] = False
    extra = [k for k in new.keys() if k not in FIELDS]
    if wrong or extra:

        def stamp() -> None:
            current = ctx.comments.get(cid)
            if not isinstance(current, Map):
                return
            for k, v in wrong.items():
                current[k] = v
            for k in extra:
                if k in current:
                    del current[k]

        d.fixes.append(stamp)


def _fields(ctx: Context, cid: str, changed: set[str]) -> None:
    me, d = ctx.me, ctx.decision
    old = ctx.before[cid]
    reason = may_comment(me, ctx.stage)
    refused: dict[str, str] = {}
    for f in changed:
        if reason is not None:
            refused[f] = reason
        elif f in STAMPS or f in ("note", "parent") or f not in FIELDS:
            refused[f] = "a comment's note, thread and author are fixed"
        elif f == "text":
            text = ctx.comments[cid].get("text") if isinstance(ctx.comments[cid], Map) else None
            if _author(ctx, cid) != me.user_id:
                refused[f] = "only its author edits a comment"
            elif not isinstance(text, str) or not text.strip() or len(text) > MAX_COMMENT_CHARS:
                refused[f] = f"a comment's text is 1 to {MAX_COMMENT_CHARS} characters"
        elif f == "resolved":
            if not isinstance(ctx.comments[cid].get("resolved"), bool):
                refused[f] = "resolved is true or false"
    for f, why in refused.items():
        d.refuse(cid, why, _restore_field(ctx, cid, f))
    kept = changed - set(refused)
    if "resolved" in kept:
        done = ctx.comments[cid].get("resolved")
        d.audit.append(("resolve" if done else "reopen", cid, str(old.get("note"))))
    if "text" in kept:
        d.audit.append(("edit-comment", cid, str(old.get("note"))))


def _restore_field(ctx: Context, cid: str, f: str) -> Callable[[], None]:
    old = ctx.before[cid]

    def fix() -> None:
        current = ctx.comments.get(cid)
        if not isinstance(current, Map):
            return
        if f in old:
            current[f] = old[f]
        elif f in current:
            del current[f]

    return fix


def _is_ms(v: Any) -> TypeGuard[int | float]:
    """An epoch-ms time as a Yjs client writes ``Date.now()`` (a JS number: int or float)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def orphans(comments: Map, deleted_notes: set[str]) -> Callable[[], None]:
    """A fix that removes the comments of notes that were deleted (comments go with their
    note)."""

    def fix() -> None:
        for cid in list(comments.keys()):
            entry = comments.get(cid)
            if isinstance(entry, Map) and entry.get("note") in deleted_notes:
                del comments[cid]

    return fix
