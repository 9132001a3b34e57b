"""Browser end-to-end fixtures: a built client, one real server, Debian's Chromium.

Nothing here mocks the server: the browser talks HTTP and WebSocket to ``server.cli serve``.
Playwright's own browser download does not work on these machines, so Chromium comes from
the distribution (``apt-get install chromium``) and is launched by path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import ROOT, ServerProcess, require

CLIENT = ROOT / "client"
DIST = CLIENT / "dist"
ARTIFACTS = ROOT / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = os.environ.get(
    "COCANVAS_SECRET", "a048e0df09aeb6e7ebf7eaf031ec1732cb27259731f9a880b1cbd9066be7011f"
)


def _newest_source_mtime() -> float:
    paths = [
        CLIENT / "index.html",
        CLIENT / "package.json",
        CLIENT / "package-lock.json",
        CLIENT / "vite.config.ts",
    ]
    paths += [p for p in (CLIENT / "src").rglob("*") if p.is_file()]
    return max(p.stat().st_mtime for p in paths if p.exists())


def _build_client() -> None:
    npm = shutil.which("npm")
    require(npm is not None, "npm is not installed: cannot build client/dist for the browser tests")
    assert npm is not None
    lock_marker = CLIENT / "node_modules" / ".package-lock.json"
    if (
        not lock_marker.exists()
        or lock_marker.stat().st_mtime < (CLIENT / "package-lock.json").stat().st_mtime
    ):
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CLIENT, check=True)
    subprocess.run([npm, "run", "build"], cwd=CLIENT, check=True)


@pytest.fixture(scope="session")
def client_dist() -> Path:
    index = DIST / "index.html"
    if not index.exists() or index.stat().st_mtime < _newest_source_mtime():
        _build_client()
    assert (DIST / "index.html").exists() and (DIST / "assets").is_dir()
    return DIST


def _chromium_path() -> str | None:
    explicit = os.environ.get("COCANVAS_CHROMIUM")
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = _chromium_path()
    require(
        path is not None, "Chromium not found (apt-get install chromium) — browser tests skipped"
    )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the test extra installs it
        require(False, "python package playwright is not installed (pip install -e '.[test]')")
        raise
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def web(tmp_path_factory: pytest.TempPathFactory, client_dist: Path) -> Iterator[ServerProcess]:
    """One server for the whole browser suite: each test makes its own canvases."""
    data = tmp_path_factory.mktemp("e2e") / "data"
    proc = ServerProcess(
        data, env={"COCANVAS_CLIENT_DIR": str(client_dist), "COCANVAS_SECRET": SECRET}
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    d = ARTIFACTS / "screenshots"
    d.mkdir(parents=True, exist_ok=True)
    return d


class Canvas:
    """A canvas made through the real API, with helpers to mint member tokens for it."""

    def __init__(self, server: ServerProcess, data: dict[str, Any]) -> None:
        self.server = server
        self.data = data
        self.id: str = data["id"]
        self.facilitator_token: str = data["facilitator_token"]
        self.orgs: dict[str, dict[str, Any]] = {o["name"]: o for o in data["orgs"]}

    def org_id(self, name: str) -> str:
        return str(self.orgs[name]["id"])

    def token(self, name: str, org: str, role: str = "editor") -> str:
        """An operator-issued token (``cocanvas token``), the same kind an invite redeem yields."""
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "server.cli",
                "token",
                self.id,
                "--role",
                role,
                "--name",
                name,
                "--org",
                self.org_id(org) if org else "",
                "--data-dir",
                str(self.server.data_dir),
            ],
            cwd=ROOT,
            env={**os.environ, "COCANVAS_SECRET": SECRET},
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()


@pytest.fixture
def make_canvas(web: ServerProcess) -> Any:
    def make(
        template: str = "business-model",
        orgs: tuple[str, ...] = ("Acme Corp", "Beta Labs"),
        title: str = "Workshop",
    ) -> Canvas:
        r = httpx.post(
            web.http + "/api/canvases",
            json={
                "title": title,
                "template": template,
                "orgs": [{"name": n} for n in orgs],
                "facilitator_name": "Fay Cilitator",
            },
        )
        assert r.status_code == 201, r.text
        return Canvas(web, r.json())

    return make


@pytest.fixture
def open_page(browser: Any, web: ServerProcess) -> Iterator[Any]:
    """Opens a canvas in a fresh browser context (its own localStorage), logged in with `token`."""
    contexts: list[Any] = []

    def open_(
        canvas: Canvas | None,
        token: str | None,
        path: str | None = None,
        width: int = 1600,
        height: int = 1000,
        base: str | None = None,
    ) -> Any:
        ctx = browser.new_context(viewport={"width": width, "height": height})
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        if canvas is not None and token is not None:
            ctx.add_init_script(
                f"window.localStorage.setItem('cocanvas:token:{canvas.id}', {token!r})"
            )
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.errors = errors  # type: ignore[attr-defined]
        target = path if path is not None else f"/c/{canvas.id}" if canvas else "/"
        page.goto((base or web.http) + target)
        return page

    yield open_
    for ctx in contexts:
        ctx.close()
