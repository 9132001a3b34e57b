"""The durable store: the source of truth for every canvas.

A canvas's document is its latest snapshot plus every update row still in its log. Compaction
merges a set of log rows into a new snapshot and deletes exactly those rows, in one transaction,
after checking that no other compaction replaced the snapshot meanwhile. Rows that commit while a
compaction runs are therefore never lost, whatever order they commit in (PostgreSQL sequences are
not commit-ordered). Only the newest KEEP_SNAPSHOTS snapshots are kept; named versions are
kept apart and never pruned.

The store knows nothing of Yjs: merging is a function handed in by the caller.
"""

from __future__ import annotations

import abc
import asyncio
import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


class StoreError(RuntimeError):
    """The store could not do what was asked (unreachable, disk full, ...)."""


class CanvasNotFound(StoreError):
    pass


class VersionLimit(StoreError):
    """The canvas already keeps MAX_VERSIONS versions and none of them is automatic."""


@dataclass(slots=True)
class CanvasRecord:
    id: str
    title: str
    template: str
    created_at: float
    # Canvas settings that the server enforces (e.g. {"protect_notes": true}); free-form JSON.
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StoredDoc:
    snapshot: bytes | None
    snapshot_id: int | None
    # (row id, update) for every row still in the log, in row-id order.
    updates: list[tuple[int, bytes]]

    def parts(self) -> list[bytes]:
        head = [self.snapshot] if self.snapshot is not None else []
        return head + [u for _, u in self.updates]


@dataclass(slots=True)
class LogStats:
    count: int
    bytes: int


@dataclass(slots=True)
class SnapshotInfo:
    id: int
    created_at: float
    size: int
    merged_updates: int


@dataclass(slots=True)
class Version:
    id: int
    canvas_id: str
    name: str
    created_at: float
    created_by: str
    size: int


@dataclass(slots=True)
class AuditEntry:
    canvas_id: str
    at: float
    user_id: str
    user_name: str
    org_id: str
    action: str  # "create" | "edit" | "move" | "delete" | "refused" | ...
    target: str  # e.g. note id
    detail: str = ""


@dataclass(slots=True)
class Invite:
    id: str
    canvas_id: str
    org_id: str
    role: str
    created_at: float
    expires_at: float
    created_by: str
    max_uses: int | None = None
    uses: int = 0
    revoked: bool = False


@dataclass(slots=True)
class Participant:
    user_id: str
    canvas_id: str
    name: str
    org_id: str
    role: str
    invite_id: str | None
    joined_at: float
    # Set by the facilitator's console (Roster): removed participants' tokens open nothing.
    removed: bool = False
    last_seen: float | None = None  # when a socket of theirs last closed


@dataclass(slots=True)
class Ballot:
    """One participant's dots in one vote round (server/workshop/rounds.py): note id -> dots.
    Kept in the store, never in the document, until the round's results are revealed."""

    canvas_id: str
    round_id: str
    user_id: str
    user_name: str
    org_id: str
    dots: dict[str, int]
    at: float


@dataclass(slots=True)
class ClosedRound:
    """What closing a vote round gives: every ballot, and whether this call is the one that
    closed it (the first close of all, across nodes: it alone saves the automatic version)."""

    ballots: list[Ballot]
    first: bool


@dataclass(slots=True, frozen=True)
class ClientBinding:
    """Which identity owns a Yjs client id on one canvas.

    The first session that introduces a client id (in an update or in awareness) binds it to its
    token's user; from then on only that user may write structs or presence with that id, on any
    node. The server binds its own ids too (``user_id == SERVER_OWNER``), so no client can claim
    them. Bindings are never changed or removed while the canvas exists.
    """

    client_id: int
    user_id: str
    org_id: str
    bound_at: float


@dataclass(slots=True)
class HistogramStats:
    """A distribution counted since start, in Prometheus's shape.

    ``counts[i]`` is how many observations fell at or below ``bounds[i]`` and above the bound
    before it (not cumulative); the last entry counts those above every bound (+Inf).
    """

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def copy(self) -> HistogramStats:
        return HistogramStats(self.bounds, list(self.counts), self.sum)


# Operations per group commit, and how long a commit takes (BEGIN to COMMIT returned).
BATCH_SIZE_BOUNDS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0)
COMMIT_SECONDS_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(slots=True)
class StoreStats:
    """What a store did since it started, for /metrics (counters) and readiness (gauges)."""

    # Write transactions committed, and those that failed (nothing of them was committed).
    # SQLite: every write; PostgreSQL: the group commits of appends.
    commits: int = 0
    commit_errors: int = 0
    # Document updates durably appended, their bytes, and appends that raised instead.
    appended_updates: int = 0
    appended_bytes: int = 0
    append_errors: int = 0
    # Now: operations queued or being committed, and how long the running commit has taken.
    pending: int = 0
    commit_running_s: float = 0.0
    # Why the store stopped accepting writes for good (e.g. its database file vanished).
    failed: str | None = None
    batch_size: HistogramStats = field(default_factory=lambda: HistogramStats(BATCH_SIZE_BOUNDS))
    commit_seconds: HistogramStats = field(
        default_factory=lambda: HistogramStats(COMMIT_SECONDS_BOUNDS)
    )


# A document id with this in it belongs to the canvas before it (e.g. "<canvas>/drafts/<org>",
# server/drafts.py): canvas ids never contain it, list_canvases never lists such a document, and
# delete_canvas deletes it with its canvas.
OWNED_SEPARATOR = "/"

# The owner recorded for the client ids the server writes with (templates, corrections, API).
SERVER_OWNER = ":server"

# How many snapshots compaction keeps per canvas (newest first); older ones are pruned with it.
# The newest is the document; one more is a fallback. More would make the store grow with the
# history (100,000 small updates on a 0.9 MB canvas once left 196 snapshots, 132 MB): history
# that matters is kept on purpose, as named versions.
KEEP_SNAPSHOTS = 2

# Named versions kept per canvas (server/versions/). Saving past it first drops the oldest
# automatic version (created_by == SERVER_OWNER: "vote round closed", "before restoring …");
# when every kept version was saved on purpose by someone, the save is refused (VersionLimit)
# until a facilitator deletes one. Checked and enforced in the saving transaction, with the
# canvas row locked, so concurrent saves on several nodes never pass the cap.
MAX_VERSIONS = 50

Merge = Callable[[list[bytes]], bytes]


class DocumentLog(abc.ABC):
    """The hot path: a canvas's document as a snapshot plus a log of updates (a Room uses
    these). Async; every method is safe to call concurrently."""

    def stats(self) -> StoreStats:
        """Counters since start and the current backlog (a copy; cheap, never blocks)."""
        return StoreStats()

    @abc.abstractmethod
    async def append(self, canvas_id: str, update: bytes, audit: Sequence[AuditEntry] = ()) -> int:
        """Durably append one update (and its audit entries); return its row id.

        Returns only once the write is committed; concurrent appends share one commit.
        Raises CanvasNotFound when the canvas does not exist.
        """

    def append_nowait(
        self, canvas_id: str, update: bytes, audit: Sequence[AuditEntry] = ()
    ) -> asyncio.Future[int]:
        """:meth:`append` without waiting: the future resolves once the write is committed.

        The room's pipeline (server/pipeline.py) keeps many appends of one canvas in flight and
        releases each broadcast when its future does. Stores with a write queue override this
        to enqueue directly; this fallback runs :meth:`append` as a task.
        """
        return asyncio.ensure_future(self.append(canvas_id, update, audit))

    @abc.abstractmethod
    async def load(self, canvas_id: str) -> StoredDoc | None:
        """Latest snapshot and all log rows, read consistently; None if no such canvas."""

    @abc.abstractmethod
    async def log_stats(self, canvas_id: str) -> LogStats: ...

    @abc.abstractmethod
    async def compact(self, canvas_id: str, merge: Merge) -> bool:
        """Merge the latest snapshot and the current log into a new snapshot.

        False (and nothing changed) if there was nothing to merge or another compaction won.
        """

    @abc.abstractmethod
    async def list_snapshots(self, canvas_id: str) -> list[SnapshotInfo]:
        """Newest first."""

    @abc.abstractmethod
    async def get_snapshot(self, canvas_id: str, snapshot_id: int) -> bytes | None: ...


class ClientIdRegistry(abc.ABC):
    """Who owns each Yjs client id of a canvas (server/bindings.py): first claim wins."""

    @abc.abstractmethod
    async def bind_client_ids(
        self, canvas_id: str, bindings: Sequence[ClientBinding]
    ) -> dict[int, ClientBinding]:
        """Bind each id that is not bound yet; return the binding now stored for every id asked.

        First claim wins, atomically across nodes: an id already bound keeps its owner, and the
        answer says who that is. Durable before it returns. Raises CanvasNotFound.
        """

    @abc.abstractmethod
    async def list_client_ids(self, canvas_id: str) -> dict[int, ClientBinding]:
        """Every binding of the canvas (read when a room loads)."""


class CanvasRepository(abc.ABC):
    """Everything about canvases that is not their document: records, versions, audit,
    invites, participants (the HTTP API uses these)."""

    @abc.abstractmethod
    async def create_canvas(self, record: CanvasRecord, initial_update: bytes | None) -> None:
        """Create the canvas and (optionally) its first update in one transaction."""

    @abc.abstractmethod
    async def get_canvas(self, canvas_id: str) -> CanvasRecord | None: ...

    @abc.abstractmethod
    async def list_canvases(self) -> list[CanvasRecord]:
        """Newest first."""

    @abc.abstractmethod
    async def update_canvas(self, record: CanvasRecord) -> None:
        """Replace title and settings. Raises CanvasNotFound."""

    @abc.abstractmethod
    async def delete_canvas(self, canvas_id: str) -> bool:
        """Delete the canvas and everything it owns; False if it did not exist."""

    @abc.abstractmethod
    async def save_version(
        self, canvas_id: str, name: str, state: bytes, created_by: str, keep: int = MAX_VERSIONS
    ) -> Version:
        """Keep ``state`` under ``name``. With ``keep`` versions already kept, the oldest
        automatic one (``created_by == SERVER_OWNER``) is deleted in the same transaction;
        without one, VersionLimit. Raises CanvasNotFound."""

    @abc.abstractmethod
    async def delete_version(self, canvas_id: str, version_id: int) -> bool:
        """False if the canvas has no such version."""

    @abc.abstractmethod
    async def list_versions(self, canvas_id: str) -> list[Version]:
        """Newest first."""

    @abc.abstractmethod
    async def get_version(self, canvas_id: str, version_id: int) -> bytes | None: ...

    @abc.abstractmethod
    async def list_audit(
        self, canvas_id: str, limit: int = 200, before: float | None = None
    ) -> list[AuditEntry]:
        """Newest first."""

    @abc.abstractmethod
    async def create_invite(self, invite: Invite) -> None: ...

    @abc.abstractmethod
    async def get_invite(self, invite_id: str) -> Invite | None: ...

    @abc.abstractmethod
    async def list_invites(self, canvas_id: str) -> list[Invite]: ...

    @abc.abstractmethod
    async def revoke_invite(self, canvas_id: str, invite_id: str) -> bool: ...

    @abc.abstractmethod
    async def redeem_invite(self, invite_id: str, now: float) -> Invite | None:
        """Atomically count one use; None when revoked, expired, used up or unknown."""

    @abc.abstractmethod
    async def add_participant(self, participant: Participant) -> None: ...

    @abc.abstractmethod
    async def list_participants(self, canvas_id: str) -> list[Participant]: ...


class BallotBox(abc.ABC):
    """Ballots of vote rounds (server/workshop/rounds.py). A round is open or closed here, and
    a ballot is accepted only while its round is open, atomically across nodes: a ballot that
    races the close is either in the tally or refused, never lost after the count."""

    @abc.abstractmethod
    async def open_round(self, canvas_id: str, round_id: str, at: float) -> None:
        """Record a new open round. Raises CanvasNotFound, StoreError for an id in use."""

    @abc.abstractmethod
    async def round_status(self, canvas_id: str, round_id: str) -> str | None:
        """ "open", "closed", or None for no such round."""

    @abc.abstractmethod
    async def put_ballot(self, ballot: Ballot) -> bool:
        """Replace this participant's ballot; False (nothing written) unless the round is open."""

    @abc.abstractmethod
    async def get_ballot(self, canvas_id: str, round_id: str, user_id: str) -> Ballot | None: ...

    @abc.abstractmethod
    async def list_ballots(self, canvas_id: str, round_id: str) -> list[Ballot]: ...

    @abc.abstractmethod
    async def close_round(self, canvas_id: str, round_id: str, at: float) -> ClosedRound | None:
        """Close the round (if open) and return every ballot, in one transaction; None for no
        such round. Closing a closed round returns the same ballots with ``first`` False: of
        closes racing from several nodes, exactly one is first."""


class Roster(abc.ABC):
    """The facilitator's console over participants: role changes and removal (checked at every
    door, so they hold against tokens already issued) and when each was last seen."""

    @abc.abstractmethod
    async def get_participant(self, canvas_id: str, user_id: str) -> Participant | None: ...

    @abc.abstractmethod
    async def update_participant(
        self,
        canvas_id: str,
        user_id: str,
        *,
        role: str | None = None,
        removed: bool | None = None,
        audit: AuditEntry | None = None,
    ) -> Participant | None:
        """Change role and/or removal, with its audit entry, in one transaction; None (and
        nothing written) for no such participant."""

    @abc.abstractmethod
    async def touch_participant(self, canvas_id: str, user_id: str, at: float) -> None:
        """Record that the participant was connected until ``at`` (no-op if unknown)."""


class RoomStore(DocumentLog, ClientIdRegistry, abc.ABC):
    """What one Room needs of the store: its document log and its client id bindings."""


class Store(RoomStore, CanvasRepository, BallotBox, Roster, abc.ABC):
    """A whole backend (SQLite, PostgreSQL): one contract suite, tests/contract/."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Open connections and create or migrate the schema."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush every pending write, then release connections."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise StoreError when the store is unreachable or cannot commit within a bound."""
