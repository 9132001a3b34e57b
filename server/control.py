"""Control messages between nodes about a canvas, as bytes: one home for their wire form.

They travel on the canvas's broker channel (kind KIND_CONTROL) beside its updates, so every node
that has the canvas loaded hears them, whichever node took the HTTP request.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CanvasDeleted:
    """The canvas is gone: close its sockets with 4404 and unload it."""


@dataclass(frozen=True, slots=True)
class InviteRevoked:
    """Sockets opened with this invite link's tokens close with 4410."""

    invite_id: str


Control = CanvasDeleted | InviteRevoked


def encode(message: Control) -> bytes:
    if isinstance(message, CanvasDeleted):
        return b"deleted:"
    return b"revoked:" + message.invite_id.encode()


def decode(payload: bytes) -> Control | None:
    """None for a message this node does not know (a newer node's): ignored, not fatal."""
    verb, _, arg = payload.partition(b":")
    if verb == b"deleted":
        return CanvasDeleted()
    if verb == b"revoked":
        try:
            return InviteRevoked(arg.decode())
        except UnicodeDecodeError:
            return None
    return None
