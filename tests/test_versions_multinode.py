"""Versions across nodes: two server processes on one PostgreSQL and one Redis. A version saved
through one node is listed, compared and restored through the other, and a restore made on
one node reaches the clients of the other."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.partner_helpers import api
from tests.services import RedisServer
from tests.support import YClient
from tests.test_multinode import close_all, pg_url, redis_proc, two_nodes  # noqa: F401

__all__ = ["pg_url", "redis_proc"]


async def test_a_version_saved_on_one_node_restores_on_the_other(
    tmp_path: Path,
    redis_proc: RedisServer,  # noqa: F811
    pg_url: str,  # noqa: F811
) -> None:
    async with two_nodes(tmp_path, pg_url, redis_proc.url) as (a, b):
        canvas = a.create_canvas(template="partner-co-creation", orgs=[{"name": "Alpha"}])
        cid, fac = canvas["id"], canvas["facilitator_token"]
        on_a = YClient(a.ws, cid, fac, "on-a")
        on_b = YClient(b.ws, cid, fac, "on-b")
        await asyncio.gather(on_a.connect(), on_b.connect())
        try:
            on_b.add_note("n1", "kept", block="customer-jobs")
            await on_a.wait_for(lambda: "n1" in on_a.notes)
            r = api(a, "POST", f"/api/canvases/{cid}/versions", fac, json={"name": "round 1"})
            assert r.status_code == 201, r.text
            v1 = r.json()["id"]
            on_a.add_note("n2", "gone after the restore", block="gains")
            await on_b.wait_for(lambda: "n2" in on_b.notes)

            # Node B lists it and compares it with its own "now".
            assert [
                v["id"] for v in api(b, "GET", f"/api/canvases/{cid}/versions", fac).json()
            ] == [v1]
            diff = api(b, "GET", f"/api/canvases/{cid}/versions/{v1}/diff", fac).json()
            assert [[n["id"] for n in g["added"]] for g in diff["orgs"]] == [["n2"]]

            # Restored through node B: the client on node A follows.
            r = api(b, "POST", f"/api/canvases/{cid}/versions/{v1}/restore", fac)
            assert r.status_code == 200, r.text
            await on_a.wait_for(lambda: "n2" not in on_a.notes)
            await on_b.wait_for(lambda: "n2" not in on_b.notes)
            assert on_a.note_texts() == on_b.note_texts() == {"n1": "kept"}
            names = [v["name"] for v in api(a, "GET", f"/api/canvases/{cid}/versions", fac).json()]
            assert names == ["before restoring “round 1”", "round 1"]
        finally:
            await close_all([on_a, on_b])
