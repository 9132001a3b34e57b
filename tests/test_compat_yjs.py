"""A stock Yjs client (yjs + y-websocket's WebsocketProvider, in Node) and a pycrdt client co-edit
one canvas through a real server and end up with the same canvas.

The Node side is ``tests/node/client.mjs``, driven over stdin/stdout with one JSON object per line.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pycrdt import Assoc, Map, StickyIndex

from server.canvas.export import doc_to_json
from server.canvas.schema import ROOTS
from tests.support import ROOT, ServerProcess, YClient, node_available, require, unstamped

NODE_DIR = ROOT / "tests" / "node"
CLIENT_JS = NODE_DIR / "client.mjs"
TIMEOUT = 15.0


@pytest.fixture(scope="session")
def node_client() -> Path:
    """tests/node with its dependencies installed (``npm ci`` once, when node_modules is missing)."""
    require(
        node_available(), "node and npm are not installed: the Yjs compatibility tests need them"
    )
    if not (NODE_DIR / "node_modules" / "y-websocket").is_dir():
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            pytest.fail(f"npm ci failed in {NODE_DIR}:\n{result.stdout}\n{result.stderr}")
    return CLIENT_JS


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module; every test works on its own canvas."""
    proc = ServerProcess(tmp_path_factory.mktemp("compat-yjs") / "data").start()
    try:
        yield proc
    finally:
        proc.stop()


class NodeClient:
    """One ``node client.mjs`` process: a Y.Doc behind a stock WebsocketProvider."""

    def __init__(
        self, script: Path, base_ws: str, canvas_id: str, token: str, name: str = "yjs"
    ) -> None:
        self.script = script
        self.args = [base_ws, canvas_id, token]
        self.name = name
        self.proc: asyncio.subprocess.Process | None = None
        self.events: list[dict[str, Any]] = []
        self.client_id = 0
        self.stderr = b""
        self._new_event = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._stderr_reader: asyncio.Task[None] | None = None
        self._req = 0

    async def start(self, wait_sync: bool = True) -> NodeClient:
        self.proc = await asyncio.create_subprocess_exec(
            "node",
            str(self.script),
            *self.args,
            cwd=NODE_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self._stderr_reader = asyncio.get_running_loop().create_task(self._read_stderr())
        ready = await self.wait_event(lambda e: e["event"] == "ready")
        self.client_id = int(ready["clientID"])
        if wait_sync:
            await self.wait_event(lambda e: e["event"] == "synced")
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.events.append(json.loads(line))
            self._new_event.set()
        self._new_event.set()

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        self.stderr = await self.proc.stderr.read()

    async def wait_event(
        self, predicate: Callable[[dict[str, Any]], bool], within: float = TIMEOUT, start: int = 0
    ) -> dict[str, Any]:
        """The first event from index ``start`` on that satisfies ``predicate``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        seen = start
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = max(seen, len(self.events))
            if self._reader is not None and self._reader.done():
                raise AssertionError(f"{self.name}: node exited; stderr:\n{self.stderr.decode()}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"{self.name}: no such event within {within}s; got {self.events[-10:]}"
                )
            self._new_event.clear()
            try:
                await asyncio.wait_for(self._new_event.wait(), remaining)
            except TimeoutError:
                pass

    async def call(self, op: str, within: float = TIMEOUT, **args: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self._req += 1
        req = self._req
        mark = len(self.events)
        self.proc.stdin.write(json.dumps({"req": req, "op": op, **args}).encode() + b"\n")
        await self.proc.stdin.drain()
        reply = await self.wait_event(
            lambda e: e.get("req") == req and e["event"] in ("done", "error"), within, mark
        )
        if reply["event"] == "error":
            raise AssertionError(f"{self.name}: {op} failed: {reply['message']}")
        return reply

    async def dump(self) -> dict[str, Any]:
        mark = len(self.events)
        await self.call("dump", roots=list(ROOTS))
        event = await self.wait_event(lambda e: e["event"] == "dump", start=mark)
        return event["doc"]  # type: ignore[no-any-return]

    def awareness_states(self) -> dict[int, Any]:
        """The awareness states this client knows, as of its latest awareness event."""
        for event in reversed(self.events):
            if event["event"] == "awareness":
                return {int(k): v for k, v in event["states"].items()}
        return {}

    async def wait_doc(
        self, predicate: Callable[[dict[str, Any]], bool], within: float = TIMEOUT
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            doc = await self.dump()
            if predicate(doc):
                return doc
            if loop.time() > deadline:
                raise AssertionError(f"{self.name}: document condition not met within {within}s")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        await self.call("close")
        await asyncio.wait_for(self.proc.wait(), TIMEOUT)

    async def kill(self) -> None:
        """Vanish without a goodbye, like a laptop lid closing (the socket drops)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()

    async def aclose(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.close(), 5)
            except (AssertionError, TimeoutError, OSError):
                await self.kill()
        for task in (self._reader, self._stderr_reader):
            if task is not None:
                await asyncio.wait_for(task, 5)


@pytest.fixture
async def clients(node_client: Path) -> AsyncIterator[list[NodeClient | YClient]]:
    """Every client a test opens, closed at the end even when the test fails."""
    opened: list[NodeClient | YClient] = []
    yield opened
    for c in opened:
        if isinstance(c, NodeClient):
            await c.aclose()
        elif c.ws is not None and not c.closed.is_set():
            await c.close()


async def open_node(
    clients: list[NodeClient | YClient],
    script: Path,
    srv: ServerProcess,
    canvas: dict[str, Any],
    name: str,
) -> NodeClient:
    c = NodeClient(script, srv.ws, canvas["id"], canvas["facilitator_token"], name)
    clients.append(c)
    return await c.start()


async def open_py(
    clients: list[NodeClient | YClient], srv: ServerProcess, canvas: dict[str, Any], name: str
) -> YClient:
    c = YClient(srv.ws, canvas["id"], canvas["facilitator_token"], name)
    clients.append(c)
    return await c.connect()


def view(c: YClient) -> dict[str, Any]:
    """The pycrdt client's document as written, every schema root (``ids`` too): what the Yjs
    client dumps, so convergence is of the documents themselves, not of a reading of them."""
    return {name: c.doc.get(name, type=Map).to_py() or {} for name in ROOTS}


def shows(client_id: int) -> Callable[[dict[str, Any]], bool]:
    """An awareness event in which this client is present."""
    return lambda e: e["event"] == "awareness" and str(client_id) in e["states"]


def drops(client_id: int) -> Callable[[dict[str, Any]], bool]:
    """An awareness event that removes this client."""
    return lambda e: e["event"] == "awareness" and client_id in e["removed"]


def is_subsequence(needle: str, haystack: str) -> bool:
    it = iter(haystack)
    return all(ch in it for ch in needle)


async def converge(js: NodeClient, py: YClient, within: float = TIMEOUT) -> dict[str, Any]:
    """Wait until the Yjs and the pycrdt view of the canvas are equal; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        js_doc = await js.dump()
        py_doc = view(py)
        if js_doc == py_doc:
            return py_doc
        if loop.time() > deadline:
            assert js_doc == py_doc, "Yjs and pycrdt clients did not converge"
        await asyncio.sleep(0.05)


async def py_type(py: YClient, note_id: str, chars: str, index: int) -> None:
    """Type into a note's text one character per transaction, as a person types: the caret stays
    right after the last character typed, wherever concurrent edits move it."""
    text = py.notes[note_id]["text"]
    caret: StickyIndex | None = None
    for ch in chars:
        pos = min(index, len(text)) if caret is None else caret.get_index()
        text.insert(pos, ch)
        caret = text.sticky_index(pos + 1, Assoc.BEFORE)
        await asyncio.sleep(0.002)


async def test_yjs_and_pycrdt_coedit_and_converge(
    srv: ServerProcess, node_client: Path, clients: list[NodeClient | YClient]
) -> None:
    canvas = srv.create_canvas("Compat")
    py = await open_py(clients, srv, canvas, "py")
    js = await open_node(clients, node_client, srv, canvas, "js")

    # Both got the server-written template.
    start = await js.dump()
    assert start["meta"]["title"] == "Compat"
    assert "key-partners" in start["blocks"]
    assert start == view(py)

    # Notes added on both sides.
    py.add_note("p1", "from python")
    py.add_note("p2", "doomed")
    await js.call("add", id="j1", text="from yjs", block="value-propositions")
    await js.call("add", id="j2", text="to be trimmed")
    await py.wait_for(lambda: {"j1", "j2"} <= set(py.notes.keys()))
    doc = await converge(js, py)
    assert doc["notes"]["j1"]["text"] == "from yjs"
    assert doc["notes"]["j1"]["block"] == "value-propositions"
    assert doc["notes"]["p1"]["text"] == "from python"

    # Character-level concurrent typing into one Y.Text from both sides: the Yjs client appends,
    # the pycrdt client types at the front, then both type into the middle at the same spot.
    js_end, py_front = "abcdefghijklmnop", "0123456789ABCDEF"
    await asyncio.gather(
        js.call("type", id="p1", text=js_end, index=-1, delay_ms=2),
        py_type(py, "p1", py_front, 0),
    )
    doc = await converge(js, py)
    text = doc["notes"]["p1"]["text"]
    assert sorted(text) == sorted("from python" + js_end + py_front)
    assert is_subsequence(js_end, text) and is_subsequence(py_front, text)
    mid = len(text) // 2
    js_mid, py_mid = "qrstuvw", "GHIJKLM"
    await asyncio.gather(
        js.call("type", id="p1", text=js_mid, index=mid, delay_ms=2),
        py_type(py, "p1", py_mid, mid),
    )
    doc = await converge(js, py)
    typed = doc["notes"]["p1"]["text"]
    assert sorted(typed) == sorted(text + js_mid + py_mid)
    assert is_subsequence(js_mid, typed) and is_subsequence(py_mid, typed)

    # Deletes, concurrently: characters from both sides, whole notes from both sides, and a
    # delete racing an edit of the same note.
    async def py_deletes() -> None:
        del py.notes["p1"]["text"][0:5]
        del py.notes["j1"]
        await asyncio.sleep(0.01)
        j2 = py.notes["j2"]["text"]
        start = str(j2).find("to be ")
        del j2[start : start + 6]

    await asyncio.gather(
        js.call("delete_substring", id="p1", text=typed[-4:]),
        js.call("delete", id="p2"),
        js.call("insert", id="j2", index=0, text="kept: "),
        py_deletes(),
    )
    doc = await converge(js, py)
    assert set(doc["notes"]) == {"p1", "j2"}
    assert doc["notes"]["p1"]["text"] == typed[5:-4]
    assert doc["notes"]["j2"]["text"] == "kept: trimmed"

    # The server holds the same canvas: a fresh pycrdt client and the HTTP API agree.
    fresh = await open_py(clients, srv, canvas, "fresh")
    await fresh.wait_for(lambda: view(fresh) == doc)
    async with httpx.AsyncClient() as http:
        r = await http.get(
            f"{srv.http}/api/canvases/{canvas['id']}",
            headers={"Authorization": f"Bearer {canvas['facilitator_token']}"},
        )
    assert r.status_code == 200
    # The API reads notes attributed, as the fresh client's own document does.
    assert r.json()["notes"] == doc_to_json(fresh.doc)["notes"]


async def test_awareness_between_yjs_and_pycrdt(
    srv: ServerProcess, node_client: Path, clients: list[NodeClient | YClient]
) -> None:
    canvas = srv.create_canvas("Presence")
    py = await open_py(clients, srv, canvas, "py")
    js = await open_node(clients, node_client, srv, canvas, "js")

    py_state = {"user": {"name": "Ada (py)", "color": "#1f77b4"}, "cursor": {"x": 0.25, "y": 0.5}}
    js_state = {"user": {"name": "Grace (yjs)", "color": "#ff7f0e"}, "cursor": None}
    await py.set_awareness(py_state)
    await js.call("awareness", state=js_state)

    await js.wait_event(
        lambda e: (
            e["event"] == "awareness"
            and unstamped(e["states"].get(str(py.client_id))) == unstamped(py_state)
        )
    )
    await py.wait_for(
        lambda: unstamped(py.awareness.get(js.client_id, (0, None))[1]) == unstamped(js_state)
    )

    # A second Yjs client joining later is told about everyone present.
    late = await open_node(clients, node_client, srv, canvas, "late")
    await late.wait_event(
        lambda e: (
            e["event"] == "awareness"
            and unstamped(e["states"].get(str(py.client_id))) == unstamped(py_state)
            and unstamped(e["states"].get(str(js.client_id))) == unstamped(js_state)
        )
    )

    # The pycrdt client leaves: the Yjs clients see its state vanish.
    mark = len(js.events)
    await py.close()
    await js.wait_event(
        lambda e: (
            e["event"] == "awareness"
            and py.client_id in e["removed"]
            and str(py.client_id) not in e["states"]
        ),
        start=mark,
    )
    assert py.client_id not in js.awareness_states()

    # The Yjs client drops off without a goodbye: a pycrdt client sees a null state for it.
    watcher = await open_py(clients, srv, canvas, "watcher")
    await watcher.wait_for(
        lambda: unstamped(watcher.awareness.get(js.client_id, (0, None))[1]) == unstamped(js_state)
    )
    mark = len(late.events)
    await js.kill()
    await watcher.wait_for(lambda: (js.client_id, None) in watcher.awareness_events)
    assert watcher.awareness[js.client_id][1] is None
    await late.wait_event(
        lambda e: e["event"] == "awareness" and js.client_id in e["removed"], start=mark
    )
    assert set(late.awareness_states()) == {late.client_id}


async def test_late_joining_yjs_client_gets_everything(
    srv: ServerProcess, node_client: Path, clients: list[NodeClient | YClient]
) -> None:
    canvas = srv.create_canvas("Late", template="partner-co-creation")
    py = await open_py(clients, srv, canvas, "py")
    js = await open_node(clients, node_client, srv, canvas, "js")
    for i in range(5):
        py.add_note(f"p{i}", f"python note {i}", block="customer-jobs")
        await js.call("add", id=f"j{i}", text=f"yjs note {i}")
    await py.wait_for(lambda: "j4" in py.notes)
    await js.wait_doc(lambda doc: "p4" in doc["notes"])
    await js.call("insert", id="p0", index=0, text="edited: ")
    py.notes["j0"]["text"].insert(0, "edited: ")
    await js.call("delete", id="p4")
    del py.notes["j4"]
    expected = await converge(js, py)
    assert set(expected["notes"]) == {"p0", "p1", "p2", "p3", "j0", "j1", "j2", "j3"}
    await js.close()

    # While the room is live (the pycrdt client is still connected) ...
    late = await open_node(clients, node_client, srv, canvas, "late")
    assert await late.dump() == expected
    await late.close()

    # ... and once everyone has left.
    await py.close()
    later = await open_node(clients, node_client, srv, canvas, "later")
    doc = await later.dump()
    assert doc == expected
    assert doc["notes"]["p0"]["text"] == "edited: python note 0"
    assert doc["notes"]["j0"]["text"] == "edited: yjs note 0"
    assert doc["meta"]["template"] == "partner-co-creation"


def test_node_client_is_pinned() -> None:
    """The Node client's dependencies are locked, so CI runs the versions tested here."""
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    for name in ("yjs", "y-websocket", "ws"):
        assert f"node_modules/{name}" in lock["packages"], name


async def test_yjs_client_sees_departure_while_moving_its_cursor(
    srv: ServerProcess, node_client: Path, clients: list[NodeClient | YClient]
) -> None:
    """Someone leaves while a Yjs user is moving the pointer: the Yjs user sees them leave.

    While a client's own awareness updates keep arriving, each coalesced awareness batch has that
    client as a source; a departure that lands in such a batch must still reach it.
    """
    canvas = srv.create_canvas("Departures")
    mover = await open_node(clients, node_client, srv, canvas, "mover")
    for round_ in range(3):
        leaver = await open_py(clients, srv, canvas, f"leaver{round_}")
        await leaver.set_awareness({"user": {"name": f"Leaver {round_}"}})
        await mover.wait_event(shows(leaver.client_id))
        mark = len(mover.events)

        async def leave_midway(v: YClient = leaver) -> None:
            await asyncio.sleep(0.05)
            await v.close()

        await asyncio.gather(mover.call("cursor_moves", count=50, delay_ms=2), leave_midway())
        await mover.wait_event(drops(leaver.client_id), within=5, start=mark)
        assert leaver.client_id not in mover.awareness_states()


async def test_yjs_client_stays_connected_while_many_people_come_and_go(
    srv: ServerProcess, node_client: Path, clients: list[NodeClient | YClient]
) -> None:
    """A long workshop: 20 participants drop in and leave while one browser tab stays open.

    The stock client echoes each departure's null awareness state back; the server must not
    count those echoed client ids against the tab's own awareness allowance.
    """
    canvas = srv.create_canvas("Long workshop")
    stayer = await open_node(clients, node_client, srv, canvas, "stayer")
    for i in range(20):
        visitor = await open_py(clients, srv, canvas, f"visitor{i}")
        await visitor.set_awareness({"user": {"name": f"Visitor {i}"}})
        await stayer.wait_event(shows(visitor.client_id))
        mark = len(stayer.events)
        await visitor.close()
        await stayer.wait_event(drops(visitor.client_id), start=mark)
    closes = [e for e in stayer.events if e["event"] == "connection-close"]
    assert closes == [], f"the Yjs client was disconnected: {closes}"
    # ... and it is still live.
    py = await open_py(clients, srv, canvas, "last")
    py.add_note("still-here", "the tab still syncs")
    await stayer.wait_doc(lambda doc: "still-here" in doc["notes"])
