"""Reading Yjs v1 updates: which structs an update carries and what it deletes.

pycrdt (yrs) applies an update or merges it, but shows nothing of its structs: no origins, no
parents, no content kinds, no delete set. The server must judge an update *before* it applies it
(an update can act later: deletes of clocks that do not exist yet, structs parked on a missing
item), so this module reads the binary format itself. It is pure (bytes in, tuples out), bounds
every read, caps the work it will do before it starts, and never trusts a length.

The v1 format (yjs ``encoding.js``/``updates.js``, yrs ``update.rs``)::

    update     = structs delete_set
    structs    = varuint(#clients) { varuint(#structs) varuint(client) varuint(clock) struct* }*
    struct     = info:u8 ...        info & 0x1f: 0 GC(len) | 10 Skip(len) | content ref of an Item
    item       = [origin ID if info&0x80] [right origin ID if info&0x40]
                 [if neither: varuint(1) varstring(root name) | varuint(0) ID(parent)]
                 [varstring(parent sub) if neither origin and info&0x20] content
    delete_set = varuint(#clients) { varuint(client) varuint(#ranges) {varuint(clock) varuint(len)}* }*

Content kinds and their lengths in clocks: 1 Deleted(n), 2 JSON(n strings), 3 Binary(1),
4 String(UTF-16 length), 5 Embed(1), 6 Format(1), 7 Type(1), 8 Any(n values), 9 Doc(1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

# Content refs (the low five bits of a struct's info byte).
GC = 0
DELETED = 1
JSON = 2
BINARY = 3
STRING = 4
EMBED = 5
FORMAT = 6
TYPE = 7
ANY = 8
DOC = 9
SKIP = 10

# Shared type refs (ContentType).
ARRAY = 0
MAP = 1
TEXT = 2
XML_ELEMENT = 3
XML_FRAGMENT = 4
XML_HOOK = 5
XML_TEXT = 6

CONTENT_NAMES = {
    GC: "gc",
    DELETED: "deleted",
    JSON: "json",
    BINARY: "binary",
    STRING: "string",
    EMBED: "embed",
    FORMAT: "format",
    TYPE: "type",
    ANY: "any",
    DOC: "subdocument",
    SKIP: "skip",
}
TYPE_NAMES = {
    ARRAY: "Array",
    MAP: "Map",
    TEXT: "Text",
    XML_ELEMENT: "XmlElement",
    XML_FRAGMENT: "XmlFragment",
    XML_HOOK: "XmlHook",
    XML_TEXT: "XmlText",
}

ID = tuple[int, int]  # (client, clock)


class UpdateError(ValueError):
    """Bytes that are not a well-formed Yjs v1 update."""


class UpdateTooLarge(UpdateError):
    """A well-formed update (so far) that asks for more work than the caller allows."""


@dataclass(slots=True)
class Struct:
    """One struct as encoded. ``parent`` is a root name, a parent item's ID, or None when the
    parent follows from the origin (or right origin)."""

    client: int
    clock: int
    length: int
    content: int  # a content ref above (GC and SKIP included)
    origin: ID | None = None
    right: ID | None = None
    parent: str | ID | None = None
    sub: str | None = None  # the map key, for an entry of a map
    type_ref: int | None = None  # for content TYPE


@dataclass(slots=True)
class Limits:
    """Work the reader will do before giving up with UpdateTooLarge (None: no cap)."""

    structs: int | None = None  # structs plus values inside JSON/Any contents
    delete_ranges: int | None = None
    any_depth: int = 64  # nesting of objects/arrays inside one Any value


@dataclass(slots=True)
class Update:
    structs: list[Struct] = field(default_factory=list)
    # client -> [(clock, length)] in the order encoded
    deletes: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    values: int = 0  # JSON/Any values read (the work a document does to store them)

    @property
    def delete_ranges(self) -> int:
        return sum(len(r) for r in self.deletes.values())


_MAX_SAFE = 1 << 53


class _Reader:
    __slots__ = ("data", "pos", "end", "budget", "limits", "values")

    def __init__(self, data: bytes, limits: Limits) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.limits = limits
        self.budget = limits.structs
        self.values = 0

    def uint(self) -> int:
        data = self.data
        pos = self.pos
        if pos < self.end:
            b = data[pos]
            if b < 0x80:
                self.pos = pos + 1
                return b
        result = 0
        shift = 0
        while True:
            if pos >= self.end:
                raise UpdateError("truncated varuint")
            b = data[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                self.pos = pos
                if result > _MAX_SAFE:
                    raise UpdateError("varuint beyond 2**53")
                return result
            shift += 7
            if shift > 56:
                raise UpdateError("varuint too long")

    def sint(self) -> None:
        """Skip a lib0 signed varint (first byte: continue, sign, six bits)."""
        data = self.data
        pos = self.pos
        n = 0
        while True:
            if pos >= self.end:
                raise UpdateError("truncated varint")
            b = data[pos]
            pos += 1
            n += 1
            if b < 0x80:
                break
            if n > 9:
                raise UpdateError("varint too long")
        self.pos = pos

    def raw(self, n: int) -> bytes:
        pos = self.pos
        end = pos + n
        if end > self.end:
            raise UpdateError("length runs past the end of the update")
        self.pos = end
        return self.data[pos:end]

    def skip_bytes(self) -> None:
        n = self.uint()
        if self.pos + n > self.end:
            raise UpdateError("length runs past the end of the update")
        self.pos += n

    def string(self) -> str:
        raw = self.raw(self.uint())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UpdateError("string is not UTF-8") from None

    def skip_string(self) -> None:
        """Skip a string, checking it is UTF-8 as yrs does when it decodes one."""
        self.string()

    def json(self) -> None:
        """Skip a string that must hold JSON (yrs parses format values and embeds)."""
        raw = self.raw(self.uint())
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpdateError("a value that is not JSON") from None

    def ident(self) -> ID:
        return (self.uint(), self.uint())

    def spend(self, n: int) -> None:
        self.values += n
        if self.budget is not None:
            self.budget -= n
            if self.budget < 0:
                raise UpdateTooLarge("too many structs in one update")

    def any(self, depth: int) -> None:
        """Skip one lib0 Any value, counting every nested value against the budget."""
        if depth > self.limits.any_depth:
            raise UpdateTooLarge("value nested too deep")
        if self.pos >= self.end:
            raise UpdateError("truncated value")
        tag = self.data[self.pos]
        self.pos += 1
        if tag in (127, 126, 121, 120):  # undefined, null, false, true
            return
        if tag == 125:
            self.sint()
        elif tag == 124:
            self.raw(4)
        elif tag in (123, 122):
            self.raw(8)
        elif tag == 119:  # string
            self.skip_string()
        elif tag == 116:  # Uint8Array
            self.skip_bytes()
        elif tag == 118:  # object
            n = self.uint()
            if n > self.end - self.pos:
                raise UpdateError("object longer than the update")
            self.spend(n)
            for _ in range(n):
                self.skip_string()
                self.any(depth + 1)
        elif tag == 117:  # array
            n = self.uint()
            if n > self.end - self.pos:
                raise UpdateError("array longer than the update")
            self.spend(n)
            for _ in range(n):
                self.any(depth + 1)
        else:
            raise UpdateError(f"unknown value type {tag}")


def _utf16_len(s: str) -> int:
    if s.isascii():
        return len(s)
    return len(s.encode("utf-16-le")) // 2


def _content(r: _Reader, ref: int) -> tuple[int, int | None]:
    """Read one item's content; return its length in clocks and, for a type, its type ref."""
    type_ref: int | None = None
    if ref == STRING:
        length = _utf16_len(r.string())
    elif ref == ANY:
        length = r.uint()
        if length > r.end - r.pos:
            raise UpdateError("value count exceeds the update")
        r.spend(length)
        for _ in range(length):
            r.any(0)
    elif ref == TYPE:
        length = 1
        type_ref = r.uint()
        if type_ref == XML_ELEMENT or type_ref == XML_HOOK:
            r.skip_string()
        elif type_ref > XML_TEXT:
            raise UpdateError(f"unknown type ref {type_ref}")
    elif ref == DELETED:
        length = r.uint()
    elif ref == JSON:
        length = r.uint()
        if length > r.end - r.pos:
            raise UpdateError("value count exceeds the update")
        r.spend(length)
        for _ in range(length):
            r.skip_string()
    elif ref == FORMAT:
        length = 1
        r.skip_string()
        r.json()
    elif ref == EMBED:
        length = 1
        r.json()
    elif ref == BINARY:
        length = 1
        r.skip_bytes()
    elif ref == DOC:
        length = 1
        r.skip_string()
        r.any(0)
    else:
        raise UpdateError(f"unknown content ref {ref}")
    return length, type_ref


def read_update(data: bytes, limits: Limits | None = None) -> Update:
    """Read a Yjs v1 update. Raises UpdateError (malformed) or UpdateTooLarge (over ``limits``)."""
    lim = limits or Limits()
    r = _Reader(bytes(data), lim)
    out = Update()
    _read_structs(r, out.structs)
    _read_deletes(r, lim, out.deletes)
    if r.pos != r.end:
        raise UpdateError("trailing bytes after the update")
    out.values = r.values
    return out


def _read_structs(r: _Reader, structs: list[Struct]) -> None:
    """The struct section: per client, a count, the client id, the first clock and the structs."""
    n_clients = r.uint()
    if n_clients > r.end:
        raise UpdateError("client count exceeds the update")
    seen_clients: set[int] = set()
    for _ in range(n_clients):
        n_structs = r.uint()
        client = r.uint()
        clock = r.uint()
        if client in seen_clients:
            raise UpdateError("a client's structs appear twice")
        if n_structs == 0:
            raise UpdateError("a client with no structs")  # yrs panics on one
        seen_clients.add(client)
        if n_structs > r.end - r.pos:
            raise UpdateError("struct count exceeds the update")
        r.spend(n_structs)
        for _ in range(n_structs):
            struct = _read_struct(r, client, clock)
            structs.append(struct)
            clock += struct.length
            if clock > _MAX_SAFE:
                raise UpdateError("clock beyond 2**53")


def _read_struct(r: _Reader, client: int, clock: int) -> Struct:
    """One struct: GC and Skip carry a length only; an item has its origins or its parent, then
    its content."""
    if r.pos >= r.end:
        raise UpdateError("truncated struct")
    info = r.data[r.pos]
    r.pos += 1
    ref = info & 0x1F
    if ref == GC or ref == SKIP:
        if info != ref:
            raise UpdateError("flags on a GC or Skip struct")  # yrs misreads those
        length = r.uint()
        if length == 0:
            raise UpdateError("empty struct")
        return Struct(client, clock, length, ref)
    origin = r.ident() if info & 0x80 else None
    right = r.ident() if info & 0x40 else None
    parent: str | ID | None = None
    sub: str | None = None
    if origin is None and right is None:
        parent = r.string() if r.uint() == 1 else r.ident()
        if info & 0x20:
            sub = r.string()
    length, type_ref = _content(r, ref)
    if length == 0:
        raise UpdateError("empty struct")
    return Struct(client, clock, length, ref, origin, right, parent, sub, type_ref)


def _read_deletes(r: _Reader, lim: Limits, deletes: dict[int, list[tuple[int, int]]]) -> None:
    """The delete set: per client, ranges of (clock, length); empty ranges are dropped."""
    n_clients = r.uint()
    if n_clients > r.end:
        raise UpdateError("delete set client count exceeds the update")
    budget = lim.delete_ranges
    for _ in range(n_clients):
        client = r.uint()
        n_ranges = r.uint()
        if n_ranges > r.end - r.pos:
            raise UpdateError("delete range count exceeds the update")
        if budget is not None:
            budget -= n_ranges
            if budget < 0:
                raise UpdateTooLarge("too many delete ranges in one update")
        ranges = deletes.setdefault(client, [])
        for _ in range(n_ranges):
            clock = r.uint()
            length = r.uint()
            if clock + length > _MAX_SAFE:
                raise UpdateError("delete range beyond 2**53")
            if length:
                ranges.append((clock, length))
