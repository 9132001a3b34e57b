"""The shape of a canvas document, in one place: what may sit where.

Used by the validator (``server/vouch.py``: an update that puts anything else anywhere is refused
before it is applied), by the policy (its roots) and by the JSON export. The document is eleven
root maps (four, plus the three of fit across partners, the four of running the workshop and
the server's ``ids``);
every container is a *class* below, and each says which children it takes:

* ``meta``   – plain values (title, template, created_at, protect_notes, …)
* ``blocks`` – block id -> Map ``block`` of plain values
* ``notes``  – note id -> Map ``note``: plain values, ``text`` a Text (or a plain string written by
  other tools), ``votes`` a Map ``votes`` of plain values
* ``orgs``   – org id -> Map ``org`` of plain values
* ``text``   – a note's Text: characters and formatting marks, nothing embedded
* ``links``    – link id -> Map ``link`` of plain values (fit links, ``canvas/fit.py``)
* ``exchange`` – arrow id -> Map ``arrow`` of plain values (the partners' value exchange)
* ``overlaps`` – row note id -> a plain value (the facilitator's complement/competition mark)
* ``rounds``, ``timers`` – id -> Map of plain values, written by the server only
* ``stage``  – plain values, written by the server only (frozen, gather, spotlight, …)
* ``comments`` – comment id -> Map ``comment`` of plain values (attributed like a note)
* ``ids``    – client id (decimal string) -> a plain map {user, org, name, facilitator}, written by
  the server only, once per client id that authors structs: who wrote what
  (``canvas/attribution.py``: a note's organization and author follow from it)

Nothing else: no other roots, no Arrays, no Xml types, no embeds, binaries or subdocuments, and so
a bounded depth (root, entry, field, leaf). Deleted content (tombstones) may appear anywhere.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .. import yupdate as y

FIT_ROOTS = ("links", "exchange", "overlaps")  # fit across partners (canvas/fit.py)
WORKSHOP_ROOTS = ("rounds", "timers", "stage", "comments")  # running the workshop (workshop/)
IDS_ROOT = "ids"  # client id -> who it is bound to (canvas/attribution.py)
ROOTS: tuple[str, ...] = (
    "meta",
    "blocks",
    "notes",
    "orgs",
    *FIT_ROOTS,
    *WORKSHOP_ROOTS,
    IDS_ROOT,
)
# What a canvas's content is (``canvas/export.py``): every root but ``ids``, which is folded
# into the notes' attribution.
CONTENT_ROOTS: tuple[str, ...] = tuple(r for r in ROOTS if r != IDS_ROOT)

# Roots only the server writes (HTTP routes, after checking who asks): the policy refuses every
# session's change to them, a facilitator's too, so what they hold is what a route validated.
# ``rounds``: vote rounds and, once revealed, their tallies; ``timers``: server-time timers;
# ``stage``: freeze, "bring everyone to me", spotlight, comment settings (server/workshop/);
# ``ids``: who each client id is (the attribution of everything that id wrote).
SERVER_ROOTS = frozenset(("rounds", "timers", "stage", IDS_ROOT))


def server_client_id() -> int:
    """A random 32-bit client id for content the server writes itself (templates, corrections,
    API edits): y-py 0.6 clients mis-decode larger ids. Rooms bind theirs in the store."""
    return random.randrange(1, 2**32 - 1)


@dataclass(frozen=True, slots=True)
class Slot:
    """What one map key (or a sequence position) may hold."""

    values: bool = False  # plain values (Any / JSON content)
    types: dict[int, str] = field(default_factory=dict)  # type ref -> class of the new type
    text: bool = False  # characters and formatting (sequence of a Text)


@dataclass(frozen=True, slots=True)
class Container:
    keys: dict[str, Slot] = field(default_factory=dict)  # map entries with a fixed meaning
    other: Slot | None = None  # any other map key
    sequence: Slot | None = None  # sequence children (None: the container has none)

    def slot(self, sub: str | None) -> Slot | None:
        if sub is None:
            return self.sequence
        return self.keys.get(sub, self.other)


VALUES = Slot(values=True)

CONTAINERS: dict[str, Container] = {
    "meta": Container(other=VALUES),
    "blocks": Container(other=Slot(types={y.MAP: "block"})),
    "block": Container(other=VALUES),
    "notes": Container(other=Slot(types={y.MAP: "note"})),
    "note": Container(
        keys={
            "text": Slot(values=True, types={y.TEXT: "text"}),
            "votes": Slot(types={y.MAP: "votes"}),
        },
        other=VALUES,
    ),
    "votes": Container(other=VALUES),
    "text": Container(sequence=Slot(text=True)),
    "orgs": Container(other=Slot(types={y.MAP: "org"})),
    "org": Container(other=VALUES),
    # fit across partners (canvas/fit.py)
    "links": Container(other=Slot(types={y.MAP: "link"})),
    "link": Container(other=VALUES),
    "exchange": Container(other=Slot(types={y.MAP: "arrow"})),
    "arrow": Container(other=VALUES),
    "overlaps": Container(other=VALUES),
    # server/workshop/: written by the server only (SERVER_ROOTS), plain values per entry
    "rounds": Container(other=Slot(types={y.MAP: "round"})),
    "round": Container(other=VALUES),
    "timers": Container(other=Slot(types={y.MAP: "timer"})),
    "timer": Container(other=VALUES),
    "stage": Container(other=VALUES),
    # comment id -> Map of plain values (note, parent, text, resolved, created_at); author and
    # organization from the creating client id (canvas/attribution.py, workshop/comments.py)
    "comments": Container(other=Slot(types={y.MAP: "comment"})),
    "comment": Container(other=VALUES),
    # client id -> {user, org, name, facilitator}: written by the server only (SERVER_ROOTS)
    "ids": Container(other=VALUES),
}

# Root name -> its class (roots are Maps whose class is their name).
ROOT_CLASSES = {name: name for name in ROOTS}


def allows(cls: str, sub: str | None, content: int, type_ref: int | None) -> str | None:
    """Why a struct of this content may not sit under key ``sub`` of a ``cls`` container
    (None: it may). For a type, the caller learns its class from :func:`type_class`."""
    if content == y.DELETED:
        return None
    container = CONTAINERS.get(cls)
    if container is None:
        return f"nothing may be written inside {cls}"
    slot = container.slot(sub)
    where = f"{cls}.{sub}" if sub is not None else f"the sequence of {cls}"
    if slot is None:
        return f"{where} is not part of the canvas schema"
    if content == y.TYPE:
        if type_ref in slot.types:
            return None
        name = y.TYPE_NAMES.get(type_ref or 0, "unknown type")
        return f"a {name} may not be written at {where}"
    if content == y.ANY:
        return None if slot.values else f"{where} takes no plain values"
    if content in (y.STRING, y.FORMAT):
        return None if slot.text else f"{where} takes no text"
    return f"{y.CONTENT_NAMES.get(content, 'unknown')} content is not part of the canvas schema"


def type_class(cls: str, sub: str | None, type_ref: int) -> str | None:
    container = CONTAINERS.get(cls)
    slot = container.slot(sub) if container is not None else None
    return slot.types.get(type_ref) if slot is not None else None
