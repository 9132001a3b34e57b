"""Every WebSocket close code the server can send is named in the README and in the OpenAPI
schema (a client developer reads one or the other, and both must be complete)."""

from __future__ import annotations

import re

from server import closecodes
from server.app import create_app
from server.config import Settings
from tests.support import ROOT


def _sent_codes() -> set[int]:
    return {v for k, v in vars(closecodes).items() if k.isupper() and isinstance(v, int)}


def test_every_close_code_has_a_meaning() -> None:
    assert _sent_codes() == set(closecodes.MEANINGS)


def test_every_close_code_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## WebSocket close codes", 1)[1].split("\n## ", 1)[0]
    listed = {int(m) for m in re.findall(r"^\| (\d{4}) \|", table, flags=re.M)}
    assert listed == _sent_codes()


def test_every_close_code_is_in_the_openapi_schema() -> None:
    app = create_app(
        Settings(secret="f37b231ebab4e1b5c8a7a17ba59ab746d44d53a0186f0cb2592a0d189de00d02")
    )
    description = app.openapi()["info"]["description"]
    for code in _sent_codes():
        assert f"| {code} |" in description
