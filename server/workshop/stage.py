"""The ``stage`` root: what the facilitator sets for the whole room, written by the server only.

* ``frozen`` (bool), ``frozen_by``, ``frozen_at``: a frozen canvas refuses every change from
  everyone, before anything of it is applied (``Room._apply`` asks the gate's ``refuse_all``),
  on every node (the flag travels in the document) and after a restart (it is stored with it).
* ``gather``: "bring everyone to me" – {seq, by, by_name, at, x, y, zoom} or absent. Clients
  follow it until their user moves the view; ``seq`` grows with each summons so a repeated
  summons to the same place is still new. Only a facilitator's HTTP request writes it, so a
  participant cannot forge one (presence is the participant's own; this is not presence).
* ``spotlight``: {block, by, at} or absent.
* ``viewer_comments`` (bool): viewers may comment (server/workshop/comments.py).

All times are server epoch milliseconds.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Map

from ..session import Identity

FROZEN_REASON = "the canvas is frozen: the facilitator made it read-only"


def root(doc: Doc) -> Map:
    return doc.get("stage", type=Map)


def frozen_reason(doc: Doc) -> str | None:
    return FROZEN_REASON if root(doc).get("frozen") is True else None


def frozen_reason_of(entries: dict[str, Any]) -> str | None:
    """The same, from a plain copy of the root (the policy's mirror: no document read)."""
    return FROZEN_REASON if entries.get("frozen") is True else None


def is_frozen(doc: Doc) -> bool:
    return root(doc).get("frozen") is True


def set_frozen(doc: Doc, frozen: bool, who: Identity | None, now_ms: int) -> None:
    stage = root(doc)
    stage["frozen"] = frozen
    stage["frozen_by"] = who.name if who and frozen else ""
    stage["frozen_at"] = now_ms if frozen else 0


def gather(doc: Doc, who: Identity | None, view: dict[str, float], now_ms: int) -> dict[str, Any]:
    stage = root(doc)
    old = stage.get("gather")
    seq = int(old.get("seq", 0)) + 1 if isinstance(old, dict) else 1
    summons: dict[str, Any] = {
        "seq": seq,
        "by": who.user_id if who else "operator",
        "by_name": who.name if who else "Operator",
        "at": now_ms,
        **view,
    }
    stage["gather"] = summons
    return summons


def release(doc: Doc) -> None:
    stage = root(doc)
    if "gather" in stage:
        del stage["gather"]


def spotlight(doc: Doc, block: str | None, who: Identity | None, now_ms: int) -> None:
    stage = root(doc)
    if block is None:
        if "spotlight" in stage:
            del stage["spotlight"]
        return
    stage["spotlight"] = {"block": block, "by": who.name if who else "Operator", "at": now_ms}


def set_viewer_comments(doc: Doc, allowed: bool) -> None:
    root(doc)["viewer_comments"] = allowed


def plain(doc: Doc) -> dict[str, Any]:
    return root(doc).to_py() or {}
