"""One canvas's presence (y-protocols awareness): who is here, their cursors, what they edit.

Extracted from Room, with the same coalescing: a leading-edge throttle per tick (a lone change goes
out at once, a burst once per tick; the tick grows 0.1 ms per session), renewals of unchanged
states held up to ``RENEWAL_HOLD_S`` to share a flush, a batch that is entirely one sender's own
news is not echoed back to it, and removal tombstones leave the state table once told. What the
server now enforces on every state it relays:

* **Stamped.** ``user.id``, ``user.name``, ``user.org``, ``user.role`` come from the session's token
  and ``user.orgName`` from the canvas's orgs map, whatever the client claims; the client's other
  fields (colour, cursor, editing, ...) are kept. A state that is neither a JSON object nor null
  closes the sender (1002).
* **Owned.** A session sets or removes awareness only for client ids its token's user owns
  (:class:`~server.bindings.ClientIds`; the first use binds an unclaimed id). Anything else is
  dropped silently: stock y-websocket clients re-send every state they hear, so a foreign id is
  usually an echo and never a reason to close an honest client. A session binds at most
  ``MAX_IDS_PER_SESSION`` ids, counted with those its updates bound (``Session.bound_ids``), and
  holds at most as many presence ids (1008 beyond).
* **Bounded.** One state is at most ``MAX_STATE_BYTES`` of JSON (1009 beyond), so what a joiner
  receives is bounded by sessions x ids x 64 KiB.
* **A reconnecting tab reappears at once.** y-protocols' ``applyAwarenessUpdate`` accepts a state
  only with a clock above the one it knows (or an equal clock with null). When a tab leaves, the
  server announces ``(clock + 1, null)``; the tab comes back with its old clock, which every peer
  would ignore until the tab's renewals pass the tombstone (13-27 s). So when the owner comes back
  on a new socket with a clock that is not above the last one announced for that id (a tombstone,
  or a live state still held by its old, not yet noticed dead socket), the state is relayed at
  last + 1 and also told to the owner, which adopts the higher clock (a stock client takes its own
  state from a remote with a newer clock) so its later updates are newer again. The new session
  takes the id over; the old one, closing later, does not null it out. The last announced clock of
  a departed id is remembered (at most ``MAX_REMEMBERED_CLOCKS`` ids, oldest forgotten first).

How a reconnect is told from an echo: a stock client sends its own state, alone, as its first
awareness message on a new socket (y-websocket does it in ``onopen``, before it reads anything the
server sent), so only that message may take over an id the session does not hold with a clock
that is not newer. Later messages with such clocks are echoes (another tab of the same user hears
and repeats this tab's state) and are dropped. The session holding an id may always move it
forward: a change sent before it adopted a raised clock is relayed above the last announced clock
too, and the echo of a clock the server told it is recognised and dropped.

Room-independent: it is handed the room's sessions, a way to publish to other nodes, the client id
bindings and the organization names.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass

import orjson

from . import closecodes, protocol
from .bindings import MAX_IDS_PER_SESSION, ClientIds
from .closecodes import CloseSession
from .protocol import NULL_STATE, AwarenessEntry
from .session import Identity, Session
from .store.base import CanvasNotFound, StoreError

log = logging.getLogger("cocanvas.awareness")

# Largest awareness state (its JSON bytes, as the client sent it). A browser tab's is a few hundred
# bytes; this bounds what every joiner is sent by sessions x ids x 64 KiB.
MAX_STATE_BYTES = 64 * 1024
# Flushes are spaced at least this much per session in the room (see _schedule).
TICK_PER_SESSION_S = 0.0001
# A renewal (y-protocols re-announces an unchanged state every 15 s, so peers keep it past their
# 30 s timeout) waits up to this long for others to share its flush. In a room of k tabs every
# flush is k - 1 sends and, from stock y-websocket clients, k - 1 echoes back: 100 tabs renewing
# one by one cost ~1,300 frames/s, batched ~100. A change goes out at the tick, renewals with it.
RENEWAL_HOLD_S = 2.0
# Departed ids whose last announced clock is remembered, so a tab that reconnects reappears at once.
MAX_REMEMBERED_CLOCKS = 8192
# Batches remembered to recognise their echoes: a flush's echoes arrive within a round trip.
RECENT_BATCHES = 8
# Clocks told back to the session holding an id and not yet caught up with (bumps in flight).
_MAX_TOLD = 8
_JSON_SPACE = b" \t\n\r"

Holder = Session | str  # a local session, or the id of the node that relayed the state


@dataclass(slots=True)
class _Entry:
    """What the server announced last for one client id."""

    clock: int
    state: bytes  # stamped JSON as announced, or NULL_STATE (a tombstone not yet told)
    holder: Holder
    # The holding session's last non-null state as sent, and its stamp (the stamp cache).
    raw: bytes = b""
    stamped: bytes = b""
    stamp_key: tuple[Identity, str] | None = None
    # Highest clock the holding session itself sent for this id.
    seen: int = 0
    # Clocks above the holder's own that were told back to it: clock -> state told.
    told: dict[int, bytes] | None = None


@dataclass(slots=True)
class _Decision:
    client_id: int
    clock: int  # the clock to announce
    state: bytes  # stamped state, or NULL_STATE
    raw: bytes
    stamp_key: tuple[Identity, str] | None
    sent_clock: int  # the clock the session sent
    tell: bool  # send it back to the session (its clock was raised)


def _is_null(state: bytes) -> bool:
    return state == NULL_STATE or state.strip(_JSON_SPACE) == NULL_STATE


def _bad(detail: str) -> CloseSession:
    return CloseSession(closecodes.PROTOCOL_ERROR, f"bad awareness update: {detail}")


def stamp(raw: bytes, identity: Identity, org_name: str) -> bytes:
    """The state as relayed: the client's JSON object with ``user`` taken from the token.

    Idempotent (the user's keys keep their position), so a stamped state stamps to itself.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _bad(str(exc)) from None
    if not isinstance(value, dict):
        raise _bad("a state must be a JSON object or null")
    claimed = value.get("user")
    user = dict(claimed) if isinstance(claimed, dict) else {}
    user["id"] = identity.user_id
    user["name"] = identity.name
    user["org"] = identity.org_id
    user["orgName"] = org_name
    user["role"] = identity.role
    value["user"] = user
    # orjson's bytes keep their 4 KB output buffer however short the JSON: a state is held as
    # long as its tab is here, so keep an exact-size copy (about 4 KB less per connection).
    return bytes(memoryview(orjson.dumps(value)))


def _latest_per_id(payload: bytes) -> list[AwarenessEntry]:
    """The message's entries, one per id (an honest client never repeats one: the newest
    wins); raises CloseSession for a malformed message or an oversized state."""
    try:
        decoded = protocol.decode_awareness(payload)
    except protocol.ProtocolError as exc:
        raise _bad(str(exc)) from None
    latest: dict[int, AwarenessEntry] = {}
    for entry in decoded:
        if len(entry[2]) > MAX_STATE_BYTES:
            raise CloseSession(closecodes.MESSAGE_TOO_BIG, "awareness state too large")
        seen = latest.get(entry[0])
        if seen is None or entry[1] >= seen[1]:
            latest[entry[0]] = entry
    return list(latest.values())


class Presence:
    """The awareness states of one canvas, on this node."""

    def __init__(
        self,
        canvas_id: str,
        *,
        sessions: Callable[[], Collection[Session]],
        publish: Callable[[bytes], None],
        client_ids: ClientIds,
        org_name: Callable[[str], str | None],
        tick_s: float,
        renewal_hold_s: float = RENEWAL_HOLD_S,
    ) -> None:
        self.canvas_id = canvas_id
        self._sessions = sessions
        self._publish_to_nodes = publish
        self.client_ids = client_ids
        self._org_name = org_name
        self._tick_s = tick_s
        self._renewal_hold_s = renewal_hold_s
        # Live states, and tombstones until they are told.
        self._states: dict[int, _Entry] = {}
        # Departed ids: last announced clock and the id of the session that held it (None: remote).
        self._gone: OrderedDict[int, tuple[int, int | None]] = OrderedDict()
        # Sessions that have sent awareness (their first message may be a reconnect).
        self._spoken: set[Session] = set()
        self._local: dict[int, tuple[int, bytes]] = {}  # pending for local sessions
        self._publish: dict[int, tuple[int, bytes]] = {}  # pending for other nodes
        self._tell: dict[Session, dict[int, tuple[int, bytes]]] = {}  # pending, for one session
        # Who contributed to the pending batch; None stands for the server.
        self._sources: set[Session | None] = set()
        self._handle: asyncio.Handle | None = None
        # Whether anything pending is news (not only renewals), and whether the scheduled flush
        # was scheduled for news (at the tick) or only for renewals (after the hold).
        self._news = False
        self._handle_for_news = False
        self._last_flush = 0.0
        self._closed = False
        # The last batches sent to every session. A stock y-websocket client re-sends every
        # awareness change it hears, so each flush comes back from every session, byte for byte
        # (see receive): recognised here before anything is decoded.
        self._recent: OrderedDict[bytes, None] = OrderedDict()

    # -- what a session is sent -----------------------------------------------------------

    def join_frame(self) -> bytes | None:
        """The awareness frame for a newly joined session: every live state, or None."""
        states = [(c, e.clock, e.state) for c, e in self._states.items() if e.state != NULL_STATE]
        if not states:
            return None
        return protocol.awareness(protocol.encode_awareness(states))

    def query_frame(self) -> bytes:
        """The answer to QUERY_AWARENESS: every state known, departures not yet told included."""
        states = [(c, e.clock, e.state) for c, e in self._states.items()]
        return protocol.awareness(protocol.encode_awareness(states))

    def state_of(self, client_id: int) -> tuple[int, bytes] | None:
        """(clock, state) last announced for this id, while it is in the table."""
        entry = self._states.get(client_id)
        return None if entry is None else (entry.clock, entry.state)

    def last_clock(self, client_id: int) -> int | None:
        """The last clock announced for this id: live, tombstone, or remembered departure."""
        entry = self._states.get(client_id)
        if entry is not None:
            return entry.clock
        gone = self._gone.get(client_id)
        return None if gone is None else gone[0]

    # -- from local sessions --------------------------------------------------------------

    async def receive(self, session: Session, payload: bytes) -> None:
        """One awareness message from a local session; raises CloseSession to close it."""
        if payload in self._recent and session in self._spoken:
            # The echo of a batch this room sent: states it holds at these clocks already, so the
            # full path would drop every entry (a session's first message always takes it: it
            # may be a reconnect, see the module doc).
            return
        entries = _latest_per_id(payload)
        if self._closed or not entries:
            return
        # A stock client's first message on a socket is its own state, alone (see module doc).
        may_reconnect = session not in self._spoken and len(entries) == 1
        self._spoken.add(session)
        identity = session.identity
        wanted = [e[0] for e in entries if self._needs_claim(e, may_reconnect, identity)]
        if wanted and not await self._claim(session, wanted):
            return  # the session left (or the room closed) meanwhile
        decisions = [
            d for e in entries if (d := self._decide(session, e, may_reconnect)) is not None
        ]
        if decisions:
            self._admit(session, decisions)

    async def _claim(self, session: Session, wanted: list[int]) -> bool:
        """Bind ids nobody owns yet to the sender; False when the session or the room went away
        meanwhile (nothing more to do)."""
        # Ids it binds count with those its updates bound (session.bound_ids).
        if len(session.bound_ids | session.client_ids) + len(wanted) > MAX_IDS_PER_SESSION:
            raise CloseSession(closecodes.POLICY_VIOLATION, "too many awareness client ids")
        try:
            refused = await self.client_ids.claim(wanted, session.identity)
            session.bound_ids.update(c for c in wanted if c not in refused)
        except CanvasNotFound:
            raise CloseSession(closecodes.NOT_FOUND, "canvas was deleted") from None
        except StoreError as exc:
            # Presence is not worth failing for: the ids stay unbound and their states are
            # dropped; the client renews them within 15 s.
            log.warning("awareness ids of %s not bound: %s", self.canvas_id, exc)
        return not self._closed and session in self._spoken

    def _admit(self, session: Session, decisions: list[_Decision]) -> None:
        """Apply what was decided and schedule the flush; a session holds a bounded number of
        ids."""
        new_ids = {
            d.client_id
            for d in decisions
            if d.state != NULL_STATE and d.client_id not in session.client_ids
        }
        if len(session.client_ids) + len(new_ids) > MAX_IDS_PER_SESSION:
            raise CloseSession(closecodes.POLICY_VIOLATION, "too many awareness client ids")
        for d in decisions:
            self._apply(session, d)
        self._sources.add(session)
        self._schedule()

    def _needs_claim(self, entry: AwarenessEntry, may_reconnect: bool, identity: Identity) -> bool:
        """An id nobody is known to own, in a state that is not an obvious echo."""
        cid, clock, state = entry
        if _is_null(state) or self.client_ids.owned_by(cid, identity) is not None:
            return False
        current = self._states.get(cid)
        if current is not None and clock <= current.clock and state == current.state:
            return False  # an echo of a state from another node (bound there, unknown here)
        last = self.last_clock(cid)
        return last is None or clock > last or may_reconnect

    def _decide(
        self, session: Session, entry: AwarenessEntry, may_reconnect: bool
    ) -> _Decision | None:
        cid, clock, raw = entry
        if self.client_ids.owned_by(cid, session.identity) is not True:
            return None  # another user's id (or one that could not be bound): never relayed
        current = self._states.get(cid)
        if _is_null(raw):
            return self._removal(session, cid, clock, current)
        gone = self._gone.get(cid) if current is None else None
        last = current.clock if current is not None else (gone[0] if gone is not None else None)
        if last is None or clock > last:
            state, key = self._stamp(session, current, raw)
            return _Decision(cid, clock, state, raw, key, clock, False)
        holds = (current is not None and current.holder is session) or (
            gone is not None and gone[1] == session.id
        )
        stamped = self._not_newer(session, entry, current, holds, may_reconnect)
        if stamped is None:
            return None
        return _Decision(cid, last + 1, stamped[0], raw, stamped[1], clock, True)

    @staticmethod
    def _removal(
        session: Session, cid: int, clock: int, current: _Entry | None
    ) -> _Decision | None:
        """Only the session holding a live state removes it; anything else is an echo."""
        if current is None or current.state == NULL_STATE or current.holder is not session:
            return None
        announce = clock if clock > current.clock else current.clock + 1
        return _Decision(cid, announce, NULL_STATE, b"", None, clock, announce != clock)

    def _not_newer(
        self,
        session: Session,
        entry: AwarenessEntry,
        current: _Entry | None,
        holds: bool,
        may_reconnect: bool,
    ) -> tuple[bytes, tuple[Identity, str]] | None:
        """A state at a clock not above the last announced: the stamped state to announce above
        it, or None for an echo."""
        _, clock, raw = entry
        live = current is not None and current.state != NULL_STATE
        if not holds:
            if may_reconnect:
                return self._stamp(session, current, raw)  # the owner's tab on a new socket
            return None  # an echo: another tab of the same user repeating what it heard
        if not live:
            return self._stamp(session, current, raw)  # back after its own removal
        assert current is not None
        told = current.told or {}
        if raw == current.raw or raw == current.state or told.get(clock) == raw:
            return None  # unchanged, or the echo of its own state or of a clock it was told
        if clock <= current.seen:
            return None  # older than what it sent already
        state, key = self._stamp(session, current, raw)
        if state == current.state or told.get(clock) == state:
            return None  # the same echo, serialized differently by the client
        # A change sent before it adopted a raised clock: announce it above the last one.
        return state, key

    def _stamp(
        self, session: Session, current: _Entry | None, raw: bytes
    ) -> tuple[bytes, tuple[Identity, str]]:
        key = (session.identity, self._org_name(session.identity.org_id) or "")
        if current is not None and current.raw == raw and current.stamp_key == key:
            return current.stamped, key
        return stamp(raw, key[0], key[1]), key

    def _apply(self, session: Session, d: _Decision) -> None:
        cid = d.client_id
        current = self._states.get(cid)
        self._gone.pop(cid, None)
        if d.state == NULL_STATE:
            assert current is not None
            current.clock = d.clock
            current.state = NULL_STATE
            current.told = None
            session.client_ids.discard(cid)
            self._news = True
        else:
            if current is not None and current.holder is not session:
                if isinstance(current.holder, Session):
                    # The owner's tab is on a new socket: the old one, closing later, must not
                    # null the id out.
                    current.holder.client_ids.discard(cid)
                current = None
            if current is None:
                current = self._states[cid] = _Entry(d.clock, d.state, session)
                self._news = True
            elif d.tell or current.state != d.state:
                self._news = True
            previous = current.clock
            current.clock = d.clock
            current.state = d.state
            current.raw = d.raw
            current.stamped = d.state
            current.stamp_key = d.stamp_key
            current.seen = max(current.seen, d.sent_clock)
            if d.tell:
                told = current.told if current.told is not None else {}
                told[d.clock] = d.state
                while len(told) > _MAX_TOLD:
                    del told[next(iter(told))]
                current.told = told
            elif d.clock > previous:
                current.told = None  # its clocks are ahead of everything it was told
            session.client_ids.add(cid)
        pending = (d.clock, d.state)
        self._local[cid] = pending
        self._publish[cid] = pending
        if d.tell:
            self._tell.setdefault(session, {})[cid] = pending

    def leave(self, session: Session) -> None:
        """The session is gone: its ids go null for everyone (clock + 1)."""
        self._spoken.discard(session)
        self._sources.discard(session)
        self._tell.pop(session, None)
        for cid in session.client_ids:
            current = self._states.get(cid)
            if current is None or current.holder is not session or current.state == NULL_STATE:
                continue
            current.clock += 1
            current.state = NULL_STATE
            current.told = None
            gone = (current.clock, NULL_STATE)
            self._local[cid] = gone
            self._publish[cid] = gone
        session.client_ids.clear()
        if self._local:
            self._news = True
            self._sources.add(None)
            self._schedule()

    # -- from other nodes -----------------------------------------------------------------

    def on_remote(self, node_id: str, payload: bytes) -> None:
        """States another node relayed (stamped and checked there): tell local sessions."""
        if self._closed:
            return
        try:
            entries = protocol.decode_awareness(payload)
        except protocol.ProtocolError:
            log.warning("bad awareness payload from node %s on %s", node_id, self.canvas_id)
            return
        changed = False
        for cid, clock, state in entries:
            if len(state) > MAX_STATE_BYTES:
                continue
            current = self._states.get(cid)
            null = _is_null(state)
            if current is not None:
                if not (
                    clock > current.clock
                    or (clock == current.clock and null and current.state != NULL_STATE)
                ):
                    continue
                if isinstance(current.holder, Session):
                    # The tab moved to that node (or left it): this node's socket no longer
                    # holds it.
                    current.holder.client_ids.discard(cid)
            else:
                gone = self._gone.get(cid)
                if gone is not None and clock <= gone[0]:
                    continue
                if null:
                    # A removal of a state this node does not have: nothing to tell, but its
                    # clock is remembered for when the tab comes here.
                    self._remember(cid, clock, None)
                    continue
                self._gone.pop(cid, None)
            if current is None or null or current.state != state:
                self._news = True  # else a renewal relayed by another node
            self._states[cid] = _Entry(clock, NULL_STATE if null else state, node_id)
            self._local[cid] = (clock, NULL_STATE if null else state)
            changed = True
        if changed:
            self._sources.add(None)
            self._schedule()

    def on_node_lost(self, node_id: str) -> None:
        """That node died: the states it relayed go null for local sessions."""
        for cid, entry in self._states.items():
            if entry.holder == node_id and entry.state != NULL_STATE:
                entry.clock += 1
                entry.state = NULL_STATE
                self._local[cid] = (entry.clock, NULL_STATE)
        if self._local:
            self._news = True
            self._sources.add(None)
            self._schedule()

    # -- coalescing -----------------------------------------------------------------------

    def _schedule(self) -> None:
        """Leading-edge throttle: a lone change goes out at once, a burst once per tick; renewals
        alone wait up to RENEWAL_HOLD_S for company (news arriving meanwhile takes them along)."""
        if self._closed:
            return
        if self._handle is not None:
            if self._handle_for_news or not self._news:
                return
            self._handle.cancel()  # news cannot wait for the renewals' hold
        loop = asyncio.get_running_loop()
        self._handle_for_news = self._news
        if not self._news:
            self._handle = loop.call_later(self._renewal_hold_s, self._flush)
            return
        # A flush costs a send to every session and, from stock y-websocket clients, an echo back
        # from each: the tick grows with the room so flushes x sessions stays bounded (100 ms at
        # 1,000 sessions, the configured tick for workshop-sized rooms).
        tick = max(self._tick_s, len(self._sessions()) * TICK_PER_SESSION_S)
        wait = self._last_flush + tick - loop.time()
        if wait <= 0:
            self._handle = loop.call_soon(self._flush)
        else:
            self._handle = loop.call_later(wait, self._flush)

    def _flush(self) -> None:
        self._handle = None
        self._news = False
        self._last_flush = asyncio.get_running_loop().time()
        frame = None
        if self._local:
            entries = [(cid, clock, st) for cid, (clock, st) in self._local.items()]
            batch = protocol.encode_awareness(entries)
            frame = protocol.awareness(batch)
            self._local.clear()
            self._recent[batch] = None
            if len(self._recent) > RECENT_BATCHES:
                self._recent.popitem(last=False)
        tell = self._tell
        self._tell = {}
        if frame is not None or tell:
            # Echoing a client's own state back is harmless, but skip it when the whole batch is
            # that client's own news.
            skip = next(iter(self._sources)) if len(self._sources) == 1 else None
            for session in self._sessions():
                own = tell.get(session)
                if own is not None:
                    # Before the batch: the owner adopts the raised clock from this frame.
                    entries = [(cid, clock, st) for cid, (clock, st) in own.items()]
                    session.send(protocol.awareness(protocol.encode_awareness(entries)))
                if frame is not None and session is not skip:
                    session.send(frame)
        self._sources.clear()
        if self._publish:
            entries = [(cid, clock, st) for cid, (clock, st) in self._publish.items()]
            self._publish_to_nodes(protocol.encode_awareness(entries))
            self._publish.clear()
        # Forget departed states once told, keeping the table flat over long workshops; their
        # clocks are remembered so a returning tab is announced above them.
        for cid in [c for c, e in self._states.items() if e.state == NULL_STATE]:
            entry = self._states.pop(cid)
            holder = entry.holder.id if isinstance(entry.holder, Session) else None
            self._remember(cid, entry.clock, holder)

    def _remember(self, client_id: int, clock: int, holder: int | None) -> None:
        self._gone[client_id] = (clock, holder)
        self._gone.move_to_end(client_id)
        while len(self._gone) > MAX_REMEMBERED_CLOCKS:
            self._gone.popitem(last=False)

    def online_users(self) -> set[str]:
        """User ids with a live presence state here, this node's and the other nodes' (read
        from the stamps, so only what the server itself wrote; for the facilitator's console)."""
        out: set[str] = set()
        for entry in self._states.values():
            if _is_null(entry.state):
                continue
            try:
                user = orjson.loads(entry.state).get("user")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(user, dict) and isinstance(user.get("id"), str):
                out.add(user["id"])
        return out

    def close(self) -> None:
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._local.clear()
        self._publish.clear()
        self._tell.clear()
        self._sources.clear()
        self._recent.clear()
