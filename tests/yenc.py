"""Writing Yjs v1 updates struct by struct, the way an attacker would: valid encodings with any
meaning (origins that do not exist, foreign client ids, Xml types, deletes of future clocks).

The mirror image of ``server/yupdate.py``; tests check that the two agree with yrs byte for byte.
"""

from __future__ import annotations

import struct as _struct
from dataclasses import dataclass
from typing import Any

from server import yupdate as y
from server.protocol import write_varuint

ID = tuple[int, int]


def varstring(s: str) -> bytes:
    raw = s.encode()
    return write_varuint(len(raw)) + raw


def _varint(n: int) -> bytes:
    """lib0 signed varint: first byte continue|sign|6 bits, then 7 bits a byte."""
    neg = n < 0
    n = -n if neg else n
    first = (n & 0x3F) | (0x40 if neg else 0)
    n >>= 6
    out = bytearray()
    out.append(first | (0x80 if n else 0))
    while n:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
    return bytes(out)


def write_any(v: Any) -> bytes:
    if v is None:
        return bytes((126,))
    if v is True:
        return bytes((120,))
    if v is False:
        return bytes((121,))
    if isinstance(v, int) and abs(v) <= 0x7FFFFFFF:
        return bytes((125,)) + _varint(v)
    if isinstance(v, (int, float)):
        return bytes((123,)) + _struct.pack(">d", float(v))
    if isinstance(v, str):
        return bytes((119,)) + varstring(v)
    if isinstance(v, (bytes, bytearray)):
        return bytes((116,)) + write_varuint(len(v)) + bytes(v)
    if isinstance(v, dict):
        out = bytearray((118,)) + write_varuint(len(v))
        for k, x in v.items():
            out += varstring(str(k)) + write_any(x)
        return bytes(out)
    if isinstance(v, (list, tuple)):
        out = bytearray((117,)) + write_varuint(len(v))
        for x in v:
            out += write_any(x)
        return bytes(out)
    raise TypeError(type(v))


@dataclass
class S:
    """One struct to write. ``content`` is one of:
    ("gc", n) ("skip", n) ("deleted", n) ("string", str) ("any", [values]) ("json", [json strs])
    ("type", type_ref[, name]) ("format", key, json) ("embed", json) ("binary", bytes) ("doc", guid)
    """

    client: int
    clock: int
    content: tuple[Any, ...]
    origin: ID | None = None
    right: ID | None = None
    parent: str | ID | None = None
    sub: str | None = None

    @property
    def length(self) -> int:
        kind = self.content[0]
        if kind in ("gc", "skip", "deleted"):
            return int(self.content[1])
        if kind == "string":
            return len(self.content[1].encode("utf-16-le")) // 2
        if kind in ("any", "json"):
            return len(self.content[1])
        return 1


_REFS = {
    "deleted": y.DELETED,
    "json": y.JSON,
    "binary": y.BINARY,
    "string": y.STRING,
    "embed": y.EMBED,
    "format": y.FORMAT,
    "type": y.TYPE,
    "any": y.ANY,
    "doc": y.DOC,
}


def _write_struct(s: S) -> bytes:
    kind = s.content[0]
    if kind == "gc":
        return bytes((y.GC,)) + write_varuint(s.content[1])
    if kind == "skip":
        return bytes((y.SKIP,)) + write_varuint(s.content[1])
    info = _REFS[kind]
    if s.origin is not None:
        info |= 0x80
    if s.right is not None:
        info |= 0x40
    if s.sub is not None:
        info |= 0x20
    out = bytearray((info,))
    if s.origin is not None:
        out += write_varuint(s.origin[0]) + write_varuint(s.origin[1])
    if s.right is not None:
        out += write_varuint(s.right[0]) + write_varuint(s.right[1])
    if s.origin is None and s.right is None:
        if isinstance(s.parent, str):
            out += write_varuint(1) + varstring(s.parent)
        elif isinstance(s.parent, tuple):
            out += write_varuint(0) + write_varuint(s.parent[0]) + write_varuint(s.parent[1])
        else:
            raise ValueError("an item without origins needs a parent")
        if s.sub is not None:
            out += varstring(s.sub)
    c = s.content
    if kind == "deleted":
        out += write_varuint(c[1])
    elif kind == "string":
        out += varstring(c[1])
    elif kind == "any":
        out += write_varuint(len(c[1]))
        for v in c[1]:
            out += write_any(v)
    elif kind == "json":
        out += write_varuint(len(c[1]))
        for v in c[1]:
            out += varstring(v)
    elif kind == "type":
        out += write_varuint(c[1])
        if c[1] in (y.XML_ELEMENT, y.XML_HOOK):
            out += varstring(c[2] if len(c) > 2 else "p")
    elif kind == "format":
        out += varstring(c[1]) + varstring(c[2])
    elif kind == "embed":
        out += varstring(c[1])
    elif kind == "binary":
        out += write_varuint(len(c[1])) + c[1]
    elif kind == "doc":
        out += varstring(c[1]) + write_any({})
    return bytes(out)


def encode(structs: list[S], deletes: dict[int, list[tuple[int, int]]] | None = None) -> bytes:
    """An update of these structs (grouped by client in first-seen order; each client's structs
    must be given in clock order and contiguous, Skip structs filling gaps) and delete ranges."""
    groups: dict[int, list[S]] = {}
    for s in structs:
        groups.setdefault(s.client, []).append(s)
    out = bytearray(write_varuint(len(groups)))
    for client, group in groups.items():
        expect = group[0].clock
        for s in group:
            if s.clock != expect:
                raise ValueError(f"client {client}: struct at {s.clock}, expected {expect}")
            expect += s.length
        out += write_varuint(len(group)) + write_varuint(client) + write_varuint(group[0].clock)
        for s in group:
            out += _write_struct(s)
    dels = deletes or {}
    out += write_varuint(len(dels))
    for client, ranges in dels.items():
        out += write_varuint(client) + write_varuint(len(ranges))
        for clock, length in ranges:
            out += write_varuint(clock) + write_varuint(length)
    return bytes(out)


def delete_only(deletes: dict[int, list[tuple[int, int]]]) -> bytes:
    return encode([], deletes)
