"""Presence (server/awareness.py) in-process: each rule with the attack it stops.

Real ClientIds over a real SQLiteStore; sessions record what they are sent. What a browser would
show is computed with ``StockView``, a transcription of y-protocols' ``applyAwarenessUpdate``:
a state is taken only with a clock above the known one, or an equal clock with null.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from server import awareness, closecodes, protocol
from server.awareness import MAX_STATE_BYTES, Presence
from server.bindings import MAX_IDS_PER_SESSION, ClientIds
from server.closecodes import CloseSession
from server.session import Identity, Session
from server.store.base import CanvasRecord, ClientBinding
from server.store.sqlite import SQLiteStore

CANVAS = "c_presence"
ORGS = {"alpha": "Alpha", "beta": "Beta"}

FRAN = Identity("u_fran", "Fran", "alpha", "facilitator")
VIC = Identity("u_vic", "Vic", "beta", "viewer")
ANN = Identity("u_ann", "Ann", "alpha", "editor")
BEN = Identity("u_ben", "Ben", "beta", "editor")
SAM = Identity("u_sam", "Sam", "beta", "editor")  # sends the sentinel updates

TAB = 1_000_001  # a browser tab's awareness (and Yjs) client id
OTHER_TAB = 1_000_002
SENTINEL_TAB = 1_000_003


class Recorder(Session):
    """A session that records every frame it is sent."""

    def __init__(self, identity: Identity, name: str = "") -> None:
        super().__init__(identity)
        self.name = name or identity.name
        self.frames: list[bytes] = []
        self.close_code: int | None = None
        self._closed = False

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)

    def close(self, code: int, reason: str) -> None:
        self._closed = True
        self.close_code = code

    @property
    def closed(self) -> bool:
        return self._closed

    def entries(self) -> list[tuple[int, int, Any]]:
        """Every awareness entry received, in order: (client id, clock, parsed state)."""
        out = []
        for frame in self.frames:
            message = protocol.decode(frame)
            if message.kind is protocol.Kind.AWARENESS:
                for cid, clock, state in protocol.decode_awareness(message.payload):
                    out.append((cid, clock, orjson.loads(state)))
        return out

    def entries_for(self, client_id: int) -> list[tuple[int, Any]]:
        return [(clock, state) for cid, clock, state in self.entries() if cid == client_id]

    def view(self, own: int | None = None, own_clock: int = 0) -> StockView:
        return StockView.of(self.entries(), own, own_clock)


@dataclass
class StockView:
    """What a stock y-protocols Awareness holds after applying these entries in order."""

    own: int | None = None
    states: dict[int, Any] = field(default_factory=dict)
    clocks: dict[int, int] = field(default_factory=dict)

    @classmethod
    def of(
        cls, entries: Iterable[tuple[int, int, Any]], own: int | None = None, own_clock: int = 0
    ) -> StockView:
        view = cls(own)
        if own is not None:
            view.clocks[own] = own_clock
        for cid, clock, state in entries:
            view.apply(cid, clock, state)
        return view

    def apply(self, cid: int, clock: int, state: Any) -> None:
        current = self.clocks.get(cid, 0)
        if current < clock or (current == clock and state is None and cid in self.states):
            if state is None:
                if cid == self.own and self.states.get(cid) is not None:
                    clock += 1  # a stock client never lets a remote remove its own state
                else:
                    self.states.pop(cid, None)
            else:
                self.states[cid] = state
            self.clocks[cid] = clock


class Canvas:
    """A Presence wired like a Room wires it: sessions, what is published, org names."""

    def __init__(
        self,
        client_ids: ClientIds,
        store: SQLiteStore,
        tick_s: float = 0.001,
        renewal_hold_s: float = awareness.RENEWAL_HOLD_S,
    ) -> None:
        self.store = store
        self.client_ids = client_ids
        self.sessions: set[Session] = set()
        self.published: list[list[tuple[int, int, bytes]]] = []
        self.presence = Presence(
            CANVAS,
            sessions=lambda: self.sessions,
            publish=lambda payload: self.published.append(protocol.decode_awareness(payload)),
            client_ids=client_ids,
            org_name=ORGS.get,
            tick_s=tick_s,
            renewal_hold_s=renewal_hold_s,
        )

    def join(self, identity: Identity, name: str = "") -> Recorder:
        session = Recorder(identity, name)
        self.sessions.add(session)
        frame = self.presence.join_frame()
        if frame is not None:
            session.send(frame)
        return session

    def leave(self, session: Session) -> None:
        self.sessions.discard(session)
        self.presence.leave(session)

    async def say(self, session: Session, *entries: tuple[int, int, Any]) -> None:
        """Send an awareness message; a state that is bytes goes as is, anything else as JSON."""
        encoded = [
            (cid, clock, st if isinstance(st, bytes) else orjson.dumps(st))
            for cid, clock, st in entries
        ]
        await self.presence.receive(session, protocol.encode_awareness(encoded))

    def joiner_view(self) -> StockView:
        """What a browser joining now would show."""
        frame = self.presence.join_frame()
        if frame is None:
            return StockView()
        payload = protocol.decode(frame).payload
        return StockView.of(
            (c, k, orjson.loads(s)) for c, k, s in protocol.decode_awareness(payload)
        )


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.001)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "cocanvas.db")
    await s.start()
    await s.create_canvas(CanvasRecord(CANVAS, "Workshop", "business-model", time.time()), None)
    try:
        yield s
    finally:
        await s.close()


@contextlib.asynccontextmanager
async def open_canvas(store: SQLiteStore, **settings: float) -> AsyncIterator[Canvas]:
    """A Canvas over the store's client id bindings (``tick_s``, ``renewal_hold_s``), closed
    after."""
    client_ids = ClientIds(CANVAS, store)
    await client_ids.load()
    c = Canvas(client_ids, store, **settings)
    try:
        yield c
    finally:
        c.presence.close()


@pytest.fixture
async def canvas(store: SQLiteStore) -> AsyncIterator[Canvas]:
    async with open_canvas(store) as c:
        yield c


def cursor_state(name: str = "Ann", x: float = 0.5) -> dict[str, Any]:
    return {
        "user": {"name": name, "color": "#3366ff"},
        "cursor": {"block": None, "x": x, "y": 0.25},
    }


async def sentinel(canvas: Canvas, watcher: Recorder, clock: int) -> None:
    """A third party's update, awaited at the watcher: everything sent before it was flushed."""
    sam = next((s for s in canvas.sessions if s.identity == SAM), None) or canvas.join(SAM)
    state = cursor_state("Sam", clock / 1000)
    await canvas.say(sam, (SENTINEL_TAB, clock, state))
    await until(lambda: (clock, state) in _plain(watcher, SENTINEL_TAB))


def _plain(session: Recorder, cid: int) -> list[tuple[int, Any]]:
    """Entries for an id, with the stamped user reduced to what the client set."""
    out = []
    for clock, state in session.entries_for(cid):
        if isinstance(state, dict) and isinstance(state.get("user"), dict):
            state = {**state, "user": {k: state["user"][k] for k in ("name", "color")}}
        out.append((clock, state))
    return out


# -- 1. stamped ---------------------------------------------------------------------------------


async def test_spoofed_name_org_and_role_are_overwritten_other_fields_kept(canvas: Canvas) -> None:
    watcher = canvas.join(ANN, "watcher")
    vic = canvas.join(VIC)
    spoof = {
        "user": {
            "id": FRAN.user_id,
            "name": "<b>Fran</b> (facilitator)",
            "org": "alpha",
            "orgName": "Alpha",
            "role": "facilitator",
            "color": "#ff0000",
        },
        "cursor": {"block": "key-partners", "x": 0.1, "y": 0.2},
        "editing": "note-7",
    }
    await canvas.say(vic, (TAB, 1, spoof))
    await until(lambda: bool(watcher.entries_for(TAB)))

    told = {
        "user": {
            "id": "u_vic",
            "name": "Vic",
            "org": "beta",
            "orgName": "Beta",
            "role": "viewer",
            "color": "#ff0000",
        },
        "cursor": {"block": "key-partners", "x": 0.1, "y": 0.2},
        "editing": "note-7",
    }
    assert watcher.entries_for(TAB) == [(1, told)]
    assert canvas.joiner_view().states == {TAB: told}
    # Other nodes get the stamped state too.
    assert [[(c, k, orjson.loads(s)) for c, k, s in batch] for batch in canvas.published] == [
        [(TAB, 1, told)]
    ]
    # A state without a user object gets one.
    await canvas.say(vic, (TAB, 2, {"cursor": None}))
    await until(lambda: len(watcher.entries_for(TAB)) == 2)
    assert watcher.entries_for(TAB)[-1][1]["user"] == {
        "id": "u_vic",
        "name": "Vic",
        "org": "beta",
        "orgName": "Beta",
        "role": "viewer",
    }


@pytest.mark.parametrize("state", [b"[]", b'"Fran"', b"42", b"true", b"{not json", b'{"a":NaN}'])
async def test_a_state_that_is_not_an_object_or_null_closes_1002(
    canvas: Canvas, state: bytes
) -> None:
    watcher = canvas.join(ANN, "watcher")
    vic = canvas.join(VIC)
    with pytest.raises(CloseSession) as raised:
        await canvas.say(vic, (TAB, 1, state))
    assert raised.value.code == closecodes.PROTOCOL_ERROR
    assert "bad awareness update" in raised.value.reason
    await sentinel(canvas, watcher, 1)
    assert watcher.entries_for(TAB) == [] and canvas.presence.state_of(TAB) is None


async def test_an_unchanged_state_is_not_stamped_again(
    canvas: Canvas, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bytes] = []
    real = awareness.stamp

    def counting(raw: bytes, identity: Identity, org_name: str) -> bytes:
        calls.append(raw)
        return real(raw, identity, org_name)

    monkeypatch.setattr(awareness, "stamp", counting)
    ann = canvas.join(ANN)
    for clock in (1, 2, 3):  # y-protocols renews an unchanged state every 15 s
        await canvas.say(ann, (TAB, clock, cursor_state()))
    await canvas.say(ann, (TAB, 4, cursor_state(x=0.9)))
    assert len(calls) == 2
    assert canvas.presence.state_of(TAB) is not None
    assert canvas.presence.state_of(TAB)[0] == 4  # type: ignore[index]


# -- 2. owned -----------------------------------------------------------------------------------


async def test_another_users_id_with_a_higher_clock_is_not_relayed(canvas: Canvas) -> None:
    watcher = canvas.join(BEN, "watcher")
    ann = canvas.join(ANN)
    await canvas.say(ann, (TAB, 3, cursor_state("Ann", 0.3)))
    await until(lambda: bool(watcher.entries_for(TAB)))
    before = canvas.presence.state_of(TAB)

    vic = canvas.join(VIC)
    await canvas.say(vic, (TAB, 1_000, cursor_state("Ann", 0.99)))  # not closed: dropped
    await sentinel(canvas, watcher, 1)

    assert watcher.entries_for(TAB) == [(3, watcher.entries_for(TAB)[0][1])]
    assert canvas.presence.state_of(TAB) == before
    assert canvas.joiner_view().states[TAB]["cursor"]["x"] == 0.3
    assert canvas.joiner_view().states[TAB]["user"]["id"] == "u_ann"
    assert TAB not in vic.client_ids and vic.close_code is None
    # Ann still moves her own cursor.
    await canvas.say(ann, (TAB, 4, cursor_state("Ann", 0.4)))
    await until(lambda: len(watcher.entries_for(TAB)) == 2)


async def test_a_null_for_another_users_id_is_ignored(canvas: Canvas) -> None:
    watcher = canvas.join(BEN, "watcher")
    ann = canvas.join(ANN)
    await canvas.say(ann, (TAB, 3, cursor_state()))
    await until(lambda: bool(watcher.entries_for(TAB)))

    vic = canvas.join(VIC)
    await canvas.say(vic, (TAB, 3, None), (TAB + 7, 9, None))  # equal clock, then an unknown id
    await canvas.say(vic, (TAB, 50, None))  # higher clock
    await sentinel(canvas, watcher, 1)

    assert [state for _, state in watcher.entries_for(TAB)] == [watcher.entries_for(TAB)[0][1]]
    assert TAB in canvas.joiner_view().states
    assert TAB + 7 not in canvas.joiner_view().states


async def test_an_id_bound_to_another_user_elsewhere_is_refused(canvas: Canvas) -> None:
    """Bound by another node (this node's cache does not know it): the store says no."""
    await canvas.store.bind_client_ids(CANVAS, [ClientBinding(TAB, ANN.user_id, "alpha", 0.0)])
    assert canvas.client_ids.owned_by(TAB, VIC) is None
    watcher = canvas.join(BEN, "watcher")
    vic = canvas.join(VIC)
    await canvas.say(vic, (TAB, 1, cursor_state("Ann")))
    await sentinel(canvas, watcher, 1)
    assert watcher.entries_for(TAB) == [] and canvas.presence.state_of(TAB) is None
    assert canvas.client_ids.owned_by(TAB, VIC) is False  # learned from the store


async def test_first_use_binds_the_id_to_the_token_user(canvas: Canvas) -> None:
    ann = canvas.join(ANN)
    await canvas.say(ann, (TAB, 1, cursor_state()))
    assert canvas.client_ids.owned_by(TAB, ANN) is True
    stored = await canvas.store.list_client_ids(CANVAS)
    assert (stored[TAB].user_id, stored[TAB].org_id) == ("u_ann", "alpha")


async def test_more_ids_than_a_session_may_introduce_closes_1008(canvas: Canvas) -> None:
    ann = canvas.join(ANN)
    for i in range(MAX_IDS_PER_SESSION):
        await canvas.say(ann, (TAB + i, 1, cursor_state()))
    with pytest.raises(CloseSession) as raised:
        await canvas.say(ann, (TAB + MAX_IDS_PER_SESSION, 1, cursor_state()))
    assert raised.value.code == closecodes.POLICY_VIOLATION
    # Nothing past the cap was bound either.
    assert canvas.client_ids.owned_by(TAB + MAX_IDS_PER_SESSION, ANN) is None


async def test_ids_bound_by_a_sessions_updates_count_against_its_cap(canvas: Canvas) -> None:
    ben = canvas.join(BEN)
    ben.bound_ids.update(range(7, 7 + MAX_IDS_PER_SESSION))  # bound by the structs it sent
    with pytest.raises(CloseSession) as raised:
        await canvas.say(ben, (TAB, 1, cursor_state()))
    assert raised.value.code == closecodes.POLICY_VIOLATION
    assert canvas.client_ids.owned_by(TAB, BEN) is None


# -- 3. bounded ---------------------------------------------------------------------------------


async def test_a_65_kib_state_closes_1009_and_nothing_is_relayed(canvas: Canvas) -> None:
    watcher = canvas.join(BEN, "watcher")
    vic = canvas.join(VIC)
    huge = {"user": {"name": "x"}, "pad": "x" * (65 * 1024)}
    with pytest.raises(CloseSession) as raised:
        # A small valid state first: the whole message is refused, not its tail.
        await canvas.say(vic, (TAB, 1, cursor_state("Vic")), (TAB + 1, 1, huge))
    assert (raised.value.code, raised.value.reason) == (
        closecodes.MESSAGE_TOO_BIG,
        "awareness state too large",
    )
    await sentinel(canvas, watcher, 1)
    assert watcher.entries_for(TAB) == [] and watcher.entries_for(TAB + 1) == []
    assert canvas.client_ids.owned_by(TAB, VIC) is None  # nothing bound either
    assert all(cid == SENTINEL_TAB for batch in canvas.published for cid, _, _ in batch)


async def test_what_a_joiner_receives_is_bounded_by_ids_times_64_kib(canvas: Canvas) -> None:
    vic = canvas.join(VIC)
    biggest = {"user": {}, "pad": ""}
    room = MAX_STATE_BYTES - len(orjson.dumps(biggest))
    biggest["pad"] = "x" * room
    assert len(orjson.dumps(biggest)) == MAX_STATE_BYTES  # the largest state accepted
    for i in range(MAX_IDS_PER_SESSION):
        await canvas.say(vic, (TAB + i, 1, biggest))
    frame = canvas.presence.join_frame()
    assert frame is not None
    stamp_overhead = 200  # the user fields the server writes
    assert len(frame) <= MAX_IDS_PER_SESSION * (MAX_STATE_BYTES + stamp_overhead)


# -- echoes ---------------------------------------------------------------------------------------


async def test_echoes_of_states_heard_are_not_relayed(canvas: Canvas) -> None:
    ann = canvas.join(ANN)
    ben = canvas.join(BEN)
    watcher = canvas.join(VIC, "watcher")
    await canvas.say(ann, (TAB, 5, cursor_state()))
    await until(lambda: bool(ben.entries_for(TAB)) and bool(watcher.entries_for(TAB)))
    heard = [(c, k, s) for c, k, s in protocol.decode_awareness(_payload(ben.frames[-1]))]
    published = len(canvas.published)
    frames = (len(ann.frames), len(watcher.frames))

    # Ben's stock client repeats what it heard, with the clock it heard, and an older one too.
    await canvas.presence.receive(ben, protocol.encode_awareness(heard))
    await canvas.presence.receive(ben, protocol.encode_awareness([(TAB, 4, heard[0][2])]))
    await until(lambda: canvas.presence._handle is None)
    assert (len(ann.frames), len(watcher.frames)) == frames
    assert len(canvas.published) == published
    assert TAB not in ben.client_ids and ben.close_code is None


async def test_the_echo_of_a_batch_is_dropped_before_it_is_decoded(
    canvas: Canvas, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = canvas.join(ANN)
    ben = canvas.join(BEN)
    watcher = canvas.join(VIC, "watcher")
    await canvas.say(ben, (TAB + 1, 1, cursor_state()))
    await canvas.say(ann, (TAB, 5, cursor_state()))
    await until(lambda: bool(ben.entries_for(TAB)) and bool(watcher.entries_for(TAB)))
    batch = _payload(ben.frames[-1])
    published = len(canvas.published)
    frames = (len(ann.frames), len(watcher.frames))

    decoded: list[bytes] = []
    real = protocol.decode_awareness
    monkeypatch.setattr(protocol, "decode_awareness", lambda p: decoded.append(p) or real(p))
    # Ben's stock client repeats the batch it heard, byte for byte: nothing is decoded ...
    await canvas.presence.receive(ben, batch)
    assert decoded == []
    # ... and the result is the full path's: nothing relayed, nothing published, Ben keeps only
    # his own id. A change of one byte goes the full path again.
    await until(lambda: canvas.presence._handle is None)
    assert (len(ann.frames), len(watcher.frames)) == frames
    assert len(canvas.published) == published
    assert TAB not in ben.client_ids and ben.close_code is None
    await canvas.say(ben, (TAB, 4, cursor_state()))
    assert len(decoded) == 1


async def test_another_tab_of_the_same_user_echoing_does_not_take_the_id(canvas: Canvas) -> None:
    tab = canvas.join(ANN, "tab")
    sibling = canvas.join(ANN, "sibling")
    watcher = canvas.join(BEN, "watcher")
    await canvas.say(sibling, (OTHER_TAB + 1, 1, cursor_state()))  # its own state comes first
    await canvas.say(tab, (TAB, 5, cursor_state()))
    await until(lambda: bool(sibling.entries_for(TAB)))
    heard = [e for e in protocol.decode_awareness(_payload(sibling.frames[-1])) if e[0] == TAB]
    await canvas.presence.receive(sibling, protocol.encode_awareness(heard))
    assert TAB in tab.client_ids and TAB not in sibling.client_ids

    canvas.leave(tab)  # the tab is gone: its id goes with it, whoever echoed it
    await until(lambda: TAB not in watcher.view().states)
    assert watcher.entries_for(TAB)[-1] == (6, None)


def _payload(frame: bytes) -> bytes:
    return protocol.decode(frame).payload


# -- 4. a reconnecting tab reappears at once ---------------------------------------------------


async def test_reconnect_after_departure_is_relayed_above_the_tombstone_at_once(
    canvas: Canvas,
) -> None:
    watcher = canvas.join(BEN, "watcher")
    old = canvas.join(ANN, "old socket")
    for clock in (1, 2, 3):
        await canvas.say(old, (TAB, clock, cursor_state(x=clock / 10)))
    await until(lambda: watcher.view().clocks.get(TAB) == 3)
    canvas.leave(old)
    await until(lambda: TAB not in watcher.view().states)
    assert watcher.view().clocks[TAB] == 4  # the tombstone

    new = canvas.join(ANN, "new socket")
    # The tab's first message on its new socket: its own state, with the clock it had.
    await canvas.say(new, (TAB, 3, cursor_state(x=0.3)))
    await until(lambda: TAB in watcher.view().states)  # a stock client takes it: no 13-27 s wait
    assert watcher.entries_for(TAB)[-1][0] == 5
    assert watcher.view().states[TAB]["cursor"]["x"] == 0.3
    # The owner is told its state with the raised clock, and a stock client adopts it...
    await until(lambda: bool(new.entries_for(TAB)))
    assert new.entries_for(TAB) == [(5, watcher.view().states[TAB])]
    owner = new.view(own=TAB, own_clock=3)
    assert owner.clocks[TAB] == 5
    # ...so its next update (clock 6) is newer for everyone; its echo of clock 5 is dropped.
    await canvas.presence.receive(new, protocol.encode_awareness(_own(new)))
    await canvas.say(new, (TAB, 6, cursor_state(x=0.6)))
    await until(lambda: watcher.view().states[TAB]["cursor"]["x"] == 0.6)
    clocks = [clock for clock, _ in watcher.entries_for(TAB)]
    assert clocks[-3:] == [4, 5, 6] and clocks == sorted(set(clocks))
    # And when it leaves, it leaves.
    canvas.leave(new)
    await until(lambda: TAB not in watcher.view().states)


def _own(session: Recorder) -> list[tuple[int, int, bytes]]:
    """What a stock client echoes after adopting its own state from the server."""
    return [(c, k, orjson.dumps(s)) for c, k, s in session.entries() if c == TAB][-1:]


async def test_reconnect_while_the_old_socket_still_holds_the_id_takes_it_over(
    canvas: Canvas,
) -> None:
    watcher = canvas.join(BEN, "watcher")
    old = canvas.join(ANN, "old socket")
    # The old socket also holds a second id: its departure is visible at the watcher.
    await canvas.say(old, (TAB + 1, 1, cursor_state()))
    for clock in (1, 2, 3):
        await canvas.say(old, (TAB, clock, cursor_state(x=clock / 10)))
    await until(lambda: watcher.view().clocks.get(TAB) == 3)

    # The tab reconnects before the server noticed its old socket is dead.
    new = canvas.join(ANN, "new socket")
    await canvas.say(new, (TAB, 3, cursor_state(x=0.3)))
    # It was sent the old socket's state (clock 3) on joining; then it is told a clock above.
    await until(lambda: new.entries_for(TAB)[-1][0] == 4)
    await until(lambda: watcher.view().clocks.get(TAB) == 4)
    assert TAB in new.client_ids and TAB not in old.client_ids

    canvas.leave(old)  # finally noticed
    await until(lambda: TAB + 1 not in watcher.view().states)
    assert TAB in watcher.view().states  # the reconnected tab did not vanish
    assert canvas.joiner_view().states[TAB]["cursor"]["x"] == 0.3
    canvas.leave(new)
    await until(lambda: TAB not in watcher.view().states)


async def test_a_change_sent_before_adopting_the_raised_clock_still_goes_out(
    canvas: Canvas,
) -> None:
    watcher = canvas.join(BEN, "watcher")
    old = canvas.join(ANN, "old socket")
    await canvas.say(old, (TAB, 3, cursor_state(x=0.3)))
    await until(lambda: TAB in watcher.view().states)
    canvas.leave(old)
    await until(lambda: TAB not in watcher.view().states)
    new = canvas.join(ANN, "new socket")
    await canvas.say(new, (TAB, 3, cursor_state(x=0.3)))  # relayed at 5, told to the owner
    await until(lambda: [k for k, _ in new.entries_for(TAB)] == [5])
    # The pointer moved before the told clock arrived: the client's own next clock is 4.
    await canvas.say(new, (TAB, 4, cursor_state(x=0.4)))
    await until(lambda: watcher.view().states.get(TAB, {}).get("cursor", {}).get("x") == 0.4)
    assert watcher.entries_for(TAB)[-1][0] == 6
    # The client then echoes what it was told (clock 5, then 6): neither is news.
    told = [(c, k, orjson.dumps(s)) for c, k, s in new.entries() if c == TAB]
    assert [k for _, k, _ in told] == [5, 6]
    count = len(watcher.entries_for(TAB))
    for entry in told:
        await canvas.presence.receive(new, protocol.encode_awareness([entry]))
    await sentinel(canvas, watcher, 1)
    assert len(watcher.entries_for(TAB)) == count
    assert watcher.view().states[TAB]["cursor"]["x"] == 0.4


async def test_departed_clocks_are_remembered_within_a_bound(
    canvas: Canvas, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(awareness, "MAX_REMEMBERED_CLOCKS", 3)
    for i in range(5):
        tab = canvas.join(ANN)
        await canvas.say(tab, (TAB + i, 7, cursor_state()))
        canvas.leave(tab)
    await until(lambda: canvas.presence._handle is None and not canvas.presence._states)
    assert [canvas.presence.last_clock(TAB + i) for i in range(5)] == [None, None, 8, 8, 8]


# -- departures, other nodes, coalescing ---------------------------------------------------------


async def test_leaving_nulls_its_ids_for_everyone(canvas: Canvas) -> None:
    watcher = canvas.join(BEN, "watcher")
    ann = canvas.join(ANN)
    await canvas.say(ann, (TAB, 2, cursor_state()), (TAB + 1, 9, cursor_state()))
    await until(lambda: watcher.view().states.keys() >= {TAB, TAB + 1})
    canvas.leave(ann)
    await until(lambda: not watcher.view().states.keys() & {TAB, TAB + 1})
    assert watcher.entries_for(TAB)[-1] == (3, None)
    assert watcher.entries_for(TAB + 1)[-1] == (10, None)
    assert canvas.published[-1] == [(TAB, 3, b"null"), (TAB + 1, 10, b"null")]
    assert canvas.presence.join_frame() is None


async def test_a_session_removes_its_own_state(canvas: Canvas) -> None:
    watcher = canvas.join(BEN, "watcher")
    ann = canvas.join(ANN)
    await canvas.say(ann, (TAB, 2, cursor_state()))
    await canvas.say(ann, (TAB, 3, None))  # y-websocket on pagehide
    await until(lambda: watcher.entries_for(TAB)[-1:] == [(3, None)])
    assert TAB not in ann.client_ids


async def test_other_nodes_states_are_relayed_and_vanish_with_their_node(canvas: Canvas) -> None:
    watcher = canvas.join(BEN, "watcher")
    stamped = awareness.stamp(orjson.dumps(cursor_state()), ANN, "Alpha")
    canvas.presence.on_remote("node-b", protocol.encode_awareness([(TAB, 4, stamped)]))
    await until(lambda: TAB in watcher.view().states)
    assert canvas.published == []  # not sent back to the nodes

    # Local stock clients echo it: no store round trip, nothing relayed.
    commits = canvas.store.commits
    frames = len(watcher.frames)
    await canvas.presence.receive(watcher, protocol.encode_awareness([(TAB, 4, stamped)]))
    await until(lambda: canvas.presence._handle is None)
    assert canvas.store.commits == commits and len(watcher.frames) == frames

    canvas.presence.on_remote("node-b", protocol.encode_awareness([(TAB, 3, b'{"old":1}')]))
    canvas.presence.on_node_lost("node-b")
    await until(lambda: TAB not in watcher.view().states)
    assert watcher.entries_for(TAB)[-1] == (5, None)


async def test_a_lone_update_goes_out_at_once_a_burst_once_per_tick(store: SQLiteStore) -> None:
    async with open_canvas(store, tick_s=0.05) as canvas:
        watcher = canvas.join(BEN, "watcher")
        ann = canvas.join(ANN)
        await canvas.say(ann, (TAB, 1, cursor_state(x=0.1)))
        await until(lambda: len(watcher.frames) == 1)  # leading edge
        for clock in range(2, 12):
            await canvas.say(ann, (TAB, clock, cursor_state(x=clock / 100)))
        await until(lambda: watcher.view().clocks.get(TAB) == 11)
        assert len(watcher.frames) == 2  # the burst in one frame, its latest state
        assert watcher.entries_for(TAB)[-1][0] == 11
        # A batch that is entirely Ann's own news is not echoed back to her.
        assert ann.frames == []


def _frames_with(session: Recorder, cid: int, clock: int) -> list[set[int]]:
    """The ids in each awareness frame that carried ``cid`` at ``clock``."""
    out = []
    for frame in session.frames:
        message = protocol.decode(frame)
        if message.kind is protocol.Kind.AWARENESS:
            entries = protocol.decode_awareness(message.payload)
            if (cid, clock) in {(c, k) for c, k, _ in entries}:
                out.append({c for c, _, _ in entries})
    return out


async def test_renewals_wait_for_company_and_a_change_takes_them_along(
    store: SQLiteStore,
) -> None:
    """y-protocols renews an unchanged state every 15 s; in a room of k tabs each flush costs
    k - 1 sends and k - 1 echoes, so renewals alone wait (here: far longer than the test) and
    go out with the next change, in its frame."""
    async with open_canvas(store, renewal_hold_s=3600) as canvas:
        watcher = canvas.join(BEN, "watcher")
        ann = canvas.join(ANN)
        await canvas.say(ann, (TAB, 1, cursor_state()))
        await until(lambda: watcher.view().clocks.get(TAB) == 1)  # new: at once
        await canvas.say(ann, (TAB, 2, cursor_state()))  # a renewal: held
        await canvas.say(ann, (TAB, 3, cursor_state()))  # another: still held, the newest kept
        await sentinel(canvas, watcher, 10)  # a change by someone else: out at the tick
        assert _frames_with(watcher, TAB, 3) == [{TAB, SENTINEL_TAB}]
        assert _frames_with(watcher, TAB, 2) == []  # superseded before it went out
        # A change of Ann's own state is news: out at once, not after the hold.
        await canvas.say(ann, (TAB, 4, cursor_state(x=0.75)))
        await until(lambda: watcher.view().clocks.get(TAB) == 4)
        assert watcher.view().states[TAB]["cursor"]["x"] == 0.75


async def test_a_lone_renewal_goes_out_after_the_hold(store: SQLiteStore) -> None:
    async with open_canvas(store, renewal_hold_s=0.05) as canvas:
        watcher = canvas.join(BEN, "watcher")
        ann = canvas.join(ANN)
        await canvas.say(ann, (TAB, 1, cursor_state()))
        await until(lambda: watcher.view().clocks.get(TAB) == 1)
        await canvas.say(ann, (TAB, 2, cursor_state()))
        # Peers keep the state alive: the renewal reaches them (y-protocols drops a state it has
        # not heard of for 30 s; the hold is far below the 15 s between renewals).
        await until(lambda: watcher.view().clocks.get(TAB) == 2)
        assert _frames_with(watcher, TAB, 2) == [{TAB}]


async def test_query_answers_every_state_join_only_live_ones(canvas: Canvas) -> None:
    ann = canvas.join(ANN)
    ben = canvas.join(BEN)
    await canvas.say(ann, (TAB, 1, cursor_state()))
    await canvas.say(ben, (OTHER_TAB, 1, cursor_state("Ben")))
    canvas.leave(ben)
    # Before the flush the departure is still in the table: a query tells it, a joiner skips it.
    answered = protocol.decode_awareness(_payload(canvas.presence.query_frame()))
    assert {(c, k) for c, k, _ in answered} == {(TAB, 1), (OTHER_TAB, 2)}
    assert set(canvas.joiner_view().states) == {TAB}
