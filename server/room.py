"""One canvas in memory: its document, its sessions, its awareness, and the per-message path.

receive -> decode -> gate (policy) -> apply -> store.append (durable first) -> send to the other
local sessions -> broker.publish. The store, the broker and the gate are handed in; a Room knows
nothing of SQL, Redis or HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pycrdt
from pycrdt import Doc, Map

from . import closecodes, control, protocol, yupdate
from .awareness import Presence
from .bindings import MAX_IDS_PER_SESSION, ClientIds
from .broker.base import (
    KIND_AWARENESS,
    KIND_CONTROL,
    KIND_UPDATE,
    Broker,
    BrokerListener,
    BrokerMessage,
)
from .canvas import attribution
from .canvas.schema import server_client_id
from .closecodes import CloseSession
from .durability import Barrier
from .healing import Healer
from .pipeline import Pipeline, PipelineFailed
from .protocol import Kind
from .session import (
    REFUSAL_BURST,
    REFUSAL_PER_S,
    ROLE_EDITOR,
    ROLE_FACILITATOR,
    ROLE_VIEWER,
    Identity,
    Session,
)
from .store.base import AuditEntry, CanvasNotFound, RoomStore
from .vouch import (
    FACILITATOR_BOUNDS,
    PARTICIPANT_BOUNDS,
    VIEWER_BOUNDS,
    Bounds,
    Refused,
    Verdict,
    Vouch,
    decode_state_vector,
    encode_state_vector,
)

log = logging.getLogger("cocanvas.room")

# Updates a session may have waiting for its own missing clocks (see Room._hold).
MAX_HELD_UPDATES = 256
MAX_HELD_BYTES = 4 << 20
# Unloading compacts a log this long; a handful of rows is cheaper to replay than to rewrite.
MIN_LOG_TO_COMPACT_ON_UNLOAD = 32


@dataclass(slots=True)
class Admitted:
    """What the gate decided about one incoming update."""

    # Bytes to persist and send to everyone else (None: nothing changed).
    update: bytes | None
    # Bytes only the sender must get (e.g. the revert of a refused change).
    reply: bytes | None = None
    # Why a change was refused, told to the sender with an auth message.
    refusal: str | None = None
    audit: Sequence[AuditEntry] = field(default_factory=tuple)


class CompensationFailed(Exception):
    """The gate applied an update but could not put right what it broke: the room's document
    holds something no rule allowed, so the room must be rebuilt from the store."""


# Identity the room claims its own client ids with (the store records them as the server's).
_LEGACY = Identity(":legacy", "", "", "viewer")


class UpdateGate:
    """The seam where policy plugs in. The default applies every update as it is.

    ``adds`` is False when the update brings no new structs (only deletes): the gate then
    returns ``Admitted(None)`` if it changed nothing, so nothing is stored or relayed for it.
    ``roots`` names every root the update's structs name as their parent (None: not known):
    a root the document lacks can only appear through one of those.
    """

    def admit(
        self,
        room: Room,
        session: Session,
        update: bytes,
        adds: bool = True,
        runs: Sequence[tuple[int, int, int, Any]] = (),
        roots: frozenset[str] | None = None,
    ) -> Admitted:
        if adds:
            room.doc.apply_update(update)
            return Admitted(update)
        net = transact(room.doc, f"session:{session.id}", lambda: room.doc.apply_update(update))
        return Admitted(update if net is not None else None)

    def refuse_all(self, room: Room, session: Session) -> str | None:
        """Why no change of this session may be applied now (None: judge it as usual), asked
        before anything of an update touches the document (e.g. a frozen canvas)."""
        return None

    def attach(self, room: Room) -> None:
        """Called once the room's document is loaded (observers go here)."""

    def learned(self, runs: Sequence[tuple[int, int, int, Any]]) -> None:
        """Where the structs of a trusted update just applied landed (``Verdict.runs``: other
        nodes', heals, the server's own): the policy learns who created which note from it."""

    def detach(self, room: Room) -> None:
        """Called when the room unloads: release every subscription."""


def _root_names(parsed: yupdate.Update) -> frozenset[str]:
    """The roots an update's structs name as their parent: the only roots it can create."""
    return frozenset(s.parent for s in parsed.structs if type(s.parent) is str)


def merge_updates(parts: list[bytes]) -> bytes:
    """Merge updates into one without integrating them into a document.

    Yrs merges at the struct level, ~8x faster than applying into a scratch Doc (2.5 ms vs 22 ms
    for 500 notes), and pycrdt holds the GIL either way, so this is what the event loop waits
    for during a compaction. Deleted content stays in the snapshot, as it does in the log.
    """
    if len(parts) == 1:
        return parts[0]
    return pycrdt.merge_updates(*parts)


def transact(doc: Doc, origin: str, change: Callable[[], None]) -> bytes | None:
    """Run ``change`` in one transaction and return exactly that transaction's update.

    ``doc.get_update(state_before)`` would also carry the document's whole delete set, which
    grows with every edit ever made and would then travel to every client with each change.
    """
    captured: list[bytes] = []
    subscription = doc.observe(lambda event: captured.append(event.update))
    try:
        with doc.transaction(origin=origin):
            change()
    finally:
        doc.unobserve(subscription)
    if not captured or captured[0] == protocol.EMPTY_UPDATE:
        return None
    return captured[0]


_BOUNDS: dict[str, Bounds] = {
    ROLE_FACILITATOR: FACILITATOR_BOUNDS,
    ROLE_EDITOR: PARTICIPANT_BOUNDS,
    ROLE_VIEWER: VIEWER_BOUNDS,
}


class _Hold(Exception):
    """The update needs the sender's own clocks that have not arrived yet."""


def _spend_refusals(session: Session, n: int) -> bool:
    """Take n from the session's refusal bucket; False when it is exhausted."""
    now = time.monotonic()
    if session.refusal_at:
        session.refusal_tokens = min(
            REFUSAL_BURST, session.refusal_tokens + (now - session.refusal_at) * REFUSAL_PER_S
        )
    session.refusal_at = now
    session.refusal_tokens -= n
    return session.refusal_tokens >= 0


_background: set[asyncio.Task[None]] = set()


def spawn(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Run a background job, keeping it referenced until done (asyncio holds tasks weakly)."""
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


def _is_fatal(exc: BaseException) -> bool:
    return isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError, GeneratorExit))


class Room(BrokerListener):
    def __init__(
        self,
        canvas_id: str,
        store: RoomStore,
        broker: Broker,
        gate: UpdateGate | None = None,
        *,
        awareness_tick_s: float = 0.01,
        compact_updates: int = 500,
        compact_bytes: int = 1 << 20,
        max_document_bytes: int = 64 << 20,
        store_retry_s: float = 30.0,
        on_empty: Callable[[Room], None] | None = None,
        on_evict: Callable[[Room, int, str], None] | None = None,
    ) -> None:
        self.canvas_id = canvas_id
        self.store = store
        self.broker = broker
        self.gate = gate or UpdateGate()
        # The server writes into this doc (corrections, HTTP changes): a 32-bit client id keeps
        # y-py 0.6 clients, which mis-decode larger ids, in sync.
        self.doc: Doc = Doc(client_id=server_client_id())
        # Who owns each client id, and the structural validator with its index of the doc.
        self.client_ids = ClientIds(canvas_id, store)
        # Client ids known to have their ``ids`` entry in the document (see _attribute).
        self._attributed: set[int] = set()
        self.vouch = Vouch(self._extract)
        self.sessions: set[Session] = set()
        self.closed = False
        self._compact_updates = compact_updates
        self._compact_bytes = compact_bytes
        self._max_document_bytes = max_document_bytes
        # Presence: stamped, owned, bounded awareness states, coalesced per tick.
        self.presence = Presence(
            canvas_id,
            sessions=lambda: self.sessions,
            publish=lambda payload: self.broker.publish(canvas_id, KIND_AWARENESS, payload),
            client_ids=self.client_ids,
            org_name=self._org_name,
            tick_s=awareness_tick_s,
        )
        # durability barrier: appends in flight, by ticket
        self.durable = Barrier()
        self.pipeline = Pipeline(
            lambda update, audit: store.append_nowait(canvas_id, update, audit),
            self.durable,
            on_durable=self._durable,
            on_release=self._released,
            on_failure=self._store_lost,
            store_failed=lambda: store.stats().failed is not None,
            retry_s=store_retry_s,
        )
        # log size since the last snapshot, to decide compaction
        self.log_count = 0
        self.log_bytes = 0
        self.doc_bytes = 0
        self._compacting: asyncio.Task[None] | None = None
        self.healer = Healer(canvas_id, self._catch_up, lambda: self.closed, spawn)
        self._rebuild_replay: list[bytes] | None = None
        # Told when the last session leaves, and asked to unload this room at once (store down,
        # canvas deleted); Rooms passes both so its bookkeeping follows.
        self._on_empty = on_empty
        self._on_evict = on_evict

    # -- lifecycle ------------------------------------------------------------------------

    async def load(self) -> None:
        """Subscribe first, then read the store: nothing published in between is missed."""
        await self.broker.subscribe(self.canvas_id, self)
        stored = await self.store.load(self.canvas_id)
        if stored is None:
            await self.broker.unsubscribe(self.canvas_id)
            raise CanvasNotFound(self.canvas_id)
        parts = stored.parts()
        if parts:
            with self.doc.transaction(origin="load"):
                for part in parts:
                    self.doc.apply_update(part)
        self.log_count = len(stored.updates)
        self.log_bytes = sum(len(u) for _, u in stored.updates)
        self.doc_bytes = sum(len(p) for p in parts)
        self.vouch.reset(self._state())
        await self.client_ids.load()
        await self._bind_own_ids()
        self.gate.attach(self)
        await self._attribute_loaded()

    async def _bind_own_ids(self) -> None:
        """Bind the room's client id to the server, and mark ids with content but no owner
        (written before bindings existed, e.g. by the template) so nobody can claim them."""
        legacy = [c for c in self._state() if self.client_ids.owner(c) is None]
        if legacy:
            await self.client_ids.claim(legacy, _LEGACY)
        while await self.client_ids.claim([self.doc.client_id], None):
            # Taken (a one-in-four-billion clash): the server writes with another id.
            fresh: Doc = Doc(client_id=server_client_id())
            fresh.apply_update(self.doc.get_update())
            self.doc = fresh

    async def _attribute_loaded(self) -> None:
        """Give every client id with content an ``ids`` entry from its store binding (canvases
        written before attribution had stamped notes and bindings, but no ``ids`` root).

        Names come from those stamps (``author_name`` of the notes each id created); an id whose
        notes were stamped with another organization than its binding's was a facilitator's
        (only a facilitator's notes kept the organization they named), so the old notes'
        attribution equals what their stamps said. Written once, as the server, durably.
        """
        ids = self.doc.get(attribution.IDS, type=Map)
        # Ids bound to the server (its own, or content older than bindings) need no entry: a
        # creator without one has its fields trusted, as the server's are. So a fresh canvas
        # writes (and publishes) nothing on its first load.
        missing = [
            c
            for c in self._state()
            if str(c) not in ids
            and (b := self.client_ids.owner(c)) is not None
            and b.user_id not in attribution.TRUSTED_USERS
        ]
        if not missing:
            return
        doc = self.doc
        stamps: dict[int, list[dict[str, Any]]] = {}
        notes = doc.get("notes", type=Map).to_py() or {}
        if notes:
            for nid, (client, _) in attribution.creators_of(doc).items():
                note = notes.get(nid)
                if isinstance(note, dict):
                    stamps.setdefault(client, []).append(note)
        orgs = set(doc.get("orgs", type=Map).keys())

        def write() -> None:
            for c in missing:
                binding = self.client_ids.owner(c)
                if binding is None:
                    continue
                mine = stamps.get(c, [])
                own = [n for n in mine if n.get("author") == binding.user_id]
                names = [n.get("author_name") for n in own or mine]
                name = next((v for v in reversed(names) if isinstance(v, str) and v), "")
                filed = {n.get("org") for n in mine}
                facilitator = any(
                    isinstance(o, str) and o != binding.org_id and (o == "" or o in orgs)
                    for o in filed
                )
                ids[str(c)] = attribution.ids_entry(
                    binding.user_id, binding.org_id, name, facilitator
                )

        update = transact(doc, "server", write)
        if update is not None:
            self._learn(update)
            await self._commit(update, (), None)

    def _attribute(self, session: Session, clients: Iterable[int]) -> None:
        """Before a session's first structs with a client id are applied, write who that id
        is into ``ids`` (once per id), as a server change queued ahead of the update: the
        pipeline releases in order, so the entry is durable and reaches every receiver (the
        sender too) no later than the note it attributes."""
        known = self._attributed
        if all(c in known for c in clients):
            return  # every update after an id's first: no document read
        ids = self.doc.get(attribution.IDS, type=Map)
        fresh = [c for c in clients if str(c) not in ids]
        known.update(c for c in clients if c not in fresh)
        if not fresh:
            return
        identity = session.identity
        facilitator = identity.role == ROLE_FACILITATOR

        def write() -> None:
            for c in fresh:
                binding = self.client_ids.owner(c)
                user, org = (
                    (binding.user_id, binding.org_id)
                    if binding is not None
                    else (identity.user_id, identity.org_id)
                )
                ids[str(c)] = attribution.ids_entry(user, org, identity.name, facilitator)

        update = transact(self.doc, "server", write)
        known.update(fresh)
        if update is not None:
            self._learn(update)
            self._relay(update, (), None)

    def attribute_self(self) -> None:
        """Inside a server transaction on ``self.doc``: make sure the room's own client id has
        its ``ids`` entry (so what the server writes is known to be the server's)."""
        ids = self.doc.get(attribution.IDS, type=Map)
        key = str(self.doc.client_id)
        if key not in ids:
            ids[key] = attribution.ids_entry(attribution.SERVER_USER, "", "", False)

    def _state(self) -> dict[int, int]:
        return decode_state_vector(self.doc.get_state())

    def _extract(self, clients: Iterable[int]) -> bytes:
        """An update of just these clients' structs, from the room's document (for the index)."""
        state = self._state()
        for c in clients:
            state.pop(c, None)
        return self.doc.get_update(encode_state_vector(state))

    async def close(self, code: int = closecodes.SERVICE_RESTART, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        for session in list(self.sessions):
            session.close(code, reason)
        self.sessions.clear()
        self.presence.close()
        await self.broker.unsubscribe(self.canvas_id)
        self.healer.cancel()
        if self._compacting is not None and not self._compacting.done():
            self._compacting.cancel()
        await self.durable.wait()
        self.gate.detach(self)
        if self.log_count >= MIN_LOG_TO_COMPACT_ON_UNLOAD and code != closecodes.NOT_FOUND:
            try:
                await self._compact()
            except Exception:
                log.exception("compaction on unload failed for %s", self.canvas_id)

    def evict(self, code: int, reason: str) -> None:
        """Close every session and unload now."""
        if self._on_evict is not None:
            self._on_evict(self, code, reason)
        else:
            spawn(self.close(code, reason))

    # -- sessions -------------------------------------------------------------------------

    async def join(self, session: Session) -> None:
        if self.closed:  # unloaded while the socket was being accepted: reconnecting reloads it
            session.close(closecodes.SERVICE_RESTART, "canvas reloading")
            return
        self.sessions.add(session)
        session.send(protocol.sync_step1(self.doc.get_state()))
        frame = self.presence.join_frame()
        if frame is not None:
            session.send(frame)

    def leave(self, session: Session) -> None:
        self.sessions.discard(session)
        self.presence.leave(session)
        if not self.sessions and self._on_empty is not None:
            self._on_empty(self)

    # -- the message path -----------------------------------------------------------------

    async def receive(self, session: Session, frame: bytes) -> None:
        """Handle one frame from a session; raises CloseSession to close that session only."""
        try:
            message = protocol.decode(frame)
        except protocol.UnknownMessage as exc:
            raise CloseSession(closecodes.UNSUPPORTED_DATA, str(exc)) from None
        except protocol.ProtocolError as exc:
            raise CloseSession(closecodes.PROTOCOL_ERROR, str(exc)) from None
        kind = message.kind
        if kind is Kind.SYNC_UPDATE:
            await self._on_update(session, message.payload, frame)
        elif kind is Kind.SYNC_STEP2:
            await self._on_update(session, message.payload, None, step2=True)
        elif kind is Kind.AWARENESS:
            await self.presence.receive(session, message.payload)
        elif kind is Kind.SYNC_STEP1:
            await self._on_step1(session, message.payload)
        elif kind is Kind.QUERY_AWARENESS:
            session.send(self.presence.query_frame())
        # Kind.AUTH from a client carries nothing we act on.

    async def _on_step1(self, session: Session, state_vector: bytes) -> None:
        try:
            diff = self.doc.get_update(state_vector)
        except BaseException as exc:
            if _is_fatal(exc):
                raise
            raise CloseSession(closecodes.INVALID_PAYLOAD, "invalid state vector") from None
        # Never hand out an update that is not durable yet.
        await self.durable.wait()
        session.send(protocol.sync_step2(diff))

    async def _on_update(
        self, session: Session, update: bytes, frame: bytes | None, step2: bool = False
    ) -> None:
        if update == protocol.EMPTY_UPDATE:
            return
        if await self._apply(session, update, frame, step2) and session.held:
            await self._retry_held(session)

    async def _apply(
        self, session: Session, update: bytes, frame: bytes | None, step2: bool
    ) -> bool:
        """Validate, apply, persist, relay one update; False when it is held (see _hold)."""
        if self.doc_bytes + len(update) > self._max_document_bytes:
            raise CloseSession(closecodes.DOCUMENT_TOO_LARGE, "canvas is at its maximum size")
        identity = session.identity
        bounds = _BOUNDS.get(identity.role, VIEWER_BOUNDS)
        try:
            parsed = yupdate.read_update(update, bounds.reader_limits())
        except yupdate.UpdateTooLarge as exc:
            raise CloseSession(closecodes.POLICY_VIOLATION, f"update refused: {exc}") from None
        except yupdate.UpdateError as exc:
            raise CloseSession(closecodes.INVALID_PAYLOAD, f"malformed update: {exc}") from None
        try:
            verdict = await self._vouch_for(session, parsed, bounds, step2)
        except _Hold:
            self._hold(session, update, frame)
            return False
        if verdict.runs or parsed.deletes:
            frozen = self.gate.refuse_all(self, session)
            if frozen is not None:
                # Nothing of it is applied, stored or relayed; the sender is told why.
                session.send(protocol.permission_denied(frozen))
                if not _spend_refusals(session, 1):
                    raise CloseSession(closecodes.POLICY_VIOLATION, "too many refused changes")
                return True
        # From the verdict to the apply nothing awaits: the verdict holds for this document.
        if verdict.runs:
            self._attribute(session, verdict.clients)
        try:
            admitted = self.gate.admit(
                self,
                session,
                update,
                adds=bool(verdict.runs),
                runs=verdict.runs,
                roots=_root_names(parsed),
            )
        except CloseSession:
            raise
        except BaseException as exc:
            if _is_fatal(exc):
                raise
            if isinstance(exc, CompensationFailed):
                log.error("could not compensate an update on %s: %s", self.canvas_id, exc)
            elif not isinstance(exc, Exception):
                # A Rust panic may have left a half-applied transaction.
                log.error("panic applying an update to %s: %r", self.canvas_id, exc)
            if isinstance(exc, CompensationFailed) or not isinstance(exc, Exception):
                # The document may hold what was never stored: rebuild it from the store.
                spawn(self._rebuild())
                raise CloseSession(closecodes.POLICY_VIOLATION, "update refused") from None
            raise CloseSession(closecodes.INVALID_PAYLOAD, "update rejected") from None
        self.vouch.commit(verdict)
        if admitted.reply is not None:
            self._learn(admitted.reply)
        if admitted.update is not None:
            net = admitted.update
            # Pipelined: released to the others (and the correction to the sender) once durable;
            # the sender's next frame is read meanwhile.
            self._relay(net, admitted.audit, session, frame if net is update else None,
                        admitted.reply)  # fmt: skip
        elif admitted.reply is not None:
            session.send(protocol.sync_update(admitted.reply))
        if admitted.refusal is not None:
            session.send(protocol.permission_denied(admitted.refusal))
            refused = sum(1 for a in admitted.audit if a.action == "refused")
            if not _spend_refusals(session, max(refused, 1)):
                raise CloseSession(closecodes.POLICY_VIOLATION, "too many refused changes")
        await self.pipeline.room_for_more()
        return True

    def _hold(self, session: Session, update: bytes, frame: bytes | None) -> None:
        """Keep an update that needs the sender's own clocks it has not sent yet.

        A stock Yjs client that reconnects with offline edits may send a fresh edit before its
        sync step 2 (which carries the older ones): the fresh one starts past what the room
        knows. It is applied once the missing clocks arrive, never before; if they never do, the
        held updates stay out of the document and are dropped with the session.
        """
        session.held.append((update, frame))
        session.held_bytes += len(update)
        if len(session.held) == 1:
            # Ask for them: a y-websocket client answers a sync step 1 with everything the
            # room lacks (e.g. its edits refused unapplied while the canvas was frozen).
            session.send(protocol.sync_step1(self.doc.get_state()))
        if len(session.held) > MAX_HELD_UPDATES or session.held_bytes > MAX_HELD_BYTES:
            raise CloseSession(
                closecodes.POLICY_VIOLATION, "updates wait for clocks that never arrived"
            )

    async def _retry_held(self, session: Session) -> None:
        while session.held:
            held, session.held, session.held_bytes = session.held, [], 0
            progress = False
            for update, frame in held:
                if await self._apply(session, update, frame, False):
                    progress = True
            if not progress:
                return

    async def _vouch_for(
        self, session: Session, parsed: yupdate.Update, bounds: Bounds, step2: bool
    ) -> Verdict:
        """Validate, binding new client ids to the sender; raise CloseSession(1008) to refuse.

        Claims await the store, and the document may move meanwhile, so the update is checked
        again after every await; the last check happens right before the apply.
        """
        identity = session.identity
        while True:
            if self.vouch.stale:
                self.vouch.reset(self._state())
            try:
                verdict = self.vouch.check(parsed, bounds)
                refusal: Refused | None = None
            except Refused as exc:
                refusal = exc
            if refusal is None:
                unbound = [c for c in verdict.clients if self.client_ids.owner(c) is None]
                if not unbound:
                    foreign = [
                        c for c in verdict.clients if not self.client_ids.owned_by(c, identity)
                    ]
                    if not foreign:
                        return verdict
                    refusal = Refused(
                        f"structs written with client id {foreign[0]}, which belongs to "
                        "someone else",
                        missing=True,
                    )
                else:
                    if len(session.bound_ids) + len(unbound) > MAX_IDS_PER_SESSION:
                        raise CloseSession(
                            closecodes.POLICY_VIOLATION, "too many client ids on one connection"
                        )
                    taken = await self.client_ids.claim(unbound, identity)
                    session.bound_ids.update(c for c in unbound if c not in taken)
                    continue
            assert refusal is not None
            if refusal.waits_for and all(
                self.client_ids.owned_by(c, identity) for c in refusal.waits_for
            ):
                raise _Hold()
            if refusal.missing and step2 and not session.caught_up:
                # Maybe another node's updates are in the store but not here yet.
                session.caught_up = True
                await self._catch_up()
                continue
            raise CloseSession(closecodes.POLICY_VIOLATION, f"update refused: {refusal.reason}")

    def _learn(self, update: bytes) -> None:
        """Index an update the room applied without validating it (trusted sources)."""
        try:
            verdict = self.vouch.learn(update)
        except (yupdate.UpdateError, ValueError):
            self.vouch.stale = True
            return
        self.gate.learned(verdict.runs)

    def _relay(
        self,
        update: bytes,
        audit: Sequence[AuditEntry],
        sender: Session | None,
        frame: bytes | None = None,
        reply: bytes | None = None,
    ) -> None:
        """Hand an applied update to the pipeline: durable first, then (in the room's order)
        every other local session, the sender's correction, and the other nodes."""
        if self._rebuild_replay is not None:
            self._rebuild_replay.append(update)
        self.doc_bytes += len(update)
        try:
            self.pipeline.submit(update, audit, (update, sender, frame, reply))
        except PipelineFailed:
            raise CloseSession(closecodes.INTERNAL_ERROR, "store unavailable") from None

    async def _commit(
        self, update: bytes, audit: Sequence[AuditEntry], sender: Session | None
    ) -> None:
        """As :meth:`_relay`, returning once the update is durable and released."""
        if self._rebuild_replay is not None:
            self._rebuild_replay.append(update)
        self.doc_bytes += len(update)
        try:
            waiter = self.pipeline.submit(update, audit, (update, sender, None, None), wait=True)
            assert waiter is not None
            await waiter
        except PipelineFailed as exc:
            if isinstance(exc.cause, CanvasNotFound):
                raise CloseSession(closecodes.NOT_FOUND, "canvas was deleted") from None
            raise CloseSession(closecodes.INTERNAL_ERROR, "store unavailable") from None

    def _released(
        self, payloads: list[tuple[bytes, Session | None, bytes | None, bytes | None]]
    ) -> None:
        """Durable updates, in the room's order: to every other session, the sender's
        correction to the sender, then to the other nodes. Several at once (one commit's) reach
        each session as one list, in that same order."""
        if len(payloads) == 1:
            update, sender, frame, reply = payloads[0]
            out = frame if frame is not None else protocol.sync_update(update)
            for other in self.sessions:
                if other is not sender:
                    other.send(out)
            if reply is not None and sender is not None:
                sender.send(protocol.sync_update(reply))
            self.broker.publish(self.canvas_id, KIND_UPDATE, update)
            return
        # (frame, whom it is not for) and (reply, whom it is for), interleaved in order.
        steps: list[tuple[bytes, Session | None, bool]] = []
        for update, sender, frame, reply in payloads:
            steps.append(
                (frame if frame is not None else protocol.sync_update(update), sender, False)
            )
            if reply is not None and sender is not None:
                steps.append((protocol.sync_update(reply), sender, True))
        for session in self.sessions:
            mine = [out for out, who, only in steps if (who is session) is only]
            if mine:
                session.send_many(mine)
        for update, _, _, _ in payloads:
            self.broker.publish(self.canvas_id, KIND_UPDATE, update)

    def _durable(self, update: bytes) -> None:
        self.log_count += 1
        self.log_bytes += len(update)
        if (
            self.log_count >= self._compact_updates or self.log_bytes >= self._compact_bytes
        ) and self._compacting is None:
            self._compacting = spawn(self._compact_in_background())

    def _store_lost(self, exc: BaseException) -> None:
        """An append could not be made durable: nobody may be served what the store lacks."""
        if isinstance(exc, CanvasNotFound):
            self.evict(closecodes.NOT_FOUND, "canvas was deleted")
            return
        log.error("store down for %s: %s", self.canvas_id, exc)
        # The doc is now ahead of the store: drop it; clients resend their edits on reconnect.
        self.evict(closecodes.INTERNAL_ERROR, "store unavailable")

    async def apply_server_change(
        self, change: Callable[[Doc], None], audit: Sequence[AuditEntry] = ()
    ) -> bytes | None:
        """Change the canvas as the server (HTTP API, templates): returns the update, if any.

        Written on the room's own document, so it is ordered after everything the room has
        seen; it then travels like any client's update, and is durable when this returns.
        """
        doc = self.doc
        update = transact(doc, "server", lambda: change(doc))
        if update is None:
            return None
        if str(doc.client_id) not in doc.get(attribution.IDS, type=Map):
            entry = transact(doc, "server", self.attribute_self)
            if entry is not None:
                update = merge_updates([entry, update])
        self._learn(update)
        await self._commit(update, audit, None)
        return update

    # -- awareness ------------------------------------------------------------------------

    def _org_name(self, org_id: str) -> str | None:
        """An organization's name as the canvas shows it (stamped into presence)."""
        org = self.doc.get("orgs", type=Map).get(org_id) if org_id else None
        name = org.get("name") if isinstance(org, Map) else None
        return name if isinstance(name, str) else None

    # -- other nodes ----------------------------------------------------------------------

    def on_broker_message(self, message: BrokerMessage) -> None:
        if self.closed:
            return
        if message.kind == KIND_UPDATE:
            try:
                self.doc.apply_update(message.payload)
            except BaseException as exc:
                if _is_fatal(exc):
                    raise
                log.warning("bad update from node %s on %s", message.node_id, self.canvas_id)
                self.on_broker_gap()
                return
            self._learn(message.payload)
            if self._rebuild_replay is not None:
                self._rebuild_replay.append(message.payload)
            self.doc_bytes += len(message.payload)
            frame = protocol.sync_update(message.payload)
            for session in self.sessions:
                session.send(frame)
        elif message.kind == KIND_AWARENESS:
            self.presence.on_remote(message.node_id, message.payload)
        elif message.kind == KIND_CONTROL:
            self.on_control(message.payload)

    def on_control(self, payload: bytes) -> None:
        """Control messages from other nodes (deleted canvas, revoked invite)."""
        message = control.decode(payload)
        if isinstance(message, control.CanvasDeleted):
            self.evict(closecodes.NOT_FOUND, "canvas was deleted")
        elif isinstance(message, control.InviteRevoked):
            self.close_sessions_of_invite(message.invite_id)
        elif isinstance(message, control.ParticipantRemoved):
            self.close_sessions_of_user(message.user_id, closecodes.FORBIDDEN, "removed")
        elif isinstance(message, control.RoleChanged):
            self.close_sessions_of_user(message.user_id, closecodes.ROLE_CHANGED, "role changed")

    def close_sessions_of_invite(self, invite_id: str) -> int:
        """Close this node's sessions opened with the invite (Rooms tells the other nodes)."""
        closed = 0
        for session in list(self.sessions):
            if session.identity.invite_id == invite_id:
                session.close(closecodes.REVOKED, "invite link revoked")
                closed += 1
        return closed

    def close_sessions_of_user(self, user_id: str, code: int, reason: str) -> int:
        """Close this node's sessions of one participant (Rooms tells the other nodes)."""
        mine = [s for s in self.sessions if s.identity.user_id == user_id]
        for session in mine:
            session.close(code, reason)
        return len(mine)

    def on_node_lost(self, node_id: str) -> None:
        log.info("node %s lost: dropping its awareness states on %s", node_id, self.canvas_id)
        self.presence.on_node_lost(node_id)
        # Its last updates may be committed but never published (killed between the two, e.g.
        # in the middle of a draft reveal): catch up from the store, which has them.
        self.healer.gap()

    def on_broker_gap(self) -> None:
        self.healer.gap()

    async def _catch_up(self) -> None:
        """Apply what the store has and this room lacks; send exactly that to local sessions.

        By state-vector diff: the stored document, merged without integrating it, minus what the
        room already has, is applied in one transaction, and that transaction's own update (new
        structs and newly deleted items, so a missed delete-only update is healed too) is what
        the local sessions receive.
        """
        stored = await self.store.load(self.canvas_id)
        if stored is None or self.closed:
            return
        parts = stored.parts()
        if not parts:
            return
        missing = pycrdt.get_update(merge_updates(parts), self.doc.get_state())
        doc = self.doc
        change = transact(doc, "heal", lambda: doc.apply_update(missing))
        if change is None:
            return
        self._learn(change)
        frame = protocol.sync_update(change)
        for session in self.sessions:
            session.send(frame)

    async def _rebuild(self) -> None:
        """Replace a possibly corrupted document with the store's, keeping concurrent updates."""
        self._rebuild_replay = []
        try:
            await self.durable.wait()
            stored = await self.store.load(self.canvas_id)
            if stored is None:
                return
            fresh: Doc = Doc(client_id=server_client_id())
            while await self.client_ids.claim([fresh.client_id], None):
                fresh = Doc(client_id=server_client_id())
            for part in stored.parts() + self._rebuild_replay:
                fresh.apply_update(part)
            self.gate.detach(self)
            self.doc = fresh
            self.vouch.reset(self._state())
            self.gate.attach(self)
        finally:
            self._rebuild_replay = None

    # -- compaction -----------------------------------------------------------------------

    async def _compact_in_background(self) -> None:
        try:
            await self._compact()
        except Exception:
            log.exception("compaction failed for %s", self.canvas_id)
        finally:
            self._compacting = None

    async def _compact(self) -> None:
        if await self.store.compact(self.canvas_id, merge_updates):
            stats = await self.store.log_stats(self.canvas_id)
            self.log_count, self.log_bytes = stats.count, stats.bytes
            # What the store keeps: the new snapshot (about the document) plus the log.
            self.doc_bytes = len(self.doc.get_update()) + stats.bytes
