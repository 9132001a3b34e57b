"""Structural validation of a Yjs update before it touches a room's document.

The policy (``policy.py``) judges an update by what it changed when it was applied. A crafted
update can also act *later*: a delete set over clocks that do not exist yet deletes a victim's next
note inside the victim's own transaction; a struct whose origin does not exist yet waits inside
yrs and integrates when that origin arrives, judged with the rights of whoever sent the origin.
So the server accepts only updates it can fully account for when they arrive:

* every struct new to the room carries a client id owned by the sender (checked by the room,
  which binds ids; this module says which ids an update introduces);
* every struct starts where its client's known clocks end (nothing waits for missing clocks);
* every origin, right origin and parent resolves to an item the room has or the update brings;
* the delete set names only clocks that exist once the update's own structs are in;
* every struct sits where the canvas schema (``canvas/schema.py``) allows its content;
* the work is bounded: structs, values, map keys and delete ranges per update.

To know where a struct lands, the validator keeps an index of every item in the document: per
client, runs of clocks that share a container class, a map key and (for a shared type) the
class of the type itself. Runs merge, so a note's text typed in one go is one entry. The index
follows the same rule yrs uses to place an item (the parent of its origin if that is a live item,
else of its right origin, else its explicit parent), so what is validated is what integrates.
Items whose container yrs cannot resolve (under garbage-collected content) are dropped by yrs;
they are still held to the kinds the schema knows.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import yupdate as y
from .canvas import schema
from .protocol import write_varuint

# Container class of items under garbage-collected content: yrs drops what lands there.
GC_CLASS = "\x00gc"
# Content kinds and type refs the schema uses nowhere: refused wherever they would land.
# (JSON content is legacy Yjs, which writes Any instead; yrs decodes it differently from Yjs.)
_NEVER_CONTENT = frozenset((y.JSON, y.BINARY, y.EMBED, y.DOC))
_NEVER_TYPES = frozenset((y.ARRAY, y.XML_ELEMENT, y.XML_FRAGMENT, y.XML_HOOK, y.XML_TEXT))

# (container class, map key or None, class of the item itself when it is a shared type)
Info = tuple[str, str | None, str | None]


class Refused(Exception):
    """The update is structurally invalid; nothing of it may be applied."""

    def __init__(
        self, reason: str, *, missing: bool = False, waits_for: frozenset[int] = frozenset()
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        # True when it refers to clocks the room does not have: a room that is behind the
        # store (another node's updates not arrived yet) may accept it after catching up.
        self.missing = missing
        # The clients whose missing clocks it needs (empty: unknown). When they are the
        # sender's own, the rest of its history may simply not have arrived yet (a reconnecting
        # tab typing before its sync step 2): the room can hold it until they do.
        self.waits_for = waits_for


@dataclass(slots=True)
class Bounds:
    """Work one update may ask for. ``None``: unbounded (the server itself)."""

    structs: int | None = None  # structs plus values inside contents
    keys: int | None = None  # new map entries
    delete_ranges: int | None = None

    def reader_limits(self) -> y.Limits:
        return y.Limits(structs=self.structs, delete_ranges=self.delete_ranges, any_depth=32)


# A browser tab's update is one transaction: a note is about a dozen structs, a paste one.
# A reconnecting tab's step 2 carries its offline work. These bounds allow hundreds of notes
# per update and keep the worst frame's validation, apply and policy work in the tens of ms.
# A viewer changes nothing: whatever it writes is put right, one correction per change, so its
# bounds are those of a few stray keystrokes. Measured (docs/performance.md): a viewer's frame of
# 4,900 new notes cost 0.2-0.5 s of event loop to put right.
PARTICIPANT_BOUNDS = Bounds(structs=20_000, keys=2_000, delete_ranges=20_000)
VIEWER_BOUNDS = Bounds(structs=1_000, keys=64, delete_ranges=1_000)
FACILITATOR_BOUNDS = Bounds(structs=200_000, keys=50_000, delete_ranges=200_000)


@dataclass(slots=True)
class Verdict:
    """What an accepted update adds: the client ids it introduces structs for, and the runs
    to add to the index once it is applied."""

    clients: set[int] = field(default_factory=set)
    runs: list[tuple[int, int, int, Info]] = field(default_factory=list)  # client, clock, len
    keys: int = 0
    deletes: int = 0  # delete ranges


class _Runs:
    """One client's runs: starts[i] .. starts[i+1] (or end) share infos[i]."""

    __slots__ = ("starts", "infos", "end")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.infos: list[Info] = []
        self.end = 0

    def find(self, clock: int) -> Info | None:
        if clock >= self.end:
            return None
        i = bisect.bisect_right(self.starts, clock) - 1
        return self.infos[i] if i >= 0 else None

    def add(self, clock: int, length: int, info: Info) -> None:
        if clock != self.end:
            raise ValueError("runs must be added in clock order")
        if not self.infos or self.infos[-1] != info:
            self.starts.append(clock)
            self.infos.append(info)
        self.end = clock + length


class Vouch:
    """The index of one room's document, and the validator that uses it.

    The index is built lazily, a client at a time: a room loads with every client of its
    document *unindexed* (just its clock range known), and the first update that refers to a
    client's items indexes that client from the document itself (``source`` returns an update
    of just those clients, encoded by yrs). Joining a large canvas costs nothing here; an edit
    pays for the clients it touches, once.
    """

    def __init__(self, source: Callable[[Iterable[int]], bytes] | None = None) -> None:
        self._clients: dict[int, _Runs] = {}
        self._unindexed: dict[int, int] = {}  # client -> clocks the document has
        self._interned: dict[Info, Info] = {}
        self._source = source
        # Set when a trusted update arrived out of order (another node's, with a gap): the
        # index may miss items yrs holds; the room resets it from the document before next use.
        self.stale = False

    # -- the index -------------------------------------------------------------------------

    def end(self, client: int) -> int:
        runs = self._clients.get(client)
        if runs is not None:
            return runs.end
        return self._unindexed.get(client, 0)

    def _find(self, ident: y.ID) -> Info | None:
        runs = self._clients.get(ident[0])
        return runs.find(ident[1]) if runs is not None else None

    def _add(self, client: int, clock: int, length: int, info: Info) -> None:
        runs = self._clients.get(client)
        if runs is None:
            runs = self._clients[client] = _Runs()
        info = self._interned.setdefault(info, info)
        runs.add(clock, length, info)

    def reset(self, state: dict[int, int]) -> None:
        """Forget the index; the document now holds ``state`` (client -> clock)."""
        self._clients.clear()
        self._interned.clear()
        self._unindexed = {c: k for c, k in state.items() if k > 0}
        self.stale = False

    def _ensure(self, parsed: y.Update) -> None:
        """Index, from the document, every unindexed client this update builds on."""
        unindexed = self._unindexed
        if not unindexed:
            return
        # Inline rather than via _referenced: this runs for every update the room receives.
        wanted: set[int] = set()
        for s in parsed.structs:
            if s.client in unindexed:
                wanted.add(s.client)
            o, r, p = s.origin, s.right, s.parent
            if o is not None and o[0] in unindexed:
                wanted.add(o[0])
            if r is not None and r[0] in unindexed:
                wanted.add(r[0])
            if type(p) is tuple and p[0] in unindexed:
                wanted.add(p[0])
        while wanted:
            if self._source is None:
                raise RuntimeError("unindexed clients and no document to read them from")
            part = y.read_update(self._source(wanted))
            more = {c for c in _referenced(part) if c in self._unindexed and c not in wanted}
            if more:
                wanted |= more
                continue
            for c in wanted:
                del self._unindexed[c]
            verdict = self._walk(part, None, validate=False)
            self.commit(verdict)
            return

    def learn(self, update: bytes) -> Verdict:
        """Index a trusted update that was applied (store, other nodes, the server's own);
        return where its structs landed (the room tells the policy who wrote which note)."""
        parsed = y.read_update(update)
        self._ensure(parsed)
        verdict = self._walk(parsed, None, validate=False)
        self.commit(verdict)
        return verdict

    def commit(self, verdict: Verdict) -> None:
        for client, clock, length, info in verdict.runs:
            end = self.end(client)
            if clock == end:
                self._add(client, clock, length, info)
            elif clock > end:
                self.stale = True

    def size(self) -> int:
        return sum(len(r.starts) for r in self._clients.values())

    # -- validation ------------------------------------------------------------------------

    def check(self, parsed: y.Update, bounds: Bounds | None) -> Verdict:
        """Raise Refused unless the update is one the room can fully account for."""
        self._ensure(parsed)
        verdict = self._walk(parsed, bounds, validate=True)
        for client, ranges in parsed.deletes.items():
            end = max(self.end(client), self._overlay_end(verdict, client))
            for clock, length in ranges:
                if clock + length > end:
                    raise Refused(
                        f"deletes clocks {clock}..{clock + length} of client {client}, "
                        f"which do not exist (known up to {end})",
                        missing=True,
                        waits_for=frozenset((client,)),
                    )
        verdict.deletes = parsed.delete_ranges
        return verdict

    @staticmethod
    def _overlay_end(verdict: Verdict, client: int) -> int:
        end = 0
        for c, clock, length, _ in verdict.runs:
            if c == client:
                end = max(end, clock + length)
        return end

    def _walk(self, parsed: y.Update, bounds: Bounds | None, *, validate: bool) -> Verdict:
        """Place every new struct (in dependency order) and, when validating, judge it."""
        verdict = Verdict()
        brings: dict[int, int] = {}
        for st in parsed.structs:
            if st.content != y.SKIP:
                brings[st.client] = max(brings.get(st.client, 0), st.clock + st.length)
        scope = _Scope(self, {}, brings)
        walk = _Walk(self, scope, verdict, bounds.keys if bounds is not None else None, validate)
        queue = _by_client(parsed.structs)
        progress = True
        while queue and progress:
            progress = False
            waiting: list[list[y.Struct]] = []
            for group in queue:
                done = walk.group(group)
                progress = progress or done > 0
                if done < len(group):
                    waiting.append(group[done:])
            queue = waiting
        if queue:
            if validate:
                s = queue[0][0]
                raise Refused(
                    f"struct {s.client}:{s.clock} refers to an item that does not exist",
                    missing=True,
                )
            self.stale = True
        return verdict

    def _place(self, s: y.Struct, offset: int, scope: _Scope, validate: bool) -> Info | None:
        """Where the (new part of the) struct lands; None if it depends on one not placed yet."""
        if s.content == y.GC:
            return (GC_CLASS, None, GC_CLASS)
        if offset > 0 and (s.origin is not None or s.right is not None):
            # yrs integrates the new tail with the struct's own previous clock as its origin
            # (a declared parent, if any, still decides where it lands).
            tail = y.Struct(
                s.client,
                s.clock + offset,
                s.length - offset,
                s.content,
                (s.client, s.clock + offset - 1),
                s.right,
                s.parent,
                s.sub,
                s.type_ref,
            )
            placed = self._resolve(tail, scope, validate)
        else:
            placed = self._resolve(s, scope, validate)
        if placed is None:
            return None
        container, sub = placed
        own: str | None = None
        if validate:
            self._judge(s, container, sub)
        if s.content == y.TYPE:
            if container == GC_CLASS:
                own = GC_CLASS
            else:
                own = schema.type_class(container, sub, s.type_ref or 0) or GC_CLASS
        return (container, sub, own)

    def _resolve(self, s: y.Struct, scope: _Scope, validate: bool) -> tuple[str, str | None] | None:
        """(container class, map key) the struct lands in; None: it waits for this update."""
        if s.origin is not None or s.right is not None:
            return self._by_neighbours(s, scope, validate)
        parent = s.parent
        if isinstance(parent, str):
            cls = schema.ROOT_CLASSES.get(parent)
            if cls is None:
                if validate:
                    raise Refused(f"root {parent!r} is not part of the canvas schema")
                return GC_CLASS, s.sub
            return cls, s.sub
        if parent is None:  # the reader never yields this for an item
            raise Refused("an item without a parent")
        info = scope.find(parent)
        if info is None:
            return None if scope.later(parent) else self._missing(s, parent, validate)
        if info[2] is not None:
            return info[2], s.sub
        if validate and info[0] != GC_CLASS:
            raise Refused(f"struct {s.client}:{s.clock} names a parent that is not a type")
        return GC_CLASS, s.sub

    def _by_neighbours(
        self, s: y.Struct, scope: _Scope, validate: bool
    ) -> tuple[str, str | None] | None:
        """yrs: the parent of the left neighbour if it is a live item, else of the right."""
        near: list[Info] = []
        for ident in (s.origin, s.right):
            if ident is None:
                continue
            info = scope.find(ident)
            if info is None:
                return None if scope.later(ident) else self._missing(s, ident, validate)
            near.append(info)
        for info in near:
            if info[0] != GC_CLASS:
                return info[0], info[1]
        return GC_CLASS, None

    def _missing(self, s: y.Struct, ident: y.ID, validate: bool) -> tuple[str, str | None]:
        if validate:
            raise Refused(
                f"struct {s.client}:{s.clock} refers to {ident[0]}:{ident[1]}, which does not "
                "exist: it would wait inside the document and act later",
                missing=True,
                waits_for=frozenset((ident[0],)),
            )
        self.stale = True
        return GC_CLASS, None

    @staticmethod
    def _judge(s: y.Struct, container: str, sub: str | None) -> None:
        content = s.content
        if content in _NEVER_CONTENT or (content == y.TYPE and s.type_ref in _NEVER_TYPES):
            what = y.TYPE_NAMES.get(s.type_ref or 0) if content == y.TYPE else None
            raise Refused(
                f"{what or y.CONTENT_NAMES.get(content, 'unknown')} content is not part of "
                "the canvas schema"
            )
        if container == GC_CLASS or content == y.GC:
            return
        why = schema.allows(container, sub, content, s.type_ref)
        if why is not None:
            raise Refused(why)


class _Scope:
    """Lookups during one walk: the room's index plus the update's structs placed so far."""

    __slots__ = ("vouch", "overlay", "brings")

    def __init__(self, vouch: Vouch, overlay: dict[int, _Runs], brings: dict[int, int]) -> None:
        self.vouch = vouch
        self.overlay = overlay
        self.brings = brings

    def find(self, ident: y.ID) -> Info | None:
        runs = self.overlay.get(ident[0])
        if runs is not None and runs.starts and ident[1] >= runs.starts[0]:
            return runs.find(ident[1])
        return self.vouch._find(ident)

    def later(self, ident: y.ID) -> bool:
        """Not placed yet, but a struct of this update brings it: try again after the others."""
        return self.brings.get(ident[0], 0) > ident[1] >= self.vouch.end(ident[0])


def placements(parsed: y.Update) -> list[tuple[int, int, int, Info]]:
    """Where every struct of a self-contained update (a whole document's state) lands:
    (client, clock, length, (container class, map key, own class)), by yrs's placement rule.
    Used to learn which client wrote each map entry (``canvas/attribution.py``)."""
    return Vouch()._walk(parsed, None, validate=False).runs


def _referenced(parsed: y.Update) -> set[int]:
    """Clients whose items the update's structs build on (their own included)."""
    out: set[int] = set()
    for s in parsed.structs:
        out.add(s.client)
        if s.origin is not None:
            out.add(s.origin[0])
        if s.right is not None:
            out.add(s.right[0])
        if isinstance(s.parent, tuple):
            out.add(s.parent[0])
    return out


def decode_state_vector(sv: bytes) -> dict[int, int]:
    """A v1 state vector as client -> clock (ValueError if malformed)."""
    r = y._Reader(sv, y.Limits())
    n = r.uint()
    if n > len(sv):
        raise y.UpdateError("state vector count exceeds its bytes")
    out = {}
    for _ in range(n):
        client = r.uint()
        out[client] = r.uint()
    if r.pos != r.end:
        raise y.UpdateError("trailing bytes after the state vector")
    return out


def encode_state_vector(state: dict[int, int]) -> bytes:
    parts = [write_varuint(len(state))]
    for client, clock in state.items():
        parts.append(write_varuint(client))
        parts.append(write_varuint(clock))
    return b"".join(parts)


def _by_client(structs: list[y.Struct]) -> list[list[y.Struct]]:
    """The structs of each client as encoded (contiguous; Skip structs fill gaps)."""
    groups: list[list[y.Struct]] = []
    last: int | None = None
    for s in structs:
        if s.client != last:
            groups.append([])
            last = s.client
        groups[-1].append(s)
    return groups


class _Walk:
    """One pass over an update's structs, placing what it can and counting map keys."""

    def __init__(
        self, vouch: Vouch, scope: _Scope, verdict: Verdict, key_cap: int | None, validate: bool
    ) -> None:
        self.vouch = vouch
        self.scope = scope
        self.verdict = verdict
        self.key_cap = key_cap
        self.validate = validate
        self.ends: dict[int, int] = {}

    def group(self, group: list[y.Struct]) -> int:
        """Place the group's structs in order; return how many are done (the rest wait)."""
        client = group[0].client
        pos = self.ends.get(client, self.vouch.end(client))
        for i, s in enumerate(group):
            if s.content == y.SKIP or s.clock + s.length <= pos:
                continue
            if s.clock > pos:
                if not self.validate:
                    self.vouch.stale = True
                    return len(group)
                raise Refused(
                    f"structs of client {client} start at clock {s.clock}, but only "
                    f"clocks below {pos} exist: they would wait for missing clocks",
                    missing=True,
                    waits_for=frozenset((client,)),
                )
            offset = pos - s.clock
            info = self.vouch._place(s, offset, self.scope, self.validate)
            if info is None:
                return i  # depends on a struct of this update not placed yet
            length = s.length - offset
            self._record(client, pos, length, info, s.content)
            pos += length
            self.ends[client] = pos
        return len(group)

    def _record(self, client: int, clock: int, length: int, info: Info, content: int) -> None:
        runs = self.scope.overlay.get(client)
        if runs is None:
            runs = self.scope.overlay[client] = _Runs()
            runs.end = clock
        runs.add(clock, length, info)
        verdict = self.verdict
        verdict.runs.append((client, clock, length, info))
        verdict.clients.add(client)
        if info[1] is not None and content != y.GC:
            verdict.keys += 1
            if self.key_cap is not None and verdict.keys > self.key_cap:
                raise Refused("too many map entries in one update")
