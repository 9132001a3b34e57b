"""HTTP errors against a real server: each status the README promises, in the shape it promises,
and every status a route can answer declared for that route in the OpenAPI document.

* a JSON body nested 100 000 deep, or not UTF-8, is a 422 (it was a 400);
* a body above the limit is a 413 before it is read (``Content-Length``) or as soon as it passes
  the limit (chunked): 60 MB were read in full before;
* a token from a revoked invite link is a 410 over HTTP too (it was a 403);
* every 422 is ``{"detail": [{"loc", "msg", "type"}]}`` (an unknown template or organization
  was a string);
* a 405 names every method of the path in ``Allow``; ``/favicon.ico`` is never a 404.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from server.api import (
    canvases,
    console,
    contribution,
    deps,
    drafts,
    exports,
    health,
    partners,
    versions,
    workshop,
)
from server.api.favicon import builtin_ico
from server.app import create_app
from server.config import Settings
from tests.partner_helpers import api, auth, make_invite, member, partner_canvas
from tests.support import ServerProcess

LIMIT = 1024 * 1024  # COCANVAS_MAX_BODY_BYTES's default
OPERATOR_KEY = "0e4f9d1c6b2a85f7e3d19c4b7a6f2e08"


# -- helpers ----------------------------------------------------------------------------------


def raw_exchange(
    server: ServerProcess, head: str, body: bytes = b"", timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    """Send a request head and the start of a body over a plain socket; read the answer.

    The body sent may be shorter than the head's ``Content-Length`` says: a server that waits for
    the rest never answers within ``timeout``.
    """
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(head.encode() + body)
        return read_response(s, timeout)


def read_response(s: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest


def assert_error_shape(status: int, body: Any) -> None:
    """422: a list of {loc, msg, type}; every other error: a sentence."""
    assert isinstance(body, dict) and set(body) == {"detail"}, body
    if status == 422:
        assert isinstance(body["detail"], list) and body["detail"], body
        for error in body["detail"]:
            assert set(error) == {"loc", "msg", "type"}, error
            assert isinstance(error["loc"], list) and isinstance(error["msg"], str), error
    else:
        assert isinstance(body["detail"], str), body


def post_json(server: ServerProcess, path: str, content: bytes, token: str | None = None) -> Any:
    headers = {"content-type": "application/json", **(auth(token) if token else {})}
    return httpx.post(server.http + path, content=content, headers=headers)


# -- 422 --------------------------------------------------------------------------------------


def test_deeply_nested_or_undecodable_json_is_a_422(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    deep = b"[" * 100_000 + b"]" * 100_000
    for path, token in (
        ("/api/canvases", None),
        (f"/api/canvases/{canvas['id']}/invites", canvas["facilitator_token"]),
        (f"/api/canvases/{canvas['id']}/orgs", canvas["facilitator_token"]),
        ("/api/invites/nope/redeem", None),
    ):
        for body in (deep, b'{"title": ' + b"[" * 5000 + b"]" * 5000 + b"}", b"\xff\xfe{", b"{"):
            r = post_json(server, path, body, token)
            assert r.status_code == 422, (path, body[:20], r.status_code, r.text[:200])
            assert_error_shape(422, r.json())
            assert r.json()["detail"][0]["loc"][0] == "body"
    r = post_json(server, "/api/canvases", deep)
    assert r.json()["detail"][0]["type"] == "json_invalid"
    assert "depth" in r.json()["detail"][0]["msg"]
    # Nested deep but parseable, inside a field: refused by the field, nothing echoed back.
    nested = b'{"title": ' + b"[" * 1000 + b"]" * 1000 + b', "template": "business-model"}'
    r = post_json(server, "/api/canvases", nested)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "title"], r.text
    assert len(r.content) < 1000


def test_every_422_is_a_list_of_field_errors(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    fac = canvas["facilitator_token"]
    invites = f"/api/canvases/{canvas['id']}/invites"

    unknown_template = api(server, "POST", "/api/canvases", json={"title": "t", "template": "x"})
    assert unknown_template.status_code == 422
    [error] = unknown_template.json()["detail"]
    assert error["loc"] == ["body", "template"] and "unknown template 'x'" in error["msg"]

    unknown_org = api(
        server,
        "POST",
        invites,
        fac,
        json={"org_id": "nobody", "role": "editor", "expires_in_s": 60},
    )
    assert unknown_org.status_code == 422
    assert unknown_org.json()["detail"] == [
        {
            "loc": ["body", "org_id"],
            "msg": "no organization 'nobody' on this canvas",
            "type": "value_error",
        }
    ]
    # What the schema refuses is refused, not coerced: "60" is no number, 0 no boolean.
    coerced = [
        ("/api/canvases", {"title": "t", "template": "business-model", "protect_notes": 0}),
        (invites, {"org_id": "alpha", "role": "editor", "expires_in_s": "60"}),
        (invites, {"org_id": "alpha", "role": "editor", "expires_in_s": 60, "max_uses": "2"}),
        (invites, {"org_id": "alpha", "role": "editor", "expires_in_s": 60, "max_uses": True}),
        ("/api/invites/nope/redeem", {"name": 7}),
    ]
    for path, body in coerced:
        r = api(server, "POST", path, fac, json=body)
        assert r.status_code == 422, (path, body, r.text)
        assert_error_shape(422, r.json())
    # JSON Schema's integer includes 2.0.
    ok = api(
        server,
        "POST",
        invites,
        fac,
        json={"org_id": "alpha", "role": "editor", "expires_in_s": 60, "max_uses": 2.0},
    )
    assert ok.status_code == 201 and ok.json()["max_uses"] == 2, ok.text
    schema = httpx.get(server.http + "/openapi.json").json()
    assert schema["paths"]["/api/canvases"]["post"]["responses"]["422"]["content"][
        "application/json"
    ]["schema"] == {"$ref": "#/components/schemas/ValidationErrorOut"}
    template = schema["components"]["schemas"]["CanvasIn"]["properties"]["template"]
    assert template["enum"] == ["business-model", "value-proposition", "partner-co-creation"]


# -- 413 --------------------------------------------------------------------------------------


def test_a_body_above_the_limit_is_refused_before_it_is_read(server: ServerProcess) -> None:
    size = 60 * 1000 * 1000
    for path in ("/api/canvases", "/api/invites/x/redeem", "/healthz"):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n"
        )
        started = time.monotonic()
        # 10 bytes of the 60 MB: the answer comes without the rest, so it was not waited for.
        status, headers, body = raw_exchange(server, head, b'{"title":"')
        assert status == 413, (path, status, body)
        assert time.monotonic() - started < 5
        assert headers.get("connection") == "close"
        assert body == b'{"detail":"request body larger than 1048576 bytes"}'
    # At the limit it is read (and refused for what it says, not for its size).
    at_limit = b'{"name": "' + b"a" * (LIMIT - 12) + b'"}'
    assert len(at_limit) == LIMIT
    r = post_json(server, "/api/invites/x/redeem", at_limit)
    assert r.status_code == 422, r.text[:200]
    r = post_json(server, "/api/invites/x/redeem", at_limit + b" ")
    assert r.status_code == 413


def test_a_chunked_body_is_cut_off_at_the_limit(server: ServerProcess) -> None:
    head = (
        "POST /api/canvases HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"a" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent = 0
    total = 60 * 1000 * 1000
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(head.encode())
        try:
            while sent < total:
                s.sendall(chunk)
                sent += len(piece)
                readable, _, _ = select.select([s], [], [], 0)
                if readable:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, headers, body = read_response(s, 5)
    assert status == 413, body
    assert b"larger than 1048576 bytes" in body
    # Answered long before 60 MB went out (socket buffers hold a few MB at most).
    assert sent < 20 * 1000 * 1000, sent


# -- 410 --------------------------------------------------------------------------------------


def test_a_revoked_links_token_is_410_over_http(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    inv = make_invite(server, canvas, "alpha", "facilitator")
    r = api(server, "POST", f"/api/invites/{inv['id']}/redeem", json={"name": "Rex"})
    token = r.json()["token"]
    path = f"/api/canvases/{canvas['id']}"
    assert api(server, "GET", path, token).status_code == 200
    revoked = api(
        server, "DELETE", f"{path}/invites/{inv['id']}", canvas["facilitator_token"]
    ).json()
    assert revoked["revoked"] is True
    for method, door in (("GET", path), ("GET", f"{path}/participants"), ("DELETE", path)):
        r = api(server, method, door, token)
        assert (r.status_code, r.json()) == (410, {"detail": "invite link revoked"}), door
    # Redeeming the link again says the same.
    r = api(server, "POST", f"/api/invites/{inv['id']}/redeem", json={"name": "Rex"})
    assert (r.status_code, r.json()["detail"]) == (410, "invite link revoked")
    assert api(server, "GET", path, canvas["facilitator_token"]).status_code == 200


# -- 405, favicon -----------------------------------------------------------------------------


def test_405_names_every_method_of_the_path(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    for path, methods in (
        ("/api/canvases", "GET, POST"),
        (f"/api/canvases/{canvas['id']}", "GET, DELETE"),
        (f"/api/canvases/{canvas['id']}/invites", "GET, POST"),
        ("/api/invites/x/redeem", "POST"),
    ):
        r = httpx.request("PUT", server.http + path)
        assert (r.status_code, r.headers["allow"]) == (405, methods), path


def _client_dir(tmp_path: Path, icon: tuple[str, bytes] | None) -> Path:
    client = tmp_path / "client"
    client.mkdir(parents=True)
    (client / "index.html").write_text("<!doctype html><title>CoCanvas</title>")
    if icon is not None:
        (client / icon[0]).write_bytes(icon[1])
    return client


def test_favicon_is_the_clients_icon_or_a_builtin_one(tmp_path: Path) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"/>'
    cases = [
        (None, "image/x-icon", builtin_ico()),
        (("favicon.svg", svg), "image/svg+xml", svg),
        (
            ("favicon.ico", builtin_ico()[:-1] + b"\x01"),
            "image/x-icon",
            builtin_ico()[:-1] + b"\x01",
        ),
    ]
    for n, (icon, media_type, content) in enumerate(cases):
        client = _client_dir(tmp_path / str(n), icon)
        proc = ServerProcess(tmp_path / str(n) / "data", {"COCANVAS_CLIENT_DIR": str(client)})
        proc.start()
        try:
            r = httpx.get(proc.http + "/favicon.ico")
            assert r.status_code == 200
            assert r.headers["content-type"].split(";")[0] == media_type
            assert r.content == content
            assert "max-age" in r.headers["cache-control"]
        finally:
            proc.stop()
    ico = builtin_ico()
    assert ico[:4] == b"\x00\x00\x01\x00" and len(ico) < 8192  # an ICO with one image


# -- every status declared --------------------------------------------------------------------


def _schema() -> dict[str, Any]:
    return create_app(
        Settings(secret="8c0d5e2f7a9b14c3e6d8f0a2b4c6e8d1f3a5b7c9e1d3f5a7b9c1e3d5f7a9b1c3")
    ).openapi()


def _calls(dependant: Any) -> set[Any]:
    out = {dependant.call}
    for sub in dependant.dependencies:
        out |= _calls(sub)
    return out


def _expected_statuses(route: Any) -> set[int]:
    """What a route can answer, from what it depends on and takes."""
    calls = _calls(route.dependant)
    expected: set[int] = set()
    if deps.canvas_caller in calls:  # token: missing/forged, another canvas, revoked link
        expected |= {401, 403, 410}
    if deps.facilitator in calls:
        expected |= {403}
    if deps.operator_if_configured in calls:
        expected |= {401}
    if "{canvas_id}" in route.path or "{invite_id}" in route.path:
        expected |= {404}
    if route.dependant.path_params or route.dependant.query_params or route.body_field:
        expected |= {422}
    if route.body_field is not None:
        expected |= {413, 422}
    if "POST" in route.methods and partners._FLOOD_PATHS.match(
        route.path.replace("{invite_id}", "x")
    ):
        expected |= {429}
    return expected


def test_every_route_declares_the_statuses_it_can_answer() -> None:
    schema = _schema()
    routes = [
        *canvases.router.routes,
        *partners.router.routes,
        *health.router.routes,
        *exports.router.routes,
        *versions.router.routes,
        *contribution.router.routes,
        *drafts.router.routes,
        *workshop.router.routes,
        *console.router.routes,
    ]
    documented = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    seen = set()
    for route in routes:
        for method in route.methods:
            op = schema["paths"][route.path][method.lower()]
            seen.add((method, route.path))
            declared = {int(s) for s in op["responses"]}
            missing = _expected_statuses(route) - declared
            assert not missing, f"{method} {route.path} does not declare {sorted(missing)}"
            for status, spec in op["responses"].items():
                if not 400 <= int(status) < 500:
                    continue
                ref = spec["content"]["application/json"]["schema"]["$ref"]
                want = "ValidationErrorOut" if status == "422" else "ErrorOut"
                assert ref == f"#/components/schemas/{want}", (method, route.path, status)
    assert seen == documented
    assert "HTTPValidationError" not in schema["components"]["schemas"]  # one 422 shape only
    metrics = schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    assert set(schema["paths"]["/readyz"]["get"]["responses"]) == {"200", "503"}


@pytest.fixture(scope="module")
def operator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        Path(tmp_path_factory.mktemp("statuses")) / "data",
        env={"COCANVAS_ADMIN_TOKEN": OPERATOR_KEY, "COCANVAS_RATE_CONNECTIONS_PER_S": "100000"},
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


VALID_BODIES = {
    "/api/canvases": {"title": "t", "template": "partner-co-creation", "orgs": [{"name": "Alpha"}]},
    "/api/canvases/{canvas_id}/orgs": {"name": "Gamma"},
    "/api/canvases/{canvas_id}/invites": {"org_id": "alpha", "role": "editor", "expires_in_s": 60},
    "/api/invites/{invite_id}/redeem": {"name": "Ann"},
    "/api/canvases/{canvas_id}/rounds": {"dots": 2},
    "/api/canvases/{canvas_id}/rounds/{round_id}/ballot": {"dots": {}},
    "/api/canvases/{canvas_id}/timers/{timer_id}": {"action": "start", "seconds": 60},
    "/api/canvases/{canvas_id}/gather": {"x": 1, "y": 2},
    "/api/canvases/{canvas_id}/spotlight": {"block": None},
    "/api/canvases/{canvas_id}/freeze": {"frozen": False},
    "/api/canvases/{canvas_id}/settings": {"viewer_comments": True},
    "/api/canvases/{canvas_id}/locks": {"locked": False},
    "/api/canvases/{canvas_id}/participants/{user_id}/role": {"role": "viewer"},
    "/api/canvases/{canvas_id}/versions": {"name": "after round 1"},
    "/api/canvases/{canvas_id}/versions/{version_id}/copy": {"title": "Copy"},
    "/api/canvases/{canvas_id}/drafts/settings": {"self_publish": True},
    "/api/canvases/{canvas_id}/drafts/reveal": {},
}


def test_every_status_a_route_answers_is_declared(operator_server: ServerProcess) -> None:
    """Every route × every kind of caller × every kind of body, on a live and a deleted canvas:
    each status answered is one the route declares, and the battery reaches the interesting ones."""
    srv = operator_server
    schema = httpx.get(srv.http + "/openapi.json").json()

    def new_canvas() -> dict[str, Any]:
        r = api(srv, "POST", "/api/canvases", OPERATOR_KEY, json=VALID_BODIES["/api/canvases"])
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def fresh_invite(canvas: dict[str, Any]) -> str:
        return make_invite(srv, canvas, "alpha", "editor")["id"]

    live, other, gone = new_canvas(), new_canvas(), new_canvas()
    editor = member(srv, live, "alpha", "editor", "Ed").token
    revoked_invite = make_invite(srv, live, "alpha", "facilitator")
    revoked = api(srv, "POST", f"/api/invites/{revoked_invite['id']}/redeem", json={"name": "Rex"})
    api(srv, "DELETE", f"/api/canvases/{live['id']}/invites/{revoked_invite['id']}", OPERATOR_KEY)
    assert api(srv, "DELETE", f"/api/canvases/{gone['id']}", OPERATOR_KEY).status_code == 204
    credentials = {
        "none": None,
        "garbage": "not-a-jwt",
        "another canvas": other["facilitator_token"],
        "editor": editor,
        "revoked link": revoked.json()["token"],
        "facilitator": "<facilitator of the canvas in the path>",
        "operator": OPERATOR_KEY,
    }
    bodies: dict[str, bytes | None] = {
        "valid": b"",
        "wrong fields": b'{"nothing": 1}',
        "not json": b"\xff{",
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "too large": None,  # sent over a raw socket, Content-Length above the limit
    }
    operations = sorted(
        ((m.upper(), p) for p, ops in schema["paths"].items() for m in ops),
        key=lambda op: op == ("DELETE", "/api/canvases/{canvas_id}"),  # it deletes: last
    )
    observed: dict[tuple[str, str], set[int]] = {}
    undeclared: list[str] = []
    for method, template in operations:
        op = schema["paths"][template][method.lower()]
        declared = {int(s) for s in op["responses"]}
        body_kinds = list(bodies) if "requestBody" in op else [None]
        for target in ("live", "deleted"):
            canvas = live if target == "live" else gone
            for cred, token in credentials.items():
                if token and token.startswith("<"):
                    token = canvas["facilitator_token"]
                for kind in body_kinds:
                    invite = "no-such-invite"
                    if target == "live" and "{invite_id}" in template:
                        invite = fresh_invite(live)
                    path = template.format(
                        canvas_id=canvas["id"],
                        invite_id=invite,
                        round_id="no-such-round",
                        timer_id="t",
                        user_id="no-such-user",
                        version_id=1,
                    )
                    if kind == "too large":
                        head = (
                            f"{method} {path} HTTP/1.1\r\nHost: x\r\n"
                            f"Content-Type: application/json\r\nContent-Length: {LIMIT + 1}\r\n"
                            + (f"Authorization: Bearer {token}\r\n" if token else "")
                            + "\r\n"
                        )
                        status, _, raw = raw_exchange(srv, head, b"{")
                        payload = orjson.loads(raw)
                    else:
                        content = bodies[kind] if kind else None
                        if kind == "valid":
                            content = orjson.dumps(VALID_BODIES[template])
                        r = httpx.request(
                            method,
                            srv.http + path,
                            content=content,
                            headers={
                                **({"content-type": "application/json"} if content else {}),
                                **(auth(token) if token else {}),
                            },
                        )
                        status = r.status_code
                        payload = r.json() if 400 <= status < 500 else None
                    observed.setdefault((method, template), set()).add(status)
                    if status not in declared:
                        undeclared.append(f"{method} {template} {target}/{cred}/{kind}: {status}")
                    if 400 <= status < 500 and status != 405:
                        assert_error_shape(status, payload)
    assert undeclared == []
    # Not vacuous: the battery reached what each kind of route can answer.
    for (method, template), statuses in observed.items():
        op = schema["paths"][template][method.lower()]
        wanted = set()
        if template.startswith("/api/canvases/{canvas_id}"):
            wanted |= {401, 403, 404, 410}
        if template == "/api/canvases":
            wanted |= {401}  # the operator key
        if "{invite_id}" in template:
            wanted |= {404}
        if "requestBody" in op:
            wanted |= {413, 422}
        assert wanted <= statuses, (method, template, sorted(wanted - statuses))
