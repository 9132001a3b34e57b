"""The y-websocket wire protocol, as bytes in and bytes out.

A frame is one message: ``varuint(type)`` then the type's payload.

* ``0`` sync: ``varuint(subtype)`` + ``varuint8array(payload)``; subtype 0 = step 1 (a state
  vector), 1 = step 2 (an update), 2 = update.
* ``1`` awareness: ``varuint8array(awareness update)``; the update is ``varuint(n)`` then ``n`` times
  ``varuint(client id), varuint(clock), varstring(state as JSON)``.
* ``2`` auth: ``varuint(0)`` + ``varstring(reason)`` means "permission denied".
* ``3`` query awareness: no payload; the answer is an awareness message with every state.

Nothing here touches sockets or documents, so it is cheap to fuzz. Decoding never trusts a length:
every read is bounds-checked and a bad frame raises :class:`ProtocolError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

MSG_SYNC = 0
MSG_AWARENESS = 1
MSG_AUTH = 2
MSG_QUERY_AWARENESS = 3

SYNC_STEP1 = 0
SYNC_STEP2 = 1
SYNC_UPDATE = 2

AUTH_PERMISSION_DENIED = 0

# An update that carries nothing: no structs, empty delete set.
EMPTY_UPDATE = b"\x00\x00"


class ProtocolError(ValueError):
    """A frame that does not follow the protocol."""


class UnknownMessage(ProtocolError):
    """A well-formed frame whose message type this server does not speak."""


class Kind(IntEnum):
    SYNC_STEP1 = 1
    SYNC_STEP2 = 2
    SYNC_UPDATE = 3
    AWARENESS = 4
    QUERY_AWARENESS = 5
    AUTH = 6


@dataclass(slots=True, frozen=True)
class Message:
    kind: Kind
    payload: bytes


# -- varuint ---------------------------------------------------------------------------------


def write_varuint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varuint must be >= 0")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varuint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Return (value, next position). Values are capped at 2**53 as in lib0."""
    result = 0
    shift = 0
    n = len(data)
    while True:
        if pos >= n:
            raise ProtocolError("truncated varuint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 53:
            raise ProtocolError("varuint too long")


def read_varbytes(data: bytes | memoryview, pos: int) -> tuple[bytes, int]:
    length, pos = read_varuint(data, pos)
    end = pos + length
    if end > len(data):
        raise ProtocolError("length prefix runs past the end of the frame")
    return bytes(data[pos:end]), end


def write_varbytes(payload: bytes) -> bytes:
    return write_varuint(len(payload)) + payload


# -- frames ----------------------------------------------------------------------------------


def decode(frame: bytes) -> Message:
    """Decode one frame. Trailing bytes after the payload are an error (they hide smuggling)."""
    if not frame:
        raise ProtocolError("empty frame")
    mtype, pos = read_varuint(frame, 0)
    if mtype == MSG_SYNC:
        sub, pos = read_varuint(frame, pos)
        payload, pos = read_varbytes(frame, pos)
        if sub == SYNC_STEP1:
            kind = Kind.SYNC_STEP1
        elif sub == SYNC_STEP2:
            kind = Kind.SYNC_STEP2
        elif sub == SYNC_UPDATE:
            kind = Kind.SYNC_UPDATE
        else:
            raise UnknownMessage(f"unknown sync message type {sub}")
    elif mtype == MSG_AWARENESS:
        payload, pos = read_varbytes(frame, pos)
        kind = Kind.AWARENESS
    elif mtype == MSG_QUERY_AWARENESS:
        payload, kind = b"", Kind.QUERY_AWARENESS
    elif mtype == MSG_AUTH:
        # Clients have nothing to say on the auth channel; accept and ignore its content.
        return Message(Kind.AUTH, bytes(frame[pos:]))
    else:
        raise UnknownMessage(f"unknown message type {mtype}")
    if pos != len(frame):
        raise ProtocolError("trailing bytes after the message")
    return Message(kind, payload)


_SYNC_UPDATE_PREFIX = bytes((MSG_SYNC, SYNC_UPDATE))
_SYNC_STEP1_PREFIX = bytes((MSG_SYNC, SYNC_STEP1))
_SYNC_STEP2_PREFIX = bytes((MSG_SYNC, SYNC_STEP2))
_AWARENESS_PREFIX = bytes((MSG_AWARENESS,))


def sync_step1(state_vector: bytes) -> bytes:
    return _SYNC_STEP1_PREFIX + write_varbytes(state_vector)


def sync_step2(update: bytes) -> bytes:
    return _SYNC_STEP2_PREFIX + write_varbytes(update)


def sync_update(update: bytes) -> bytes:
    return _SYNC_UPDATE_PREFIX + write_varbytes(update)


def awareness(update: bytes) -> bytes:
    return _AWARENESS_PREFIX + write_varbytes(update)


def permission_denied(reason: str) -> bytes:
    return bytes((MSG_AUTH, AUTH_PERMISSION_DENIED)) + write_varbytes(reason.encode())


def query_awareness() -> bytes:
    return bytes((MSG_QUERY_AWARENESS,))


# -- awareness payloads ----------------------------------------------------------------------

# One client's awareness entry: (client id, clock, state as raw JSON bytes; b"null" = gone).
AwarenessEntry = tuple[int, int, bytes]

NULL_STATE = b"null"


def decode_awareness(update: bytes) -> list[AwarenessEntry]:
    count, pos = read_varuint(update, 0)
    if count > len(update):  # every entry needs at least 3 bytes; reject absurd counts early
        raise ProtocolError("awareness entry count exceeds the payload")
    entries: list[AwarenessEntry] = []
    for _ in range(count):
        client_id, pos = read_varuint(update, pos)
        clock, pos = read_varuint(update, pos)
        state, pos = read_varbytes(update, pos)
        entries.append((client_id, clock, state))
    if pos != len(update):
        raise ProtocolError("trailing bytes after awareness entries")
    return entries


def encode_awareness(entries: list[AwarenessEntry] | tuple[AwarenessEntry, ...]) -> bytes:
    parts = [write_varuint(len(entries))]
    for client_id, clock, state in entries:
        parts.append(write_varuint(client_id))
        parts.append(write_varuint(clock))
        parts.append(write_varbytes(state))
    return b"".join(parts)
