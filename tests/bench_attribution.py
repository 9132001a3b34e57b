"""What a joiner downloads: ``python -m tests.bench_attribution [notes] [writers]``.

Fills a canvas through real in-process Rooms (PolicyGate, SQLite store, memory broker) the way
the bench's ``join`` scenario does (/work/shared/bench/lib/scenarios/join.js: one transaction per
note, a Y.Map of block, text, org, author, x, y, sent_at), from ``writers`` tabs, then prints
``len(encode_state_as_update)`` of the room's document — what a joiner's sync step 2 carries —
beside what the writers' own documents hold (what a pure relay such as Hocuspocus would store
and send for the same edits) and the template alone. Run it on two checkouts to compare.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from pycrdt import Doc, Map

from server.canvas import templates
from server.session import Identity
from server.vouch import decode_state_vector, encode_state_vector
from tests.adversary import Client
from tests.inproc import canvas_rooms


async def main(n: int, k: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with canvas_rooms(Path(tmp), orgs=("Alpha", "Beta")) as [room]:
            template = len(room.doc.get_update())
            writers = [
                Client(
                    f"w{i}", Identity(f"u_w{i}", f"Writer {i}", "alpha", "editor"), 5000 + i, room
                )
                for i in range(k)
            ]
            for w in writers:
                await w.connect()
            t0 = time.perf_counter()
            for j in range(n):
                w = writers[j % k]

                def change(d: Doc, j: int = j) -> None:
                    d.get("notes", type=Map)[f"n{j}"] = Map(
                        {
                            "block": "customer-jobs",
                            "text": f"prefilled note number {j} with some text",
                            "org": "org-1",
                            "author": "filler",
                            "x": (j * 37) % 4000 / 4000,
                            "y": (j * 91) % 4000 / 4000,
                            "sent_at": 1.0 * j,
                        }
                    )

                await w.send_update(w.local(change))
                if j % 200 == 199:
                    for x in writers:
                        await x.pump()
            for x in writers:
                await x.pump()
            fill_s = time.perf_counter() - t0
            joined = len(room.doc.get_update())
            # What a relay (Hocuspocus) would hold for the same edits: the template as created
            # plus each writer's own structs, nothing the server wrote.
            relay: Doc = Doc()
            relay.apply_update(
                templates.initial_update(
                    "P",
                    "partner-co-creation",
                    templates.make_orgs([("Alpha", None), ("Beta", None)]),
                    True,
                    1.0,
                )
            )
            base = len(relay.get_update())
            for w in writers:
                others = {c: v for c, v in _sv(w.doc).items() if c != w.client_id}
                relay.apply_update(w.doc.get_update(encode_state_vector(others)))
            own = {w.client_id for w in writers}
            sv = {c: v for c, v in _sv(room.doc).items() if c not in own}
            written = len(relay.get_update())
            server_bytes = joined - written
            print(f"notes={n} writers={k} fill={fill_s:.1f}s")
            print(f"  joiner downloads        {joined:>10,} B (encode_state_as_update of the room)")
            print(
                f"  a relay would send      {written:>10,} B (template {base:,} B + the writers' structs)"
            )
            print(f"  overhead                {server_bytes:>10,} B ({server_bytes / written:.2%})")
            print(
                f"  server clocks written   {sum(sv.values()):>10,} (template load {template:,} B)"
            )
            try:
                from server.canvas.attribution import authors_of
            except ImportError:  # a checkout before attribution
                return
            t1 = time.perf_counter()
            authors = authors_of(room.doc)
            print(f"  attributing every note  {(time.perf_counter() - t1) * 1000:>10.0f} ms "
                  f"({len(authors)} notes, full-state parse: exports, versions, first admit)")  # fmt: skip


def _sv(doc: Doc) -> dict[int, int]:
    return decode_state_vector(doc.get_state())


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000,
                     int(sys.argv[2]) if len(sys.argv) > 2 else 1))  # fmt: skip
