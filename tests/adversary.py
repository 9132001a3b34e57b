"""An in-process differential harness for adversarial clients (tests/test_adversary_differential.py).

Two rooms of the same canvas, each over its own SQLite store and in-memory broker, wired the way
``server/app.py`` wires them (``Rooms`` with ``gate_factory=PolicyGate``):

* room **A** holds the honest participants *and* two adversaries (a viewer of org c, a second
  editor of org b);
* room **B**, the reference, holds the same honest participants only.

Every participant is a :class:`Client`: a pycrdt ``Doc`` with a fixed client id behind a
:class:`RecordingSession`, kept in sync exactly like a y-websocket client (sync step 1 on join,
step 2 answers, every frame the room sends is applied, local transactions are sent as updates).
Each honest participant has a twin in each room, and every honest step is applied to both twins.
Adversary steps go to room A only, built against the adversary's own synced copy of room A.

A step the server handles correctly leaves A and B equal as a fresh client sees them: what an
adversary does is either refused whole (structure) or reverted by the policy (rules), so the only
difference an adversary may leave is the legitimate rest of a partly refused change, which the
harness replays in room B through a reference twin of the same identity (``residue``).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from server import protocol
from server import yupdate as y
from server.broker.memory import MemoryBroker
from server.canvas import fit, templates
from server.canvas.attribution import attributed
from server.canvas.schema import CONTENT_ROOTS, ROOTS
from server.closecodes import CloseSession
from server.policy import PolicyGate
from server.protocol import Kind
from server.room import Room
from server.rooms import Rooms
from server.session import Identity, Session
from server.store.base import CanvasRecord
from server.store.sqlite import SQLiteStore
from tests import yenc

T = TypeVar("T")

FAC = Identity("u_fac", "Fran", "", "facilitator")
EA = Identity("u_ea", "Ann", "a", "editor")
EB = Identity("u_eb", "Bob", "b", "editor")
VB = Identity("u_vb", "Vera", "b", "viewer")
VC = Identity("u_vc", "Carl", "c", "viewer")  # adversary
B2 = Identity("u_b2", "Bea", "b", "editor")  # adversary: a second user of org b

HONEST = {"fac": FAC, "ea": EA, "eb": EB, "vb": VB}
ADVERSARIES = {"vc": VC, "b2": B2}
# Fixed 32-bit client ids, so a run replays byte for byte.
CLIENT_IDS = {"fac": 1001, "ea": 1002, "eb": 1003, "vb": 1004, "vc": 2001, "b2": 2002}
# A client id nobody ever uses.
STRANGER = 777_777

WORDS = ("idea", "pain", "gain", "job", "risk", "fit", "cost", "plan", " ", "!")


# -- plain JSON of a document ------------------------------------------------------------------


def plain(v: Any) -> Any:
    """What a client sees of a value, as plain Python; never raises."""
    try:
        if isinstance(v, Map):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, Array):
            return [plain(x) for x in v]
        if isinstance(v, Text):
            chunks = v.diff()
            if all(isinstance(c, str) and not attrs for c, attrs in chunks):
                return "".join(c for c, _ in chunks)
            return {"<rich text>": [[plain(c), attrs] for c, attrs in chunks]}
        if isinstance(v, (XmlFragment, XmlElement, XmlText)):
            try:
                body = str(v)
            except BaseException as exc:  # noqa: BLE001 - a panic must not hide the finding
                body = f"?{type(exc).__name__}"
            return f"<{type(v).__name__}>{body}"
        if isinstance(v, Doc):
            return f"<subdocument {v.guid}>"
        if isinstance(v, (bytes, bytearray)):
            return {"<bytes>": bytes(v).hex()}
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    except BaseException as exc:  # noqa: BLE001
        return f"<unreadable {type(v).__name__}: {type(exc).__name__}: {exc}>"


def fresh_doc(parts: Iterable[bytes]) -> Doc:
    doc: Doc = Doc()
    for part in parts:
        doc.apply_update(part)
    return doc


def root_json(root: Map, notes: bool = False) -> Any:
    """``plain(root)``, fast: yrs's own JSON, then what it hides put back (the rich text of a
    note's text, Xml or other types where a note's Text belongs)."""
    try:
        value = orjson.loads(str(root)) or {}
    except BaseException as exc:  # noqa: BLE001 - a panic must not hide the finding
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return plain(root)
    if notes:
        for nid, note in value.items():
            if isinstance(note, dict) and "text" in note:
                try:
                    text = root[nid]["text"]
                except BaseException:  # noqa: BLE001
                    continue
                note["text"] = plain(text)
    return value


def doc_json(parts: Iterable[bytes]) -> dict[str, Any]:
    """The canvas as a fresh client loads it from these updates: the schema's roots as plain
    JSON with the notes attributed (what everyone sees: ``canvas/attribution.py``; the ``ids``
    root itself is bookkeeping, different per room by the server's own ids), plus any other
    root that shows content (as a map or as a sequence)."""
    parts = list(parts)
    doc = fresh_doc(parts)
    out: dict[str, Any] = {}
    for name in CONTENT_ROOTS:
        out[name] = root_json(doc.get(name, type=Map), notes=name == "notes")
    attributed(out, doc)
    for name in sorted(set(doc.keys()) - set(ROOTS)):
        as_map = plain(doc.get(name, type=Map))
        seq_doc = fresh_doc(parts)
        as_seq = plain(seq_doc.get(name, type=Array))
        if as_map:
            out[f"<root {name} as map>"] = as_map
        if as_seq:
            out[f"<root {name} as sequence>"] = as_seq
    return out


def json_of(doc: Doc) -> dict[str, Any]:
    return doc_json([doc.get_update()])


def diff(a: Any, b: Any, path: str = "", out: list[str] | None = None) -> list[str]:
    """Paths where two plain values differ (at most 12)."""
    out = [] if out is None else out
    if len(out) >= 12:
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a:
                out.append(f"{path}/{k}: missing in A, B has {_short(b[k])}")
            elif k not in b:
                out.append(f"{path}/{k}: A has {_short(a[k])}, missing in B")
            else:
                diff(a[k], b[k], f"{path}/{k}", out)
    elif a != b:
        out.append(f"{path}: A {_short(a)} != B {_short(b)}")
    return out


def _short(v: Any, n: int = 160) -> str:
    s = repr(v)
    return s if len(s) <= n else s[:n] + "..."


# -- reading a document's structure (item ids, parents, map keys) -----------------------------


def decode_sv(sv: bytes) -> dict[int, int]:
    n, pos = protocol.read_varuint(sv, 0)
    out: dict[int, int] = {}
    for _ in range(n):
        c, pos = protocol.read_varuint(sv, pos)
        k, pos = protocol.read_varuint(sv, pos)
        out[c] = k
    return out


class Structure:
    """Items of a full document update with their resolved parent and map key."""

    def __init__(self, update: bytes) -> None:
        u = y.read_update(update)
        self.items = [s for s in u.structs if s.content not in (y.GC, y.SKIP)]
        self._by_client: dict[int, list[y.Struct]] = {}
        for s in u.structs:
            self._by_client.setdefault(s.client, []).append(s)
        self._clocks = {c: [s.clock for s in ss] for c, ss in self._by_client.items()}
        self.deletes = u.deletes
        self._where: dict[tuple[int, int], tuple[Any, str | None]] = {}

    def find(self, ident: tuple[int, int]) -> y.Struct | None:
        client, clock = ident
        clocks = self._clocks.get(client)
        if not clocks:
            return None
        i = bisect.bisect_right(clocks, clock) - 1
        if i < 0:
            return None
        s = self._by_client[client][i]
        return s if s.clock <= clock < s.clock + s.length else None

    def where(self, s: y.Struct) -> tuple[Any, str | None]:
        """(parent: root name | item id | None, map key) of an item."""
        key = (s.client, s.clock)
        if key in self._where:
            return self._where[key]
        chain: list[y.Struct] = []
        cur: y.Struct | None = s
        result: tuple[Any, str | None] = (None, None)
        for _ in range(100_000):
            if cur is None:
                break
            ck = (cur.client, cur.clock)
            if ck in self._where:
                result = self._where[ck]
                break
            if cur.parent is not None:
                result = (cur.parent, cur.sub)
                chain.append(cur)
                break
            chain.append(cur)
            ref = cur.origin or cur.right
            cur = self.find(ref) if ref is not None else None
            if cur is not None and cur.content in (y.GC, y.SKIP):
                cur = None
        for c in chain:
            self._where[(c.client, c.clock)] = result
        return result

    def deleted(self, s: y.Struct) -> bool:
        for clock, length in self.deletes.get(s.client, ()):
            if clock <= s.clock < clock + length:
                return True
        return False

    def entry(self, parent: Any, key: str) -> y.Struct | None:
        """The live value item of ``parent[key]`` (parent: root name or item id)."""
        found = [
            s
            for s in self.items
            # an entry names its key, or follows its predecessor (origin) under the same key
            if (s.sub == key or s.parent is None)
            and self.where(s) == (parent, key)
            and not self.deleted(s)
        ]
        return found[-1] if found else None

    def note_item(self, nid: str) -> y.Struct | None:
        s = self.entry("notes", nid)
        return s if s is not None and s.content == y.TYPE and s.type_ref == y.MAP else None


def last_id(s: y.Struct) -> tuple[int, int]:
    return (s.client, s.clock + s.length - 1)


# -- sessions and clients -----------------------------------------------------------------------


class RecordingSession(Session):
    """A session that records every frame the room sends it and how it was closed."""

    def __init__(self, identity: Identity) -> None:
        super().__init__(identity)
        self.inbox: list[bytes] = []
        self.received: list[bytes] = []
        self.close_code: int | None = None
        self.close_reason = ""

    def send(self, frame: bytes) -> None:
        if self.close_code is None:
            self.inbox.append(frame)
            self.received.append(frame)

    def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason

    @property
    def closed(self) -> bool:
        return self.close_code is not None


class Client:
    """A participant's document, synced with one room the way a y-websocket client does."""

    def __init__(self, name: str, identity: Identity, client_id: int, room: Room) -> None:
        self.name = name
        self.identity = identity
        self.client_id = client_id
        self.room = room
        self.doc: Doc = Doc(client_id=client_id)
        self.session = RecordingSession(identity)
        self.denials: list[str] = []
        self.closes: list[tuple[int, str]] = []  # (code, reason) of every close by the room
        self.apply_errors: list[str] = []
        self.awareness_ids: set[int] = set()
        self._aw_clock = 0

    def __repr__(self) -> str:
        return f"<{self.name} {self.identity.role}/{self.identity.org_id or '-'} #{self.client_id}>"

    async def connect(self) -> None:
        """Join, sync (step 1 both ways), announce presence."""
        self.session = RecordingSession(self.identity)
        await self.room.join(self.session)
        await self.send(protocol.sync_step1(self.doc.get_state()))
        await self.pump()
        self._aw_clock += 1
        state = b'{"user":{"name":"%s"}}' % self.identity.name.encode()
        await self.send(
            protocol.awareness(protocol.encode_awareness([(self.client_id, self._aw_clock, state)]))
        )
        await self.pump()

    async def reconnect(self) -> None:
        """A closed client comes back: its document re-synced from the room, same client id."""
        self.doc = Doc(client_id=self.client_id)
        self.doc.apply_update(self.room.doc.get_update())
        await self.connect()

    async def send(self, frame: bytes) -> CloseSession | None:
        """Deliver one frame to the room; a CloseSession closes this session (as ws.py does)."""
        if self.session.closed:
            return CloseSession(self.session.close_code or 0, "already closed")
        try:
            await self.room.receive(self.session, frame)
            # Broadcasts are released once durable (server/pipeline.py): wait for this one's.
            await self.room.pipeline.drained()
        except CloseSession as exc:
            self.session.close(exc.code, exc.reason)
            self.room.leave(self.session)
            self.closes.append((exc.code, exc.reason))
            return exc
        if self.session.closed:  # closed by the room without raising (e.g. evicted)
            self.room.leave(self.session)
            self.closes.append((self.session.close_code or 0, self.session.close_reason))
        return None

    async def send_update(self, update: bytes | None) -> CloseSession | None:
        if update is None or update == protocol.EMPTY_UPDATE:
            return None
        return await self.send(protocol.sync_update(update))

    def local(self, change: Callable[[Doc], None]) -> bytes | None:
        """Run a local change in one transaction and return its update (what a client sends)."""
        captured: list[bytes] = []
        sub = self.doc.observe(lambda e: captured.append(e.update))
        try:
            with self.doc.transaction():
                change(self.doc)
        finally:
            self.doc.unobserve(sub)
        if not captured or captured[0] == protocol.EMPTY_UPDATE:
            return None
        return captured[0]

    async def pump(self) -> bool:
        """Handle every frame the room sent; True if there were any."""
        had = False
        while self.session.inbox:
            had = True
            frames, self.session.inbox = self.session.inbox, []
            for frame in frames:
                await self._handle(frame)
        return had

    async def _handle(self, frame: bytes) -> None:
        msg = protocol.decode(frame)
        if msg.kind is Kind.SYNC_STEP1:
            await self.send(protocol.sync_step2(self.doc.get_update(msg.payload)))
        elif msg.kind in (Kind.SYNC_STEP2, Kind.SYNC_UPDATE):
            try:
                self.doc.apply_update(msg.payload)
            except BaseException as exc:  # noqa: BLE001 - a Rust panic is a BaseException
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                self.apply_errors.append(f"{type(exc).__name__}: {exc}")
        elif msg.kind is Kind.AWARENESS:
            for cid, _clock, _state in protocol.decode_awareness(msg.payload):
                self.awareness_ids.add(cid)
        elif msg.kind is Kind.AUTH:
            reason, _ = protocol.read_varbytes(msg.payload, 1)
            self.denials.append(reason.decode())

    def json(self) -> dict[str, Any]:
        return json_of(self.doc)

    def sv(self) -> dict[int, int]:
        return decode_sv(self.doc.get_state())


# -- the two rooms --------------------------------------------------------------------------------


class Harness:
    """One event loop and two SQLite stores for a whole test module; a canvas per world."""

    def __init__(self, root: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.store_a = SQLiteStore(root / "a" / "cocanvas.db", fsync=False)
        self.store_b = SQLiteStore(root / "b" / "cocanvas.db", fsync=False)
        self.run(self.store_a.start())
        self.run(self.store_b.start())
        self._ids = itertools.count(1)

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.store_a.close())
        self.run(self.store_b.close())
        self.loop.close()

    def world(self) -> World:
        return World(self, f"canvas-{next(self._ids)}")


@dataclass
class Side:
    name: str
    store: SQLiteStore
    broker: MemoryBroker
    rooms: Rooms
    room: Room
    clients: dict[str, Client] = field(default_factory=dict)


class World:
    """A canvas in two rooms: A with the adversaries, B the reference."""

    def __init__(self, harness: Harness, canvas_id: str) -> None:
        self.h = harness
        self.canvas_id = canvas_id
        self.log: list[str] = []
        self.a: Side
        self.b: Side
        self.template_id = 0

    # lifecycle

    async def start(self) -> None:
        orgs = templates.make_orgs([("a", None), ("b", None), ("c", None)])
        initial = templates.initial_update(
            "Partners", "partner-co-creation", orgs, True, created_at=1.0
        )
        self.template_id = next(iter(decode_sv(fresh_doc([initial]).get_state())))
        sides = []
        for name, store in (("A", self.h.store_a), ("B", self.h.store_b)):
            record = CanvasRecord(
                self.canvas_id, "Partners", "partner-co-creation", 1.0, {"protect_notes": True}
            )
            await store.create_canvas(record, initial)
            broker = MemoryBroker(f"node-{name}")
            await broker.start()
            # As server/app.py builds them (awareness goes out at once: nothing waits on a tick).
            rooms = Rooms(
                store,
                broker,
                idle_seconds=3600,
                gate_factory=PolicyGate,
                room_options={"awareness_tick_s": 0.0},
            )
            room = await rooms.acquire(self.canvas_id)
            sides.append(Side(name, store, broker, rooms, room))
        self.a, self.b = sides
        for side in sides:
            for name, identity in HONEST.items():
                side.clients[name] = Client(name, identity, CLIENT_IDS[name], side.room)
        # The reference twin of b2 replays in B what a correct server keeps of b2's changes.
        self.b.clients["b2"] = Client("b2", B2, CLIENT_IDS["b2"], self.b.room)
        for name, identity in ADVERSARIES.items():
            self.a.clients[name] = Client(name, identity, CLIENT_IDS[name], self.a.room)
        for side in sides:
            for client in side.clients.values():
                await client.connect()
                await self.settle(side)

    async def stop(self) -> None:
        for side in (self.a, self.b):
            await side.rooms.close_all()
            await side.broker.close()
            marker = side.broker._marker  # the broker's 1 s sequence-mark loop
            if marker is not None:
                marker.cancel()

    # sync

    async def settle(self, side: Side) -> None:
        """Let the room's background work run and every client handle what it was sent."""
        for _ in range(100):
            await asyncio.sleep(0)
            busy = [t for t in list(_background_tasks()) if not t.done()]
            if busy:
                await asyncio.wait(busy, timeout=5)
            moved = False
            for client in list(side.clients.values()):
                moved = await client.pump() or moved
            if not moved and not busy:
                return

    # views

    async def store_json(self, side: Side) -> dict[str, Any]:
        stored = await side.store.load(self.canvas_id)
        assert stored is not None
        return doc_json(stored.parts())

    def room_json(self, side: Side) -> dict[str, Any]:
        return json_of(side.room.doc)

    @property
    def server_id(self) -> int:
        return self.a.room.doc.client_id

    def reference(self) -> dict[str, Any]:
        return self.room_json(self.b)

    # checks

    async def check(self, label: str, full: bool = False) -> None:
        """Room A's store and memory equal room B; every honest client in A equals room A.
        ``full`` also checks the reference itself (B's store, B's clients)."""
        b = self.reference()
        problems: list[str] = []
        if full:
            b_store = await self.store_json(self.b)
            if b_store != b:
                problems.append("reference room B's store differs from its memory (harness bug?)")
                problems += ["  " + d for d in diff(b_store, b)]
        a_mem = self.room_json(self.a)
        if a_mem != b:
            problems.append("room A's document differs from the reference B:")
            problems += ["  " + d for d in diff(a_mem, b)]
        a_store = await self.store_json(self.a)
        if a_store != b:
            problems.append("room A's store, loaded by a fresh client, differs from B:")
            problems += ["  " + d for d in diff(a_store, b)]
        for side in (self.a, self.b) if full else (self.a,):
            room_view = a_mem if side is self.a else b
            for name, client in side.clients.items():
                if name in ADVERSARIES and side is self.a:
                    continue
                if client.closes:
                    problems.append(f"honest {name} in {side.name} was closed: {client.closes}")
                if client.apply_errors:
                    problems.append(
                        f"honest {name} in {side.name} could not apply what the room sent: "
                        f"{client.apply_errors}"
                    )
                mine = client.json()
                if mine != room_view:
                    problems.append(f"honest {name}'s document differs from room {side.name}:")
                    problems += [
                        "  " + d.replace(": A ", ": client ").replace(" B ", " room ")
                        for d in diff(mine, room_view)
                    ]
        if problems:
            raise AssertionError(
                f"after {label}\n" + "\n".join(problems) + "\n\nsteps:\n" + self.transcript()
            )

    def transcript(self) -> str:
        return "\n".join(f"  {i:3d}. {line}" for i, line in enumerate(self.log, 1))


def _background_tasks() -> set[asyncio.Task[None]]:
    from server import room as room_module

    return room_module._background


# -- the canvas model honest steps are planned against ------------------------------------------


def locked(canvas: dict[str, Any], block: Any) -> bool:
    info = canvas["blocks"].get(block) if isinstance(block, str) else None
    return bool(isinstance(info, dict) and info.get("locked_by"))


def may_edit(identity: Identity, canvas: dict[str, Any], note: Any) -> bool:
    if not isinstance(note, dict) or not identity.can_write:
        return False
    if identity.role == "facilitator":
        return True
    return note.get("org") == identity.org_id and not locked(canvas, note.get("block"))


def may_place(identity: Identity, canvas: dict[str, Any], block: str) -> bool:
    if not identity.can_write:
        return False
    return identity.role == "facilitator" or (
        block in canvas["blocks"] and not locked(canvas, block)
    )


def may_vote(identity: Identity, canvas: dict[str, Any], note: Any) -> bool:
    if not isinstance(note, dict) or not identity.can_write:
        return False
    if not isinstance(note.get("votes"), dict) or not isinstance(note.get("text"), str):
        return False
    return identity.role == "facilitator" or not locked(canvas, note.get("block"))


def note_fields(identity: Identity, block: str, text: str, k: int) -> dict[str, Any]:
    return {
        "block": block,
        "text": text,
        "org": identity.org_id,
        "author": identity.user_id,
        "author_name": identity.name,
        "color": "#f5d90a",
        "x": round((k % 7) / 7, 3),
        "y": round((k % 5) / 5, 3),
        "created_at": float(k),
    }


def new_note(identity: Identity, block: str, text: str, k: int, **extra: Any) -> Map:
    fields = note_fields(identity, block, text, k)
    fields["text"] = Text(text)
    fields["votes"] = Map()
    fields.update(extra)
    return Map(fields)


def sorted_notes(canvas: dict[str, Any]) -> list[tuple[str, Any]]:
    return sorted(canvas["notes"].items())


def pick(seq: list[T], i: int) -> T | None:
    return seq[i % len(seq)] if seq else None


def scratch_as(client_id: int, base: bytes) -> Doc:
    """A document holding ``base`` that writes with ``client_id`` (a forged author)."""
    doc: Doc = Doc(client_id=client_id)
    doc.apply_update(base)
    return doc


def capture(doc: Doc, change: Callable[[Doc], None]) -> bytes | None:
    captured: list[bytes] = []
    sub = doc.observe(lambda e: captured.append(e.update))
    try:
        with doc.transaction():
            change(doc)
    finally:
        doc.unobserve(sub)
    return captured[0] if captured and captured[0] != protocol.EMPTY_UPDATE else None


# -- steps ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step: an honest participant's edit (both rooms) or an adversary's move (room A).

    ``a``, ``b``, ``c`` are free choices (which note, where, which variant), resolved against the
    actor's current view when the step runs, so every list of steps is runnable and shrinks.
    """

    actor: str
    op: str
    a: int = 0
    b: int = 0
    c: int = 0

    def __repr__(self) -> str:
        return f"Step({self.actor!r}, {self.op!r}, {self.a}, {self.b}, {self.c})"


HONEST_OPS = ("add", "edit", "move", "delete", "vote", "lock", "link", "arrow")


def block_kind(canvas: dict[str, Any], note: Any) -> str | None:
    return fit.block_kind(canvas["blocks"], note.get("block")) if isinstance(note, dict) else None


def fitting_pairs(canvas: dict[str, Any], sources: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    """(from, to) of notes that may be linked (block kinds fit), not linked yet."""
    linked = {(v.get("from"), v.get("to")) for v in canvas["links"].values() if isinstance(v, dict)}
    return [
        (a, b)
        for a, na in sources
        for b, nb in sorted_notes(canvas)
        if fit.link_kind(block_kind(canvas, na), block_kind(canvas, nb)) and (a, b) not in linked
    ]


def may_link(identity: Identity, canvas: dict[str, Any], frm: Any, to: Any) -> bool:
    if not identity.can_write or not isinstance(frm, dict) or not isinstance(to, dict):
        return False
    if identity.role == "facilitator":
        return True
    unlocked = not locked(canvas, frm.get("block")) and not locked(canvas, to.get("block"))
    return unlocked and frm.get("org") == identity.org_id


def new_link(
    identity: Identity, canvas: dict[str, Any], frm: str, to: str, k: int, strength: str
) -> Map:
    kind = fit.link_kind(
        block_kind(canvas, canvas["notes"][frm]), block_kind(canvas, canvas["notes"][to])
    )
    return Map(
        {
            "from": frm,
            "to": to,
            "kind": kind,
            "strength": strength,
            "org": identity.org_id,
            "author": identity.user_id,
            "author_name": identity.name,
            "created_at": float(k),
        }
    )


def plan_honest(
    identity: Identity, canvas: dict[str, Any], step: Step, k: int
) -> tuple[str, Callable[[Doc], None]] | None:
    """What an honest participant does for this step, as a change to its document."""
    op, a, b, c = step.op, step.a, step.b, step.c
    blocks = [bid for bid in sorted(canvas["blocks"]) if may_place(identity, canvas, bid)]
    editable = [(nid, n) for nid, n in sorted_notes(canvas) if may_edit(identity, canvas, n)]
    editable = [(nid, n) for nid, n in editable if isinstance(n.get("text"), str)]
    if op == "add":
        chosen_block = pick(blocks, a)
        if chosen_block is None:
            return None
        block: str = chosen_block
        nid, word = f"n{k}", WORDS[b % len(WORDS)]

        def add(doc: Doc) -> None:
            doc.get("notes", type=Map)[nid] = new_note(identity, block, word, k)

        return f"adds note {nid} in {block} ({word!r})", add
    if op == "edit":
        chosen = pick(editable, a)
        if chosen is None:
            return None
        nid, note = chosen
        text: str = note["text"]
        pos = b % (len(text) + 1)
        if c % 3 == 0 and text:
            start = min(pos, len(text) - 1)
            end = min(len(text), start + 1 + c % 2)

            def cut(doc: Doc) -> None:
                del doc.get("notes", type=Map)[nid]["text"][start:end]

            return f"deletes {text[start:end]!r} at {start} in {nid}", cut
        word = WORDS[c % len(WORDS)]

        def type_in(doc: Doc) -> None:
            doc.get("notes", type=Map)[nid]["text"].insert(pos, word)

        return f"types {word!r} at {pos} in {nid}", type_in
    if op == "move":
        chosen = pick(editable, a)
        target = pick(blocks, b)
        if chosen is None or target is None:
            return None
        nid, block = chosen[0], target
        x, y_ = round((c % 11) / 11, 3), round((c % 13) / 13, 3)

        def move(doc: Doc) -> None:
            note = doc.get("notes", type=Map)[nid]
            note["block"] = block
            note["x"] = x
            note["y"] = y_

        return f"moves {nid} to {block} ({x}, {y_})", move
    if op == "delete":
        chosen = pick(editable, a)
        if chosen is None:
            return None
        nid = chosen[0]

        def delete(doc: Doc) -> None:
            del doc.get("notes", type=Map)[nid]

        return f"deletes {nid}", delete
    if op == "vote":
        votable = [(nid, n) for nid, n in sorted_notes(canvas) if may_vote(identity, canvas, n)]
        chosen = pick(votable, a)
        if chosen is None:
            return None
        nid, note = chosen
        me = identity.user_id
        if b % 3 == 0 and me in note["votes"]:

            def unvote(doc: Doc) -> None:
                del doc.get("notes", type=Map)[nid]["votes"][me]

            return f"withdraws its vote on {nid}", unvote
        n = 1 + b % 5

        def vote(doc: Doc) -> None:
            doc.get("notes", type=Map)[nid]["votes"][me] = n

        return f"votes {n} on {nid}", vote
    if op == "link":
        notes = canvas["notes"]
        pairs = [
            (f, t)
            for f, t in fitting_pairs(canvas, sorted_notes(canvas))
            if may_link(identity, canvas, notes[f], notes[t])
        ]
        chosen_pair = pick(pairs, a)
        if chosen_pair is None:
            return None
        frm, to = chosen_pair
        lid, strength = f"l{k}", fit.STRENGTHS[b % 2]

        def make_link(doc: Doc) -> None:  # a new Map for each room's twin
            doc.get("links", type=Map)[lid] = new_link(identity, canvas, frm, to, k, strength)

        return f"links {frm} to {to} as {lid} ({strength})", make_link
    if op == "arrow":
        orgs = sorted(canvas["orgs"])
        start = identity.org_id if identity.role != "facilitator" else pick(orgs, a)
        if not identity.can_write or start not in orgs:
            return None
        ends = [o for o in orgs if o != start] + [fit.CUSTOMER]
        end, kind = pick(ends, b), fit.EXCHANGE_KINDS[c % len(fit.EXCHANGE_KINDS)]
        aid = f"x{k}"
        fields = {"from_org": start, "to": end, "kind": kind, "note": f"{kind} for {end}"}
        fields.update(author=identity.user_id, author_name=identity.name)

        def make_arrow(doc: Doc) -> None:
            doc.get("exchange", type=Map)[aid] = Map(fields)

        return f"draws arrow {aid}: {start} -> {end} ({kind})", make_arrow
    if op == "lock":
        if identity.role != "facilitator":
            return None
        bid = pick(sorted(canvas["blocks"]), a)
        assert bid is not None
        value = "" if locked(canvas, bid) else identity.user_id

        def lock(doc: Doc) -> None:
            doc.get("blocks", type=Map)[bid]["locked_by"] = value

        return f"{'locks' if value else 'unlocks'} block {bid}", lock
    raise ValueError(op)


@dataclass
class Plan:
    """An adversary's move: an update for room A, and what room B must get for it (residue)."""

    desc: str
    update: bytes | None
    local: bool  # the update came from a change to the adversary's own document
    residue: Callable[[Doc], None] | None = None


@dataclass
class Ctx:
    """What an adversary knows when it plans: its synced copy of room A."""

    world: World
    adv: Client
    step: Step
    k: int
    canvas: dict[str, Any] = field(init=False)
    st: Structure = field(init=False)
    sv: dict[int, int] = field(init=False)

    def __post_init__(self) -> None:
        self.full = self.adv.doc.get_update()
        self.canvas = json_of(self.adv.doc)
        self.st = Structure(self.full)
        self.sv = self.adv.sv()

    @property
    def me(self) -> Identity:
        return self.adv.identity

    @property
    def own(self) -> int:
        return self.adv.client_id

    @property
    def next(self) -> int:
        return self.sv.get(self.own, 0)

    def victims(self) -> list[tuple[str, int]]:
        """Client ids the adversary can name: other participants (state vector, presence), the
        room's own id, the template's, and one nobody uses."""
        w = self.world
        out = [(name, CLIENT_IDS[name]) for name in ("fac", "ea", "eb", "vb")]
        other = "b2" if self.adv.name == "vc" else "vc"
        out += [(other, CLIENT_IDS[other]), ("server", w.server_id)]
        out += [("template", w.template_id), ("stranger", STRANGER)]
        return out

    def victim(self, i: int) -> tuple[str, int]:
        v = pick(self.victims(), i)
        assert v is not None
        return v

    def next_of(self, client: int) -> int:
        return self.sv.get(client, 0)

    def notes(self) -> list[tuple[str, Any]]:
        return [(nid, n) for nid, n in sorted_notes(self.canvas) if isinstance(n, dict)]

    def editable(self) -> list[tuple[str, Any]]:
        """Notes this adversary may change under the rules (b2: org b's, unlocked)."""
        return [(nid, n) for nid, n in self.notes() if may_edit(self.me, self.canvas, n)]

    def protected(self) -> list[tuple[str, Any]]:
        return [(nid, n) for nid, n in self.notes() if not may_edit(self.me, self.canvas, n)]

    def target(self, i: int) -> tuple[str, Any] | None:
        """A note to hide schema breakage in: one the rules let this adversary change, so only a
        structural check can refuse it (any note for the viewer)."""
        pool = self.editable() if self.me.can_write else self.notes()
        return pick(pool, i)

    def open_blocks(self) -> list[str]:
        return [b for b in sorted(self.canvas["blocks"]) if not locked(self.canvas, b)]

    def block(self, i: int) -> str:
        return pick(self.open_blocks(), i) or pick(sorted(self.canvas["blocks"]), i) or "gains"

    def local(self, desc: str, change: Callable[[Doc], None], **kw: Any) -> Plan:
        return Plan(desc, self.adv.local(change), local=True, **kw)

    def crafted(self, desc: str, structs: list[yenc.S], deletes: Any = None) -> Plan:
        return Plan(desc, yenc.encode(structs, deletes), local=False)


def _notes(doc: Doc) -> Map:
    return doc.get("notes", type=Map)


CONTENTS: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("a value", ("any", ["pwned"])),
    ("a string", ("string", "pwned")),
    ("a Map", ("type", y.MAP)),
    ("a Text", ("type", y.TEXT)),
)
XML = ((y.XML_ELEMENT, "XmlElement"), (y.XML_FRAGMENT, "XmlFragment"), (y.XML_TEXT, "XmlText"))
OTHERS = ("u_fac", "u_ea", "u_eb", "u_vb", "u_nobody")


# rule breaking: honest-looking edits the policy must revert -------------------------------------


def viewer_types(x: Ctx) -> Plan | None:
    chosen = pick([(i, n) for i, n in x.notes() if isinstance(n.get("text"), str)], x.step.a)
    if chosen is None:
        return None
    nid, note = chosen
    pos, word = x.step.b % (len(note["text"]) + 1), WORDS[x.step.c % len(WORDS)]
    return x.local(
        f"types {word!r} at {pos} in {nid}",
        lambda d: _notes(d)[nid]["text"].insert(pos, word),
    )


def viewer_adds_note(x: Ctx) -> Plan:
    nid, block = f"v{x.k}", x.block(x.step.a)
    return x.local(
        f"adds note {nid} in {block}",
        lambda d: _notes(d).__setitem__(nid, new_note(x.me, block, "viewer was here", x.k)),
    )


def deletes_note(x: Ctx) -> Plan | None:
    pool = x.protected()
    chosen = pick(pool, x.step.a)
    if chosen is None:
        return None
    nid = chosen[0]
    item = x.st.note_item(nid)
    if x.step.b % 2 and item is not None:
        return x.crafted(
            f"deletes note {nid} with a raw delete set", [], {item.client: [(item.clock, 1)]}
        )
    return x.local(f"deletes note {nid}", lambda d: _notes(d).__delitem__(nid))


def moves_note(x: Ctx) -> Plan | None:
    chosen = pick(x.protected(), x.step.a)
    if chosen is None:
        return None
    nid, block = chosen[0], x.block(x.step.b)
    xx = round((x.step.c % 9) / 9, 3)

    def move(d: Doc) -> None:
        note = _notes(d)[nid]
        note["block"] = block
        note["x"] = xx

    return x.local(f"moves {nid} to {block}", move)


def edits_protected(x: Ctx) -> Plan | None:
    pool = [(i, n) for i, n in x.protected() if isinstance(n.get("text"), str)]
    chosen = pick(pool, x.step.a)
    if chosen is None:
        return None
    nid, note = chosen
    text = note["text"]
    if x.step.c % 2 and text:
        return x.local(
            f"deletes the text of {nid} (org {note.get('org')!r})",
            lambda d: _notes(d)[nid]["text"].__delitem__(slice(0, len(text))),
        )
    pos = x.step.b % (len(text) + 1)
    return x.local(
        f"types at {pos} in {nid} (org {note.get('org')!r}, block {note.get('block')})",
        lambda d: _notes(d)[nid]["text"].insert(pos, "defaced "),
    )


def restamps(x: Ctx) -> Plan | None:
    chosen = pick(x.notes(), x.step.a)
    if chosen is None:
        return None
    nid = chosen[0]
    key, value = (("org", "a"), ("author", "u_ea"), ("author_name", "Ann"))[x.step.b % 3]
    return x.local(
        f"sets {key}={value!r} on {nid}", lambda d: _notes(d)[nid].__setitem__(key, value)
    )


def edits_settings(x: Ctx) -> Plan:
    v = x.step.b % 7
    bid = pick(sorted(x.canvas["blocks"]), x.step.a) or "gains"
    if v == 0:
        return x.local(
            "renames the canvas", lambda d: d.get("meta", type=Map).__setitem__("title", "hijacked")
        )
    if v == 1:
        return x.local(
            "turns protect_notes off",
            lambda d: d.get("meta", type=Map).__setitem__("protect_notes", False),
        )
    if v == 2:
        value = "" if locked(x.canvas, bid) else x.me.user_id
        return x.local(
            f"sets locked_by={value!r} on block {bid}",
            lambda d: d.get("blocks", type=Map)[bid].__setitem__("locked_by", value),
        )
    if v == 3:
        return x.local(
            f"retitles block {bid}",
            lambda d: d.get("blocks", type=Map)[bid].__setitem__("title", "ours now"),
        )
    if v == 4:
        return x.local(f"deletes block {bid}", lambda d: d.get("blocks", type=Map).__delitem__(bid))
    if v == 5:
        return x.local(
            "renames org a", lambda d: d.get("orgs", type=Map)["a"].__setitem__("name", "evil")
        )
    return x.local(
        "adds an org z",
        lambda d: d.get("orgs", type=Map).__setitem__("z", Map({"name": "Z", "color": "#000"})),
    )


def viewer_raw_delete(x: Ctx) -> Plan | None:
    clients = sorted(c for c, n in x.sv.items() if n > 0)
    client = pick(clients, x.step.a)
    if client is None:
        return None
    clock = x.step.b % x.sv[client]
    length = min(1 + x.step.c % 4, x.sv[client] - clock)
    return x.crafted(
        f"deletes existing clocks {clock}..{clock + length - 1} of client {client}",
        [],
        {client: [(clock, length)]},
    )


def votes_for_other(x: Ctx) -> Plan | None:
    pool = [(i, n) for i, n in x.notes() if isinstance(n.get("votes"), dict)]
    chosen = pick(pool, x.step.a)
    if chosen is None:
        return None
    nid, note = chosen
    theirs = [u for u in sorted(note["votes"]) if u != x.me.user_id]
    if x.step.c % 2 and theirs:
        who = pick(theirs, x.step.b)
        return x.local(
            f"withdraws {who}'s vote on {nid}", lambda d: _notes(d)[nid]["votes"].__delitem__(who)
        )
    who = OTHERS[x.step.b % len(OTHERS)]
    return x.local(
        f"votes for {who} on {nid}", lambda d: _notes(d)[nid]["votes"].__setitem__(who, 3)
    )


def votes_for_other_in_new_note(x: Ctx) -> Plan:
    """b2 may add this note, with its own vote: only the vote for someone else must go."""
    nid, block = f"w{x.k}", x.block(x.step.a)
    who = OTHERS[x.step.b % len(OTHERS)]
    forge = x.step.c % 2 == 1
    stamps: dict[str, Any] = {"org": "a", "author": "u_ea", "author_name": "Ann"} if forge else {}
    me = x.me.user_id

    def create(d: Doc) -> None:
        _notes(d)[nid] = new_note(
            x.me, block, "vote stuffing", x.k, votes=Map({who: 5, me: 1}), **stamps
        )

    residue = None
    if x.me.can_write and not locked(x.canvas, block):

        def residue(d: Doc) -> None:
            _notes(d)[nid] = new_note(x.me, block, "vote stuffing", x.k, votes=Map({me: 1}))

    return x.local(
        f"adds note {nid} in {block} with a vote for {who}"
        + (" and forged stamps" if forge else ""),
        create,
        residue=residue,
    )


# structure: updates no honest client sends; refused whole -----------------------------------


def delete_future(x: Ctx) -> Plan:
    name, client = x.victim(x.step.a)
    start = x.next_of(client) + x.step.b % 3
    length = 1 + x.step.c % 5
    return x.crafted(
        f"deletes future clocks {start}..{start + length - 1} of {name} (#{client})",
        [],
        {client: [(start, length)]},
    )


def delete_straddle(x: Ctx) -> Plan | None:
    name, client = x.victim(x.step.a)
    nxt = x.next_of(client)
    if nxt == 0:
        return delete_future(x)
    start = max(0, nxt - 1 - x.step.b % 3)
    length = nxt - start + 1 + x.step.c % 3
    return x.crafted(
        f"deletes clocks {start}..{start + length - 1} of {name} (#{client}), which has {nxt}",
        [],
        {client: [(start, length)]},
    )


def _pending(x: Ctx, how: str) -> Plan:
    name, client = x.victim(x.step.a)
    at = (client, x.next_of(client) + x.step.b % 2)
    label, content = CONTENTS[x.step.c % len(CONTENTS)]
    s = yenc.S(x.own, x.next, content)
    if how == "origin":
        s.origin = at
    elif how == "right":
        s.right = at
    else:
        s.parent = at
        s.sub = "evil" if x.step.c % 2 else None
    return x.crafted(f"writes {label} whose {how} is {name}'s future item {at}", [s])


def pending_origin(x: Ctx) -> Plan:
    return _pending(x, "origin")


def pending_right(x: Ctx) -> Plan:
    return _pending(x, "right")


def pending_parent(x: Ctx) -> Plan:
    return _pending(x, "parent")


def foreign_client_id(x: Ctx) -> Plan | None:
    victims = [v for v in x.victims() if v[0] != "stranger"]
    name, client = victims[x.step.a % len(victims)]
    scratch = scratch_as(client, x.full)
    if x.me.can_write:
        nid, block = f"f{x.k}", x.block(x.step.b)
        update = capture(
            scratch,
            lambda d: _notes(d).__setitem__(nid, new_note(x.me, block, "as someone else", x.k)),
        )
        desc = f"adds a well-formed note {nid} in {block} written with {name}'s client id #{client}"
    else:
        chosen = pick([(i, n) for i, n in x.notes() if isinstance(n.get("text"), str)], x.step.b)
        if chosen is None:
            nid = f"f{x.k}"
            update = capture(
                scratch,
                lambda d: _notes(d).__setitem__(nid, new_note(x.me, x.block(0), "as someone", x.k)),
            )
            desc = f"adds note {nid} written with {name}'s client id #{client}"
        else:
            nid = chosen[0]
            update = capture(scratch, lambda d: _notes(d)[nid]["text"].insert(0, "forged "))
            desc = f"types into {nid} with {name}'s client id #{client}"
    return Plan(desc, update, local=False)


def _target_or_new(x: Ctx) -> tuple[str, bool]:
    chosen = x.target(x.step.a)
    if chosen is None:
        return f"s{x.k}", True
    return chosen[0], False


def nested_map(x: Ctx) -> Plan:
    nid, new = _target_or_new(x)
    v = x.step.b % 4
    deep = lambda: Map({"k": Map({"x": Map({"y": 1})})})  # noqa: E731
    if new or v == 3:
        nid = f"s{x.k}"
        return x.local(
            f"adds note {nid} with a Map nested three deep",
            lambda d: _notes(d).__setitem__(
                nid, new_note(x.me, x.block(x.step.c), "deep", x.k, deep=deep())
            ),
        )
    if v == 0:
        return x.local(
            f"puts nested Maps in {nid}.deep", lambda d: _notes(d)[nid].__setitem__("deep", deep())
        )
    if v == 1:
        me = x.me.user_id
        return x.local(
            f"makes its vote on {nid} a Map",
            lambda d: (
                _notes(d)[nid]["votes"].__setitem__(me, Map({"n": 1}))
                if isinstance(_notes(d)[nid].get("votes"), Map)
                else _notes(d)[nid].__setitem__("votes", Map({me: Map({"n": 1})}))
            ),
        )
    return x.local(
        f"replaces the Text of {nid} with a Map",
        lambda d: _notes(d)[nid].__setitem__("text", Map({"t": "x"})),
    )


def xml_type(x: Ctx) -> Plan:
    ref, tname = XML[x.step.b % len(XML)]
    content = ("type", ref, "p")
    place = x.step.c % 4
    chosen = x.target(x.step.a)
    item = x.st.note_item(chosen[0]) if chosen else None
    if place in (0, 1) and item is not None and chosen is not None:
        nid = chosen[0]
        text = x.st.entry((item.client, item.clock), "text")
        if place == 1 and text is not None:
            return x.crafted(
                f"replaces the Text of {nid} with an {tname}",
                [yenc.S(x.own, x.next, content, origin=last_id(text))],
            )
        return x.crafted(
            f"adds an {tname} as field shape of {nid}",
            [yenc.S(x.own, x.next, content, parent=(item.client, item.clock), sub="shape")],
        )
    nid = f"x{x.k}"
    if place == 3:
        return x.crafted(
            f"adds note {nid} whose text is an {tname}",
            [
                yenc.S(x.own, x.next, ("type", y.MAP), parent="notes", sub=nid),
                yenc.S(
                    x.own, x.next + 1, ("any", [x.block(0)]), parent=(x.own, x.next), sub="block"
                ),
                yenc.S(x.own, x.next + 2, content, parent=(x.own, x.next), sub="text"),
            ],
        )
    return x.crafted(
        f"adds an {tname} as note {nid}", [yenc.S(x.own, x.next, content, parent="notes", sub=nid)]
    )


def array(x: Ctx) -> Plan:
    nid, new = _target_or_new(x)
    v = x.step.b % 4
    if new or v == 0:
        nid = f"r{x.k}"
        return x.local(
            f"adds an Array as note {nid}", lambda d: _notes(d).__setitem__(nid, Array(["x"]))
        )
    if v == 1:
        return x.local(
            f"puts an Array in {nid}.list",
            lambda d: _notes(d)[nid].__setitem__("list", Array([1, 2])),
        )
    if v == 2:
        return x.local(
            f"makes the votes of {nid} an Array",
            lambda d: _notes(d)[nid].__setitem__("votes", Array([x.me.user_id])),
        )
    return x.local(
        f"replaces the Text of {nid} with an Array",
        lambda d: _notes(d)[nid].__setitem__("text", Array(["t"])),
    )


def embed_binary_subdoc(x: Ctx) -> Plan:
    v = x.step.b % 5
    chosen = x.target(x.step.a)
    item = x.st.note_item(chosen[0]) if chosen else None
    if chosen is None or item is None or v == 4:
        nid = f"e{x.k}"
        return x.crafted(
            f"adds a subdocument as note {nid}",
            [yenc.S(x.own, x.next, ("doc", "guid-evil"), parent="notes", sub=nid)],
        )
    nid = chosen[0]
    parent = (item.client, item.clock)
    if v == 0 and isinstance(chosen[1].get("text"), str):
        return x.local(
            f"inserts an embed into the text of {nid}",
            lambda d: _notes(d)[nid]["text"].insert_embed(0, {"img": "x.png"}),
        )
    if v == 1:
        return x.crafted(
            f"adds binary content as {nid}.att",
            [yenc.S(x.own, x.next, ("binary", b"\x00\xff"), parent=parent, sub="att")],
        )
    if v == 2:
        return x.local(
            f"adds a subdocument as {nid}.sub", lambda d: _notes(d)[nid].__setitem__("sub", Doc())
        )
    return x.crafted(
        f"adds an embed as {nid}.pic",
        [yenc.S(x.own, x.next, ("embed", '{"img":1}'), parent=parent, sub="pic")],
    )


def text_where_map(x: Ctx) -> Plan:
    v = x.step.b % 5
    chosen = x.target(x.step.a)
    if v == 0 or (v == 1 and chosen is None):
        nid = f"t{x.k}"
        return x.local(
            f"adds a Text as note {nid}", lambda d: _notes(d).__setitem__(nid, Text("a note?"))
        )
    if v == 1 and chosen is not None:
        nid = chosen[0]
        return x.local(
            f"makes the votes of {nid} a Text",
            lambda d: _notes(d)[nid].__setitem__("votes", Text("5")),
        )
    if v == 2:
        bid = pick(sorted(x.canvas["blocks"]), x.step.a) or "gains"
        return x.local(
            f"replaces block {bid} with a Text",
            lambda d: d.get("blocks", type=Map).__setitem__(bid, Text("b")),
        )
    if v == 3:
        return x.local(
            "adds a Text as org q", lambda d: d.get("orgs", type=Map).__setitem__("q", Text("q"))
        )
    return x.local(
        "makes meta.title a Text", lambda d: d.get("meta", type=Map).__setitem__("title", Text("t"))
    )


def new_root(x: Ctx) -> Plan:
    v = x.step.b % 5
    name = f"evil{x.step.c % 3}"
    if v == 0:
        return x.local(
            f"writes root {name} as a Map", lambda d: d.get(name, type=Map).__setitem__("k", "v")
        )
    if v == 1:
        return x.local(
            f"writes root {name} as a Text", lambda d: d.get(name, type=Text).insert(0, "hidden")
        )
    if v == 2:
        return x.local(
            f"writes root {name} as an Array", lambda d: d.get(name, type=Array).append("hidden")
        )
    if v == 3:
        return x.crafted(
            f"writes a sequence item into new root {name}",
            [yenc.S(x.own, x.next, ("any", ["hidden"]), parent=name)],
        )
    return x.crafted(
        "writes a sequence item (no key) under the notes map root",
        [yenc.S(x.own, x.next, ("any", ["hidden"]), parent="notes")],
    )


# A browser tab's update is one transaction (a note is about a dozen structs): an editor's update
# of this many structs is no client's.
TOO_MANY_STRUCTS = 50_000


def too_many_structs(x: Ctx) -> Plan | None:
    chosen = x.target(x.step.a)
    item = x.st.note_item(chosen[0]) if chosen else None
    text = x.st.entry((item.client, item.clock), "text") if item else None
    if chosen is None or text is None:
        return None
    structs = [yenc.S(x.own, x.next, ("string", "x"), parent=(text.client, text.clock))]
    for i in range(1, TOO_MANY_STRUCTS):
        # each left of the one before, so no two merge into one struct
        structs.append(yenc.S(x.own, x.next + i, ("string", "x"), right=(x.own, x.next + i - 1)))
    return x.crafted(f"types {TOO_MANY_STRUCTS} one-character structs into {chosen[0]}", structs)


# fit across partners: links, arrows and overlap marks the policy must revert ---------------------


def links_from_protected(x: Ctx) -> Plan | None:
    """A link from a note the adversary may not link from (another organization's; any note for
    the viewer), to something it fits."""
    notes = x.canvas["notes"]
    sources = [(i, n) for i, n in x.notes() if x.me.role == "viewer" or n.get("org") != x.me.org_id]
    chosen = pick(fitting_pairs(x.canvas, sources), x.step.a)
    if chosen is None:
        return None
    frm, to = chosen
    lid = f"evil{x.k}"
    desc = f"links {frm} (org {notes[frm].get('org')!r}) to {to} as {lid}"
    return x.local(
        desc,
        lambda d: d.get("links", type=Map).__setitem__(
            lid, new_link(x.me, x.canvas, frm, to, x.k, "essential")
        ),
    )


def tampers_link(x: Ctx) -> Plan | None:
    """Deletes, re-rates or re-points a link it may not change (another organization's, or any
    for the viewer); re-pointing is refused for its own organization's links too."""
    links = sorted((i, v) for i, v in x.canvas["links"].items() if isinstance(v, dict))
    variant = x.step.c % 3
    if variant != 2 and x.me.role != "viewer":
        links = [(i, v) for i, v in links if v.get("org") != x.me.org_id]
    chosen = pick(links, x.step.a)
    if chosen is None:
        return None
    lid, link = chosen
    if variant == 0:
        return x.local(f"deletes link {lid}", lambda d: d.get("links", type=Map).pop(lid))
    if variant == 1:
        other = "nice-to-have" if link.get("strength") == "essential" else "essential"
        return x.local(
            f"makes link {lid} {other}",
            lambda d: d.get("links", type=Map)[lid].__setitem__("strength", other),
        )
    to = pick([i for i, _ in x.notes() if i != link.get("to")], x.step.b) or "ghost"
    return x.local(
        f"re-points link {lid} to {to}",
        lambda d: d.get("links", type=Map)[lid].__setitem__("to", to),
    )


def tampers_arrow(x: Ctx) -> Plan | None:
    """The viewer draws an arrow; an editor deletes or rewrites another organization's arrow."""
    if x.me.role == "viewer":
        fields = {"from_org": "c", "to": fit.CUSTOMER, "kind": "data", "note": "viewer's"}
        aid = f"vx{x.k}"
        return x.local(
            f"draws arrow {aid}",
            lambda d: d.get("exchange", type=Map).__setitem__(aid, Map(fields)),
        )
    arrows = sorted(
        (i, v)
        for i, v in x.canvas["exchange"].items()
        if isinstance(v, dict) and v.get("from_org") != x.me.org_id
    )
    chosen = pick(arrows, x.step.a)
    if chosen is None:
        return None
    aid = chosen[0]
    if x.step.b % 2:
        return x.local(f"deletes arrow {aid}", lambda d: d.get("exchange", type=Map).pop(aid))
    return x.local(
        f"rewrites the note of arrow {aid}",
        lambda d: d.get("exchange", type=Map)[aid].__setitem__("note", "we get paid instead"),
    )


def marks_overlap(x: Ctx) -> Plan | None:
    chosen = pick(x.notes(), x.step.a)
    nid = chosen[0] if chosen else "n1"
    mark = fit.OVERLAP_MARKS[x.step.b % 2]
    return x.local(
        f"marks {nid} as {mark}",
        lambda d: d.get("overlaps", type=Map).__setitem__(nid, mark),
    )


@dataclass(frozen=True)
class AdvClass:
    name: str
    kind: str  # "rule": the policy reverts it; "structure": refused whole, sender closed 1008
    actors: tuple[str, ...]
    plan: Callable[[Ctx], Plan | None]
    fuzz: bool = True  # drawn by the differential's strategy (False: too slow for thousands)


ADV_CLASSES = {
    c.name: c
    for c in (
        AdvClass("viewer-types", "rule", ("vc",), viewer_types),
        AdvClass("viewer-adds-note", "rule", ("vc",), viewer_adds_note),
        AdvClass("deletes-protected-note", "rule", ("vc", "b2"), deletes_note),
        AdvClass("moves-protected-note", "rule", ("vc", "b2"), moves_note),
        AdvClass("edits-protected-text", "rule", ("vc", "b2"), edits_protected),
        AdvClass("restamps-note", "rule", ("vc", "b2"), restamps),
        AdvClass("edits-settings", "rule", ("vc", "b2"), edits_settings),
        AdvClass("viewer-raw-delete", "rule", ("vc",), viewer_raw_delete),
        AdvClass("votes-for-other", "rule", ("vc", "b2"), votes_for_other),
        AdvClass("votes-for-other-in-new-note", "rule", ("vc", "b2"), votes_for_other_in_new_note),
        AdvClass("links-from-protected", "rule", ("vc", "b2"), links_from_protected),
        AdvClass("tampers-link", "rule", ("vc", "b2"), tampers_link),
        AdvClass("tampers-arrow", "rule", ("vc", "b2"), tampers_arrow),
        AdvClass("marks-overlap", "rule", ("vc", "b2"), marks_overlap),
        AdvClass("delete-future", "structure", ("vc", "b2"), delete_future),
        AdvClass("delete-straddle", "structure", ("vc", "b2"), delete_straddle),
        AdvClass("pending-origin", "structure", ("vc", "b2"), pending_origin),
        AdvClass("pending-right-origin", "structure", ("vc", "b2"), pending_right),
        AdvClass("pending-parent", "structure", ("vc", "b2"), pending_parent),
        AdvClass("foreign-client-id", "structure", ("vc", "b2"), foreign_client_id),
        AdvClass("nested-map", "structure", ("vc", "b2"), nested_map),
        AdvClass("xml-type", "structure", ("vc", "b2"), xml_type),
        AdvClass("array", "structure", ("vc", "b2"), array),
        AdvClass("embed-binary-subdoc", "structure", ("vc", "b2"), embed_binary_subdoc),
        AdvClass("text-where-map", "structure", ("vc", "b2"), text_where_map),
        AdvClass("new-root", "structure", ("vc", "b2"), new_root),
        AdvClass("too-many-structs", "structure", ("b2",), too_many_structs, fuzz=False),
    )
}


@dataclass
class Outcome:
    """What happened to one adversary move in room A."""

    plan: Plan | None
    closed: tuple[int, str] | None = None
    relayed: int = 0  # frames honest sessions in A received because of it
    stored: int = 0  # rows room A's store gained because of it
    denied: list[str] = field(default_factory=list)


async def run_honest(world: World, step: Step, k: int) -> str:
    identity = HONEST[step.actor]
    plan = plan_honest(identity, world.reference(), step, k)
    if plan is None:
        line = f"{step!r}: {step.actor} has nothing to {step.op}"
        world.log.append(line)
        return line
    desc, change = plan
    line = f"{step!r}: {step.actor} {desc}"
    world.log.append(line)
    for side in (world.a, world.b):
        client = side.clients[step.actor]
        try:
            update = client.local(change)
        except Exception as exc:
            raise AssertionError(
                f"honest step could not be made on {client}'s copy of room {side.name} "
                f"({type(exc).__name__}: {exc})\n\nsteps:\n{world.transcript()}"
            ) from exc
        await client.send_update(update)
        await world.settle(side)
    return line


async def run_adversary(world: World, step: Step, k: int) -> Outcome:
    cls = ADV_CLASSES[step.op]
    adv = world.a.clients[step.actor]
    x = Ctx(world, adv, step, k)
    plan = cls.plan(x)
    if plan is None or plan.update is None:
        world.log.append(f"{step!r}: {step.actor} [{cls.name}] has nothing to do")
        return Outcome(plan)
    honest = [c for n, c in world.a.clients.items() if n not in ADVERSARIES]

    def sync_frames() -> int:  # document frames honest sessions got (not presence)
        return sum(1 for c in honest for f in c.session.received if f[0] == protocol.MSG_SYNC)

    before_frames = sync_frames()
    before_rows = len((await world.a.store.load(world.canvas_id)).updates)  # type: ignore[union-attr]
    denied_before = len(adv.denials)
    closed = await adv.send_update(plan.update)
    if closed is None and not plan.local:
        # A client that made this change locally would hold it; so does the adversary.
        try:
            adv.doc.apply_update(plan.update)
        except BaseException as exc:  # noqa: BLE001 - a panic in the adversary's own copy
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            adv.doc = Doc(client_id=adv.client_id)
            adv.doc.apply_update(world.a.room.doc.get_update())
    await world.settle(world.a)
    out = Outcome(plan)
    out.relayed = sync_frames() - before_frames
    out.stored = len((await world.a.store.load(world.canvas_id)).updates) - before_rows  # type: ignore[union-attr]
    out.denied = adv.denials[denied_before:]
    verdict = "accepted"
    if closed is not None:
        out.closed = (closed.code, closed.reason)
        verdict = f"closed {closed.code} ({closed.reason})"
    elif out.denied:
        verdict = f"denied ({'; '.join(out.denied)})"
    world.log.append(f"{step!r}: {step.actor} [{cls.name}] {plan.desc} -> {verdict}")
    if closed is not None:
        await adv.reconnect()
        await world.settle(world.a)
    if plan.residue is not None:
        twin = world.b.clients[step.actor]
        await twin.send_update(twin.local(plan.residue))
        await world.settle(world.b)
    return out


async def run_step(world: World, step: Step, k: int) -> None:
    if step.actor in ADVERSARIES:
        await run_adversary(world, step, k)
    else:
        await run_honest(world, step, k)
