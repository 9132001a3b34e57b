"""The rule for the ``comments`` root: threads on notes, author and organization from the token.

A comment is an entry ``comments[id]`` = Map {note, parent?, text, resolved, author,
author_name, org, created_at}. Whatever a client writes, the server stamps ``author``,
``author_name``, ``org`` and ``created_at`` (server time, epoch ms) on a new comment, so a
partner cannot speak for another. Who may do what:

* editors and facilitators comment; viewers only when the facilitator allows it
  (``stage.viewer_comments``);
* a comment names an existing note; a reply's ``parent`` is a comment on the same note;
* only its author edits a comment's text; any participant who may comment resolves or reopens
  (``resolved``); its author or a facilitator deletes it;
* the stamps never change after creation.

Refused changes are put right the way the notes' rules do it (the policy's fixes), and a note's
comments go when the note goes (:func:`orphans`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pycrdt import Map

from ..session import ROLE_FACILITATOR, Identity

MAX_COMMENT_CHARS = 4000
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

    def fix() -> None:
        if isinstance(old, dict):
            ctx.comments[cid] = Map(dict(old))
        elif cid in ctx.comments:
            del ctx.comments[cid]

    return fix


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
        if old.get("author") != me.user_id and me.role != ROLE_FACILITATOR:
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
    want: dict[str, Any] = {
        "author": me.user_id,
        "author_name": me.name,
        "org": me.org_id,
        "created_at": int(ctx.clock() * 1000),
    }
    if not isinstance(new.get("resolved"), bool):
        want["resolved"] = False
    wrong = {k: v for k, v in want.items() if new.get(k) != v}
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
            if old.get("author") != me.user_id:
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


def orphans(comments: Map, deleted_notes: set[str]) -> Callable[[], None]:
    """A fix that removes the comments of notes that were deleted (comments go with their
    note)."""

    def fix() -> None:
        for cid in list(comments.keys()):
            entry = comments.get(cid)
            if isinstance(entry, Map) and entry.get("note") in deleted_notes:
                del comments[cid]

    return fix
