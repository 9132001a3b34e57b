"""Shared timers in server time: the document says when a timer ends, in server epoch ms.

``timers[id]`` = {label, state: "running" | "paused" | "stopped", duration_ms, ends_at,
paused_remaining, updated_at}. A running timer's remaining time is ``ends_at - server_now``; a
paused one keeps ``paused_remaining``. Clients learn the server clock from ``GET /api/time`` (or
a response's ``Date`` header) and show ``ends_at - (local_now + offset)``, so everyone sees the
same seconds whatever their own clock says. One timer per activity: ids are the facilitator's
(e.g. ``ideation``, ``vote-1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Map

ACTIONS = ("start", "pause", "resume", "add", "stop")
MAX_MS = 24 * 3600 * 1000


class TimerError(ValueError):
    """The action does not apply to the timer as it is (e.g. pausing a stopped timer)."""


@dataclass(slots=True)
class TimerState:
    label: str
    state: str
    duration_ms: int
    ends_at: int | None
    paused_remaining: int | None
    updated_at: int

    def remaining(self, now_ms: int) -> int:
        if self.state == "running" and self.ends_at is not None:
            return max(0, self.ends_at - now_ms)
        if self.state == "paused" and self.paused_remaining is not None:
            return self.paused_remaining
        return 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "state": self.state,
            "duration_ms": self.duration_ms,
            "ends_at": self.ends_at,
            "paused_remaining": self.paused_remaining,
            "updated_at": self.updated_at,
        }


def read(doc: Doc, timer_id: str) -> TimerState | None:
    entry = doc.get("timers", type=Map).get(timer_id)
    if not isinstance(entry, Map):
        return None
    d = entry.to_py() or {}
    return TimerState(
        str(d.get("label", "")),
        str(d.get("state", "stopped")),
        int(d.get("duration_ms", 0)),
        None if d.get("ends_at") is None else int(d["ends_at"]),
        None if d.get("paused_remaining") is None else int(d["paused_remaining"]),
        int(d.get("updated_at", 0)),
    )


def act(
    doc: Doc, timer_id: str, action: str, seconds: float | None, label: str | None, now_ms: int
) -> TimerState:
    """Apply one facilitator action and write the timer; raises TimerError."""
    t = read(doc, timer_id) or TimerState(label or timer_id, "stopped", 0, None, None, now_ms)
    ms = None if seconds is None else int(round(seconds * 1000))
    if action == "start":
        if ms is None:
            raise TimerError("start needs seconds")
        t = TimerState(label or t.label, "running", ms, now_ms + ms, None, now_ms)
    elif action == "pause":
        if t.state != "running":
            raise TimerError(f"the timer is {t.state}, not running")
        t.paused_remaining, t.ends_at, t.state = t.remaining(now_ms), None, "paused"
    elif action == "resume":
        if t.state != "paused":
            raise TimerError(f"the timer is {t.state}, not paused")
        t.ends_at, t.paused_remaining, t.state = now_ms + t.remaining(now_ms), None, "running"
    elif action == "add":
        if ms is None:
            raise TimerError("add needs seconds")
        if t.state == "running" and t.ends_at is not None:
            t.ends_at = max(now_ms, t.ends_at + ms)
        elif t.state == "paused" and t.paused_remaining is not None:
            t.paused_remaining = max(0, t.paused_remaining + ms)
        else:
            raise TimerError("the timer is stopped: start it")
        t.duration_ms = max(0, t.duration_ms + ms)
    elif action == "stop":
        t.state, t.ends_at, t.paused_remaining = "stopped", None, None
    else:
        raise TimerError(f"unknown action {action!r}")
    if t.remaining(now_ms) > MAX_MS:
        raise TimerError("a timer runs at most 24 hours")
    if label is not None:
        t.label = label
    t.updated_at = now_ms
    doc.get("timers", type=Map)[timer_id] = Map(t.as_dict())
    return t
