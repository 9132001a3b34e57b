"""Build hook: compile the update reader and the validator with mypyc, when this machine can.

Every frame a client sends is read by ``server/yupdate.py`` and judged by ``server/vouch.py``
before it is applied: pure Python, byte by byte, on the event loop. Compiled with mypyc (the same
source, no annotations added) they run about four times faster (docs/performance.md). Everything
else is in pyproject.toml; this file exists only because setuptools takes extension modules from
``setup()``.

Compiling is optional, never a reason for an install to fail: without mypyc or a C compiler the
package installs pure and runs the same code, a little slower. ``COCANVAS_COMPILE=0`` skips it.
A successful build writes ``server/_native.json`` beside the extensions, naming the sources it
compiled and their digests; ``server/native.py`` runs the pure source of the group when that
record is missing or a source no longer matches it (an editable install edited after its build).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
# One group, one shared library (server/_native__mypyc.*.so): vouch calls yupdate natively.
# Keep in step with server/native.py's COMPILED.
SOURCES = ("server/yupdate.py", "server/vouch.py")
GROUP = "server._native"
RECORD = "_native.json"


def _warn(message: str) -> None:
    print(f"cocanvas: {message}; installing the pure-Python modules", file=sys.stderr)


def _extensions() -> list:  # type: ignore[type-arg]
    if os.environ.get("COCANVAS_COMPILE", "1") == "0":
        _warn("COCANVAS_COMPILE=0")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        _warn(f"mypyc is not available ({exc})")
        return []
    try:
        # opt_level 3 is mypyc's default; said here so a change of default does not go unseen.
        return list(mypycify(list(SOURCES), opt_level="3", group_name=GROUP))
    except BaseException as exc:  # mypyc reports type errors with SystemExit
        _warn(f"mypyc could not translate {', '.join(SOURCES)} ({exc!r})")
        return []


class OptionalBuildExt(build_ext):
    """Build the group, or nothing of it: a failure (no compiler, no headers) leaves the pure
    modules in charge instead of failing the install, and no record, so nothing half-built is
    ever loaded."""

    def run(self) -> None:
        if not self.extensions:
            return
        # Every extension of the group lands in the package's directory (the source tree for
        # an editable install, the build directory for a wheel).
        package_dir = Path(self.get_ext_fullpath(self.extensions[0].name)).parent
        (package_dir / RECORD).unlink(missing_ok=True)
        try:
            super().run()
        except Exception as exc:  # CompileError, LinkError, a missing compiler
            _warn(f"compiling failed ({exc})")
            for ext in self.extensions:
                Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
            return
        record = {
            "group": GROUP,
            "sources": {
                Path(src).name: hashlib.sha256((ROOT / src).read_bytes()).hexdigest()
                for src in SOURCES
            },
        }
        (package_dir / RECORD).write_text(json.dumps(record, indent=1) + "\n")


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
