"""Whether the update reader and the validator run compiled (mypyc) or as their pure source.

setup.py compiles ``server/yupdate.py`` and ``server/vouch.py`` into one group of extension
modules when it can, and records the digests of the sources it compiled in ``_native.json``.
Python imports an extension before a source file of the same name, so an editable install
whose source was edited after its build would otherwise run the old, compiled code: a fix to the
reader that silently does not apply. ``install()`` (called when the package is imported, before
either module is) compares the record with the sources and, unless every one matches, makes both
modules load from source. ``COCANVAS_PURE=1`` asks for the pure source regardless (benchmarks,
coverage-guided fuzzing, which needs Python bytecode to trace).

The group is all or nothing: compiled vouch calls compiled yupdate directly, so a changed
yupdate.py must not run beside the compiled vouch either.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
# Keep in step with setup.py's SOURCES.
COMPILED = ("server.yupdate", "server.vouch")
RECORD = HERE / "_native.json"

# "compiled", or why the pure source runs; set by install().
status = "not checked"


def _pure_reason() -> str | None:
    """None when the compiled group may run, otherwise why it may not."""
    if os.environ.get("COCANVAS_PURE") == "1":
        return "COCANVAS_PURE=1"
    try:
        record = json.loads(RECORD.read_bytes())
        sources: dict[str, str] = record["sources"]
    except FileNotFoundError:
        return "not compiled when installed (no mypyc or no C compiler; see setup.py)"
    except (ValueError, KeyError, TypeError) as exc:
        return f"{RECORD.name} is unreadable ({exc!r})"
    for name in COMPILED:
        path = HERE / f"{name.rpartition('.')[2]}.py"
        want = sources.get(path.name)
        if want is None:
            return f"{path.name} was not compiled"
        if hashlib.sha256(path.read_bytes()).hexdigest() != want:
            return f"{path.name} changed since it was compiled; reinstall to compile it again"
    for name in COMPILED:
        spec = importlib.machinery.PathFinder.find_spec(name.rpartition(".")[2], [str(HERE)])
        if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            return f"the extension of {name} is missing"
    return None


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the group's modules as source files, ahead of the extensions beside them."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED:
            return None
        source = HERE / f"{fullname.rpartition('.')[2]}.py"
        loader = importlib.machinery.SourceFileLoader(fullname, str(source))
        return importlib.util.spec_from_file_location(fullname, source, loader=loader)


def install() -> str:
    """Decide, once, before either module is imported; returns (and sets) ``status``."""
    global status
    if status != "not checked":
        return status
    if any(name in sys.modules for name in COMPILED):
        raise RuntimeError("server.native.install() must run before yupdate or vouch is imported")
    reason = _pure_reason()
    if reason is not None:
        sys.meta_path.insert(0, _SourceFinder())
    status = "compiled" if reason is None else f"pure: {reason}"
    return status


def compiled() -> bool:
    """Whether the reader and the validator run compiled in this process."""
    module = sys.modules.get(COMPILED[0])
    return module is not None and not (module.__file__ or "").endswith(".py")
