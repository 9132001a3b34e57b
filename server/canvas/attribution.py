"""Who wrote a note (or a fit link, or a comment): its organization and author follow from the
client id that created it.

A note's own ``org``, ``author`` and ``author_name`` fields are whatever its creator wrote. The
server used to overwrite them with a correction per note (one more transaction, a bigger update
for every receiver, tombstones every joiner downloads). It no longer does: a struct can only carry
a client id bound to its sender (``server/bindings.py``, ``server/vouch.py``), so the client id of
the live item that holds ``notes[nid]`` *is* the note's creator, and the server-written ``ids``
root says who that is (client id as a string -> ``{user, org, name, facilitator}``), once per
client id, durable before the first note that needs it is seen (``Room._attribute``).

The rule, here and nowhere else on the server (``client/src/attribution.ts`` is its mirror), for
the entries of ``notes``, ``links`` and ``comments`` (:data:`ENTRY_CLASSES`) alike:

* creator bound to the server (its own ids, or ``:legacy`` ids whose content predates bindings):
  the note's fields are trusted, the server wrote them (HTTP notes, templates, a drafts reveal,
  a policy restore — which writes the attributed values, never the restored note's own fields);
* creator bound to a facilitator session: the note's ``org`` is trusted if it names a known
  organization (or is "", the facilitation); author and name from the ids entry;
* creator bound to anyone else: everything from the ids entry; the fields are ignored;
* creator without an ids entry: the note predates attribution (its fields were stamped by the
  server then: a version saved before, a canvas not loaded since) or the server wrote the
  document offline (a restore as a new canvas): the fields are trusted. No session can make
  this case: a room writes an id's entry before it applies the id's first struct, and a room
  that loads a canvas writes the entries it lacks from the store's bindings.

Which client created ``notes[nid]`` is not exposed by pycrdt, so it is read from the document's
structs: :func:`note_creators` parses a whole state (``doc.get_update()``: structs and delete
set) and follows yrs's placement rule for the root map's entries (5,000 notes: ~0.15 s, once per
state: :func:`creators_of` remembers it); :func:`entries_placed` reads the same from one
update's placements (``Verdict.runs``), for the policy's incremental mirror.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Map

from .. import yupdate as y

IDS = "ids"
# Bound-to-the-server owners (store.base.SERVER_OWNER; the room's marker for content that
# predates bindings): notes they created carry fields the server wrote.
SERVER_USER = ":server"
LEGACY_USER = ":legacy"
TRUSTED_USERS = frozenset((SERVER_USER, LEGACY_USER))
# A note's fields that attribution decides (untrusted unless the server created the note).
FIELDS = ("org", "author", "author_name")

BY_SERVER = "server"
BY_FACILITATOR = "facilitator"
BY_MEMBER = "member"
BY_STAMPED = "stamped"


@dataclass(frozen=True, slots=True)
class Author:
    """A note's attribution: organization ("" the facilitation), user id, display name, and
    what kind of creator decided it."""

    org: str
    user: str
    name: str
    by: str

    def fields(self) -> dict[str, str]:
        """As the note fields a reader expects (``org``, ``author``, ``author_name``)."""
        return {"org": self.org, "author": self.user, "author_name": self.name}


def ids_entry(user: str, org: str, name: str, facilitator: bool) -> dict[str, Any]:
    """The ``ids`` value for one client id (a plain map: one struct, written once)."""
    return {"user": user, "org": org, "name": name, "facilitator": facilitator}


def _s(v: Any) -> str:
    return v if isinstance(v, str) else ""


def _as_written(note: Mapping[str, Any], by: str) -> Author:
    return Author(_s(note.get("org")), _s(note.get("author")), _s(note.get("author_name")), by)


def attribute(note: Mapping[str, Any], creator: Any, orgs: Container[str]) -> Author:
    """THE rule: ``note``'s plain fields, ``creator`` the ids entry of the client id that
    created the note's entry (None when there is none), ``orgs`` the canvas's org ids."""
    if not isinstance(creator, Mapping):
        return _as_written(note, BY_STAMPED)
    user = _s(creator.get("user"))
    if user in TRUSTED_USERS:
        return _as_written(note, BY_SERVER)
    org = _s(creator.get("org"))
    name = _s(creator.get("name"))
    if creator.get("facilitator") is True:
        named = note.get("org")
        if isinstance(named, str) and (named == "" or named in orgs):
            org = named  # a facilitator may file a note under any partner
        return Author(org, user, name, BY_FACILITATOR)
    return Author(org, user, name, BY_MEMBER)


# -- who created each entry ---------------------------------------------------------------------

# Roots whose entries are attributed by their creating client id: root -> class of an entry.
ENTRY_CLASSES = {"notes": "note", "links": "link", "comments": "comment"}


def _is_entry(info: tuple[str, str | None, str | None], root: str) -> bool:
    return info[0] == root and info[1] is not None and info[2] == ENTRY_CLASSES[root]


def entries_placed(
    runs: Iterable[tuple[int, int, int, Any]], root: str = "notes"
) -> dict[str, int]:
    """Entry id -> client id of the (last) entry an update's placements put at ``root[key]``
    (``Verdict.runs``). Which of them is live the caller learns from the document's change
    events: only an entry that changed the key is its new creator."""
    out: dict[str, int] = {}
    for client, _clock, _length, info in runs:
        if _is_entry(info, root):
            out[info[1]] = client
    return out


class _Deleted:
    __slots__ = ("_starts", "_ends")

    def __init__(self, deletes: Mapping[int, list[tuple[int, int]]]) -> None:
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for client, ranges in deletes.items():
            ordered = sorted(ranges)
            self._starts[client] = [c for c, _ in ordered]
            self._ends[client] = [c + n for c, n in ordered]

    def has(self, client: int, clock: int) -> bool:
        starts = self._starts.get(client)
        if not starts:
            return False
        i = bisect.bisect_right(starts, clock) - 1
        return i >= 0 and clock < self._ends[client][i]


Creators = dict[str, dict[str, tuple[int, int]]]  # root -> entry id -> (client, clock)
_Found = dict[int, list[tuple[int, int, str, str]]]  # client -> [(clock, end, root, key)]


def entry_creators(state: bytes) -> Creators:
    """Root -> entry id -> (client, clock) of the live item holding ``root[key]``, for the
    roots of :data:`ENTRY_CLASSES`, from a whole document's state (``doc.get_update()``, which
    carries the delete set).

    Only the roots' own entries matter, so instead of placing every struct (the validator's
    walk: twice the time) this follows yrs's rule for just them: an entry names the root as its
    parent, or its origin (else right origin) is another entry of the root, whose key it takes.
    """
    parsed = y.read_update(state)
    deleted = _Deleted(parsed.deletes)
    found: _Found = {}
    live: Creators = {root: {} for root in ENTRY_CLASSES}
    waiting: list[y.Struct] = []
    for st in parsed.structs:
        if st.content in (y.SKIP, y.GC):
            continue
        if st.origin is None and st.right is None:
            if isinstance(st.parent, str) and st.parent in live and st.sub is not None:
                _found(found, live, deleted, st, st.parent, st.sub)
        elif st.parent is None:
            waiting.append(st)
    while waiting:
        more: list[y.Struct] = []
        for st in waiting:
            near = st.origin if st.origin is not None else st.right
            assert near is not None
            at = _entry_at(found, near)
            if at is None:
                more.append(st)  # its neighbour may be an entry found later (another client's)
            else:
                _found(found, live, deleted, st, *at)
        if len(more) == len(waiting):
            break  # the rest hang off items that are not the roots' entries
        waiting = more
    return live


def note_creators(state: bytes) -> dict[str, tuple[int, int]]:
    """Note id -> (client, clock) of the live item holding ``notes[nid]`` (see above)."""
    return entry_creators(state)["notes"]


def _found(
    found: _Found, live: Creators, deleted: _Deleted, st: y.Struct, root: str, key: str
) -> None:
    runs = found.setdefault(st.client, [])
    bisect.insort(runs, (st.clock, st.clock + st.length, root, key))
    if st.content == y.TYPE and not deleted.has(st.client, st.clock):
        live[root][key] = (st.client, st.clock)


def _entry_at(found: _Found, ident: y.ID) -> tuple[str, str] | None:
    runs = found.get(ident[0])
    if not runs:
        return None
    i = bisect.bisect_right(runs, (ident[1], float("inf"), "", "")) - 1
    if i >= 0 and runs[i][0] <= ident[1] < runs[i][1]:
        return runs[i][2], runs[i][3]
    return None


_RECENT: OrderedDict[tuple[str, bytes], Creators] = OrderedDict()
_RECENT_DOCS = 8


def creators_of(doc: Doc, root: str = "notes") -> dict[str, tuple[int, int]]:
    """:func:`entry_creators` of a document (one root's), remembered per (document, state
    vector): reading a canvas twice without an edit between (the canvas JSON, then an export)
    parses it once. A delete alone leaves the state vector as it was, and may leave a deleted
    entry's creator here: harmless, every caller looks up live entries only. The dict is
    shared: do not change it (copy it)."""
    key = (doc.guid, doc.get_state())
    hit = _RECENT.get(key)
    if hit is None:
        hit = _RECENT[key] = entry_creators(doc.get_update())
        if len(_RECENT) > _RECENT_DOCS:
            _RECENT.popitem(last=False)
    else:
        _RECENT.move_to_end(key)
    return hit[root]


def ids_of(doc: Doc) -> dict[str, Any]:
    raw = doc.get(IDS, type=Map).to_py()
    return raw if isinstance(raw, dict) else {}


def attribute_notes(
    notes: Mapping[str, Any],
    creators: Mapping[str, tuple[int, int]],
    ids: Mapping[str, Any],
    orgs: Container[str],
) -> dict[str, Author]:
    """Every entry's attribution (plain notes, links or comments as ``doc_to_json`` reads
    them)."""
    out: dict[str, Author] = {}
    for nid, note in notes.items():
        if not isinstance(note, Mapping):
            continue
        creator = creators.get(nid)
        entry = ids.get(str(creator[0])) if creator is not None else None
        out[nid] = attribute(note, entry, orgs)
    return out


def authors_of(doc: Doc, root: str = "notes") -> dict[str, Author]:
    """Every live note's (or link's) attribution in a whole document."""
    entries = doc.get(root, type=Map).to_py() or {}
    if not entries:
        return {}
    orgs = set(doc.get("orgs", type=Map).keys())
    return attribute_notes(entries, creators_of(doc, root), ids_of(doc), orgs)


def attributed(content: dict[str, Any], doc: Doc) -> dict[str, Any]:
    """``content`` (``doc_to_json`` of ``doc``) with every note's, link's and comment's ``org``/
    ``author``/``author_name`` replaced by its attribution: what exports, versions, the diff
    and the contribution map read, so none of them ever sees a field a client made up."""
    orgs = content.get("orgs")
    ids: dict[str, Any] | None = None
    for root in ENTRY_CLASSES:
        entries = content.get(root)
        if not isinstance(entries, dict) or not entries:
            continue
        ids = ids_of(doc) if ids is None else ids
        authors = attribute_notes(
            entries, creators_of(doc, root), ids, orgs if isinstance(orgs, dict) else {}
        )
        for key, author in authors.items():
            entries[key].update(author.fields())
    return content


def stamped(note: Mapping[str, Any], author: Author) -> dict[str, Any]:
    """A note's plain fields with its attribution written in: what the server writes when it
    (re-)creates a note someone else created (a restore, a reveal), so the server-created copy,
    whose fields are trusted, says what the original's creator did."""
    return {**note, **author.fields()}
