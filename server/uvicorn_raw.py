"""Opt-in, version-pinned adapter: fan-out frames written straight to uvicorn's transport.

A broadcast to 100 sessions through ASGI costs 100 ``send`` coroutines, each building the same
WebSocket frame. Behind uvicorn's sans-I/O WebSocket protocol (``websockets-sansio``) with no
extension negotiated, a server data frame is just RFC 6455 framing around the payload, so this
adapter encodes it once per broadcast and writes it to each session's transport (fan-out C=100:
server CPU 23 % -> 13.5 %). That reaches into uvicorn's protocol object (``send.__self__``, its
``conn`` and ``transport``), which no release promises to keep: the adapter is used only for the
uvicorn versions it was tested with (TESTED_UVICORN), and anything it does not recognise falls
back to the plain ASGI path. Control frames (close) always take the ASGI path.

Once the handshake is complete the adapter also drops the handshake's request and response that
uvicorn's protocol keeps for the connection's whole life (their headers: ~2.4 KB a connection from
the benchmark's client, more from a browser's; issue 11); nothing reads them after the handshake
in the tested versions.
"""

from __future__ import annotations

import logging
from typing import Any

import uvicorn
from websockets.protocol import State

from .transport import AsgiTransport, Send

log = logging.getLogger("cocanvas.transport")

# uvicorn (major, minor) versions this adapter was tested with, inclusive: tests/test_transport.py
# runs both paths; widen only after running it on the new version.
TESTED_UVICORN = ((0, 35), (0, 54))
_PROTOCOL_MODULE = "uvicorn.protocols.websockets.websockets_sansio_impl"
_OPEN = State.OPEN


def uvicorn_version_tested(version: str = uvicorn.__version__) -> bool:
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        return False
    low, high = TESTED_UVICORN
    return low <= (major, minor) <= high


def ws_binary_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented binary WebSocket frame (RFC 6455 5.2), as a server sends it."""
    return _head(len(payload)) + payload


def _head(n: int) -> bytes:
    if n < 126:
        return bytes((0x82, n))
    if n < 65536:
        return bytes((0x82, 126)) + n.to_bytes(2, "big")
    return bytes((0x82, 127)) + n.to_bytes(8, "big")


# The frame last encoded, and its wire form: a fan-out sends one bytes object to every session
# in a row, so a one-entry cache encodes each broadcast once, not once per recipient.
_last_frame: list[bytes] = [b"", b""]


def _wire(frame: bytes) -> bytes:
    if frame is not _last_frame[0]:
        _last_frame[0] = frame
        _last_frame[1] = ws_binary_frame(frame)
    return _last_frame[1]


def raw_transport(send: Send) -> RawUvicornTransport | None:
    """The adapter for this ASGI ``send``, or None when it is not a tested uvicorn's."""
    protocol: Any = getattr(send, "__self__", None)
    # uvicorn's protocol class, or a subclass of it (server/uvicorn_ws.py)
    if protocol is None or not any(
        cls.__module__ == _PROTOCOL_MODULE for cls in type(protocol).__mro__
    ):
        return None
    if not uvicorn_version_tested():
        return None
    conn = getattr(protocol, "conn", None)
    transport = getattr(protocol, "transport", None)
    if (
        conn is None
        or transport is None
        or getattr(conn, "extensions", None) != []
        or not hasattr(protocol, "close_sent")
    ):
        return None
    _forget_handshake(protocol)
    return RawUvicornTransport(send, protocol)


def _forget_handshake(protocol: Any) -> None:
    """Drop what only the handshake needed: uvicorn reads its request and response only until the
    handshake is complete (``handle_connect`` and the accept in ``send``), yet keeps both as long
    as the connection is open, and websockets' parser keeps the request as a local of its
    generator for as long (so its headers are emptied in place, not just unreferenced)."""
    if not getattr(protocol, "handshake_complete", False):
        return
    request = getattr(protocol, "request", None)
    headers = getattr(request, "headers", None)
    if headers is not None and callable(getattr(headers, "clear", None)):
        headers.clear()
    for name in ("request", "response"):
        if hasattr(protocol, name):
            setattr(protocol, name, None)


class RawUvicornTransport(AsgiTransport):
    __slots__ = ("_protocol", "_conn", "_socket")

    def __init__(self, send: Send, protocol: Any) -> None:
        super().__init__(send)
        self._protocol = protocol
        self._conn = protocol.conn
        self._socket = protocol.transport

    def backlog(self) -> int:
        return self._queued_bytes + int(self._socket.get_write_buffer_size())

    def _direct(self) -> bool:
        """Whether frames may go straight to the socket (else the ASGI path keeps the order)."""
        return (
            self.is_open
            and not self.writing
            and self._conn.state is _OPEN
            and not self._protocol.close_sent
            and not self._socket.is_closing()
        )

    def send(self, frame: bytes) -> None:
        if self._direct():
            self._socket.write(_wire(frame))
            return
        super().send(frame)

    def send_many(self, frames: list[bytes]) -> None:
        if len(frames) > 1 and self._direct():
            # One write (one system call) for the batch instead of one per frame; the join
            # copies each payload once.
            parts: list[bytes] = []
            for frame in frames:
                parts.append(_head(len(frame)))
                parts.append(frame)
            self._socket.write(b"".join(parts))
            return
        for frame in frames:
            self.send(frame)
