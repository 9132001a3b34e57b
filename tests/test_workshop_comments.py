"""Comments on notes over real sockets: author and organization come from the token whatever
the client writes; replies, resolve, who may edit; viewers only when allowed; comments go with
their note."""

from __future__ import annotations

from pycrdt import Map

from tests.support import ServerProcess
from tests.workshop_helpers import close_all, comments_of, route, workshop


def comment(client, cid: str, note: str, text: str, **extra: object) -> None:  # type: ignore[no-untyped-def]
    client.doc.get("comments", type=Map)[cid] = Map({"note": note, "text": text, **extra})


async def test_comments_are_attributed_from_the_token(server: ServerProcess) -> None:
    w = await workshop(
        server,
        {"Ann": ("alpha", "editor"), "Bob": ("beta", "editor"), "Vic": ("gamma", "viewer")},
    )
    fac, ann, bob, vic = (w.clients[n] for n in ("fac", "Ann", "Bob", "Vic"))
    fac.add_note("n1", "an idea", block="customer-jobs")
    await vic.wait_for(lambda: "n1" in vic.notes)
    bob_m = w.members["Bob"]

    # Ann claims to be Bob of Beta, with a made-up time and an extra field.
    comment(
        ann,
        "c1",
        "n1",
        "I like it",
        author=bob_m.user_id,
        author_name="Bob",
        org="beta",
        created_at=1,
        colour="red",
    )
    for c in (fac, ann, bob, vic):
        await c.wait_for(
            lambda c=c: comments_of(c).get("c1", {}).get("author") == w.members["Ann"].user_id
        )
    c1 = comments_of(bob)["c1"]
    assert (c1["author_name"], c1["org"], c1["resolved"]) == ("Ann", "alpha", False)
    assert c1["created_at"] > 1_700_000_000_000 and "colour" not in c1

    # A reply from another organization; the thread is two partners' now.
    comment(bob, "c2", "n1", "Only for B2B", parent="c1")
    await ann.wait_for(lambda: comments_of(ann).get("c2", {}).get("org") == "beta")
    # Bob may not rewrite Ann's words, nor re-attribute them.
    bob.doc.get("comments", type=Map)["c1"]["text"] = "I hate it"
    await bob.wait_for(lambda: any("only its author" in d for d in bob.denials))
    ann.doc.get("comments", type=Map)["c2"]["org"] = "alpha"
    await ann.wait_for(lambda: any("fixed" in d for d in ann.denials))
    for c in (fac, ann, bob):
        await c.wait_for(lambda c=c: comments_of(c)["c1"]["text"] == "I like it")
        await c.wait_for(lambda c=c: comments_of(c)["c2"]["org"] == "beta")
    # A reply must answer a comment on the same note.
    comment(bob, "c3", "n1", "stray", parent="nope")
    await bob.wait_for(lambda: any("same note" in d for d in bob.denials))
    await bob.wait_for(lambda: "c3" not in comments_of(bob))

    # Anyone who may comment resolves.
    bob.doc.get("comments", type=Map)["c1"]["resolved"] = True
    await fac.wait_for(lambda: comments_of(fac)["c1"]["resolved"] is True)

    # A viewer comments only once the facilitator allows it.
    comment(vic, "v1", "n1", "viewer says")
    await vic.wait_for(lambda: any("viewers may comment" in d for d in vic.denials))
    await vic.wait_for(lambda: "v1" not in comments_of(vic))
    assert "v1" not in comments_of(fac)
    r = route(server, "PATCH", w, "/settings", w.fac_token, {"viewer_comments": True})
    assert r.status_code == 200 and r.json()["viewer_comments"] is True
    await vic.wait_for(lambda: vic.doc.get("stage", type=Map).get("viewer_comments") is True)
    comment(vic, "v2", "n1", "viewer says")
    await fac.wait_for(lambda: comments_of(fac).get("v2", {}).get("org") == "gamma")

    # Comments go when their note goes.
    del fac.notes["n1"]
    for c in (fac, ann, bob, vic):
        await c.wait_for(lambda c=c: comments_of(c) == {})
    await close_all(w)
