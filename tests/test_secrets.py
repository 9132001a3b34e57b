"""The token-signing secret: a placeholder or a guessable one stops the node at startup, with a
message naming COCANVAS_SECRET; a generated one is always accepted, and its file is this user's
only from its first byte on.

Before: the Kubernetes manifest's placeholder (``change-me-to-64-random-hex-chars``, exactly 32
characters) signed tokens, so anyone who had read the manifest could forge a facilitator's.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from server.auth import (
    WeakSecret,
    check_secret,
    generate_secret,
    load_or_create_secret,
    secret_bits,
    secret_weakness,
)
from tests.partner_helpers import auth
from tests.support import ROOT, ServerProcess

OLD_K8S_PLACEHOLDER = "change-me-to-64-random-hex-chars"

WEAK = {
    "the old k8s placeholder": OLD_K8S_PLACEHOLDER,
    "old test secret": "test-secret-" + "x" * 32,
    "old multinode secret": "multinode-secret-" + "y" * 32,
    "old bench secret": "bench-secret-" + "x" * 32,
    "changeme": "CHANGEME_" + secrets.token_hex(20),
    "example": "example-" + secrets.token_hex(20),
    "placeholder": secrets.token_hex(16) + "-placeholder-" + secrets.token_hex(8),
    "one character": "x" * 64,
    "a run": secrets.token_hex(12) + "0" * 12 + secrets.token_hex(12),
    "a repeated pattern": "a1b2c3d4e5f6g7h8" * 4,
    "short": secrets.token_hex(15),  # 30 characters
    "few symbols": "".join(secrets.choice("abc") for _ in range(64)),
    "binary digits": "".join(secrets.choice("01") for _ in range(100)),  # at most 100 bits
}


@pytest.mark.parametrize("name", list(WEAK))
def test_placeholders_and_guessable_secrets_are_refused(name: str) -> None:
    secret = WEAK[name]
    assert secret_weakness(secret) is not None, name
    with pytest.raises(WeakSecret) as refused:
        check_secret(secret)
    message = str(refused.value)
    assert "COCANVAS_SECRET" in message and "openssl rand -hex 32" in message
    assert secret not in message  # a near-miss real secret is not written to the logs


def test_random_secrets_are_accepted() -> None:
    for _ in range(2000):
        for secret in (secrets.token_hex(32), secrets.token_urlsafe(32), generate_secret()):
            assert secret_weakness(secret) is None, secret
    assert secret_bits("ab" * 20) == 40.0
    assert secret_bits(secrets.token_hex(32)) > 200
    assert len(generate_secret()) == 64


def test_an_empty_or_blank_configured_secret_is_refused(tmp_path: Path) -> None:
    for value in ("", "   "):
        with pytest.raises(WeakSecret, match="COCANVAS_SECRET is set but empty"):
            load_or_create_secret(value, tmp_path)
    assert not (tmp_path / "secret").exists()  # no per-node secret generated instead


def test_the_generated_secret_file_is_private_from_its_creation(tmp_path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask
    try:
        secret = load_or_create_secret(None, tmp_path / "data")
    finally:
        os.umask(old)
    path = tmp_path / "data" / "secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == secret and secret_weakness(secret) is None
    assert load_or_create_secret(None, tmp_path / "data") == secret  # kept, not regenerated


def test_an_existing_secret_file_is_never_overwritten(tmp_path: Path) -> None:
    kept = secrets.token_hex(32)
    (tmp_path / "secret").write_text(kept + "\n")
    assert load_or_create_secret(None, tmp_path) == kept
    assert (tmp_path / "secret").read_text() == kept + "\n"
    # A weak secret left in the file is refused too, naming the file and COCANVAS_SECRET.
    (tmp_path / "secret").write_text("x" * 40)
    with pytest.raises(WeakSecret, match=r"the secret in .*secret \(COCANVAS_SECRET unset\)"):
        load_or_create_secret(None, tmp_path)


def _race(data: Path, n: int) -> list[str]:
    results: list[str] = []
    start = threading.Barrier(n)

    def load() -> None:
        start.wait()
        results.append(load_or_create_secret(None, data))

    threads = [threading.Thread(target=load) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_nodes_starting_together_on_a_fresh_directory_agree(tmp_path: Path) -> None:
    for attempt in range(20):
        results = _race(tmp_path / str(attempt), 8)
        assert len(results) == 8 and len(set(results)) == 1, attempt
        assert (tmp_path / str(attempt) / "secret").read_text() == results[0]


# -- against a real server ------------------------------------------------------------------


def _refused(tmp_path: Path, secret: str) -> str:
    proc = ServerProcess(tmp_path / "data", env={"COCANVAS_SECRET": secret})
    with pytest.raises(RuntimeError, match="server exited early") as exited:
        proc.start()
    assert proc.proc is not None and proc.proc.wait(10) != 0
    proc.proc = None
    with pytest.raises(httpx.HTTPError):
        httpx.get(proc.http + "/healthz", timeout=0.5)
    return str(exited.value)


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        (OLD_K8S_PLACEHOLDER, "looks like a placeholder"),
        ("", "set but empty"),
        ("z" * 48, "repeats one character"),
    ],
)
def test_the_server_refuses_to_start_with_a_placeholder(
    tmp_path: Path, secret: str, why: str
) -> None:
    log = _refused(tmp_path, secret)
    assert "refusing to start: COCANVAS_SECRET" in log and why in log
    assert "openssl rand -hex 32" in log
    if secret:
        assert secret not in log


def test_the_k8s_manifest_has_no_usable_placeholder(tmp_path: Path) -> None:
    manifest = ROOT / "deploy" / "k8s" / "secret.yaml"
    value = yaml.safe_load(manifest.read_text())["stringData"]["COCANVAS_SECRET"]
    assert secret_weakness(value) is not None or value == ""
    assert "openssl rand -hex 32" in manifest.read_text()
    assert "refusing to start" in _refused(tmp_path, value)


def test_a_generated_secret_signs_what_the_cli_issues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No COCANVAS_SECRET at all: the node generates one (0600), and `cocanvas token` on the
    same data directory signs tokens that node accepts."""
    real_popen = subprocess.Popen

    def without_secret(*args: Any, env: dict[str, str], **kw: Any) -> Any:
        return real_popen(*args, env={k: v for k, v in env.items() if k != "COCANVAS_SECRET"}, **kw)

    monkeypatch.setattr(subprocess, "Popen", without_secret)
    proc = ServerProcess(tmp_path / "data").start()
    try:
        monkeypatch.setattr(subprocess, "Popen", real_popen)
        path = tmp_path / "data" / "secret"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert secret_weakness(path.read_text()) is None
        canvas = proc.create_canvas()
        env = {k: v for k, v in os.environ.items() if k != "COCANVAS_SECRET"}
        issued = subprocess.run(
            [
                sys.executable,
                "-m",
                "server.cli",
                "token",
                canvas["id"],
                "--data-dir",
                str(path.parent),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        r = httpx.get(f"{proc.http}/api/canvases/{canvas['id']}", headers=auth(issued))
        assert r.status_code == 200, r.text
    finally:
        proc.stop()


def test_no_test_script_or_compose_file_uses_a_weak_secret() -> None:
    """The secrets written into the suite, the scripts and the compose file all pass the check
    (a weak one would stop those servers at startup)."""
    found: list[tuple[str, str]] = []
    patterns = [
        re.compile(r'SECRET\s*=\s*"([^"]+)"'),
        re.compile(r'get\(\s*"COCANVAS_SECRET",\s*"([^"]+)"'),  # env.get(name, default)
        re.compile(r'secret="([^"]+)"'),
        re.compile(r"COCANVAS_SECRET=\$\{COCANVAS_SECRET:-([^}]+)\}"),
        re.compile(r"COCANVAS_SECRET=([0-9A-Za-z_\-]{8,})\s*$", re.M),
    ]
    listed = subprocess.run(
        ["git", "ls-files", "tests", "scripts", "docker-compose.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    for name in listed.stdout.split():
        path = ROOT / name
        if "node_modules" in path.parts or path.name == "test_secrets.py" or not path.is_file():
            continue
        if path.suffix not in (".py", ".sh", ".yml", ".yaml", ""):
            continue
        text = path.read_text(errors="replace")
        for pattern in patterns:
            for value in pattern.findall(text):
                found.append((str(path.relative_to(ROOT)), value))
    assert found, "the scan found nothing: its patterns are stale"
    # A value made at run time ("$(openssl rand -hex 32)") is not a written-in secret.
    weak = [(f, v) for f, v in found if "$(" not in v and secret_weakness(v) is not None]
    assert weak == []


@pytest.mark.parametrize("token", ["change-me", "short", "my-placeholder-operator-key"])
def test_a_placeholder_or_short_operator_key_is_refused(token: str) -> None:
    from server.auth import WeakSecret, check_admin_token

    with pytest.raises(WeakSecret, match="COCANVAS_ADMIN_TOKEN"):
        check_admin_token(token)
    assert check_admin_token("0e4f9d1c6b2a85f7e3d19c4b7a6f2e08")
