"""Test support: a real server process on a free port, and a y-websocket client built on pycrdt.

The client speaks the protocol exactly as a browser's ``WebsocketProvider`` does (step 1 on open,
answers step 1 with step 2, sends local updates, publishes awareness), so tests exercise the server
the way real clients do.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from pycrdt import Doc, Map, Text

from server import protocol

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip when a service is missing, except in CI, where a missing service is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``python -m server.cli serve`` in a subprocess, with its own data directory."""

    def __init__(
        self, data_dir: Path, env: dict[str, str] | None = None, port: int | None = None
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.log"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        env = dict(os.environ)
        env.update(
            {
                "COCANVAS_SECRET": env.get(
                    "COCANVAS_SECRET",
                    "a048e0df09aeb6e7ebf7eaf031ec1732cb27259731f9a880b1cbd9066be7011f",
                ),
                "COCANVAS_ROOM_IDLE_SECONDS": "2",
                "COCANVAS_LOG_LEVEL": "info",
            }
        )
        env.update(self.env)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "server.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.http + "/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def create_canvas(
        self, title: str = "Workshop", template: str = "business-model", **extra: Any
    ) -> dict[str, Any]:
        r = httpx.post(
            self.http + "/api/canvases", json={"title": title, "template": template, **extra}
        )
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]


class YClient:
    """A y-websocket client on pycrdt."""

    def __init__(
        self, base_ws: str, canvas_id: str, token: str | None, name: str = "client"
    ) -> None:
        self.url = f"{base_ws}/{canvas_id}" + (f"?token={token}" if token else "")
        self.doc = Doc()
        self.name = name
        self.ws: Any = None
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.denials: list[str] = []
        self.awareness: dict[int, tuple[int, Any]] = {}
        self.awareness_events: list[tuple[int, Any]] = []
        self.frames_received: list[bytes] = []
        self.sent_frames: list[bytes] = []
        self._remote = False
        self._reader: asyncio.Task[None] | None = None
        self._sub = self.doc.observe(self._on_local)
        self._aw_clock = 0

    @property
    def client_id(self) -> int:
        return self.doc.client_id

    def use_client_id(self, client_id: int) -> YClient:
        """Write with this Yjs client id (before connecting): a tab that keeps its id."""
        self.doc.unobserve(self._sub)
        self.doc = Doc(client_id=client_id)
        self._sub = self.doc.observe(self._on_local)
        return self

    def _on_local(self, event: Any) -> None:
        if self._remote or self.ws is None:
            return
        frame = protocol.sync_update(event.update)
        self.sent_frames.append(frame)
        asyncio.get_running_loop().create_task(self._safe_send(frame))

    async def _safe_send(self, frame: bytes) -> None:
        try:
            await self.ws.send(frame)
        except websockets.ConnectionClosed:
            pass

    async def connect(self, wait_sync: bool = True, timeout: float = 10.0, **kw: Any) -> YClient:
        self.ws = await websockets.connect(self.url, max_size=None, **kw)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self.ws.send(protocol.sync_step1(self.doc.get_state()))
        if wait_sync:
            await asyncio.wait_for(self.synced.wait(), timeout)
        return self

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, str):
                    continue
                self.frames_received.append(frame)
                msg = protocol.decode(frame)
                if msg.kind is protocol.Kind.SYNC_STEP1:
                    await self.ws.send(protocol.sync_step2(self.doc.get_update(msg.payload)))
                elif msg.kind in (protocol.Kind.SYNC_STEP2, protocol.Kind.SYNC_UPDATE):
                    self._remote = True
                    try:
                        self.doc.apply_update(msg.payload)
                    finally:
                        self._remote = False
                    if msg.kind is protocol.Kind.SYNC_STEP2:
                        self.synced.set()
                elif msg.kind is protocol.Kind.AWARENESS:
                    for cid, clock, state in protocol.decode_awareness(msg.payload):
                        value = orjson.loads(state)
                        self.awareness[cid] = (clock, value)
                        self.awareness_events.append((cid, value))
                elif msg.kind is protocol.Kind.AUTH:
                    reason, _ = protocol.read_varbytes(msg.payload, 1)
                    self.denials.append(reason.decode())
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason or ""
            self.closed.set()

    async def set_awareness(self, state: Any) -> None:
        self._aw_clock += 1
        entry = (self.client_id, self._aw_clock, orjson.dumps(state))
        await self.ws.send(protocol.awareness(protocol.encode_awareness([entry])))

    async def send_raw(self, frame: bytes | str) -> None:
        await self.ws.send(frame)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)

    # -- canvas helpers -------------------------------------------------------------------

    @property
    def notes(self) -> Map:
        return self.doc.get("notes", type=Map)

    def add_note(
        self, note_id: str, text: str, block: str = "key-partners", org: str = "", **fields: Any
    ) -> None:
        with self.doc.transaction():
            self.notes[note_id] = Map(
                {"block": block, "text": Text(text), "org": org, "x": 0.1, "y": 0.1, **fields}
            )

    def attributed(self) -> dict[str, Any]:
        """The notes as this client reads them: org/author/author_name by the attribution rule
        (``server/canvas/attribution.py``), not as written."""
        from server.canvas.export import doc_to_json

        notes: dict[str, Any] = doc_to_json(self.doc)["notes"]
        return notes

    def attributed_links(self) -> dict[str, Any]:
        """The fit links as this client reads them (attributed like notes)."""
        from server.canvas.export import doc_to_json

        links: dict[str, Any] = doc_to_json(self.doc)["links"]
        return links

    def note_texts(self) -> dict[str, str]:
        return {k: str(v["text"]) for k, v in self.notes.items()}

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: condition not met within {timeout}s")
            await asyncio.sleep(0.01)


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


STAMPED_USER_FIELDS = ("id", "name", "org", "orgName", "role")


def unstamped(state: Any) -> Any:
    """An awareness state without the fields the server stamps from the token (server/awareness.py),
    to compare what a client sent with what others received."""
    if not isinstance(state, dict):
        return state
    out = dict(state)
    user = out.get("user")
    if isinstance(user, dict):
        out["user"] = {k: v for k, v in user.items() if k not in STAMPED_USER_FIELDS}
    return out


def atheris_fuzz(tmp_path: Path, imports: str, one: str, runs: int = 30000) -> None:
    """Coverage-guided fuzzing of ``one(data)`` (a function body over ``data``) with atheris,
    in a process of its own; fails with the crash when one is found."""
    pytest.importorskip("atheris")
    script = tmp_path / "fuzz_target.py"
    body = "\n".join("    " + line for line in one.strip().splitlines())
    script.write_text(
        "import sys\nimport atheris\nwith atheris.instrument_imports():\n"
        f"    {imports}\n\ndef one(data: bytes) -> None:\n{body}\n\n"
        "atheris.Setup(sys.argv, one)\natheris.Fuzz()\n"
    )
    run = subprocess.run(
        [sys.executable, str(script), f"-runs={runs}", "-max_len=256"],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        # The pure source (server/native.py): atheris traces Python bytecode, which a module
        # compiled by mypyc has none of.
        env={**os.environ, "COCANVAS_PURE": "1"},
    )
    assert run.returncode == 0, run.stderr.decode()[-2000:]
