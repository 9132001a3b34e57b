"""The update reader (server/yupdate.py) and the validator (server/vouch.py) against yrs itself.

* What the reader says an update holds agrees with yrs: the same clock range per client, the same
  delete set, for updates yrs wrote (random edits of every kind) and for crafted ones.
* Random and mutated bytes only ever raise UpdateError.
* Whatever the validator accepts, yrs integrates completely: after the apply nothing waits
  (the document's state vector is exactly where the validator said each client would end) and
  nothing panics.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, Text, get_state

from server import yupdate as y
from server.vouch import FACILITATOR_BOUNDS, Refused, Vouch, decode_state_vector
from server.vouch import encode_state_vector as encode_sv
from tests.support import atheris_fuzz
from tests.yenc import S, delete_only, encode

ROOT_NAMES = ("meta", "blocks", "notes", "orgs")


def _doc_with_history(rng: random.Random, steps: int) -> tuple[Doc, list[bytes]]:
    """A canvas-shaped document edited at random by three clients; every transaction's update."""
    docs = [Doc(client_id=100 + i) for i in range(3)]
    updates: list[bytes] = []
    local = [False]
    for d in docs:
        d.observe(lambda e: updates.append(e.update) if local[0] else None)
    for _ in range(steps):
        d = rng.choice(docs)
        notes = d.get("notes", type=Map)
        op = rng.random()
        keys = sorted(notes.keys())
        rng.shuffle(keys)
        local[0] = True
        with d.transaction():
            if op < 0.3 or not keys:
                notes[f"n{rng.randrange(50)}"] = Map(
                    {
                        "block": "b",
                        "text": Text(rng.choice(["", "hello", "héllo 😀", "x" * 40])),
                        "x": rng.random(),
                        "votes": Map(),
                    }
                )
            elif op < 0.6:
                text = notes[rng.choice(keys)]["text"]
                if isinstance(text, Text):
                    n = len(str(text).encode())
                    if rng.random() < 0.5 or n == 0:
                        text.insert(0, rng.choice(["a", "ü", "🎉", "abc"]))
                    else:
                        text.format(0, n, {"bold": True})
            elif op < 0.8:
                note = notes[rng.choice(keys)]
                note["x"] = rng.random()
                note["votes"][f"u{rng.randrange(3)}"] = 1
            else:
                del notes[rng.choice(keys)]
        local[0] = False
        # Spread every change, as a server would.
        for other in docs:
            if other is not d:
                other.apply_update(d.get_update(other.get_state()))
    return docs[0], updates


def _ranges(parsed: y.Update) -> dict[int, tuple[int, int]]:
    out: dict[int, tuple[int, int]] = {}
    for s in parsed.structs:
        if s.content == y.SKIP:
            continue
        lo, hi = out.get(s.client, (s.clock, s.clock))
        out[s.client] = (min(lo, s.clock), max(hi, s.clock + s.length))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_reader_agrees_with_yrs_on_what_an_update_holds(seed: int) -> None:
    doc, updates = _doc_with_history(random.Random(seed), 120)
    replay = Doc()
    for update in updates:
        before = decode_state_vector(replay.get_state())
        replay.apply_update(update)
        after = decode_state_vector(replay.get_state())
        for client, (lo, hi) in _ranges(y.read_update(update)).items():
            assert (lo, hi) == (before.get(client, 0), after[client])
    full = doc.get_update()
    ends = {c: hi for c, (_, hi) in _ranges(y.read_update(full)).items()}
    assert ends == decode_state_vector(get_state(full))
    # The whole document's delete set, as yrs encodes it, read range by range.
    full = y.read_update(doc.get_update())
    target = Doc()
    target.apply_update(delete_only(full.deletes))
    assert full.delete_ranges > 0


@pytest.mark.parametrize("seed", range(4))
def test_everything_an_honest_history_does_is_accepted(seed: int) -> None:
    """Replaying a real history through the validator: nothing honest is refused, and the index
    ends exactly where yrs does."""
    _, updates = _doc_with_history(random.Random(seed), 150)
    room = Doc()
    vouch = Vouch(lambda clients: _only(room, clients))
    vouch.reset({})
    for update in updates:
        verdict = vouch.check(y.read_update(update), FACILITATOR_BOUNDS)
        room.apply_update(update)
        vouch.commit(verdict)
        assert {c: vouch.end(c) for c in decode_state_vector(room.get_state())} == (
            decode_state_vector(room.get_state())
        )


def _only(doc: Doc, clients: Any) -> bytes:
    state = decode_state_vector(doc.get_state())
    for c in clients:
        state.pop(c, None)
    return doc.get_update(encode_sv(state))


def test_an_index_built_lazily_from_the_document_matches_one_built_update_by_update() -> None:
    doc, updates = _doc_with_history(random.Random(99), 200)
    eager = Vouch()
    eager.reset({})
    replay = Doc()
    for u in updates:
        replay.apply_update(u)
        eager.learn(u)
    lazy = Vouch(lambda clients: _only(doc, clients))
    lazy.reset(decode_state_vector(doc.get_state()))
    # One edit that refers to every client: the lazy index reads them all from the document.
    probe = Doc(client_id=7)
    probe.apply_update(doc.get_update())
    captured: list[bytes] = []
    probe.observe(lambda e: captured.append(e.update))
    with probe.transaction():
        for note in probe.get("notes", type=Map).values():
            note["x"] = 0.5
    verdict = lazy.check(y.read_update(captured[0]), FACILITATOR_BOUNDS)
    assert verdict.clients == {7}
    for c in decode_state_vector(doc.get_state()):
        assert lazy.end(c) == eager.end(c)


# -- fuzzing ----------------------------------------------------------------------------------


def _seed_updates() -> list[bytes]:
    doc, updates = _doc_with_history(random.Random(5), 40)
    crafted = [
        encode([S(9, 0, ("type", y.MAP), parent="notes", sub="k")]),
        encode([S(9, 0, ("string", "héllo"), parent="meta", sub="t")]),
        encode([S(9, 0, ("any", [1, "a", {"x": [None, True, 2.5]}]), parent="meta", sub="v")]),
        encode([S(9, 0, ("type", y.XML_ELEMENT, "p"), parent="notes", sub="x")]),
        encode([S(9, 0, ("format", "bold", "true"), origin=(100, 3))]),
        encode([S(9, 0, ("json", ['"a"', "1"]), parent="meta", sub="j")]),
        encode([S(9, 0, ("embed", "{}"), parent="meta", sub="e")]),
        encode([S(9, 0, ("binary", b"\x00\x01"), parent="meta", sub="b")]),
        encode([S(9, 0, ("doc", "guid"), parent="meta", sub="d")]),
        encode(
            [
                S(9, 0, ("gc", 3)),
                S(9, 3, ("skip", 2)),
                S(9, 5, ("deleted", 2), parent="notes", sub="z"),
            ]
        ),
        delete_only({100: [(0, 3), (5, 1)], 9: [(0, 1)]}),
    ]
    return [*updates[:20], doc.get_update(), *crafted]


SEEDS = _seed_updates()


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.4 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.6:
            b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
        elif op < 0.8 and b:
            del b[rng.randrange(len(b))]
        else:
            i = rng.randrange(len(b) + 1)
            b[i:i] = rng.choice(SEEDS)[: rng.randrange(12)]
    return bytes(b)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.binary(max_size=96))
def test_random_and_mutated_bytes_only_raise_update_error(seed: int, junk: bytes) -> None:
    rng = random.Random(seed)
    for data in (junk, _mutate(rng, rng.choice(SEEDS)), _mutate(rng, rng.choice(SEEDS))):
        try:
            y.read_update(data, y.Limits(structs=10_000, delete_ranges=10_000))
        except y.UpdateError:
            pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32))
def test_what_the_validator_accepts_integrates_completely(seed: int) -> None:
    """Mutated updates against a real document: when read and vouch accept one, yrs applies it
    without error and leaves nothing pending."""
    rng = random.Random(seed)
    base, _ = _doc_with_history(random.Random(seed % 97), 30)
    for _ in range(6):
        room = Doc()
        room.apply_update(base.get_update())
        vouch = Vouch(lambda clients, room=room: _only(room, clients))
        vouch.reset(decode_state_vector(room.get_state()))
        data = _mutate(rng, rng.choice(SEEDS))
        try:
            parsed = y.read_update(data, FACILITATOR_BOUNDS.reader_limits())
            verdict = vouch.check(parsed, FACILITATOR_BOUNDS)
        except (y.UpdateError, Refused):
            continue
        expected = decode_state_vector(room.get_state())
        for client, clock, length, _ in verdict.runs:
            expected[client] = max(expected.get(client, 0), clock + length)
        room.apply_update(data)
        assert decode_state_vector(room.get_state()) == expected, "something was left pending"


def test_atheris_reader(tmp_path: Path) -> None:
    """Coverage-guided fuzzing of the update reader, when atheris is installed (optional)."""
    atheris_fuzz(
        tmp_path,
        "from server import yupdate",
        """
try:
    yupdate.read_update(data, yupdate.Limits(structs=5000, delete_ranges=5000))
except yupdate.UpdateError:
    pass
""",
    )
