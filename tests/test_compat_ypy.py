"""A y-py 0.6 client (the Python binding many existing tools still use) syncs with the server.

y-py mis-decodes client ids of 2**32 and above, so content the server writes itself (the canvas
template) must carry a 32-bit client id; the pycrdt peer here uses one too. y-py has no wheels for
Python > 3.12, where this module is skipped.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import websockets
from pycrdt import Doc, Map

from server import protocol
from tests.support import ServerProcess, YClient

Y = pytest.importorskip(
    "y_py", reason="y-py 0.6 is not installable on this Python (no wheels past 3.12)"
)

TIMEOUT = 10.0


class YpyClient:
    """The y-websocket protocol over ``websockets``, with a y-py YDoc."""

    def __init__(self, base_ws: str, canvas_id: str, token: str) -> None:
        self.url = f"{base_ws}/{canvas_id}?token={token}"
        self.doc = Y.YDoc()
        self.ws: Any = None
        self.synced = asyncio.Event()
        self.errors: list[BaseException] = []
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> YpyClient:
        self.ws = await websockets.connect(self.url, max_size=None)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self.ws.send(protocol.sync_step1(Y.encode_state_vector(self.doc)))
        await asyncio.wait_for(self.synced.wait(), TIMEOUT)
        return self

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                msg = protocol.decode(frame)
                if msg.kind is protocol.Kind.SYNC_STEP1:
                    await self.ws.send(
                        protocol.sync_step2(Y.encode_state_as_update(self.doc, msg.payload))
                    )
                elif msg.kind in (protocol.Kind.SYNC_STEP2, protocol.Kind.SYNC_UPDATE):
                    Y.apply_update(self.doc, msg.payload)
                    if msg.kind is protocol.Kind.SYNC_STEP2:
                        self.synced.set()
        except websockets.ConnectionClosed:
            pass
        except BaseException as exc:  # a y-py decode failure is what this module looks for
            self.errors.append(exc)
            raise

    async def edit(self, change: Any) -> None:
        """Run ``change(txn)`` in one transaction and send what it changed as a sync update."""
        before = Y.encode_state_vector(self.doc)
        with self.doc.begin_transaction() as txn:
            change(txn)
        await self.ws.send(protocol.sync_update(Y.encode_state_as_update(self.doc, before)))

    def root(self, name: str) -> dict[str, Any]:
        return json.loads(self.doc.get_map(name).to_json())  # type: ignore[no-any-return]

    async def wait_for(self, predicate: Any, within: float = TIMEOUT) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not predicate():
            assert not self.errors, f"y-py client failed: {self.errors!r}"
            if loop.time() > deadline:
                raise AssertionError(f"y-py: condition not met within {within}s")
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)


class YClient32(YClient):
    """The pycrdt test client, with a 32-bit client id (as a browser's Yjs has) so y-py decodes it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.doc = Doc(client_id=random.randrange(1, 2**32 - 1))
        self._sub = self.doc.observe(self._on_local)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("compat-ypy") / "data").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def canvas(srv: ServerProcess) -> AsyncIterator[dict[str, Any]]:
    yield srv.create_canvas("Y-py workshop", template="value-proposition")


async def test_ypy_gets_the_template_written_by_the_server(
    srv: ServerProcess, canvas: dict[str, Any]
) -> None:
    ypy = await YpyClient(srv.ws, canvas["id"], canvas["facilitator_token"]).connect()
    try:
        async with httpx.AsyncClient() as http:
            r = await http.get(
                f"{srv.http}/api/canvases/{canvas['id']}",
                headers={"Authorization": f"Bearer {canvas['facilitator_token']}"},
            )
        assert r.status_code == 200
        api = r.json()
        await ypy.wait_for(lambda: ypy.root("blocks") == api["blocks"])
        assert ypy.root("meta")["title"] == "Y-py workshop"
        assert ypy.root("meta")["template"] == "value-proposition"
        assert "customer-jobs" in ypy.root("blocks")
        assert ypy.root("orgs") == api["orgs"]

        # y-py edits what the server wrote. Its edit points at the template's items by client id,
        # so it only lands when y-py decoded that id correctly (a 32-bit id).
        watcher = await YClient(
            srv.ws, canvas["id"], canvas["facilitator_token"], "watcher"
        ).connect()
        try:
            blocks = ypy.doc.get_map("blocks")
            await ypy.edit(lambda txn: blocks["customer-jobs"].set(txn, "title", "Jobs to be done"))
            await watcher.wait_for(
                lambda: (
                    str(watcher.doc.get("blocks", type=Map)["customer-jobs"]["title"])
                    == "Jobs to be done"
                )
            )
        finally:
            await watcher.close()
    finally:
        await ypy.close()
    assert not ypy.errors


async def test_ypy_and_pycrdt_exchange_notes(srv: ServerProcess, canvas: dict[str, Any]) -> None:
    token = canvas["facilitator_token"]
    ypy = await YpyClient(srv.ws, canvas["id"], token).connect()
    py = await YClient32(srv.ws, canvas["id"], token, "pycrdt").connect()
    try:
        notes = ypy.doc.get_map("notes")

        # y-py adds a note; the pycrdt client sees it.
        await ypy.edit(
            lambda txn: notes.set(
                txn,
                "from-ypy",
                Y.YMap(
                    {
                        "block": "customer-jobs",
                        "text": Y.YText("written by y-py"),
                        "org": "",
                        "x": 0.2,
                        "y": 0.3,
                    }
                ),
            )
        )
        await py.wait_for(lambda: py.note_texts().get("from-ypy") == "written by y-py")
        assert py.notes["from-ypy"]["block"] == "customer-jobs"

        # The pycrdt client adds a note and edits the y-py one; y-py sees both.
        py.add_note("from-pycrdt", "written by pycrdt", block="pains")
        py.notes["from-ypy"]["text"].insert(0, "[seen] ")
        await ypy.wait_for(
            lambda: (
                ypy.root("notes").get("from-pycrdt", {}).get("text") == "written by pycrdt"
                and ypy.root("notes")["from-ypy"]["text"] == "[seen] written by y-py"
            )
        )
        assert ypy.root("notes")["from-pycrdt"]["block"] == "pains"

        # y-py types into the pycrdt note's text and deletes its own note.
        def change(txn: Any) -> None:
            text = notes["from-pycrdt"]["text"]
            text.extend(txn, " (+y-py)")
            notes.pop(txn, "from-ypy")

        await ypy.edit(change)
        await py.wait_for(lambda: py.note_texts() == {"from-pycrdt": "written by pycrdt (+y-py)"})
    finally:
        await py.close()
        await ypy.close()
    assert not ypy.errors

    # A fresh y-py client gets the whole result from the server.
    late = await YpyClient(srv.ws, canvas["id"], token).connect()
    try:
        await late.wait_for(lambda: set(late.root("notes")) == {"from-pycrdt"})
        assert late.root("notes")["from-pycrdt"]["text"] == "written by pycrdt (+y-py)"
        assert late.root("meta")["title"] == "Y-py workshop"
    finally:
        await late.close()
    assert not late.errors
