"""Writing canvas documents the way the server and its clients do, for tests that build a
document offline: each author writes with its own client id, and the ``ids`` root says who that
id is (``server/canvas/attribution.py``), as a room writes it before the id's first structs."""

from __future__ import annotations

from collections.abc import Callable

from pycrdt import Doc, Map

from server.canvas.attribution import IDS, SERVER_USER, ids_entry


def write_as(
    doc: Doc,
    client_id: int,
    change: Callable[[Doc], None],
    *,
    user: str,
    org: str = "",
    name: str = "",
    facilitator: bool = False,
) -> None:
    """Apply ``change`` to ``doc`` as client ``client_id`` bound to ``user``: the server's
    ``ids`` entry for the id first (if missing), then the change, written with that id."""
    ids = doc.get(IDS, type=Map)
    if str(client_id) not in ids:
        server: Doc = Doc(client_id=7)
        server.apply_update(doc.get_update())
        with server.transaction():
            if "7" not in server.get(IDS, type=Map):
                server.get(IDS, type=Map)["7"] = ids_entry(SERVER_USER, "", "", False)
            server.get(IDS, type=Map)[str(client_id)] = ids_entry(user, org, name, facilitator)
        doc.apply_update(server.get_update(doc.get_state()))
    author: Doc = Doc(client_id=client_id)
    author.apply_update(doc.get_update())
    with author.transaction():
        change(author)
    doc.apply_update(author.get_update(doc.get_state()))
