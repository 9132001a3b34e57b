"""What the policy costs per update: ``python -m tests.bench_policy``.

Replays the same client updates through the default gate (apply as is) and through PolicyGate on
a canvas that already holds 500 notes (``BENCH_NOTES``), and prints microseconds per update. Only the gate is
timed (not the store or the sockets), since that is what the policy adds to every update.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from pycrdt import Doc, Map, Text

from server import yupdate
from server.broker.memory import MemoryBroker
from server.canvas import templates
from server.policy import PolicyGate
from server.room import Room, UpdateGate, _root_names
from server.session import Identity, Session
from server.vouch import decode_state_vector


class BenchSession(Session):
    def send(self, frame: bytes) -> None:
        pass

    def close(self, code: int, reason: str) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


ALPHA = Identity("u_alpha", "Ann", "alpha", "editor")


def base_update() -> bytes:
    orgs = templates.make_orgs([("Alpha", None), ("Beta", None)])
    doc: Doc = Doc(client_id=7)
    doc.apply_update(templates.initial_update("Bench", "partner-co-creation", orgs, True, 0.0))
    notes = doc.get("notes", type=Map)
    with doc.transaction():
        for i in range(int(os.environ.get("BENCH_NOTES", "500"))):
            org = "alpha" if i % 2 else "beta"
            notes[f"n{i}"] = Map(
                {
                    "block": "gains",
                    "text": Text(f"note {i}"),
                    "org": org,
                    "author": f"u_{org}",
                    "author_name": org,
                    "x": 0.1,
                    "y": 0.1,
                }
            )
    return doc.get_update()


def record(base: bytes, action: Callable[[Doc, Map], None], n: int) -> list[bytes]:
    """The updates a y-websocket client sends for ``n`` repetitions of ``action``."""
    doc: Doc = Doc(client_id=11)
    doc.apply_update(base)
    notes = doc.get("notes", type=Map)
    out: list[bytes] = []
    sub = doc.observe(lambda e: out.append(e.update))
    for _ in range(n):
        with doc.transaction():
            action(doc, notes)
    doc.unobserve(sub)
    return out


def run(gate: UpdateGate, base: bytes, updates: list[bytes]) -> float:
    room = Room("bench", None, MemoryBroker("bench"), gate)  # type: ignore[arg-type]
    room.doc.apply_update(base)
    gate.attach(room)
    session = BenchSession(ALPHA)
    # Where each update's structs land, as the room's validator tells the gate (not timed: the
    # validator runs for every gate alike).
    room.vouch.reset(decode_state_vector(room.doc.get_state()))
    verdicts = []
    for u in updates:
        parsed = yupdate.read_update(u)
        verdict = room.vouch.check(parsed, None)
        room.vouch.commit(verdict)
        verdicts.append((verdict.runs, _root_names(parsed)))  # as the room passes them
    if isinstance(gate, PolicyGate):
        # Who created each note is read once per loaded room (on its first update), not per
        # update: outside the timing, or a big canvas's one read would pass for a per-update cost.
        gate.creator("notes", "")
    t0 = time.perf_counter()
    for u, (runs, roots) in zip(updates, verdicts, strict=True):
        gate.admit(room, session, u, runs=runs, roots=roots)
    elapsed = time.perf_counter() - t0
    gate.detach(room)
    return elapsed / len(updates) * 1e6


def main() -> None:
    base = base_update()
    counter = iter(range(10**9))

    def type_own(doc: Doc, notes: Map) -> None:
        notes["n1"]["text"].insert(0, "a")

    def create_own(doc: Doc, notes: Map) -> None:
        i = next(counter)
        notes[f"new{i}"] = Map(
            {
                "block": "gains",
                "text": Text("hi"),
                "org": "alpha",
                "author": "u_alpha",
                "author_name": "Ann",
                "x": 0.2,
                "y": 0.2,
            }
        )

    def create_forged(doc: Doc, notes: Map) -> None:
        i = next(counter)
        notes[f"forged{i}"] = Map(
            {"block": "gains", "text": Text("hi"), "org": "beta", "x": 0.2, "y": 0.2}
        )

    def edit_partner(doc: Doc, notes: Map) -> None:
        notes["n0"]["text"].insert(0, "x")

    def move_own(doc: Doc, notes: Map) -> None:
        notes["n3"]["x"] = 0.3

    scenarios: list[tuple[str, Callable[[Doc, Map], None], int]] = [
        ("type a character in own note", type_own, 2000),
        ("move own note", move_own, 2000),
        ("create a note (correct fields)", create_own, 1000),
        ("create a note with a forged org (ignored)", create_forged, 1000),
        ("edit a partner's note (refused + reverted)", edit_partner, 500),
    ]
    print(f"{'scenario':45} {'default µs':>11} {'policy µs':>10} {'added µs':>9}")
    for name, action, n in scenarios:
        updates = record(base, action, n)
        default: list[Any] = []
        policy: list[Any] = []
        for _ in range(5):
            default.append(run(UpdateGate(), base, updates))
            policy.append(run(PolicyGate("bench"), base, updates))
        d, p = min(default), min(policy)  # the least disturbed run on a shared machine
        print(f"{name:45} {d:11.1f} {p:10.1f} {p - d:9.1f}")


if __name__ == "__main__":
    main()
