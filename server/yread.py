"""Reading a pycrdt document's values under one transaction, without pycrdt's wrappers.

The policy reads a few fields of every update's notes (a new note's block, text and votes; the
entries it keeps a plain mirror of). Through pycrdt's ``Map`` wrapper one ``get`` opens or joins a
transaction four times and builds a wrapper object per value, and ``to_py`` does that per field:
measured here, 2.9 µs per ``get`` and 21 µs per note converted, against 0.1 µs and 1.7 µs on the
underlying yrs objects with one transaction held. Those wrappers were the largest single cost of
the per-update path, so the policy's hot reads go through a :class:`Read` instead.

A :class:`Read` holds one document transaction for its ``with`` block (joining the current one if
there is one) and hands out the raw yrs values: ``RawMap``, ``RawText``, ``RawArray`` or a plain
value. It only reads: nothing may write to the document while it is open except through the
transaction it joined. The raw classes come from ``pycrdt._pycrdt``, the compiled module pycrdt's
public types wrap; ``tests/test_yread.py`` checks that :meth:`Read.plain` agrees with pycrdt's own
``to_py`` on every type the canvas schema has, so an upgrade that changes them fails there.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from pycrdt import Doc, Map
from pycrdt._base import BaseDoc, base_types
from pycrdt._pycrdt import Array as RawArray
from pycrdt._pycrdt import Map as RawMap
from pycrdt._pycrdt import Text as RawText

__all__ = ["RawArray", "RawMap", "RawText", "Read", "raw"]


_PLAIN = (str, int, float, bool, bytes, list, dict, type(None))


def raw(m: Map) -> RawMap:
    """The yrs map under a pycrdt ``Map`` that belongs to a document."""
    integrated: RawMap = m.integrated
    return integrated


class Read:
    """One read of a document: ``with Read(doc) as r: r.get(raw_map, key)``."""

    __slots__ = ("_cm", "_doc", "t")

    def __init__(self, doc: Doc) -> None:
        self._doc = doc
        self._cm: Any = None
        self.t: Any = None  # the raw transaction while open

    def __enter__(self) -> Read:
        self._cm = self._doc.transaction()
        self.t = self._cm.__enter__()._txn
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cm, self._cm, self.t = self._cm, None, None
        cm.__exit__(exc_type, exc, tb)

    def get(self, m: RawMap, key: str) -> Any:
        """``m[key]`` as a raw value, or None when the key is absent."""
        try:
            return m.get(self.t, key)
        except ValueError:  # yrs: "Key error"
            return None

    def has(self, m: RawMap, key: str) -> bool:
        return bool(m.has(self.t, key))

    def keys(self, m: RawMap) -> list[str]:
        return list(m.keys(self.t))  # type: ignore[attr-defined]  # in yrs, not in the stub

    def plain(self, v: Any) -> Any:
        """A raw value as plain Python, as pycrdt's ``to_py`` gives it (a text as its string)."""
        t = self.t
        if isinstance(v, RawMap):
            out = {}
            for k in v.keys(t):  # type: ignore[attr-defined]  # in yrs, not in the stub
                out[k] = self.plain(v.get(t, k))
            return out
        if isinstance(v, RawText):
            return v.get_string(t)
        if isinstance(v, RawArray):
            return [self.plain(v.get(t, i)) for i in range(v.len(t))]
        return v if isinstance(v, _PLAIN) else self._wrap(v)

    def _wrap(self, v: Any) -> Any:
        """Any other shared type (an XML type, a subdocument) as pycrdt's wrapper's ``to_py``
        (a subdocument, or a type with no Python equivalent, as its wrapper): the schema has
        none, but a read must not fail on one."""
        cls = base_types.get(type(v))
        if cls is None:
            return v
        if issubclass(cls, BaseDoc):
            return cls(doc=v)
        wrapper = cls(_doc=self._doc, _integrated=v)
        try:
            return wrapper.to_py()
        except ValueError:  # pycrdt: "XmlFragment has no Python equivalent"
            return wrapper

    def entry(self, m: RawMap, key: str, missing: Any = None) -> Any:
        """``m[key]`` as plain Python, or ``missing`` when the key is absent."""
        try:
            v = m.get(self.t, key)
        except ValueError:
            return missing
        return self.plain(v)
