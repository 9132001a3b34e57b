"""CPU per update on the whole per-message path, in-process: ``python scripts/bench_path.py``.

R rooms (PolicyGate, a SQLite store with fsync as in production, the memory broker), K sessions
each, one writer per room sending the harness's note (``../shared/bench/scale.mjs``: one Y.Map
of block, text, org, author, x, y, sent_at) round-robin over the rooms: receive -> validate ->
apply -> persist -> release -> send to the K-1 others. Prints the main thread's CPU time per
update (``time.thread_time``: robust to other load on the machine, unlike wall time), and with
``--profile`` the top functions. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

from pycrdt import Doc, Map

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import protocol  # noqa: E402
from server.broker.memory import MemoryBroker, MemoryHub  # noqa: E402
from server.canvas import templates  # noqa: E402
from server.policy import PolicyGate  # noqa: E402
from server.rooms import Rooms  # noqa: E402
from server.session import Identity, Session  # noqa: E402
from server.store.base import CanvasRecord  # noqa: E402
from server.store.sqlite import SQLiteStore  # noqa: E402


class CountingSession(Session):
    def __init__(self, identity: Identity) -> None:
        super().__init__(identity)
        self.frames = 0
        self.bytes = 0

    def send(self, frame: bytes) -> None:
        self.frames += 1
        self.bytes += len(frame)

    def close(self, code: int, reason: str) -> None:
        if code != 1012:
            raise RuntimeError(f"closed {code} {reason}")

    @property
    def closed(self) -> bool:
        return False


def writer_frames(state: bytes, client_id: int, n: int, tag: str, block: str) -> list[bytes]:
    doc: Doc = Doc(client_id=client_id)
    doc.apply_update(state)
    notes = doc.get("notes", type=Map)
    out: list[bytes] = []
    for k in range(n):
        before = doc.get_state()
        with doc.transaction():
            notes[f"{tag}-{k}"] = Map(
                {
                    "block": block,
                    "text": f"note {k} from writer 0",
                    "org": "org-1",
                    "author": "writer-0",
                    "x": float(k * 7 % 4000),
                    "y": float(k * 13 % 4000),
                    "sent_at": time.time() * 1000,
                }
            )
        out.append(protocol.sync_update(doc.get_update(before)))
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rooms", type=int, default=200)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--updates", type=int, default=20, help="per room")
    ap.add_argument("--role", default="facilitator")
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    store = SQLiteStore(tmp / "db.sqlite", fsync=True)
    await store.start()
    hub = MemoryHub()
    broker = MemoryBroker("node-0", hub)
    await broker.start()
    rooms = Rooms(store, broker, gate_factory=PolicyGate)
    orgs = templates.make_orgs([("Alpha", None), ("Beta", None)])
    ident = Identity("u_w", "Writer", "alpha", a.role)
    plan = []
    for r in range(a.rooms):
        cid = f"c{r}"
        initial = templates.initial_update("P", "business-model", orgs, True, 1.0)
        await store.create_canvas(
            CanvasRecord(cid, "P", "business-model", 1.0, {"protect_notes": True}), initial
        )
        room = await rooms.acquire(cid)
        sessions = [CountingSession(ident) for _ in range(a.sessions)]
        for s in sessions:
            await room.join(s)
        # The harness's clients are facilitators writing to "sticky"; an editor writes into a
        # block of the template (elsewhere its note would be refused).
        block = (
            "sticky" if a.role == "facilitator" else next(iter(room.doc.get("blocks", type=Map)))
        )
        frames = writer_frames(room.doc.get_update(), 1000 + r, a.updates, f"r{r}", block)
        plan.append((room, sessions, frames))
    total = a.rooms * a.updates
    prof = cProfile.Profile() if a.profile else None
    t0, w0 = time.thread_time(), time.perf_counter()
    if prof:
        prof.enable()
    for k in range(a.updates):
        for room, sessions, frames in plan:
            await room.receive(sessions[0], frames[k])
    for room, _, _ in plan:
        await room.pipeline.drained()
    if prof:
        prof.disable()
    cpu, wall = time.thread_time() - t0, time.perf_counter() - w0
    received = sum(s.frames for _, ss, _ in plan for s in ss[1:])
    print(
        f"{total} updates over {a.rooms} rooms x {a.sessions} sessions: "
        f"{cpu / total * 1e6:.0f} us main-thread CPU per update, wall {wall / total * 1e6:.0f} us; "
        f"frames to the others {received} ({received / total:.2f} per update)"
    )
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
    await rooms.close_all()
    await broker.close()
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
