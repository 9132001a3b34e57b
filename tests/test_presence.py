"""Presence end to end: the awareness attacks from the security review, against a real server.

Raw y-websocket frames from pycrdt clients play the attacker; what a browser would show is computed
from the frames a client received with ``StockView`` (y-protocols' ``applyAwarenessUpdate`` rule).
The reconnect tests also run stock y-websocket clients in Node, which keep their own clocks.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from server import closecodes, protocol
from tests.partner_helpers import Member, connect, member, partner_canvas
from tests.support import ROOT, ServerProcess, YClient, node_available, require
from tests.test_awareness_unit import StockView

TIMEOUT = 10.0
# What "at once" means: a stock client that ignored the returning tab would show it only after its
# renewals pass the tombstone, 13-27 s later.
AT_ONCE_S = 5.0


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module; every test works on its own canvas."""
    proc = ServerProcess(tmp_path_factory.mktemp("presence") / "data").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def opened() -> AsyncIterator[list[YClient]]:
    clients: list[YClient] = []
    yield clients
    for c in clients:
        if c.ws is not None and not c.closed.is_set():
            await c.close()


async def join(
    srv: ServerProcess, canvas: dict[str, Any], token: str, name: str, opened: list[YClient]
) -> YClient:
    client = await connect(srv, canvas, token, name)
    opened.append(client)
    return client


def entries(client: YClient) -> list[tuple[int, int, Any]]:
    """Every awareness entry the client received, in order."""
    out = []
    for frame in client.frames_received:
        message = protocol.decode(frame)
        if message.kind is protocol.Kind.AWARENESS:
            for cid, clock, state in protocol.decode_awareness(message.payload):
                out.append((cid, clock, orjson.loads(state)))
    return out


def entries_for(client: YClient, cid: int) -> list[tuple[int, Any]]:
    return [(clock, state) for c, clock, state in entries(client) if c == cid]


def shown(client: YClient, own: int | None = None, own_clock: int = 0) -> dict[int, Any]:
    """The states a stock y-protocols client would show after these frames."""
    return StockView.of(entries(client), own, own_clock).states


async def say(client: YClient, *items: tuple[int, int, Any]) -> None:
    """One raw awareness message (any client id, any clock)."""
    encoded = [(cid, clock, orjson.dumps(state)) for cid, clock, state in items]
    await client.send_raw(protocol.awareness(protocol.encode_awareness(encoded)))


def fresh_id() -> int:
    return random.randrange(1 << 20, 1 << 31)


async def sentinel(sender: YClient, watcher: YClient, tag: str) -> None:
    """A third party's update, awaited at the watcher: whatever the server relays from messages
    it handled before has reached the watcher too."""
    await sender.set_awareness({"sentinel": tag})
    await watcher.wait_for(
        lambda: any(
            isinstance(s, dict) and s.get("sentinel") == tag
            for _, s in entries_for(watcher, sender.client_id)
        )
    )


def cursor(x: float, name: str = "me") -> dict[str, Any]:
    return {"user": {"name": name, "color": "#3366ff"}, "cursor": {"block": None, "x": x, "y": 0.5}}


# -- stamped ------------------------------------------------------------------------------------


async def test_a_viewer_cannot_pose_as_another_orgs_facilitator(
    srv: ServerProcess, opened: list[YClient]
) -> None:
    canvas = partner_canvas(srv)
    vic = member(srv, canvas, "beta", "viewer", "Vic")
    watcher = await join(srv, canvas, canvas["facilitator_token"], "watcher", opened)
    viewer = await join(srv, canvas, vic.token, "vic", opened)
    await viewer.set_awareness(
        {
            "user": {
                "id": "u_facilitator_" + canvas["id"],
                "name": "<img src=x onerror=alert(1)>Fran (facilitator)",
                "org": "alpha",
                "orgName": "Alpha",
                "role": "facilitator",
                "color": "#ff0000",
            },
            "cursor": {"block": "customer-jobs", "x": 0.4, "y": 0.6},
        }
    )
    await watcher.wait_for(lambda: viewer.client_id in shown(watcher))
    assert shown(watcher)[viewer.client_id] == {
        "user": {
            "id": vic.user_id,
            "name": "Vic",
            "org": "beta",
            "orgName": "Beta",
            "role": "viewer",
            "color": "#ff0000",
        },
        "cursor": {"block": "customer-jobs", "x": 0.4, "y": 0.6},
    }
    # A joiner is told the same.
    late = await join(srv, canvas, canvas["facilitator_token"], "late", opened)
    await late.wait_for(lambda: viewer.client_id in shown(late))
    assert shown(late)[viewer.client_id]["user"]["name"] == "Vic"


async def test_a_state_that_is_not_an_object_closes_1002(
    srv: ServerProcess, opened: list[YClient]
) -> None:
    canvas = partner_canvas(srv)
    vic = member(srv, canvas, "beta", "viewer", "Vic")
    watcher = await join(srv, canvas, canvas["facilitator_token"], "watcher", opened)
    viewer = await join(srv, canvas, vic.token, "vic", opened)
    await say(viewer, (viewer.client_id, 1, "Fran (facilitator)"))
    await asyncio.wait_for(viewer.closed.wait(), TIMEOUT)
    assert viewer.close_code == closecodes.PROTOCOL_ERROR
    assert viewer.client_id not in shown(watcher)


# -- owned --------------------------------------------------------------------------------------


async def test_another_users_client_id_cannot_be_overwritten_or_nulled(
    srv: ServerProcess, opened: list[YClient]
) -> None:
    canvas = partner_canvas(srv)
    ann = member(srv, canvas, "alpha", "editor", "Ann")
    vic = member(srv, canvas, "beta", "viewer", "Vic")
    watcher = await join(srv, canvas, canvas["facilitator_token"], "watcher", opened)
    victim = await join(srv, canvas, ann.token, "ann", opened)
    await victim.set_awareness(cursor(0.25, "Ann"))
    await watcher.wait_for(lambda: victim.client_id in shown(watcher))
    before = entries_for(watcher, victim.client_id)

    attacker = await join(srv, canvas, vic.token, "vic", opened)
    await attacker.wait_for(lambda: victim.client_id in shown(attacker))
    await say(attacker, (victim.client_id, 1_000, cursor(0.99, "Ann")))
    await say(attacker, (victim.client_id, 2_000, None))
    await say(attacker, (victim.client_id, 1, None))  # the victim's own clock
    await sentinel(attacker, watcher, "after the attack")

    assert not attacker.closed.is_set()  # dropped, not closed: stock clients echo others' states
    assert entries_for(watcher, victim.client_id) == before
    assert not any(cid == victim.client_id for cid, _, _ in entries(victim))
    # A new joiner sees the victim's state, as the victim set it.
    late = await join(srv, canvas, canvas["facilitator_token"], "late", opened)
    await late.wait_for(lambda: victim.client_id in shown(late))
    assert entries_for(late, victim.client_id) == before
    # The victim still moves its own cursor.
    await victim.set_awareness(cursor(0.5, "Ann"))
    await watcher.wait_for(
        lambda: shown(watcher)[victim.client_id]["cursor"]["x"] == 0.5  # type: ignore[index]
    )


# -- bounded ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [65 * 1024, 3_500_000], ids=["65KiB", "3.5MB"])
async def test_an_oversized_state_closes_1009_and_joiners_still_get_in(
    srv: ServerProcess, opened: list[YClient], size: int
) -> None:
    canvas = partner_canvas(srv)
    watcher = await join(srv, canvas, canvas["facilitator_token"], "watcher", opened)
    vic = member(srv, canvas, "beta", "viewer", "Vic")
    flooders = [await join(srv, canvas, vic.token, f"vic{i}", opened) for i in range(3)]
    for f in flooders:
        await say(f, (f.client_id, 1, {"user": {}, "pad": "x" * size}))
    for f in flooders:
        await asyncio.wait_for(f.closed.wait(), TIMEOUT)
        assert (f.close_code, f.close_reason) == (
            closecodes.MESSAGE_TOO_BIG,
            "awareness state too large",
        )
    ann = member(srv, canvas, "alpha", "editor", "Ann")
    joiner = await join(srv, canvas, ann.token, "joiner", opened)  # synced: not closed with 1013
    await sentinel(joiner, watcher, "joined")
    assert max(len(f) for f in watcher.frames_received + joiner.frames_received) < 64 * 1024
    assert not joiner.closed.is_set() and not watcher.closed.is_set()


# -- echoes -------------------------------------------------------------------------------------


async def test_echoes_from_stock_clients_are_not_relayed(
    srv: ServerProcess, opened: list[YClient]
) -> None:
    canvas = partner_canvas(srv)
    ann = member(srv, canvas, "alpha", "editor", "Ann")
    ben = member(srv, canvas, "beta", "editor", "Ben")
    watcher = await join(srv, canvas, canvas["facilitator_token"], "watcher", opened)
    a = await join(srv, canvas, ann.token, "ann", opened)
    b = await join(srv, canvas, ben.token, "ben", opened)
    await a.set_awareness(cursor(0.1, "Ann"))
    await b.wait_for(lambda: a.client_id in shown(b))
    # Ben's stock client re-sends every state it hears, as it heard it.
    heard = next(
        f for f in reversed(b.frames_received) if protocol.decode(f).kind is protocol.Kind.AWARENESS
    )
    await b.send_raw(heard)
    await sentinel(b, watcher, "after the echo")
    assert len(entries_for(watcher, a.client_id)) == 1
    assert not any(cid == a.client_id for cid, _, _ in entries(a))  # nor sent back to Ann
    assert not b.closed.is_set()


# -- a reconnecting tab reappears at once -------------------------------------------------------


async def test_a_tab_back_after_its_departure_reappears_at_once(
    srv: ServerProcess, opened: list[YClient]
) -> None:
    canvas = partner_canvas(srv)
    ann = member(srv, canvas, "alpha", "editor", "Ann")
    watcher = await join(srv, canvas, canvas["facilitator_token"], "watcher", opened)
    tab = fresh_id()
    old = await join(srv, canvas, ann.token, "old socket", opened)
    for clock in (1, 2, 3):
        await say(old, (tab, clock, cursor(clock / 10, "Ann")))
    await watcher.wait_for(lambda: StockView.of(entries(watcher)).clocks.get(tab) == 3)
    await old.close()
    await watcher.wait_for(lambda: tab not in shown(watcher))
    assert StockView.of(entries(watcher)).clocks[tab] == 4  # the tombstone

    started = time.monotonic()
    new = await join(srv, canvas, ann.token, "new socket", opened)
    await say(new, (tab, 3, cursor(0.3, "Ann")))  # its first message: its state, its old clock
    await watcher.wait_for(lambda: tab in shown(watcher), timeout=AT_ONCE_S)
    assert time.monotonic() - started < AT_ONCE_S
    assert entries_for(watcher, tab)[-1][0] == 5
    # The owner is told the raised clock; a stock client adopts it, so its next state is news.
    await new.wait_for(lambda: any(clock == 5 for clock, _ in entries_for(new, tab)))
    assert StockView.of(entries(new), own=tab, own_clock=3).clocks[tab] == 5
    await say(new, (tab, 6, cursor(0.6, "Ann")))
    await watcher.wait_for(lambda: shown(watcher).get(tab, {}).get("cursor", {}).get("x") == 0.6)


async def test_a_tab_back_before_its_old_socket_is_noticed_dead_takes_its_id_over(
    srv: ServerProcess, opened: list[YClient]
) -> None:
    canvas = partner_canvas(srv)
    ann = member(srv, canvas, "alpha", "editor", "Ann")
    watcher = await join(srv, canvas, canvas["facilitator_token"], "watcher", opened)
    tab, other = fresh_id(), fresh_id()
    old = await join(srv, canvas, ann.token, "old socket", opened)
    await say(old, (other, 1, cursor(0.9, "Ann")))  # its departure marks when the close is handled
    for clock in (1, 2, 3):
        await say(old, (tab, clock, cursor(clock / 10, "Ann")))
    await watcher.wait_for(lambda: StockView.of(entries(watcher)).clocks.get(tab) == 3)

    new = await join(srv, canvas, ann.token, "new socket", opened)  # the old one still open
    await say(new, (tab, 3, cursor(0.3, "Ann")))
    await new.wait_for(lambda: any(clock == 4 for clock, _ in entries_for(new, tab)))
    await watcher.wait_for(lambda: StockView.of(entries(watcher)).clocks.get(tab) == 4)

    await old.close()  # finally gone
    await watcher.wait_for(lambda: other not in shown(watcher))
    assert tab in shown(watcher)
    assert not any(state is None for _, state in entries_for(watcher, tab))
    late = await join(srv, canvas, canvas["facilitator_token"], "late", opened)
    await late.wait_for(lambda: tab in shown(late))
    await new.close()
    await watcher.wait_for(lambda: tab not in shown(watcher))


# -- the same with stock y-websocket clients (Node) ----------------------------------------------

TAB_JS = r"""
// A stock y-websocket tab. usage: node tab.mjs <serverUrl> <canvasId> <token> <clientID|0> <state JSON>
// stdin (one JSON a line): {"op":"field","key":k,"value":v} | {"op":"disconnect"} | {"op":"connect"}
// stdout: {"event":"ready"|"status"|"awareness", ...}; awareness events carry every state and clock.
import { createInterface } from 'node:readline'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const [serverUrl, canvasId, token, clientId, state] = process.argv.slice(2)
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
process.stdout.on('error', () => process.exit(0))
const doc = new Y.Doc()
if (Number(clientId)) doc.clientID = Number(clientId)
const provider = new WebsocketProvider(serverUrl, canvasId, doc, {
  WebSocketPolyfill: WebSocket, params: { token }, disableBc: true
})
const awareness = provider.awareness
if (state) awareness.setLocalState(JSON.parse(state))  // before the socket opens, as a page does
const report = () => {
  const states = {}
  const clocks = {}
  for (const [id, s] of awareness.getStates()) states[id] = s
  for (const [id, m] of awareness.meta) clocks[id] = m.clock
  emit({ event: 'awareness', states, clocks })
}
awareness.on('update', report)
provider.on('status', ({ status }) => emit({ event: 'status', status }))
emit({ event: 'ready', clientID: doc.clientID })
createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line)
  if (cmd.op === 'field') awareness.setLocalStateField(cmd.key, cmd.value)
  else if (cmd.op === 'disconnect') provider.disconnect()
  else if (cmd.op === 'connect') provider.connect()
  emit({ event: 'done', op: cmd.op })
}).on('close', () => { provider.destroy(); process.exit(0) })
"""


@pytest.fixture
def tab_script(tmp_path: Path) -> Path:
    """TAB_JS beside a link to tests/node's dependencies (``npm ci`` there when missing)."""
    require(node_available(), "node and npm are not installed: the stock client tests need them")
    node_dir = ROOT / "tests" / "node"
    if not (node_dir / "node_modules" / "y-websocket").is_dir():
        import subprocess

        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=node_dir,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    (tmp_path / "node_modules").symlink_to(node_dir / "node_modules")
    (tmp_path / "package.json").write_text('{"type": "module"}')
    script = tmp_path / "tab.mjs"
    script.write_text(TAB_JS)
    return script


class StockTab:
    """One Node process running a stock WebsocketProvider."""

    def __init__(self, script: Path, srv: ServerProcess, canvas_id: str, token: str) -> None:
        self.args = [str(script), srv.ws, canvas_id, token]
        self.proc: asyncio.subprocess.Process | None = None
        self.events: list[dict[str, Any]] = []
        self.client_id = 0
        self._reader: asyncio.Task[None] | None = None

    async def start(self, client_id: int = 0, state: Any = None) -> StockTab:
        self.proc = await asyncio.create_subprocess_exec(
            "node",
            *self.args,
            str(client_id),
            json.dumps(state) if state is not None else "",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        ready = await self.wait(lambda e: e["event"] == "ready")
        self.client_id = int(ready["clientID"])
        await self.wait(lambda e: e.get("status") == "connected")
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.events.append(json.loads(line))

    async def wait(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT, start: int = 0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[start:]:
                if predicate(event):
                    return event
            if time.monotonic() > deadline:
                raise AssertionError(f"no such event within {timeout}s: {self.events[-5:]}")
            await asyncio.sleep(0.01)

    def states(self) -> dict[int, Any]:
        for event in reversed(self.events):
            if event["event"] == "awareness":
                return {int(k): v for k, v in event["states"].items()}
        return {}

    def clock(self, cid: int) -> int | None:
        for event in reversed(self.events):
            if event["event"] == "awareness" and str(cid) in event["clocks"]:
                return int(event["clocks"][str(cid)])
        return None

    async def op(self, op: str, **args: Any) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        mark = len(self.events)
        self.proc.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
        await self.proc.stdin.drain()
        await self.wait(lambda e: e["event"] == "done" and e["op"] == op, start=mark)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def tabs() -> AsyncIterator[list[StockTab]]:
    started: list[StockTab] = []
    yield started
    for t in started:
        if t.proc is not None and t.proc.returncode is None:
            t.proc.send_signal(signal.SIGCONT)
            t.proc.kill()
            await t.proc.wait()
        if t._reader is not None:
            await asyncio.wait_for(t._reader, 5)


async def stock_tab(
    tabs: list[StockTab],
    script: Path,
    srv: ServerProcess,
    canvas: dict[str, Any],
    token: str,
    client_id: int = 0,
    state: Any = None,
) -> StockTab:
    tab = StockTab(script, srv, canvas["id"], token)
    tabs.append(tab)
    return await tab.start(client_id, state)


def sessions_open(srv: ServerProcess) -> int:
    text = httpx.get(srv.http + "/metrics").text
    match = re.search(r"^cocanvas_sessions (\S+)$", text, re.MULTILINE)
    assert match is not None
    return int(float(match.group(1)))


async def test_a_stock_tab_that_reconnects_reappears_for_stock_peers_at_once(
    srv: ServerProcess, tab_script: Path, tabs: list[StockTab]
) -> None:
    canvas = partner_canvas(srv)
    ann: Member = member(srv, canvas, "alpha", "editor", "Ann")
    peer = await stock_tab(tabs, tab_script, srv, canvas, canvas["facilitator_token"], 0, {})
    tab = await stock_tab(tabs, tab_script, srv, canvas, ann.token, 0, cursor(0.2, "Ann"))
    await peer.wait(lambda e: e["event"] == "awareness" and str(tab.client_id) in e["states"])

    await tab.op("disconnect")  # says goodbye (null), closes the socket
    await peer.wait(lambda e: e["event"] == "awareness" and str(tab.client_id) not in e["states"])
    started = time.monotonic()
    await tab.op("connect")  # sends its unchanged state with its unchanged clock
    # The event that shows the tab again shows it as the token's user (judged on that event:
    # a later one may already be about someone else).
    await peer.wait(
        lambda e: (
            e["event"] == "awareness"
            and (e["states"].get(str(tab.client_id)) or {}).get("user", {}).get("name") == "Ann"
        ),
        timeout=AT_ONCE_S,
    )
    assert time.monotonic() - started < AT_ONCE_S
    # The tab adopted the clock the server raised: its next change is news for everyone.
    await tab.wait(
        lambda e: (
            e["event"] == "awareness" and tab.clock(tab.client_id) == peer.clock(tab.client_id)
        )
    )
    await tab.op("field", key="cursor", value={"block": None, "x": 0.7, "y": 0.5})
    await peer.wait(
        lambda e: (
            e["event"] == "awareness"
            and (e["states"].get(str(tab.client_id)) or {}).get("cursor", {}).get("x") == 0.7
        )
    )


async def test_a_stock_tab_back_while_its_old_socket_hangs_survives_the_old_close(
    server: ServerProcess, tab_script: Path, tabs: list[StockTab], opened: list[YClient]
) -> None:
    srv = server  # a server of its own: its session count tells when the old socket is gone
    canvas = partner_canvas(srv)
    ann = member(srv, canvas, "alpha", "editor", "Ann")
    cid = fresh_id()
    peer = await stock_tab(tabs, tab_script, srv, canvas, canvas["facilitator_token"], 0, {})
    old = await stock_tab(tabs, tab_script, srv, canvas, ann.token, cid, cursor(0.2, "Ann"))
    await peer.wait(lambda e: e["event"] == "awareness" and str(cid) in e["states"])
    old.signal(signal.SIGSTOP)  # the laptop sleeps: its socket stays open, silent

    # The same tab (same client id, same clock) comes back on a new socket.
    new = await stock_tab(tabs, tab_script, srv, canvas, ann.token, cid, cursor(0.2, "Ann"))
    await new.wait(lambda e: e["event"] == "awareness" and (new.clock(cid) or 0) >= 2)
    await peer.wait(lambda e: e["event"] == "awareness" and (peer.clock(cid) or 0) >= 2)

    assert sessions_open(srv) == 3
    old.signal(signal.SIGKILL)  # the old socket finally dies
    await asyncio.get_running_loop().run_in_executor(None, _wait_sessions, srv, 2)
    # Whatever the old socket's departure caused has been relayed once a later update arrives.
    probe = await join(srv, canvas, canvas["facilitator_token"], "probe", opened)
    await probe.set_awareness({"sentinel": "after the old close"})
    await peer.wait(lambda e: e["event"] == "awareness" and str(probe.client_id) in e["states"])
    assert cid in peer.states()
    await new.op("field", key="cursor", value={"block": None, "x": 0.8, "y": 0.5})
    await peer.wait(
        lambda e: (
            e["event"] == "awareness"
            and (e["states"].get(str(cid)) or {}).get("cursor", {}).get("x") == 0.8
        )
    )


def _wait_sessions(srv: ServerProcess, expected: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while sessions_open(srv) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"sessions did not drop to {expected}")
        time.sleep(0.02)
