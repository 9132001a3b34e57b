"""Dot voting in rounds over real sockets: the server enforces budget, cap, own dots and "round
open"; hidden results are hidden in the bytes every socket receives until the round closes."""

from __future__ import annotations

from pycrdt import Map

from tests.support import ServerProcess
from tests.workshop_helpers import (
    close_all,
    doc_of,
    received_updates,
    rounds_of,
    route,
    workshop,
)

PEOPLE = {"Ann": ("alpha", "editor"), "Bob": ("beta", "editor"), "Cy": ("gamma", "editor")}


async def _notes(w, n: int = 3) -> list[str]:  # type: ignore[no-untyped-def]
    fac = w.clients["fac"]
    ids = [f"idea-{i}" for i in range(n)]
    for nid in ids:
        fac.add_note(nid, f"idea {nid}", block="customer-jobs")
    for c in w.clients.values():
        await c.wait_for(lambda c=c: all(i in c.notes for i in ids))
    return ids


async def test_a_round_from_open_to_ranked_results_by_organization(server: ServerProcess) -> None:
    w = await workshop(server, PEOPLE)
    a, b, c = await _notes(w)
    r = route(
        server, "POST", w, "/rounds", w.fac_token, {"title": "Pick", "dots": 3, "per_note": 2}
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    ann, bob, cy = (w.members[n] for n in ("Ann", "Bob", "Cy"))
    mark = {name: len(cl.frames_received) for name, cl in w.clients.items()}

    assert (
        route(
            server, "PUT", w, f"/rounds/{rid}/ballot", ann.token, {"dots": {a: 2, b: 1}}
        ).status_code
        == 200
    )
    assert (
        route(
            server, "PUT", w, f"/rounds/{rid}/ballot", bob.token, {"dots": {a: 1, c: 2}}
        ).status_code
        == 200
    )
    assert (
        route(server, "PUT", w, f"/rounds/{rid}/ballot", cy.token, {"dots": {c: 1}}).status_code
        == 200
    )
    # Taking a dot back: Cy's whole ballot replaces the last one.
    assert (
        route(server, "PUT", w, f"/rounds/{rid}/ballot", cy.token, {"dots": {a: 1}}).status_code
        == 200
    )
    for cl in w.clients.values():
        await cl.wait_for(lambda cl=cl: rounds_of(cl).get(rid, {}).get("voters") == 3)

    # Hidden until the close: in every byte every socket received, no tally and no ballot.
    for name, cl in w.clients.items():
        seen = doc_of(received_updates(cl))
        entry = seen.get("rounds", type=Map).get(rid)
        assert isinstance(entry, Map) and "tally" not in entry, name
        for frame in cl.frames_received[mark[name] :]:
            for who in (ann, bob, cy):
                assert who.user_id.encode() not in frame, (name, who.name)
            assert b"by_org" not in frame and b"ranking" not in frame

    # Each sees their own dots, nobody else's.
    mine = route(server, "GET", w, f"/rounds/{rid}/ballot", bob.token).json()
    assert mine["dots"] == {a: 1, c: 2} and mine["used"] == 3 and mine["budget"] == 3

    closed = route(server, "POST", w, f"/rounds/{rid}/close", w.fac_token)
    assert closed.status_code == 200, closed.text
    tally = closed.json()["tally"]
    assert [(row["note"], row["total"]) for row in tally["ranking"]] == [(a, 4), (c, 2), (b, 1)]
    assert tally["ranking"][0]["by_org"] == {"alpha": 2, "beta": 1, "gamma": 1}
    assert tally["shared"] == [a]
    assert tally["single_org"] == {c: "beta", b: "alpha"}
    assert "voters" not in tally["ranking"][0]  # anonymous by default
    for cl in w.clients.values():
        await cl.wait_for(lambda cl=cl: rounds_of(cl).get(rid, {}).get("status") == "closed")
        assert rounds_of(cl)[rid]["tally"] == tally

    # A closed round is read-only.
    late = route(server, "PUT", w, f"/rounds/{rid}/ballot", ann.token, {"dots": {b: 1}})
    assert late.status_code == 409
    assert route(server, "GET", w, f"/rounds/{rid}/ballot", ann.token).json()["dots"] == {
        a: 2,
        b: 1,
    }
    await close_all(w)


async def test_the_server_refuses_ballots_the_round_does_not_allow(server: ServerProcess) -> None:
    w = await workshop(server, {"Ann": ("alpha", "editor"), "Vic": ("beta", "viewer")})
    a, b, _ = await _notes(w)
    w.clients["fac"].add_note("elsewhere", "x", block="customer-pains")
    await w.clients["Ann"].wait_for(lambda: "elsewhere" in w.clients["Ann"].notes)
    rid = route(
        server,
        "POST",
        w,
        "/rounds",
        w.fac_token,
        {"dots": 2, "per_note": 1, "blocks": ["customer-jobs"]},
    ).json()["id"]
    ann = w.members["Ann"]

    def ballot(token: str, body: object) -> tuple[int, object]:
        r = route(server, "PUT", w, f"/rounds/{rid}/ballot", token, body)
        return r.status_code, r.json()

    status, body = ballot(ann.token, {"dots": {a: 1, b: 1, "idea-2": 1}})
    assert status == 422 and "budget" in str(body)
    status, body = ballot(ann.token, {"dots": {a: 2}})
    assert status == 422 and body["detail"][0]["loc"] == ["body", "dots", a]  # type: ignore[index]
    assert ballot(ann.token, {"dots": {"elsewhere": 1}})[0] == 422  # outside the round's blocks
    assert ballot(ann.token, {"dots": {"no-such-note": 1}})[0] == 422
    assert ballot(ann.token, {"dots": {a: -1}})[0] == 422
    assert ballot(ann.token, {"dots": {a: "1"}})[0] == 422
    assert ballot(w.members["Vic"].token, {"dots": {a: 1}})[0] == 403
    # A ballot naming someone else is still the caller's own: the token decides whose dots.
    assert ballot(ann.token, {"dots": {a: 1}, "user_id": "someone-else"})[0] == 200
    close = route(server, "POST", w, f"/rounds/{rid}/close", w.fac_token).json()
    assert close["tally"]["ranking"] == [
        {"place": 1, "note": a, "total": 1, "by_org": {"alpha": 1}, "orgs": 1}
    ]
    # Nothing of the refused ballots counted; editors cannot close or open rounds.
    assert route(server, "POST", w, f"/rounds/{rid}/close", ann.token).status_code == 403
    assert route(server, "POST", w, "/rounds", ann.token, {"dots": 1}).status_code == 403
    await close_all(w)


async def test_no_socket_can_write_a_round_or_its_tally(server: ServerProcess) -> None:
    """Forging votes through the document: the rounds root is the server's, refused for all."""
    w = await workshop(server)
    a, _, _ = await _notes(w)
    rid = route(
        server, "POST", w, "/rounds", w.fac_token, {"dots": 1, "visibility": "live"}
    ).json()["id"]
    ann, fac, bob = w.clients["Ann"], w.clients["fac"], w.clients["Bob"]
    await ann.wait_for(lambda: rid in rounds_of(ann))
    ann.doc.get("rounds", type=Map)[rid]["tally"] = {"ranking": [{"note": a, "total": 99}]}
    await ann.wait_for(lambda: any("server only" in d for d in ann.denials))
    fac.doc.get("rounds", type=Map)[rid]["status"] = "closed"  # a facilitator's socket too
    await fac.wait_for(lambda: any("server only" in d for d in fac.denials))
    await ann.wait_for(lambda: "tally" not in rounds_of(ann)[rid])
    await fac.wait_for(lambda: rounds_of(fac)[rid]["status"] == "open")
    assert "tally" not in rounds_of(bob).get(rid, {})
    # A live round shows the tally as it goes, written by the server.
    assert (
        route(
            server, "PUT", w, f"/rounds/{rid}/ballot", w.members["Bob"].token, {"dots": {a: 1}}
        ).status_code
        == 200
    )
    await bob.wait_for(lambda: (rounds_of(bob)[rid].get("live") or {}).get("dots_cast") == 1)
    assert "tally" not in rounds_of(bob)[rid]
    closed = route(server, "POST", w, f"/rounds/{rid}/close", w.fac_token).json()
    await bob.wait_for(lambda: rounds_of(bob)[rid].get("tally") == closed["tally"])
    assert "live" not in rounds_of(bob)[rid] and closed["tally"]["voters"] == 1
    await close_all(w)


async def test_replacing_a_hidden_ballot_sends_nobody_anything(server: ServerProcess) -> None:
    """While results are hidden, only "someone started (or stopped) voting" reaches the sockets:
    changing one's dots moves no byte of the document."""
    w = await workshop(server)
    a, b, _ = await _notes(w)
    rid = route(server, "POST", w, "/rounds", w.fac_token, {"dots": 2, "per_note": 2}).json()["id"]
    ann, bob = w.clients["Ann"], w.members["Bob"]
    put = f"/rounds/{rid}/ballot"
    assert route(server, "PUT", w, put, bob.token, {"dots": {a: 1}}).status_code == 200
    await ann.wait_for(lambda: rounds_of(ann).get(rid, {}).get("voters") == 1)
    mark = len(ann.frames_received)
    for dots in ({b: 1}, {a: 1, b: 1}, {b: 2}, {a: 2}):
        assert route(server, "PUT", w, put, bob.token, {"dots": dots}).status_code == 200
    # The next change that does move the document arrives after them, in order: nothing before.
    assert route(server, "PUT", w, put, bob.token, {"dots": {}}).status_code == 200
    await ann.wait_for(lambda: rounds_of(ann)[rid]["voters"] == 0)
    updates = received_updates(ann)[len(received_updates(ann, mark)) :]
    assert len(updates) == 1
    assert route(server, "GET", w, put, bob.token).json()["dots"] == {}
    await close_all(w)
