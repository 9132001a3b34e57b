"""Property: whatever the sequence of edits, compactions and restarts, the loaded canvas equals a
model that applied the same edits and was never compacted or restarted."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, Text

from server.room import merge_updates
from server.store.base import CanvasRecord
from server.store.sqlite import SQLiteStore

edit = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 15), st.text(max_size=8)),
    st.tuples(st.just("type"), st.integers(0, 15), st.text(min_size=1, max_size=4)),
    st.tuples(st.just("delete"), st.integers(0, 15), st.just("")),
    st.tuples(st.just("move"), st.integers(0, 15), st.sampled_from(["a", "b", "c"])),
)
step = st.one_of(edit, st.just(("compact", 0, "")), st.just(("restart", 0, "")))


def snapshot(doc: Doc) -> dict:
    return doc.get("notes", type=Map).to_py() or {}


def apply_edit(doc: Doc, op: str, n: int, arg: str) -> bytes | None:
    notes = doc.get("notes", type=Map)
    key = f"n{n}"
    before = doc.get_state()
    with doc.transaction():
        if op == "add" and key not in notes:
            notes[key] = Map({"text": Text(arg), "block": "a"})
        elif op == "type" and key in notes:
            notes[key]["text"].insert(0, arg)
        elif op == "delete" and key in notes:
            del notes[key]
        elif op == "move" and key in notes:
            notes[key]["block"] = arg
        else:
            return None
    return doc.get_update(before)


async def run(steps: list[tuple[str, int, str]], path: Path) -> None:
    store = SQLiteStore(path)
    await store.start()
    await store.create_canvas(CanvasRecord("c", "t", "business-model", 0.0), None)
    author = Doc(client_id=1234)  # the model: every edit, no compaction, no restart
    compactions = 0
    try:
        for op, n, arg in steps:
            if op == "compact":
                compactions += await store.compact("c", merge_updates)
            elif op == "restart":
                await store.close()
                store = SQLiteStore(path)
                await store.start()
            else:
                update = apply_edit(author, op, n, arg)
                if update is not None:
                    await store.append("c", update)
            stored = await store.load("c")
            assert stored is not None
            loaded = Doc()
            for part in stored.parts():
                loaded.apply_update(part)
            assert snapshot(loaded) == snapshot(author)
        if compactions:
            assert await store.list_snapshots("c")  # history kept, newest first
    finally:
        await store.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=40))
def test_compaction_and_restart_never_change_the_document(
    steps: list[tuple[str, int, str]],
) -> None:
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(steps, Path(d) / "c.db"))


async def test_compaction_racing_appends_loses_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    await store.start()
    await store.create_canvas(CanvasRecord("c", "t", "business-model", 0.0), None)
    author = Doc(client_id=99)
    try:
        for i in range(300):
            update = apply_edit(author, "add", i, f"t{i}")
            assert update is not None
            appends = [store.append("c", update)]
            if i % 25 == 0:
                appends.append(store.compact("c", merge_updates))  # type: ignore[arg-type]
            await asyncio.gather(*appends)
        stored = await store.load("c")
        assert stored is not None
        loaded = Doc()
        for part in stored.parts():
            loaded.apply_update(part)
        assert snapshot(loaded) == snapshot(author)
        assert len(stored.updates) < 300  # compaction did run
    finally:
        await store.close()
