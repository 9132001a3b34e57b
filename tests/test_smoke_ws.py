from __future__ import annotations

import asyncio

from tests.support import ServerProcess, YClient


async def test_two_clients_converge(server: ServerProcess) -> None:
    canvas = server.create_canvas()
    a = await YClient(server.ws, canvas["id"], canvas["facilitator_token"], "a").connect()
    b = await YClient(server.ws, canvas["id"], canvas["facilitator_token"], "b").connect()
    assert "key-partners" in a.doc.get("blocks", type=__import__("pycrdt").Map)
    a.add_note("n1", "hello")
    b.add_note("n2", "world")
    await a.wait_for(lambda: set(a.notes.keys()) == {"n1", "n2"})
    await b.wait_for(lambda: set(b.notes.keys()) == {"n1", "n2"})
    await a.close()
    await b.close()
    await asyncio.sleep(0)
