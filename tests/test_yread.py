"""``server/yread.py`` reads what pycrdt's wrappers read.

The policy's mirror (what it restores refused changes from) and its rules go through
``yread.Read`` on the raw yrs objects; if a pycrdt upgrade changed what those give, a refused
edit would be restored to something else. So every type a canvas has, and a hostile mix a
client could send, is read both ways and compared.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Doc, Map, Text, XmlFragment, XmlText

from server.yread import RawMap, RawText, Read, raw


def _doc_with_everything() -> tuple[Doc, Map]:
    doc: Doc = Doc()
    notes = doc.get("notes", type=Map)
    notes["n1"] = Map(
        {
            "text": Text("héllo 👋 wörld"),
            "block": "customer-jobs",
            "x": 3.0,
            "y": 2,
            "big": 2**40,
            "flag": True,
            "none": None,
            "bytes": b"\x00\x01",
            "votes": Map(
                {"u1": 1, "u2": Map({"deep": Array([1, 2.5, "s", Map({"k": Text("t")})])})}
            ),
            "plain_dict": {"a": [1, {"b": None}]},
            "list": Array([Text("a"), Array([]), Map({})]),
        }
    )
    notes["s"] = "a string entry"
    notes["empty"] = Map()
    return doc, notes


def test_plain_equals_pycrdt_to_py_for_every_schema_type() -> None:
    doc, notes = _doc_with_everything()
    want = {k: (v.to_py() if isinstance(v, Map) else v) for k, v in notes.items()}
    with Read(doc) as r:
        got = {k: r.entry(raw(notes), k) for k in r.keys(raw(notes))}
    assert got == want
    # numbers keep their kind: a float written back stays a float on the wire
    assert type(got["n1"]["x"]) is float and type(got["n1"]["y"]) is type(want["n1"]["y"])


def test_get_has_and_missing_keys() -> None:
    doc, notes = _doc_with_everything()
    with Read(doc) as r:
        n1 = r.get(raw(notes), "n1")
        assert isinstance(n1, RawMap)
        assert isinstance(r.get(n1, "text"), RawText)
        assert r.get(n1, "block") == "customer-jobs"
        assert r.get(n1, "nope") is None
        assert r.has(n1, "none") and not r.has(n1, "nope")
        sentinel = object()
        assert r.entry(n1, "nope", sentinel) is sentinel
        assert r.entry(n1, "none", sentinel) is None  # a stored None is not a missing key


def test_other_shared_types_read_as_pycrdt_reads_them() -> None:
    """Not in the schema (vouch refuses them), but a read must not fail on one."""
    doc: Doc = Doc()
    notes = doc.get("notes", type=Map)
    notes["frag"] = Map({"f": XmlFragment([XmlText("a")]), "n": 1})
    with Read(doc) as r:
        frag: Any = r.entry(raw(notes), "frag")
    assert isinstance(frag["f"], XmlFragment) and frag["n"] == 1  # pycrdt's to_py raises here
    assert str(frag["f"]) == "a"


def test_reads_see_the_current_state_and_nest() -> None:
    doc, notes = _doc_with_everything()
    with Read(doc) as outer:
        with Read(doc) as inner:  # joins the same transaction
            assert inner.entry(raw(notes), "s") == "a string entry"
        assert outer.entry(raw(notes), "s") == "a string entry"
    notes["s"] = "changed"  # the read's transaction is closed: writes work again
    with Read(doc) as r:
        assert r.entry(raw(notes), "s") == "changed"
