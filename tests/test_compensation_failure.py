"""When the policy cannot put right what an update broke, nothing of that update survives:
the sender is closed (1008), nobody else receives it, the store never holds it, and the room
rebuilds its document from the store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map, Text

from server import closecodes, policy, protocol
from server.closecodes import CloseSession
from server.session import Identity, Session
from tests.inproc import canvas_rooms


class Recorder(Session):
    def __init__(self, identity: Identity) -> None:
        super().__init__(identity)
        self.frames: list[bytes] = []
        self.closed_with: tuple[int, str] | None = None

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)

    def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)

    @property
    def closed(self) -> bool:
        return self.closed_with is not None


def _failing_stamp(self: Any, nid: str) -> None:
    def fix() -> None:
        raise RuntimeError("cannot write this back")

    self.d.fixes.append(fix)


async def test_a_fix_that_raises_refuses_the_update_and_rebuilds_the_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with canvas_rooms(tmp_path) as [room]:
        store = room.store
        editor = Recorder(Identity("u_ann", "Ann", "alpha", "editor"))
        bystander = Recorder(Identity("u_fac", "Fran", "", "facilitator"))
        await room.join(editor)
        await room.join(bystander)
        before = await store.load("c")
        assert before is not None
        seen = len(bystander.frames)

        doc = Doc()
        doc.apply_update(room.doc.get_update())
        captured: list[bytes] = []
        doc.observe(lambda e: captured.append(e.update))
        with doc.transaction():
            doc.get("notes", type=Map)["n1"] = Map({"block": "gains", "text": Text("x")})
        monkeypatch.setattr(policy._Rules, "_shape", _failing_stamp)
        with pytest.raises(CloseSession) as refused:
            await room.receive(editor, protocol.sync_update(captured[0]))
        assert refused.value.code == closecodes.POLICY_VIOLATION

        # Nobody else heard of it, and the store holds exactly what it held before.
        assert len(bystander.frames) == seen
        after = await store.load("c")
        # Nothing of the update is stored; only who the sender's client id is (its ``ids``
        # entry, written before the update was judged) may have been added.
        assert after is not None and after.parts()[: len(before.parts())] == before.parts()
        extra: Doc = Doc()
        for part in after.parts()[len(before.parts()) :]:
            extra.apply_update(part)
        assert set(extra.keys()) <= {"ids"}
        # The room rebuilds from the store: the note is gone from memory too.
        for _ in range(200):
            if "n1" not in room.doc.get("notes", type=Map):
                break
            await asyncio.sleep(0.01)
        assert "n1" not in room.doc.get("notes", type=Map)
