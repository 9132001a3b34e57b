"""WebSocket close codes this server sends, in one place (the README lists the same table)."""

NORMAL = 1000
PROTOCOL_ERROR = 1002  # malformed frame: bad varint, truncated, trailing bytes
UNSUPPORTED_DATA = 1003  # text frame, or a message type the protocol does not have
INVALID_PAYLOAD = 1007  # bytes that are not a Yjs update, or a state vector the CRDT rejects
POLICY_VIOLATION = 1008  # an update the server cannot vouch for, refused whole; too many ids
MESSAGE_TOO_BIG = (
    1009  # frame larger than COCANVAS_MAX_MESSAGE_BYTES, or an awareness state > 64 KiB
)
INTERNAL_ERROR = 1011  # the store could not persist an update; reconnecting resends it
SERVICE_RESTART = 1012  # graceful shutdown: reconnect (another node, or this one when back)
TRY_AGAIN_LATER = 1013  # this connection cannot keep up (send backlog too large)

UNAUTHORIZED = 4401  # no token, bad signature, expired token
FORBIDDEN = 4403  # token for another canvas, origin not allowed, draft space not yours, removed
NOT_FOUND = 4404  # no such canvas (or it was deleted)
REVOKED = 4410  # the invite link behind this token was revoked
ROLE_CHANGED = 4412  # the facilitator changed this participant's role: reconnect
DOCUMENT_TOO_LARGE = 4413  # the update would grow the canvas past COCANVAS_MAX_DOCUMENT_BYTES
TOO_MANY_CONNECTIONS = 4409  # canvas already has COCANVAS_MAX_CONNECTIONS_PER_CANVAS sessions
# this participant (token user) already has COCANVAS_MAX_CONNECTIONS_PER_IDENTITY sessions here
TOO_MANY_FOR_IDENTITY = 4408
RATE_LIMITED = 4429  # messages or bytes above the per-connection or per-address rate

# What each code means to a client; the OpenAPI description and the README list the same.
MEANINGS: dict[int, str] = {
    NORMAL: "normal close",
    PROTOCOL_ERROR: "malformed frame (bad varint, truncated, trailing bytes, bad awareness payload)",
    UNSUPPORTED_DATA: "text frame, or a message type the protocol does not have",
    INVALID_PAYLOAD: "bytes that are not a Yjs update, or a state vector the CRDT rejects",
    POLICY_VIOLATION: (
        "an update the server cannot vouch for, refused whole (client id owned by someone else, "
        "deletes of clocks that do not exist, structs waiting for missing items, types outside "
        "the canvas schema, more work than the per-update bounds), too many client ids, too "
        "many refused changes, or updates left waiting for the sender's own missing clocks"
    ),
    MESSAGE_TOO_BIG: "frame larger than COCANVAS_MAX_MESSAGE_BYTES, or an awareness state > 64 KiB",
    INTERNAL_ERROR: "the store could not persist an update for 30 s; reconnect to resend",
    SERVICE_RESTART: "server restarting; reconnect",
    TRY_AGAIN_LATER: "connection too slow: its send backlog passed COCANVAS_SEND_QUEUE_MAX_BYTES",
    UNAUTHORIZED: "no token, bad signature, expired token",
    FORBIDDEN: (
        "token for another canvas, browser origin not allowed, a draft space not open to "
        "this token, or the participant was removed from the canvas by the facilitator"
    ),
    ROLE_CHANGED: "the facilitator changed this participant's role; reconnect to go on with it",
    NOT_FOUND: "canvas does not exist, or was deleted (draft door: no such organization)",
    TOO_MANY_FOR_IDENTITY: "this participant has COCANVAS_MAX_CONNECTIONS_PER_IDENTITY sessions",
    TOO_MANY_CONNECTIONS: "canvas has COCANVAS_MAX_CONNECTIONS_PER_CANVAS sessions on this node",
    REVOKED: "the invite link behind this token was revoked or expired",
    DOCUMENT_TOO_LARGE: "the update would grow the canvas past COCANVAS_MAX_DOCUMENT_BYTES",
    RATE_LIMITED: "messages or bytes above the rate limit",
}


def markdown_table() -> str:
    rows = "\n".join(f"| {code} | {text} |" for code, text in sorted(MEANINGS.items()))
    return "| code | meaning |\n|---|---|\n" + rows


class CloseSession(Exception):
    """Raised on the message path to close the sending session (and only it)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
