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


@dataclass(frozen=True, slots=True)
class ParticipantRemoved:
    """The facilitator removed this participant: their sockets close with 4403."""

    user_id: str


@dataclass(frozen=True, slots=True)
class RoleChanged:
    """The facilitator changed this participant's role: their sockets close with 4412 and
    reconnect with the new role (the door reads it from the store)."""

    user_id: str


Control = CanvasDeleted | InviteRevoked | ParticipantRemoved | RoleChanged


def encode(message: Control) -> bytes:
    if isinstance(message, CanvasDeleted):
        return b"deleted:"
    if isinstance(message, ParticipantRemoved):
        return b"removed:" + message.user_id.encode()
    if isinstance(message, RoleChanged):
        return b"role:" + message.user_id.encode()
    return b"revoked:" + message.invite_id.encode()


def decode(payload: bytes) -> Control | None:
    """None for a message this node does not know (a newer node's): ignored, not fatal."""
    verb, _, arg = payload.partition(b":")
    if verb == b"deleted":
        return CanvasDeleted()
    try:
        text = arg.decode()
    except UnicodeDecodeError:
        return None
    if verb == b"revoked":
        return InviteRevoked(text)
    if verb == b"removed":
        return ParticipantRemoved(text)
    if verb == b"role":
        return RoleChanged(text)
    return None
