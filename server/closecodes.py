"""WebSocket close codes this server sends, in one place (the README lists the same table)."""

NORMAL = 1000
PROTOCOL_ERROR = 1002  # malformed frame: bad varint, truncated, trailing bytes
UNSUPPORTED_DATA = 1003  # text frame, or a message type the protocol does not have
INVALID_PAYLOAD = 1007  # an update or state vector the CRDT rejects
POLICY_VIOLATION = 1008  # generic refusal (origin not allowed)
MESSAGE_TOO_BIG = 1009  # frame larger than COCANVAS_MAX_MESSAGE_BYTES
INTERNAL_ERROR = 1011  # the store could not persist an update; reconnecting resends it
SERVICE_RESTART = 1012  # graceful shutdown: reconnect (another node, or this one when back)
TRY_AGAIN_LATER = 1013  # this connection cannot keep up (send backlog too large)

UNAUTHORIZED = 4401  # no token, bad signature, expired token
FORBIDDEN = 4403  # token for another canvas, origin not allowed
NOT_FOUND = 4404  # no such canvas (or it was deleted)
REVOKED = 4410  # the invite link behind this token was revoked
DOCUMENT_TOO_LARGE = 4413  # the update would grow the canvas past COCANVAS_MAX_DOCUMENT_BYTES
TOO_MANY_CONNECTIONS = 4409  # canvas already has COCANVAS_MAX_CONNECTIONS_PER_CANVAS sessions
# this participant (token user) already has COCANVAS_MAX_CONNECTIONS_PER_IDENTITY sessions here
TOO_MANY_FOR_IDENTITY = 4408
RATE_LIMITED = 4429  # messages or bytes above the per-connection or per-address rate


class CloseSession(Exception):
    """Raised on the message path to close the sending session (and only it)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
