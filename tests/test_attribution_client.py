"""The client's attribution module (``client/src/attribution.ts``, read by ``model.ts``) against
the server's (``server/canvas/attribution.py``), on the same documents: built by the server and
by hostile and concurrent writers here, then read by each side. What a browser shows for every
note must be what exports, versions and the policy say."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from pycrdt import Doc, Map, Text

from server.canvas import attribution, templates
from server.canvas.attribution import IDS, authors_of, ids_entry, note_creators
from tests.attribution_helpers import write_as
from tests.support import require
from tests.test_attribution import random_doc

CLIENT = Path(__file__).resolve().parent.parent / "client"


def _canvas() -> Doc:
    doc: Doc = Doc(client_id=7)
    orgs = templates.make_orgs([("Alpha", None), ("Beta", None)])
    doc.apply_update(templates.initial_update("X", "partner-co-creation", orgs, True, 1.0))
    return doc


def _note(nid: str, **fields: object) -> Callable[[Doc], None]:
    def change(d: Doc) -> None:
        d.get("notes", type=Map)[nid] = Map({"block": "gains", "text": Text(nid), **fields})

    return change


def cases() -> dict[str, Doc]:
    out: dict[str, Doc] = {}
    # Hostile members, a facilitator filing notes, the server's own notes, an unbound writer.
    doc = _canvas()
    lie = {"org": "beta", "author": "u_bob", "author_name": "Bob"}
    write_as(doc, 1002, _note("a1", **lie), user="u_ann", org="alpha", name="Ann")
    write_as(doc, 1003, _note("b1", org="alpha"), user="u_bob", org="beta", name="Bob")
    write_as(doc, 1001, _note("f1", org="beta"), user="u_fac", name="Fran", facilitator=True)
    write_as(doc, 1001, _note("f2", org="gamma"), user="u_fac", name="Fran", facilitator=True)
    write_as(doc, 77, _note("s1", **lie), user=attribution.SERVER_USER)
    write_as(doc, 1002, _note("b1", org="beta"), user="u_ann", org="alpha", name="Ann")  # replaced

    def link(d: Doc) -> None:
        d.get("links", type=Map)["L1"] = Map({"from": "a1", "to": "b1", **lie})

    write_as(doc, 1002, link, user="u_ann", org="alpha", name="Ann")

    def comment(d: Doc) -> None:
        d.get("comments", type=Map)["C1"] = Map({"note": "b1", "text": "mine", **lie})

    write_as(doc, 1002, comment, user="u_ann", org="alpha", name="Ann")
    out["hostile"] = doc
    # Two members set the same note id concurrently: both sides must agree on the winner.
    base = _canvas()
    ids = {5: ("u_e", "beta", "Eve"), 9: ("u_ann", "alpha", "Ann")}
    for cid, (user, org, name) in ids.items():
        write_as(base, cid, lambda d: None, user=user, org=org, name=name)
    forks = []
    for cid in ids:
        f: Doc = Doc(client_id=cid)
        f.apply_update(base.get_update())
        with f.transaction():
            _note("n", org="alpha")(f)
        forks.append(f)
    for f in forks:
        base.apply_update(f.get_update())
    out["concurrent"] = base
    # An old canvas: stamped fields, no ids root.
    old = _canvas()
    w: Doc = Doc(client_id=4242)
    w.apply_update(old.get_update())
    with w.transaction():
        _note("o1", **lie)(w)
    old.apply_update(w.get_update())
    out["stamped"] = old
    # A forged ids value shape the server never writes (a client cannot, it is a server root).
    odd = _canvas()
    write_as(odd, 1002, _note("a1", **lie), user="u_ann", org="alpha", name="Ann")
    with odd.transaction():
        odd.get(IDS, type=Map)["1002"] = {**ids_entry("u_ann", "alpha", "Ann", False), "x": [1]}
    out["odd"] = odd
    # Random replaces, deletes and concurrent sets by several writers, each with an entry.
    for seed in range(4):
        doc = random_doc(seed)
        for cid in {c for c, _ in note_creators(doc.get_update()).values()}:
            write_as(doc, cid, lambda d: None, user=f"u{cid}", org="alpha", name=f"W{cid}")
        out[f"random-{seed}"] = doc
    return out


def test_the_client_shows_what_the_server_attributes(tmp_path: Path) -> None:
    npm = shutil.which("npx")
    require(npm is not None and (CLIENT / "node_modules" / ".bin" / "vitest").exists(), "no vitest")
    assert npm is not None
    docs = cases()
    server_view = {
        name: {nid: [a.org, a.user, a.name] for nid, a in authors_of(doc).items()}
        | {f"links:{k}": [a.org, a.user, a.name] for k, a in authors_of(doc, "links").items()}
        | {f"comments:{k}": [a.org, a.user, a.name] for k, a in authors_of(doc, "comments").items()}
        for name, doc in docs.items()
    }
    assert server_view["hostile"]["links:L1"] == ["alpha", "u_ann", "Ann"]
    assert server_view["hostile"]["comments:C1"] == ["alpha", "u_ann", "Ann"]
    assert server_view["hostile"]["a1"] == ["alpha", "u_ann", "Ann"]
    assert server_view["hostile"]["b1"] == ["alpha", "u_ann", "Ann"]
    assert server_view["hostile"]["f1"] == ["beta", "u_fac", "Fran"]
    assert server_view["hostile"]["f2"] == ["", "u_fac", "Fran"]
    assert server_view["hostile"]["s1"] == ["beta", "u_bob", "Bob"]
    assert server_view["stamped"]["o1"] == ["beta", "u_bob", "Bob"]
    assert server_view["concurrent"]["n"][1] in ("u_e", "u_ann")
    (tmp_path / "cases.json").write_text(
        json.dumps(
            [
                {"name": name, "update": base64.b64encode(doc.get_update()).decode()}
                for name, doc in docs.items()
            ]
        )
    )
    env = {
        **os.environ,
        "COCANVAS_ATTRIBUTION_CASES": str(tmp_path / "cases.json"),
        "COCANVAS_ATTRIBUTION_OUT": str(tmp_path / "out.json"),
    }
    run = subprocess.run(
        [npm, "vitest", "run", "test/attribution.test.ts"],
        cwd=CLIENT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    client_view = json.loads((tmp_path / "out.json").read_text())
    assert client_view == server_view
