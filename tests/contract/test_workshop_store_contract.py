"""The store's part of the workshop (BallotBox, Roster), against SQLite and PostgreSQL: a ballot
is accepted only while its round is open, and every accepted ballot is in the close's count,
also when they race from two store instances (two nodes)."""

from __future__ import annotations

import asyncio

import pytest

from server.store.base import AuditEntry, Ballot, CanvasNotFound, ClosedRound, Participant, Store

from .test_store_contract import StoreFactory, canvas, make_store, store  # noqa: F401


def ballot(cid: str, rid: str, user: str, dots: dict[str, int]) -> Ballot:
    return Ballot(cid, rid, user, user.title(), "alpha", dots, 1.0)


async def test_ballots_only_while_open_and_replaced_whole(store: Store) -> None:  # noqa: F811
    rec = canvas()
    await store.create_canvas(rec, None)
    with pytest.raises(CanvasNotFound):
        await store.open_round("nope", "r", 1.0)
    await store.open_round(rec.id, "r", 1.0)
    assert await store.round_status(rec.id, "r") == "open"
    assert not await store.put_ballot(ballot(rec.id, "other", "ann", {"n": 1}))
    assert await store.put_ballot(ballot(rec.id, "r", "ann", {"n1": 2}))
    assert await store.put_ballot(ballot(rec.id, "r", "ann", {"n2": 1}))
    assert await store.put_ballot(ballot(rec.id, "r", "bob", {"n1": 1}))
    got = await store.get_ballot(rec.id, "r", "ann")
    assert got is not None and got.dots == {"n2": 1}
    closed = await store.close_round(rec.id, "r", 2.0)
    assert closed is not None and closed.first
    assert [(b.user_id, b.dots) for b in closed.ballots] == [
        ("ann", {"n2": 1}),
        ("bob", {"n1": 1}),
    ]
    assert await store.round_status(rec.id, "r") == "closed"
    assert not await store.put_ballot(ballot(rec.id, "r", "ann", {"n1": 1}))
    again = await store.close_round(rec.id, "r", 3.0)
    assert again is not None and not again.first  # closing again saves no second version
    assert [b.dots for b in again.ballots] == [b.dots for b in closed.ballots]
    assert await store.close_round(rec.id, "missing", 3.0) is None
    assert await store.delete_canvas(rec.id)
    assert await store.round_status(rec.id, "r") is None


async def test_a_ballot_racing_the_close_is_counted_or_refused(make_store: StoreFactory) -> None:  # noqa: F811
    one, two = await make_store(), await make_store()
    rec = canvas()
    await one.create_canvas(rec, None)
    await one.open_round(rec.id, "r", 1.0)
    users = [f"u{i:03d}" for i in range(60)]

    async def cast(user: str) -> tuple[str, bool]:
        return user, await two.put_ballot(ballot(rec.id, "r", user, {"n": 1}))

    async def close_midway() -> ClosedRound | None:
        await asyncio.sleep(0)
        return await one.close_round(rec.id, "r", 2.0)

    *votes, closed = await asyncio.gather(*(cast(u) for u in users), close_midway())
    accepted = {u for u, ok in votes if ok}  # type: ignore[misc]
    assert closed is not None
    assert {b.user_id for b in closed.ballots} == accepted
    assert {b.user_id for b in await two.list_ballots(rec.id, "r")} == accepted


async def test_closes_racing_from_two_nodes_have_exactly_one_first(
    make_store: StoreFactory,  # noqa: F811
) -> None:
    """Two facilitators close the same round at once on two nodes: both get the tally, exactly
    one is told it closed the round (only that one saves the automatic version)."""
    one, two = await make_store(), await make_store()
    for r in range(5):
        rec = canvas()
        await one.create_canvas(rec, None)
        await one.open_round(rec.id, "r", 1.0)
        assert await two.put_ballot(ballot(rec.id, "r", "ann", {"n": r + 1}))
        closes = await asyncio.gather(
            *(s.close_round(rec.id, "r", 2.0) for s in (one, two, one, two))
        )
        assert all(c is not None for c in closes)
        assert sum(1 for c in closes if c is not None and c.first) == 1, closes
        assert all(c is not None and [b.dots for b in c.ballots] == [{"n": r + 1}] for c in closes)


async def test_roster_role_removal_last_seen_with_audit(store: Store) -> None:  # noqa: F811
    rec = canvas()
    await store.create_canvas(rec, None)
    await store.add_participant(Participant("ann", rec.id, "Ann", "alpha", "editor", "i", 1.0))
    entry = AuditEntry(rec.id, 5.0, "fac", "Fran", "", "role", "ann", "viewer")
    p = await store.update_participant(rec.id, "ann", role="viewer", audit=entry)
    assert p is not None and (p.role, p.removed) == ("viewer", False)
    assert await store.update_participant(rec.id, "nobody", removed=True, audit=entry) is None
    p = await store.update_participant(rec.id, "ann", removed=True)
    assert p is not None and (p.role, p.removed) == ("viewer", True)
    await store.touch_participant(rec.id, "ann", 7.0)
    await store.touch_participant(rec.id, "ann", 6.0)  # never goes back
    got = await store.get_participant(rec.id, "ann")
    assert got is not None and got.last_seen == 7.0 and got.removed
    assert [p.user_id for p in await store.list_participants(rec.id)] == ["ann"]
    audit = await store.list_audit(rec.id)
    assert [(a.action, a.target) for a in audit] == [("role", "ann")]
