"""What changed between two states of a canvas, grouped by organization.

Pure: two ``doc_to_json`` contents in, a plain dict out (the versions API serves it as JSON).
A note's changes are listed under the note's organization (the one stamped on it, which the
server sets from the author's token); a vote under the voter's organization when the caller
knows it (``voter_orgs``: user id -> org id, from the participants), else under the note's;
a link under the organization stamped on it. The facilitator's own notes, with no
organization, are under ``""``.
"""

from __future__ import annotations

from typing import Any

NOTE_PLACE = ("block", "x", "y")
# Fields the server stamps or that are not the note's content.
NOT_CONTENT = {"org", "author", "author_name", "created_at", "votes", *NOTE_PLACE}


def _root(content: dict[str, Any], name: str) -> dict[str, Any]:
    value = content.get(name)
    return (
        {k: v for k, v in value.items() if isinstance(v, dict)} if isinstance(value, dict) else {}
    )


def _text(note: dict[str, Any]) -> str:
    t = note.get("text")
    return t if isinstance(t, str) else ""


def _org(item: dict[str, Any]) -> str:
    o = item.get("org")
    return o if isinstance(o, str) else ""


def _ref(nid: str, note: dict[str, Any]) -> dict[str, Any]:
    return {"id": nid, "block": note.get("block"), "text": _text(note)}


def _comment(cid: str, c: dict[str, Any]) -> dict[str, Any]:
    text, who = c.get("text"), c.get("author_name")
    return {
        "id": cid,
        "note": c.get("note"),
        "text": text if isinstance(text, str) else "",
        "author_name": who if isinstance(who, str) else "",
        "reply": isinstance(c.get("parent"), str),
    }


def _moved(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.get("block") != b.get("block"):
        return True
    for k in ("x", "y"):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, int | float) and isinstance(vb, int | float):
            if abs(float(va) - float(vb)) > 1e-9:
                return True
        elif va != vb:
            return True
    return False


def _votes(note: dict[str, Any]) -> dict[str, Any]:
    v = note.get("votes")
    return v if isinstance(v, dict) else {}


def diff(
    before: dict[str, Any],
    after: dict[str, Any],
    voter_orgs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``{"orgs": [{org, name, added, removed, edited, moved, votes, links_added,
    links_removed, comments_added, comments_resolved}, …], "totals": {…}, "rounds_closed":
    [{id, title, voters, ranking}, …]}``; organizations without changes are left out."""
    voter_orgs = voter_orgs or {}
    names = {
        oid: (o.get("name") if isinstance(o.get("name"), str) else oid)
        for content in (before, after)
        for oid, o in _root(content, "orgs").items()
    }
    groups: dict[str, dict[str, list[Any]]] = {}

    def group(org: str) -> dict[str, list[Any]]:
        return groups.setdefault(
            org,
            {
                k: []
                for k in (
                    "added",
                    "removed",
                    "edited",
                    "moved",
                    "votes",
                    "links_added",
                    "links_removed",
                    "comments_added",
                    "comments_resolved",
                )
            },
        )

    old, new = _root(before, "notes"), _root(after, "notes")
    for nid in sorted(new.keys() - old.keys()):
        group(_org(new[nid]))["added"].append(_ref(nid, new[nid]))
    for nid in sorted(old.keys() - new.keys()):
        group(_org(old[nid]))["removed"].append(_ref(nid, old[nid]))
    for nid in sorted(old.keys() & new.keys()):
        a, b = old[nid], new[nid]
        org = _org(b)
        fields = sorted(k for k in (a.keys() | b.keys()) - NOT_CONTENT if a.get(k) != b.get(k))
        if fields:
            group(org)["edited"].append(
                {**_ref(nid, b), "fields": fields, "before": _text(a), "after": _text(b)}
            )
        if _moved(a, b):
            group(org)["moved"].append(
                {
                    **_ref(nid, b),
                    "from": {k: a.get(k) for k in NOTE_PLACE},
                    "to": {k: b.get(k) for k in NOTE_PLACE},
                }
            )
    for nid in sorted(old.keys() | new.keys()):
        va, vb = _votes(old.get(nid, {})), _votes(new.get(nid, {}))
        note = new.get(nid) or old[nid]
        for voter in sorted(va.keys() | vb.keys()):
            if va.get(voter) != vb.get(voter):
                if nid not in old or nid not in new:
                    continue  # a note added or removed with its votes: listed as that
                org = voter_orgs.get(voter, _org(note))
                group(org)["votes"].append(
                    {
                        **_ref(nid, note),
                        "voter": voter,
                        "before": va.get(voter),
                        "after": vb.get(voter),
                    }
                )
    la, lb = _root(before, "links"), _root(after, "links")
    for lid in sorted(lb.keys() - la.keys()):
        group(_org(lb[lid]))["links_added"].append({"id": lid, **lb[lid]})
    for lid in sorted(la.keys() - lb.keys()):
        group(_org(la[lid]))["links_removed"].append({"id": lid, **la[lid]})

    # Comments under their author's organization (stamped from the token); a resolve under the
    # comment's organization too (whoever resolved it: the document does not say).
    ca, cb = _root(before, "comments"), _root(after, "comments")
    for cid in sorted(cb.keys() - ca.keys()):
        group(_org(cb[cid]))["comments_added"].append(_comment(cid, cb[cid]))
    for cid in sorted(ca.keys() & cb.keys()):
        if ca[cid].get("resolved") is not True and cb[cid].get("resolved") is True:
            group(_org(cb[cid]))["comments_resolved"].append(_comment(cid, cb[cid]))
    # Vote rounds that closed in between, with their results (not an organization's change).
    ra, rb = _root(before, "rounds"), _root(after, "rounds")
    rounds_closed = []
    for rid in sorted(rb):
        if rb[rid].get("status") == "closed" and ra.get(rid, {}).get("status") != "closed":
            tally = rb[rid].get("tally")
            tally = tally if isinstance(tally, dict) else {}
            rounds_closed.append(
                {
                    "id": rid,
                    "title": rb[rid].get("title") if isinstance(rb[rid].get("title"), str) else "",
                    "voters": tally.get("voters", 0),
                    "ranking": tally.get("ranking")
                    if isinstance(tally.get("ranking"), list)
                    else [],
                }
            )

    orgs = [
        {"org": oid, "name": names.get(oid, oid) if oid else "Facilitator", **changes}
        for oid, changes in sorted(groups.items())
    ]
    totals = {
        k: sum(len(g[k]) for g in groups.values())
        for k in (
            "added",
            "removed",
            "edited",
            "moved",
            "votes",
            "links_added",
            "links_removed",
            "comments_added",
            "comments_resolved",
        )
    }
    return {"orgs": orgs, "totals": totals, "rounds_closed": rounds_closed}
