"""Make a live canvas document equal to earlier content (a named version's), as one edit.

Restoring in place is a new change on top of the history, not a rewind: the server writes, in
one transaction, exactly what differs — notes the version had are re-created, notes it did not
have are removed, changed fields are written back, texts are rewritten with the smallest edit
(so someone typing elsewhere in the same note keeps their characters) — and it travels like any
update, so every client converges and the history before it stays in the log and in the
versions. Which types a value becomes follows the schema (``schema.CONTAINERS``), so roots other
features add to it (links, exchange, …) are restored without code here.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Map, Text

from .. import yupdate as y
from ..policy import set_text
from .schema import CONTAINERS, CONTENT_ROOTS, ROOT_CLASSES


def _same(current: Any, want: Any) -> bool:
    return type(current) is type(want) and current == want


def _prelim(cls: str | None, slot_types: dict[int, str], value: Any) -> Any:
    """A new value for a slot: a Map of its class for a dict, a Text for a string where the
    schema puts a Text, else the plain value."""
    if isinstance(value, dict) and y.MAP in slot_types:
        child = slot_types[y.MAP]
        container = CONTAINERS[child]
        out: dict[str, Any] = {}
        for k, v in value.items():
            slot = container.slot(k)
            if slot is not None:
                out[k] = _prelim(child, slot.types, v)
        return Map(out)
    if isinstance(value, str) and y.TEXT in slot_types:
        return Text(value)
    return value


def _assign(live: Map, cls: str, want: dict[str, Any]) -> None:
    container = CONTAINERS[cls]
    for key in [k for k in live.keys() if k not in want]:
        del live[key]
    for key, value in want.items():
        slot = container.slot(key)
        if slot is None:
            continue  # not part of the schema (cannot be in a stored version anyway)
        current = live.get(key) if key in live else None
        if isinstance(value, dict) and y.MAP in slot.types:
            if isinstance(current, Map):
                _assign(current, slot.types[y.MAP], value)
            else:
                live[key] = _prelim(cls, slot.types, value)
        elif isinstance(value, str) and y.TEXT in slot.types:
            if isinstance(current, Text):
                set_text(current, value)
            else:
                live[key] = Text(value)
        elif key not in live or isinstance(current, Map | Text) or not _same(current, value):
            live[key] = value


def make_equal(doc: Doc, content: dict[str, Any], roots: tuple[str, ...] = CONTENT_ROOTS) -> None:
    """Write into ``doc`` whatever makes its ``roots`` equal ``content`` (``doc_to_json``'s
    shape). Call inside one transaction (``Room.apply_server_change``)."""
    for name in roots:
        want = content.get(name)
        _assign(doc.get(name, type=Map), ROOT_CLASSES[name], want if isinstance(want, dict) else {})


def content_of(state: bytes) -> dict[str, Any]:
    """A stored state (a Yjs update of the whole document) as ``doc_to_json`` content."""
    from .export import doc_to_json

    doc: Doc = Doc()
    doc.apply_update(state)
    return doc_to_json(doc)


def new_document(content: dict[str, Any], client_id: int) -> bytes:
    """A fresh document holding ``content`` (restore as a new canvas, imports): no history of
    the original, written with the server's ``client_id``."""
    doc: Doc = Doc(client_id=client_id)
    with doc.transaction(origin="server"):
        make_equal(doc, content)
    return doc.get_update()
