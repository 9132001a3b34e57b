"""The compiled update reader and validator (setup.py, server/native.py).

* In CI the group runs compiled: a build that silently fell back to pure Python would lose the
  speed without anyone noticing.
* Compiled and pure give the same answer, byte for byte, on honest histories and on hostile
  updates (mutated, crafted, truncated): outcome, structs, delete sets, verdicts and refusal
  reasons. mypyc changes how integers, slots and exceptions behave at the edges (overflow,
  attribute errors), which is where a reader of hostile bytes lives.
* A source edited after its build runs as source, not as the stale extension beside it.
"""

from __future__ import annotations

import importlib
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pycrdt import Doc

import server
from server import native
from server import vouch as cv
from server import yupdate as cy
from tests.test_yupdate import SEEDS, _doc_with_history, _mutate, _only
from tests.yenc import S, delete_only, encode

ROOT = Path(__file__).resolve().parent.parent


def _require_compiled() -> None:
    if native.compiled():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"CI must run the compiled reader and validator; this process runs {native.status}"
        )
    pytest.skip(f"not compiled here ({native.status})")


def test_ci_runs_the_compiled_group() -> None:
    _require_compiled()
    assert native.status == "compiled"
    for module in (cy, cv):
        assert not (module.__file__ or "").endswith(".py"), module.__file__


@pytest.fixture(scope="module")
def pure() -> Iterator[tuple[ModuleType, ModuleType]]:
    """The pure source of both modules, loaded under their own names beside the compiled ones
    (pure vouch imports pure yupdate), then the compiled ones put back."""
    saved = {name: sys.modules.pop(name) for name in native.COMPILED}
    attrs = {name: getattr(server, name.rpartition(".")[2]) for name in native.COMPILED}
    finder = native._SourceFinder()
    sys.meta_path.insert(0, finder)
    try:
        py = importlib.import_module("server.yupdate")
        pv = importlib.import_module("server.vouch")
    finally:
        sys.meta_path.remove(finder)
        for name in native.COMPILED:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
        for name, module in attrs.items():
            setattr(server, name.rpartition(".")[2], module)
    assert (py.__file__ or "").endswith(".py") and (pv.__file__ or "").endswith(".py")
    yield py, pv


_STRUCT_FIELDS = ("client", "clock", "length", "content", "origin", "right", "parent", "sub")


def _read(mod: ModuleType, data: bytes, limits: Any) -> Any:
    try:
        u = mod.read_update(data, limits)
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))
    structs = [tuple(getattr(s, f) for f in (*_STRUCT_FIELDS, "type_ref")) for s in u.structs]
    return ("ok", structs, u.deletes, u.values, u.delete_ranges)


def _check(vouch: Any, parsed: Any, bounds: Any) -> Any:
    try:
        v = vouch.check(parsed, bounds)
    except Exception as exc:
        if type(exc).__name__ == "Refused":
            r: Any = exc
            return ("refused", r.reason, r.missing, r.waits_for), None
        return ("error", type(exc).__name__, str(exc)), None
    return ("ok", v.clients, v.runs, v.keys, v.deletes), v


def _hostile(rng: random.Random) -> bytes:
    """Valid encodings with hostile meaning, then broken ones."""
    client = rng.choice([100, 101, 102, 9, 2**32 - 1, 2**53 - 1])
    far = rng.choice([0, 3, 10**6, 2**31, 2**53 - 1, 2**53, 2**64])
    kinds = [
        # Deletes of clocks that do not exist yet, of someone else's, of huge ranges.
        lambda: delete_only({client: [(far, rng.randint(1, 2**20))]}),
        lambda: delete_only({100: [(0, 2**53)], 101: [(rng.randrange(50), 1)]}),
        # A struct parked on an item nobody has, or on one far in the future.
        lambda: encode([S(client, 0, ("string", "x"), origin=(rng.choice([100, 7]), far))]),
        lambda: encode([S(client, far % 2**53, ("any", [1]), parent="notes", sub="k")]),
        # Types the canvas never uses; right origins only; map entries in foreign parents.
        lambda: encode([S(client, 0, ("type", cy.XML_TEXT), parent="notes", sub="x")]),
        lambda: encode([S(client, 0, ("string", "y"), right=(101, rng.randrange(40)))]),
        lambda: encode([S(client, 0, ("any", ["v"]), parent=(100, rng.randrange(40)), sub="text")]),
        # Deep and wide Any values: the reader's work caps.
        lambda: encode([S(client, 0, ("any", [[[[[[[[1]]]]]]]] * 40), parent="meta", sub="a")]),
        lambda: encode([S(client, 0, ("deleted", far % 2**40 + 1), parent="notes", sub="z")]),
    ]
    data = rng.choice(kinds)()
    if rng.random() < 0.15:
        data = data[: rng.randrange(len(data) + 1)]
    if rng.random() < 0.15:
        data = _mutate(rng, data)
    return data


@pytest.mark.parametrize("seed", range(6))
def test_compiled_and_pure_agree_on_honest_and_hostile_updates(
    seed: int, pure: tuple[ModuleType, ModuleType]
) -> None:
    _require_compiled()
    py, pv = pure
    rng = random.Random(seed)
    base, history = _doc_with_history(random.Random(seed), 60)
    room: Doc = Doc()
    compiled_v = cv.Vouch(lambda clients: _only(room, clients))
    pure_v = pv.Vouch(lambda clients: _only(room, clients))
    compiled_v.reset({})
    pure_v.reset({})
    inputs = [*history, *(_mutate(rng, rng.choice(SEEDS)) for _ in range(80))]
    inputs += [_hostile(rng) for _ in range(80)]
    inputs += [rng.randbytes(rng.randrange(64)) for _ in range(20)]
    accepted = 0
    for data in inputs:
        verdicts: tuple[Any, Any] = (None, None)
        clients: set[int] = set()
        for name in ("VIEWER_BOUNDS", "PARTICIPANT_BOUNDS", "FACILITATOR_BOUNDS"):
            cb, pb = getattr(cv, name), getattr(pv, name)
            got = _read(cy, data, cb.reader_limits())
            assert got == _read(py, data, pb.reader_limits()), (name, data.hex())
            if got[0] != "ok":
                continue
            clients = {s[0] for s in got[1]}
            c_out, c_verdict = _check(compiled_v, cy.read_update(data, cb.reader_limits()), cb)
            p_out, p_verdict = _check(pure_v, py.read_update(data, pb.reader_limits()), pb)
            assert c_out == p_out, (name, data.hex())
            assert cv.placements(cy.read_update(data)) == pv.placements(py.read_update(data))
            verdicts = (c_verdict, p_verdict)  # the facilitator's, the widest, last
        if verdicts[0] is not None and verdicts[1] is not None:
            try:
                room.apply_update(data)
            except Exception:
                continue  # yrs refused it: neither index learns it
            compiled_v.commit(verdicts[0])
            pure_v.commit(verdicts[1])
            accepted += 1
        for client in clients:
            assert compiled_v.end(client) == pure_v.end(client)
    assert accepted >= len(history), "the honest history was refused"
    assert compiled_v.size() == pure_v.size()
    for sv in (
        base.get_state(),
        rng.randbytes(12),
        b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x00",
    ):
        assert _outcome(cv.decode_state_vector, sv) == _outcome(pv.decode_state_vector, sv)


def _outcome(fn: Any, arg: Any) -> Any:
    try:
        return ("ok", fn(arg))
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))


def _copy_package(tmp_path: Path) -> Path:
    """This checkout's package, extensions and record included, in a directory of its own."""
    target = tmp_path / "server"
    shutil.copytree(ROOT / "server", target, ignore=shutil.ignore_patterns("__pycache__", "static"))
    return tmp_path


def _which(tmp_path: Path, *env: tuple[str, str]) -> list[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import server.vouch, server.yupdate\n"
            "from server import native\n"
            "print(native.status)\n"
            "print(native.compiled(), server.yupdate.__file__.endswith('.py'),"
            " server.vouch.__file__.endswith('.py'))",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path), **dict(env)},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.splitlines()


def test_a_source_edited_after_its_build_runs_as_source(tmp_path: Path) -> None:
    _require_compiled()
    root = _copy_package(tmp_path)
    assert _which(root) == ["compiled", "True False False"]
    assert _which(root, ("COCANVAS_PURE", "1")) == ["pure: COCANVAS_PURE=1", "False True True"]
    source = root / "server" / "yupdate.py"
    source.write_text(source.read_text() + "\n# edited after the build\n")
    status, flags = _which(root)
    assert status == "pure: yupdate.py changed since it was compiled; reinstall to compile it again"
    # Both run as source, vouch too: the group is all or nothing.
    assert flags == "False True True"


def test_no_record_means_pure(tmp_path: Path) -> None:
    """A build that failed (no compiler) writes no record; what it left behind is not loaded."""
    root = _copy_package(tmp_path)
    (root / "server" / "_native.json").unlink(missing_ok=True)
    status, flags = _which(root)
    assert status.startswith("pure: not compiled when installed")
    assert flags == "False True True"
