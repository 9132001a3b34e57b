"""Which changes a session may make to a canvas, enforced on the server.

A stock Yjs client cannot be told to drop local state, so refusing an update by not applying it
would leave the offender's document diverged for good. Instead the gate applies every update,
watches what it changed (deep observers on the schema's roots), and writes compensating changes
with the room's own (32-bit) client id for whatever a rule forbids: a refused new note is deleted,
a refused deletion or edit is restored from a mirror of the last accepted state. Everyone else
gets the client's update merged with the compensation as one net update; the offender gets the
compensation as a reply. The end state is the same everywhere and contains only allowed changes.

Rules (``meta.protect_notes`` is written from the canvas settings at creation and only
facilitators may change it):

* viewers change nothing (awareness is not a document change and still works);
* a note's organization and author follow from the client id that created it
  (``canvas/attribution.py``): nothing is rewritten per note. Its ``org``/``author``/
  ``author_name`` fields are written once, by whoever creates it, and only facilitators change
  them later: on a note a partner created they are ignored anyway, but on a note the server
  created (HTTP, templates, a reveal, a restore) they are the attribution, and a partner
  re-filing such a note under another organization would be a lie everyone sees;
* with protect_notes, editors edit, move or delete only their organization's notes — the
  organization the attribution rule gives, never what a note's ``org`` field says — and add
  notes anywhere; a vote is a per-user key and editors may only set their own, in new notes too;
* a block whose ``locked_by`` is set refuses every note change from editors (adding, moving in
  or out, editing, deleting); only facilitators change blocks (so only they lock and unlock),
  organizations and meta; facilitators may do anything;
* fit links and value-exchange arrows are judged by ``fit_policy.FitRules``, last, in the same
  correction transaction (a link's ends depend on the notes' corrections); overlap marks are
  the facilitator's, like blocks;
* roots outside the schema (``canvas/schema.py``'s ``ROOTS``) are refused for everyone; the
  server's own roots (``rounds``, ``timers``, ``stage``) too, whoever writes; comments follow
  ``server/workshop/comments.py``; a frozen canvas refuses every update before it is applied
  (``refuse_all``).

Everything here runs after ``server/vouch.py`` has accepted the update's structure (owned client
ids, nothing pending, no deletes of missing clocks, schema types only, bounded size), so a rule
only ever sees changes an honest client could make. A fix that raises is never swallowed: the gate
raises CompensationFailed and the room refuses the update and rebuilds from the store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Array, Doc, Map, Subscription, Text
from pycrdt import merge_updates as merge_binary

from .canvas import attribution
from .canvas.attribution import Author
from .canvas.schema import CONTAINERS, IDS_ROOT, ROOT_CLASSES, ROOTS, SERVER_ROOTS
from .fit_policy import DanglingSweep, FitRules
from .room import Admitted, CompensationFailed, Room, UpdateGate, transact
from .session import ROLE_FACILITATOR, Identity, Session
from .store.base import AuditEntry
from .workshop import comments as comment_rules
from .workshop import stage
from .yread import RawMap, RawText, Read, raw

log = logging.getLogger("cocanvas.policy")

FIT_RULED = frozenset(("links", "exchange"))  # judged by fit_policy.FitRules
_MISSING = object()
MOVE_FIELDS = frozenset(("block", "x", "y"))

# (root, path below the root, changed map keys -> action, or None for a text/array change)
Change = tuple[str, tuple[str | int, ...], dict[str, str] | None]


def _origin(session: Session) -> str:
    return f"session:{session.id}"


def _value(v: Any, key: str = "") -> Any:
    """A mirror value (plain Python) as something that can be written back into the doc."""
    if key == "text" and isinstance(v, str):
        return Text(v)
    if isinstance(v, dict):
        return Map({k: _value(x) for k, x in v.items()})
    if isinstance(v, list):
        return Array([_value(x) for x in v])
    return v


def _note_value(snapshot: dict[str, Any]) -> Map:
    return Map({k: _value(v, k) for k, v in snapshot.items()})


def set_text(text: Text, want: str) -> None:
    """Rewrite a Y.Text to ``want`` with the smallest edit (pycrdt indexes by UTF-8 bytes)."""
    have = str(text)
    if have == want:
        return
    p = 0
    limit = min(len(have), len(want))
    while p < limit and have[p] == want[p]:
        p += 1
    s = 0
    while s < limit - p and have[len(have) - 1 - s] == want[len(want) - 1 - s]:
        s += 1
    start = len(have[:p].encode())
    end = len(have[: len(have) - s].encode())
    if end > start:
        del text[start:end]
    middle = want[p : len(want) - s]
    if middle:
        text.insert(start, middle)


@dataclass
class _Decision:
    """What one admitted update amounts to, built while inspecting its changes."""

    fixes: list[Callable[[], None]] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    audit: list[tuple[str, str, str]] = field(default_factory=list)  # (action, target, detail)

    def refuse(self, target: str, reason: str, fix: Callable[[], None]) -> None:
        self.fixes.append(fix)
        self.refusals.append(reason)
        self.audit.append(("refused", target, reason))


class PolicyGate(UpdateGate):
    """One per room. Keeps a plain mirror of the last accepted state to restore from."""

    def __init__(
        self,
        canvas_id: str,
        *,
        protect_default: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.canvas_id = canvas_id
        self.protect_default = protect_default
        self.clock = clock
        self.room: Room | None = None
        self.mirror: dict[str, dict[str, Any]] = {r: {} for r in ROOTS}
        self._subs: list[Subscription] = []
        self._known_roots: set[str] = set()
        self._unknown: dict[str, Map] = {}
        self._roots: dict[str, Map] = {}
        self._raw: dict[str, RawMap] = {}  # the same roots, for reads without wrappers (yread)
        # Between admissions, observers only note which entries to re-read (bounded by the doc);
        # during one, they record the changes for the decision.
        self._dirty: dict[str, set[str]] = {r: set() for r in ROOTS}
        self._recording = False
        self._changes: list[Change] = []
        self._unknown_touched = False
        self._sweep = DanglingSweep(canvas_id)  # links left by other nodes' changes (fit_policy)
        # Root (notes, links) -> entry id -> client id that created its live entry (None: not
        # read yet; read from the document's structs on first need, then kept up to date from
        # each update's placements).
        self._creators: dict[str, dict[str, int]] | None = None
        # Entries a trusted change set or deleted, by root, until its placements come.
        self._entry_dirty: dict[str, set[str]] = {r: set() for r in attribution.ENTRY_CLASSES}

    # -- lifecycle --------------------------------------------------------------------------

    def attach(self, room: Room) -> None:
        self.room = room
        self._sweep.room = room
        doc = room.doc
        for name in ROOTS:
            root = doc.get(name, type=Map)
            self._roots[name] = root
            self._raw[name] = raw(root)
            self._subs.append(_observe_deep(root, self._observer(name)))
        with Read(doc) as r:
            for name, m in self._raw.items():
                self.mirror[name] = {k: r.entry(m, k) for k in r.keys(m)}
        self._known_roots = set(doc.keys())
        for name in self._known_roots - set(ROOTS):
            self._watch_unknown(name)
        self._creators = None
        self._clear_dirty_entries()

    def detach(self, room: Room) -> None:
        for sub in self._subs:
            sub.drop()
        self._subs.clear()
        self._unknown.clear()
        self.room = None
        self._sweep.room = None

    def _observer(self, root: str) -> Callable[[list[Any]], None]:
        dirty = self._dirty[root]

        def on_events(events: list[Any]) -> None:
            # Raw yrs events, valid only during this call; only path and keys are read (a text
            # delta is computed lazily and never needed). Must not raise.
            try:
                for ev in events:
                    path = tuple(ev.path)
                    keys = getattr(ev, "keys", None)
                    if self._recording:
                        actions = (
                            {k: c["action"] for k, c in keys.items()}
                            if isinstance(keys, dict)
                            else None
                        )
                        self._changes.append((root, path, actions))
                    elif path:
                        dirty.add(str(path[0]))
                    elif isinstance(keys, dict):
                        dirty.update(keys)
                        if root in self._entry_dirty:
                            self._entry_dirty[root].update(keys)
                        if _may_dangle(root, keys):
                            self._sweep.poke()
            except Exception:
                log.exception("policy observer failed on %s", self.canvas_id)

        return on_events

    def _watch_unknown(self, name: str) -> None:
        assert self.room is not None
        root = self.room.doc.get(name, type=Map)

        def touched(_: Any) -> None:
            if self._recording:
                self._unknown_touched = True

        self._unknown[name] = root
        self._subs.append(_observe_deep(root, touched))

    def _refresh(self, dirty: dict[str, set[str]]) -> None:
        assert self.room is not None
        if not any(dirty.values()):
            return
        with Read(self.room.doc) as r:
            for name, ids in dirty.items():
                if not ids:
                    continue
                root = self._raw[name]
                mirror = self.mirror[name]
                for key in ids:
                    _copy(r, root, key, mirror)
                ids.clear()

    def _refresh_changes(self, r: Read, changes: list[Change]) -> None:
        """Bring the mirror up to date field by field: a keystroke re-reads one text, not a note."""
        full = self._dirty
        for root, path, keys in changes:
            if not path:
                full[root].update(keys or ())
                continue
            key = str(path[0])
            entry = self.mirror[root].get(key)
            obj = r.get(self._raw[root], key)
            if not isinstance(entry, dict) or not isinstance(obj, RawMap):
                full[root].add(key)
                continue
            fields = (keys or {}).keys() if len(path) == 1 else (str(path[1]),)
            for f in fields:
                _copy(r, obj, f, entry)
        self._refresh(full)

    # -- who created each note (and link) ----------------------------------------------------

    def _clear_dirty_entries(self) -> None:
        for keys in self._entry_dirty.values():
            keys.clear()

    def creator(self, root: str, key: str) -> int | None:
        """The client id that created ``root[key]``'s live entry (None: no such entry)."""
        if self._creators is None:
            assert self.room is not None
            self._creators = self._read_creators(self.room.doc)
            self._clear_dirty_entries()
        return self._creators[root].get(key)

    def _read_creators(self, doc: Doc) -> dict[str, dict[str, int]]:
        """Every live entry's creator, from the document's structs; nothing to read when the
        roots hold no entry. That is every new canvas: its first note would otherwise parse the
        whole template (2 ms at 2 KB, pure Python), and 1,000 canvases getting their first notes
        at once stalled every canvas of the node for a second (issue 11, item 3)."""
        with Read(doc) as r:
            empty = not any(r.keys(self._raw[name]) for name in attribution.ENTRY_CLASSES)
        if empty:
            return {name: {} for name in attribution.ENTRY_CLASSES}
        return {
            name: {k: c for k, (c, _) in attribution.creators_of(doc, name).items()}
            for name in attribution.ENTRY_CLASSES
        }

    def entry_of(self, client: int | None) -> dict[str, Any] | None:
        """Who a client id is, for the policy: user and organization from the store's binding
        (the authority), name and facilitator from the server-written ``ids`` entry."""
        if client is None:
            return None
        assert self.room is not None
        written = self.mirror[IDS_ROOT].get(str(client))
        written = written if isinstance(written, dict) else None
        binding = self.room.client_ids.owner(client)
        if binding is None:
            return written
        return attribution.ids_entry(
            binding.user_id,
            binding.org_id,
            str((written or {}).get("name") or ""),
            bool(written and written.get("facilitator") is True),
        )

    def author_of(self, root: str, key: str, fields: dict[str, Any]) -> Author:
        """The attribution of an existing note or link (its plain fields as they were)."""
        return attribution.attribute(
            fields, self.entry_of(self.creator(root, key)), self.mirror["orgs"]
        )

    def learned(self, runs: Any) -> None:
        for root, keys in self._entry_dirty.items():
            if keys and self._creators is not None:
                self._settle(root, keys, attribution.entries_placed(runs, root))
        self._clear_dirty_entries()

    def _settle(self, root: str, keys: set[str], placed: dict[str, int]) -> None:
        """Entries ``keys`` of ``root`` changed: who created each one now (from ``placed``)."""
        if self._creators is None:
            return
        creators = self._creators[root]
        live = self._raw[root]
        assert self.room is not None
        with Read(self.room.doc) as r:
            gone = {key for key in keys if not r.has(live, key)}
        for key in keys:
            if key in gone:
                creators.pop(key, None)
            elif key in placed:
                creators[key] = placed[key]
            else:
                self._creators = None  # cannot tell from here: read the structs on next need
                return

    # -- admission ----------------------------------------------------------------------------

    def admit(
        self,
        room: Room,
        session: Session,
        update: bytes,
        adds: bool = True,
        runs: Any = (),
        roots: frozenset[str] | None = None,
    ) -> Admitted:
        if self.room is not room:  # e.g. the room rebuilt its doc without us
            self.detach(room)
            self.attach(room)
        if any(self._entry_dirty.values()):  # a trusted change whose placements never came
            self._creators = None
            self._clear_dirty_entries()
        # Read before the update is applied: its rules judge notes as they were.
        self.creator("notes", "")
        self._refresh(self._dirty)
        doc = room.doc
        self._changes = []
        self._unknown_touched = False
        self._recording = True
        try:
            with doc.transaction(origin=_origin(session)):
                doc.apply_update(update)
        finally:
            self._recording = False
        changes = self._changes
        self._changes = []
        # Listing the document's roots builds a wrapper per root: only when the update may
        # have created one.
        new_roots = [] if roots is not None and roots <= self._known_roots else self._new_roots()
        if not changes and not new_roots and not self._unknown_touched:
            # Nothing observable changed; an update without new structs then changed nothing
            # at all (deletes of deleted items): nothing to store or relay.
            return Admitted(update if adds else None)

        identity = session.identity
        decision = _Decision()
        _Rules(self, identity, decision).judge(changes)
        if new_roots or self._unknown_touched:
            for name in new_roots:
                self._watch_unknown(name)
            decision.refuse(
                "document",
                "only the canvas schema's roots may be written",
                lambda: self._sweep_unknown(),
            )

        reply: bytes | None = None
        net = update
        if decision.fixes:
            failed: list[BaseException] = []

            def apply_fixes() -> None:
                room.attribute_self()
                for fix in decision.fixes:
                    try:
                        fix()
                    except Exception as exc:
                        log.exception("policy fix failed on %s", self.canvas_id)
                        failed.append(exc)

            reply = transact(doc, "policy", apply_fixes)
            if failed:
                # Never persist an update whose violation could not be undone: the room
                # rebuilds its document from the store, which has none of it.
                raise CompensationFailed(f"{len(failed)} fix(es) failed: {failed[0]!r}")
            if reply is not None:
                net = merge_binary(update, reply)
        with Read(doc) as r:
            self._settle_admitted(changes, runs)
            self._refresh_changes(r, changes)
            self._refresh(self._dirty)
        now = self.clock()
        audit = [
            AuditEntry(
                self.canvas_id, now, identity.user_id, identity.name, identity.org_id, a, t, d
            )
            for a, t, d in decision.audit
        ]
        refusal = "; ".join(dict.fromkeys(decision.refusals)) if decision.refusals else None
        return Admitted(net, reply=reply, refusal=refusal, audit=audit)

    def _settle_admitted(self, changes: list[Change], runs: Any) -> None:
        """Entries this update set were created by the sender's ids (its placements); those
        the fixes set (restores) by the server's."""
        fixed: dict[str, set[str]] = {}
        for root, keys in self._entry_dirty.items():
            if keys:
                fixed[root] = set(keys)
                keys.clear()
        set_here = [
            (r, acts) for r, path, acts in changes if not path and r in attribution.ENTRY_CLASSES
        ]
        if self._creators is None or not (set_here or fixed):
            return  # the common case (a keystroke, a move): no entry was set or deleted
        assert self.room is not None
        for root in attribution.ENTRY_CLASSES:
            keys = {k for r, acts in set_here if r == root for k in (acts or {})}
            mine = fixed.get(root, set())
            if keys - mine:
                self._settle(root, keys - mine, attribution.entries_placed(runs, root))
            if mine:
                self._settle(root, mine, dict.fromkeys(mine, self.room.doc.client_id))

    def _new_roots(self) -> list[str]:
        assert self.room is not None
        names = self.room.doc.keys()
        if len(names) == len(self._known_roots):  # type: ignore[arg-type]
            return []
        fresh = [n for n in names if n not in self._known_roots]
        self._known_roots.update(fresh)
        return [n for n in fresh if n not in ROOTS]

    def _sweep_unknown(self) -> None:
        assert self.room is not None
        doc = self.room.doc
        for name in self._unknown:
            as_map = doc.get(name, type=Map)
            for key in list(as_map.keys()):
                del as_map[key]
            as_array = doc.get(name, type=Array)
            if len(as_array):
                del as_array[0 : len(as_array)]
            doc.get(name, type=Map)  # leave it cast the way its observer expects

    def refuse_all(self, room: Room, session: Session) -> str | None:
        # Asked for every update: the mirror answers without a document read (the server writes
        # the flag; its observer marked the entry dirty, so bring just that root up to date).
        if self.room is not room:
            return stage.frozen_reason(room.doc)
        dirty = self._dirty["stage"]
        if dirty:
            self._refresh({"stage": dirty})
        return stage.frozen_reason_of(self.mirror["stage"])

    def protect_notes(self) -> bool:
        value = self.mirror["meta"].get("protect_notes")
        return value if isinstance(value, bool) else self.protect_default


def _copy(r: Read, source: RawMap, key: str, into: dict[str, Any]) -> None:
    """Mirror one entry: ``into[key]`` becomes ``source[key]`` as plain Python, or goes."""
    value = r.entry(source, key, _MISSING)
    if value is _MISSING:
        into.pop(key, None)
    else:
        into[key] = value


def _may_dangle(root: str, keys: dict[str, Any]) -> bool:
    """A change the gate did not judge deleted a note or brought a link (fit_policy)."""
    if root == "notes":
        return any(c.get("action") == "delete" for c in keys.values())
    return root == "links" and any(c.get("action") != "delete" for c in keys.values())


def _delete_key(container: Map, key: str) -> None:
    """Delete an entry without reading it (``Map.pop`` converts the value first, which fails
    for types the schema does not have)."""
    if key in container:
        del container[key]


def _observe_deep(root: Map, callback: Callable[[list[Any]], None]) -> Subscription:
    """Deep-observe with raw events: pycrdt's wrapper converts every field of every event
    (including text deltas) before the callback, which was most of the policy's cost."""
    sub: Subscription = root.integrated.observe_deep(callback)
    return sub


@dataclass
class _NoteChanges:
    """What one update changed inside existing notes, by note."""

    replaced: set[str] = field(default_factory=set)  # note entries set or deleted as a whole
    keys: dict[str, dict[str, str]] = field(default_factory=dict)  # note -> field -> action
    text: set[str] = field(default_factory=set)
    votes: dict[str, set[str]] = field(default_factory=dict)
    nested: dict[str, set[str]] = field(default_factory=dict)  # deeper than the schema has

    def add(self, path: tuple[str | int, ...], keys: dict[str, str] | None) -> None:
        nid = str(path[0])
        if len(path) == 1:
            self.keys.setdefault(nid, {}).update(keys or {})
        elif path[1] == "text" and len(path) == 2:
            self.text.add(nid)
        elif path[1] == "votes" and len(path) == 2:
            self.votes.setdefault(nid, set()).update((keys or {}).keys())
        else:
            self.nested.setdefault(nid, set()).add(str(path[1]))

    def notes(self) -> set[str]:
        return set(self.keys) | self.text | set(self.votes) | set(self.nested)

    def fields(self, nid: str) -> dict[str, str]:
        out = dict(self.keys.get(nid, {}))
        for f in self.nested.get(nid, ()):
            out.setdefault(f, "update")
        return out


class _Rules:
    """The rules applied to one update's changes, against the mirror (state before it)."""

    def __init__(self, gate: PolicyGate, identity: Identity, decision: _Decision) -> None:
        assert gate.room is not None
        self.gate = gate
        self.doc = gate.room.doc
        self.me = identity
        self.d = decision
        self.facilitator = identity.role == ROLE_FACILITATOR
        self.writer = identity.can_write
        self.protect = gate.protect_notes()
        self.notes = gate._roots["notes"]
        self.raw_notes = gate._raw["notes"]
        self.r = Read(self.doc)  # open while judging (``judge``); fixes run after it closed
        self.blocks_before = gate.mirror["blocks"]
        self.notes_before = gate.mirror["notes"]
        self._fit: FitRules | None = None  # built on first use: most updates touch no fit root
        self.added: set[str] = set()  # note entries this update set (its sender created them)

    @property
    def fit(self) -> FitRules:
        """The fit rules for this update; building them costs a dozen fields and two closures,
        which a keystroke or a move (no link, no exchange, no note moved) never needs."""
        if self._fit is None:
            gate = self.gate
            self._fit = FitRules(
                roots=gate._roots,
                mirror=gate.mirror,
                identity=self.me,
                decision=self.d,
                protect=self.protect,
                locked=self._locked,
                now=gate.clock(),
                note_org=self.org_of,
                link_author=lambda lid, before: gate.author_of("links", lid, before),
            )
        return self._fit

    def judge(self, changes: list[Change]) -> None:
        with self.r:
            self._judge(changes)

    def _judge(self, changes: list[Change]) -> None:
        inside = _NoteChanges()
        comments: list[tuple[tuple[str | int, ...], dict[str, str] | None]] = []
        self.deleted_notes: set[str] = set()
        for root, path, keys in changes:
            if root == "comments":
                comments.append((path, keys))
            elif root in SERVER_ROOTS:
                self._server_root(root, path, keys)
            elif root in FIT_RULED:
                self.fit.record(root, path, keys)
            elif root != "notes":
                self._other_root(root, path, keys)
            elif not path:
                inside.replaced.update((keys or {}).keys())
                for key, action in (keys or {}).items():
                    self._note_entry(key, action)
            else:
                inside.add(path, keys)
        for nid in inside.notes():
            if nid in inside.replaced or nid not in self.notes_before:
                continue  # the entry itself changed: judged as a whole above
            self._note_fields(
                nid, inside.fields(nid), nid in inside.text, inside.votes.get(nid, set())
            )
        if comments:
            comment_rules.judge(self._comment_context(), comments)
        if self.deleted_notes:
            self.d.fixes.append(
                comment_rules.orphans(self.gate._roots["comments"], self.deleted_notes)
            )
        self._fit_notes(inside)  # last: its fix must see the notes' own corrections

    def _comment_context(self) -> comment_rules.Context:
        return comment_rules.Context(
            self.me,
            self.d,
            self.gate._roots["comments"],
            self.notes,
            self.gate.mirror["comments"],
            self.gate.mirror["stage"],
            lambda cid, before: self.gate.author_of("comments", cid, before),
            self.gate.clock,
        )

    def _server_root(
        self, root: str, path: tuple[str | int, ...], keys: dict[str, str] | None
    ) -> None:
        """Rounds, timers, the stage: written through HTTP routes only, whoever the session."""
        for key, fix in self._restorations(root, path, keys):
            self.d.refuse(key, f"{root} are changed by the server only", fix)

    def _fit_notes(self, inside: _NoteChanges) -> None:
        """Fit links and arrows are judged last, in the correction transaction (fit_policy.py):
        whether a link's ends exist depends on the notes' own corrections."""
        for nid in inside.replaced:
            self.fit.note_changed(nid)
        for nid, fields in inside.keys.items():
            if "block" in fields or "partner_org" in fields:
                self.fit.note_changed(nid)
        if self._fit is not None and self._fit.pending():
            self.d.fixes.append(self.fit.fix)

    # -- notes ------------------------------------------------------------------------------

    def _locked(self, block: Any) -> bool:
        info = self.blocks_before.get(block) if isinstance(block, str) else None
        return bool(info and isinstance(info, dict) and info.get("locked_by"))

    def org_of(self, nid: str) -> str:
        """The organization a note belongs to now, by the attribution rule (fit links ask)."""
        if nid in self.added:
            with Read(self.doc) as r:  # asked from the fit fix too, after judging
                note = r.get(self.raw_notes, nid)
                fields = r.plain(note) if isinstance(note, RawMap) else {}
            me = attribution.ids_entry(
                self.me.user_id, self.me.org_id, self.me.name, self.facilitator
            )
            return attribution.attribute(fields, me, self.gate.mirror["orgs"]).org
        before = self.notes_before.get(nid)
        return self.gate.author_of("notes", nid, before).org if isinstance(before, dict) else ""

    def _may_change_note(self, nid: str, before: dict[str, Any]) -> str | None:
        """Why this session may not edit, move or delete an existing note (None: it may)."""
        if not self.writer:
            return "viewers cannot change the canvas"
        if self.facilitator:
            return None
        if self._locked(before.get("block")):
            return f"block {before.get('block')} is locked"
        if self.protect and self.gate.author_of("notes", nid, before).org != self.me.org_id:
            return "this note belongs to another organization"
        return None

    def _may_place_note(self, block: Any) -> str | None:
        if not self.writer:
            return "viewers cannot change the canvas"
        if not isinstance(block, str):
            return "a note needs a block"
        if self.facilitator:
            return None
        if block not in self.blocks_before:
            return f"no block {block}"
        if self._locked(block):
            return f"block {block} is locked"
        return None

    def _note_entry(self, nid: str, action: str) -> None:
        before = self.notes_before.get(nid)
        notes = self.notes
        reason: str | None = None
        if action in ("delete", "update") and before is not None:
            reason = self._may_change_note(nid, before)
        if reason is None and action in ("add", "update"):
            new = self.r.get(self.raw_notes, nid)
            if not isinstance(new, RawMap):
                reason = "a note must be a map"
            else:
                reason = self._may_place_note(self.r.get(new, "block"))

        if reason is not None:
            if before is None:
                self.d.refuse(nid, reason, lambda: _delete_key(notes, nid))
            else:
                # The server re-creates it, so its fields become trusted: write what the
                # original's creator is attributed with, never the fields it carried.
                restored = attribution.stamped(before, self.gate.author_of("notes", nid, before))
                self.d.refuse(nid, reason, lambda: notes.__setitem__(nid, _note_value(restored)))
            return
        if action == "delete":
            self.d.audit.append(("delete", nid, ""))
            self.deleted_notes.add(nid)
            return
        self.d.audit.append(("create" if before is None else "edit", nid, ""))
        self.added.add(nid)
        self._shape(nid)

    def _shape(self, nid: str) -> None:
        """A new note has a text and only its author's own vote. Its organization and author
        are not written: they follow from the client id that created it."""
        note = self.r.get(self.raw_notes, nid)
        assert isinstance(note, RawMap)
        wrong: dict[str, Any] = {}
        if not isinstance(self.r.get(note, "text"), (RawText, str)):
            wrong["text"] = Text("")
        others = self._foreign_votes(note, wrong)
        if others:
            self.d.refusals.append("you may only change your own vote")
            self.d.audit.append(("refused", nid, "votes of others in a new note"))
        if wrong or others:
            self.d.fixes.append(self._reshape(nid, wrong, others))

    def _foreign_votes(self, note: RawMap, wrong: dict[str, Any]) -> list[str]:
        votes = self.r.get(note, "votes")
        if not isinstance(votes, RawMap):
            if self.r.has(note, "votes"):
                wrong["votes"] = Map()
            return []
        return [] if self.facilitator else [k for k in self.r.keys(votes) if k != self.me.user_id]

    def _reshape(self, nid: str, wrong: dict[str, Any], others: list[str]) -> Callable[[], None]:
        def fix() -> None:
            current = self.notes.get(nid)
            if not isinstance(current, Map):
                return
            for k, v in wrong.items():
                current[k] = v
            ballot = current.get("votes")
            if isinstance(ballot, Map):
                for k in others:
                    _delete_key(ballot, k)

        return fix

    def _note_fields(
        self, nid: str, fields: dict[str, str], text_edited: bool, vote_keys: set[str]
    ) -> None:
        """Changes inside an existing note: content (edit, move, stamps), then votes."""
        before = self.notes_before[nid]
        note = self.r.get(self.raw_notes, nid)
        if not isinstance(note, RawMap):
            return
        content = set(fields) | ({"text"} if text_edited else set())
        refused = self._content_refusals(nid, before, note, fields, content)
        for f, why in refused.items():
            self.d.refuse(
                nid, why, self._restore_field(nid, f, before, text_edited and f == "text")
            )
        kept = content - set(refused)
        if kept:
            action = "move" if kept <= MOVE_FIELDS else "edit"
            self.d.audit.append((action, nid, ",".join(sorted(kept))))
        if vote_keys:
            self._votes(nid, before, vote_keys)

    def _content_refusals(
        self,
        nid: str,
        before: dict[str, Any],
        note: RawMap,
        fields: dict[str, str],
        content: set[str],
    ) -> dict[str, str]:
        """Field -> why it may not change: who owns the note, who stamps it, where it may go."""
        if not content:
            return {}
        reason = self._may_change_note(nid, before)
        if reason is not None:
            return dict.fromkeys(content, reason)
        refused: dict[str, str] = {}
        if not self.facilitator:
            for f in attribution.FIELDS:
                if f in fields:
                    refused[f] = "a note's organization and author follow from who created it"
        if "block" in fields:
            why = self._may_place_note(self.r.get(note, "block"))
            if why is not None:
                refused.update(dict.fromkeys(MOVE_FIELDS & (set(fields) | {"block"}), why))
        return refused

    def _vote_refusal(self, before: dict[str, Any]) -> str | None:
        """Why this session may not vote on the note at all (None: it may, for itself)."""
        if not self.writer:
            return "viewers cannot change the canvas"
        if not self.facilitator and self._locked(before.get("block")):
            return f"block {before.get('block')} is locked"
        return None

    def _votes(self, nid: str, before: dict[str, Any], keys: set[str]) -> None:
        """A vote is a per-user key: editors change only their own; facilitators any."""
        bad = self._vote_refusal(before)
        if bad is not None:
            others = keys
        elif self.facilitator:
            others = set()
        else:
            others = {k for k in keys if k != self.me.user_id}
        if others:
            self.d.refuse(
                nid,
                bad or "you may only change your own vote",
                self._restore_votes(nid, before, others),
            )
        if keys - others:
            self.d.audit.append(("vote", nid, ""))

    def _restore_field(
        self, nid: str, f: str, before: dict[str, Any], in_place: bool
    ) -> Callable[[], None]:
        def fix() -> None:
            note = self.notes.get(nid)
            if not isinstance(note, Map):
                return
            if f not in before:
                _delete_key(note, f)
                return
            current = note.get(f)
            if in_place and isinstance(current, Text) and isinstance(before[f], str):
                set_text(current, before[f])
            else:
                note[f] = _value(before[f], f)

        return fix

    def _restore_votes(
        self, nid: str, before: dict[str, Any], keys: set[str]
    ) -> Callable[[], None]:
        raw = before.get("votes")
        old: dict[str, Any] = raw if isinstance(raw, dict) else {}

        def fix() -> None:
            note = self.notes.get(nid)
            votes = note.get("votes") if isinstance(note, Map) else None
            if not isinstance(votes, Map):
                return
            for k in keys:
                if k in old:
                    votes[k] = old[k]
                else:
                    _delete_key(votes, k)

        return fix

    # -- blocks, orgs, meta -------------------------------------------------------------------

    def _other_root(
        self, root: str, path: tuple[str | int, ...], keys: dict[str, str] | None
    ) -> None:
        """Blocks, organizations, meta: the facilitator's (and audited); refused for others."""
        if self.facilitator:
            self._audit_lock(root, path, keys)
            return
        reason = (
            "viewers cannot change the canvas"
            if not self.writer
            else f"only facilitators change {root}"
        )
        for key, fix in self._restorations(root, path, keys):
            self.d.refuse(key, reason, fix)

    def _audit_lock(
        self, root: str, path: tuple[str | int, ...], keys: dict[str, str] | None
    ) -> None:
        if root == "blocks" and len(path) == 1 and keys and "locked_by" in keys:
            block = self.gate._roots["blocks"].get(str(path[0]))
            locked = isinstance(block, Map) and bool(block.get("locked_by"))
            self.d.audit.append(("lock" if locked else "unlock", str(path[0]), ""))

    def _restorations(
        self, root: str, path: tuple[str | int, ...], keys: dict[str, str] | None
    ) -> list[tuple[str, Callable[[], None]]]:
        """(entry, fix) that put a root's changed entries (or fields of one) back."""
        container = self.gate._roots[root]
        before = self.gate.mirror[root]
        slot = CONTAINERS[ROOT_CLASSES[root]].slot("")
        plain = slot is not None and not slot.types  # e.g. ``ids``: a dict stays a plain value
        if not path:
            return [(key, self._restore_entry(container, key, before, plain)) for key in keys or {}]
        key = str(path[0])
        entry_before = before.get(key)
        if not isinstance(entry_before, dict) or plain:
            return [(key, self._restore_entry(container, key, before, plain))]
        fields = list(keys or {}) if len(path) == 1 else [str(path[1])]
        return [(key, self._restore_entry_field(container, key, f, entry_before)) for f in fields]

    @staticmethod
    def _restore_entry(
        container: Map, key: str, before: dict[str, Any], plain: bool = False
    ) -> Callable[[], None]:
        def fix() -> None:
            if key in before:
                container[key] = before[key] if plain else _value(before[key])
            else:
                _delete_key(container, key)

        return fix

    @staticmethod
    def _restore_entry_field(
        container: Map, key: str, f: str, before: dict[str, Any]
    ) -> Callable[[], None]:
        def fix() -> None:
            entry = container.get(key)
            if not isinstance(entry, Map):
                container[key] = _value(before)
            elif f in before:
                entry[f] = _value(before[f])
            else:
                _delete_key(entry, f)

        return fix
