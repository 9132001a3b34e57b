"""Exports and versions through the real doors: a server process, tokens, real sockets.

Restore in place while two partners keep editing over real y-websocket connections: everyone
converges on the restored content plus what was written after it, and the restore survives
the server being killed. The rules themselves are tested in-process (tests/test_versions.py,
tests/test_exports.py); here, one or two tests per door.
"""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import httpx
import orjson
from PIL import Image

from tests.partner_helpers import api, auth, canvas_json, connect, member, partner_canvas
from tests.support import ServerProcess, YClient

ROOTS = ("meta", "blocks", "notes", "orgs")


def content(server: ServerProcess, canvas: dict[str, Any]) -> dict[str, Any]:
    return {k: canvas_json(server, canvas)[k] for k in ROOTS}


def doc_content(client: YClient) -> dict[str, Any]:
    from server.canvas.export import doc_to_json

    return {k: v for k, v in doc_to_json(client.doc).items() if k in ROOTS}


async def test_every_export_downloads_with_any_readers_token(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    fac = canvas["facilitator_token"]
    ann = member(server, canvas, "alpha", "editor", "Ann")
    vic = member(server, canvas, "beta", "viewer", "Vic")
    client = await connect(server, canvas, ann.token, "ann")
    client.add_note("n1", "Fleet charging app", block="alpha:products-services")
    client.add_note("n2", "Chargers are broken", block="pains")
    await client.wait_for(lambda: len(content(server, canvas)["notes"]) == 2)
    await client.close()
    cid = canvas["id"]
    types = {
        "json": "application/json",
        "md": "text/markdown",
        "csv": "text/csv",
        "svg": "image/svg+xml",
        "png": "image/png",
        "pdf": "application/pdf",
    }
    for fmt, media in types.items():
        r = api(server, "GET", f"/api/canvases/{cid}/export.{fmt}", vic.token)
        assert r.status_code == 200, (fmt, r.text[:200])
        assert r.headers["content-type"].split(";")[0] == media
        assert r.headers["content-disposition"] == f'attachment; filename="Partners.{fmt}"'
        assert api(server, "GET", f"/api/canvases/{cid}/export.{fmt}").status_code == 401
        if fmt == "json":
            body = r.json()
            assert {k: body[k] for k in ROOTS} == content(server, canvas)
            assert body["canvas"]["id"] == cid
        elif fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
            assert sorted((x["note_id"], x["organization"], x["author"]) for x in rows) == [
                ("n1", "Alpha", "Ann"),
                ("n2", "Alpha", "Ann"),
            ]
        elif fmt == "png":
            assert Image.open(io.BytesIO(r.content)).size[0] == 1600
        elif fmt == "pdf":
            assert r.content.startswith(b"%PDF-")
    # The facilitator's export is the same file as the viewer's (nothing private on the canvas).
    same = api(server, "GET", f"/api/canvases/{cid}/export.md", fac)
    assert same.content == api(server, "GET", f"/api/canvases/{cid}/export.md", vic.token).content
    assert api(server, "GET", f"/api/canvases/{cid}/export.md?version=99", fac).status_code == 404
    assert api(server, "GET", f"/api/canvases/{cid}/export.md?version=x", fac).status_code == 422
    assert api(server, "GET", f"/api/canvases/{cid}/export.docx", fac).status_code == 404


async def test_version_doors_follow_the_roles(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    cid, fac = canvas["id"], canvas["facilitator_token"]
    ann = member(server, canvas, "alpha", "editor", "Ann")
    vic = member(server, canvas, "beta", "viewer", "Vic")
    path = f"/api/canvases/{cid}/versions"
    assert api(server, "POST", path, ann.token, json={"name": "x"}).status_code == 403
    assert api(server, "POST", path, vic.token, json={"name": "x"}).status_code == 403
    assert api(server, "POST", path, fac, json={"name": ""}).status_code == 422
    r = api(server, "POST", path, fac, json={"name": "after round 1"})
    assert r.status_code == 201, r.text
    v = r.json()
    assert (v["name"], v["automatic"], v["created_by"]) == (
        "after round 1",
        False,
        f"u_facilitator_{cid}",
    )
    assert [x["id"] for x in api(server, "GET", path, vic.token).json()] == [v["id"]]
    read = api(server, "GET", f"{path}/{v['id']}", vic.token).json()
    assert {k: read[k] for k in ROOTS} == content(server, canvas)
    for who in (ann.token, vic.token):
        assert api(server, "POST", f"{path}/{v['id']}/restore", who).status_code == 403
        assert api(server, "DELETE", f"{path}/{v['id']}", who).status_code == 403
        assert api(server, "POST", f"{path}/{v['id']}/copy", who).status_code == 403
    assert api(server, "GET", f"{path}/{v['id']}/diff", vic.token).json()["orgs"] == []
    assert api(server, "GET", f"{path}/{2**63}", fac).status_code == 422
    assert api(server, "POST", f"{path}/12345/restore", fac).status_code == 404
    other = partner_canvas(server)
    assert (
        api(
            server,
            "GET",
            f"/api/canvases/{other['id']}/versions/{v['id']}",
            other["facilitator_token"],
        ).status_code
        == 404
    )

    copy = api(server, "POST", f"{path}/{v['id']}/copy", fac, json={"title": "Round 1 copy"})
    assert copy.status_code == 201, copy.text
    new = copy.json()
    assert new["id"] != cid and new["title"] == "Round 1 copy"
    copied = canvas_json(server, {"id": new["id"], "facilitator_token": new["facilitator_token"]})
    assert copied["meta"]["title"] == "Round 1 copy"
    assert {k: copied[k] for k in ("blocks", "notes", "orgs")} == {
        k: read[k] for k in ("blocks", "notes", "orgs")
    }
    assert api(server, "DELETE", f"{path}/{v['id']}", fac).status_code == 204
    assert api(server, "GET", path, fac).json() == []


async def test_restore_in_place_while_two_partners_keep_editing(server: ServerProcess) -> None:
    canvas = partner_canvas(server)
    cid, fac = canvas["id"], canvas["facilitator_token"]
    ann = await connect(
        server, canvas, member(server, canvas, "alpha", "editor", "Ann").token, "ann"
    )
    bob = await connect(
        server, canvas, member(server, canvas, "beta", "editor", "Bob").token, "bob"
    )
    ann.add_note("a1", "charge at night", block="customer-jobs")
    bob.add_note("b1", "broken chargers", block="pains")
    await ann.wait_for(lambda: {"a1", "b1"} <= set(ann.notes.keys()))
    await bob.wait_for(lambda: {"a1", "b1"} <= set(bob.notes.keys()))
    r = api(server, "POST", f"/api/canvases/{cid}/versions", fac, json={"name": "after round 1"})
    assert r.status_code == 201, r.text
    v1 = r.json()["id"]
    version = {k: canvas_json(server, canvas)[k] for k in ROOTS}

    # Round 2: Ann rewrites her note, Bob adds one.
    text = ann.notes["a1"]["text"]
    with ann.doc.transaction():
        text.insert(len(str(text)), " (cheaply)")
    bob.add_note("b2", "queueing at chargers", block="pains")
    await ann.wait_for(lambda: "b2" in ann.notes)
    await bob.wait_for(lambda: "(cheaply)" in str(bob.notes["a1"]["text"]))

    restored = asyncio.Event()

    async def keep_editing(client: YClient, prefix: str) -> list[str]:
        """Add notes until this client has seen the restore; each after a round trip."""
        written = []
        i = 0
        while "b2" in client.notes:  # the restore removes b2
            nid = f"{prefix}{i}"
            client.add_note(nid, f"{prefix} typing {i}", block="gains")
            written.append(nid)
            i += 1
            await (await client.ws.ping())  # paced by the server's answer, not by a clock
            if i > 2000:
                raise AssertionError(f"{client.name} never saw the restore")
        restored.set()
        return written

    async def restore() -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=server.http) as http:
            r = await http.post(f"/api/canvases/{cid}/versions/{v1}/restore", headers=auth(fac))
            assert r.status_code == 200, r.text
            return r.json()  # type: ignore[no-any-return]

    typed_a, typed_b, answer = await asyncio.gather(
        keep_editing(ann, "ann"), keep_editing(bob, "bob"), restore()
    )
    assert answer["changed"] is True and answer["backup"]["automatic"] is True
    assert typed_a and typed_b

    # After the restore, both go on editing.
    ann.add_note("after-ann", "written after the restore", block="customer-jobs")
    text = bob.notes["b1"]["text"]
    with bob.doc.transaction():
        text.insert(len(str(text)), ", again")

    def converged() -> bool:
        a, b = doc_content(ann), doc_content(bob)
        return a == b and "after-ann" in a["notes"] and a["notes"]["b1"]["text"].endswith(", again")

    await ann.wait_for(converged)
    final = doc_content(ann)
    assert final == content(server, canvas)
    notes = final["notes"]
    assert notes["a1"]["text"] == "charge at night"  # the version's text, not round 2's
    assert "b2" not in notes
    assert notes["b1"]["text"] == "broken chargers, again"
    # Everything else on the board is the version's.
    assert {k: final[k] for k in ("blocks", "orgs")} == {k: version[k] for k in ("blocks", "orgs")}
    assert set(notes) - {"a1", "b1", "after-ann"} <= set(typed_a) | set(typed_b)
    # Round 2 is not lost: the automatic version kept it.
    backup = api(
        server, "GET", f"/api/canvases/{cid}/versions/{answer['backup']['id']}", fac
    ).json()
    assert "b2" in backup["notes"] and backup["notes"]["a1"]["text"] == "charge at night (cheaply)"
    diff = api(
        server, "GET", f"/api/canvases/{cid}/versions/{v1}/diff?to={answer['backup']['id']}", fac
    ).json()
    by_org = {g["org"]: g for g in diff["orgs"]}
    assert [e["id"] for e in by_org["alpha"]["edited"]] == ["a1"]
    assert "b2" in [n["id"] for n in by_org["beta"]["added"]]
    await ann.close()
    await bob.close()

    # The restore is durable: killed and started again, the server serves the same canvas.
    server.kill()
    again = ServerProcess(server.data_dir, port=server.port).start()
    try:
        assert content(again, canvas) == final
        names = [v["name"] for v in api(again, "GET", f"/api/canvases/{cid}/versions", fac).json()]
        assert names == ["before restoring “after round 1”", "after round 1"]
        late = await connect(again, canvas, fac, "late")
        assert doc_content(late) == final
        await late.close()
    finally:
        again.stop()


async def test_openapi_declares_the_export_media_types(server: ServerProcess) -> None:
    schema = httpx.get(server.http + "/openapi.json").json()
    png = schema["paths"]["/api/canvases/{canvas_id}/export.png"]["get"]["responses"]
    assert png["200"]["content"] == {
        "image/png": {"schema": {"type": "string", "format": "binary"}}
    }
    assert {"401", "403", "404", "410", "422", "429"} <= set(png)
    md = schema["paths"]["/api/canvases/{canvas_id}/export.md"]["get"]["responses"]
    assert list(md["200"]["content"]) == ["text/markdown"] and "429" not in md
    assert orjson.dumps(schema)  # serialisable as served
