"""Runs the web client's own unit tests (Vitest) so `pytest` alone covers the client too."""

from __future__ import annotations

import shutil
import subprocess

from tests.support import require

from .conftest import CLIENT


def test_client_unit_tests_pass():
    npm = shutil.which("npm")
    require(npm is not None, "npm is not installed: client unit tests skipped")
    assert npm is not None
    if not (CLIENT / "node_modules" / ".bin" / "vitest").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CLIENT, check=True)
    run = subprocess.run(
        [npm, "test", "--silent"], cwd=CLIENT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
