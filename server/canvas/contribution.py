"""The contribution map: who addresses which of the customer's jobs, pains and gains.

A pure function over a canvas as plain JSON (``canvas/export.py``'s ``doc_to_json``), so the HTTP
API (``GET /api/canvases/{id}/contribution``) and the exporter compute the same answer from the
same input, and tests can check it cell by cell.

* **rows**: every note in a block of a row kind (:data:`fit.ROW_KINDS`: jobs, pains, gains; on the
  Business Model Canvas key resources and key activities), in block order;
* **columns**: the canvas's organizations (a column ``""`` only when notes without one contribute);
* **cells**: the notes of that organization linked to the row (a valid fit link: both ends exist
  and the blocks' kinds fit; the kind is recomputed, never read from the client's link).

A note contributes for the organization whose offer it is: a key partner note naming an
organization (``partner_org``) for that one; else its author's organization (the note's ``org``,
stamped from the token), and a facilitator's note without one for the partner whose value map
holds it. A partner's note put in another partner's value map still counts for its author, so
nobody can make a competitor appear to offer what it does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import fit

SINGULAR = {
    "jobs": "job",
    "pains": "pain",
    "gains": "gain",
    "key resources": "key resource",
    "key activities": "key activity",
}
NO_ORG_NAME = "(no organization)"


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _text(note: Mapping[str, Any]) -> str:
    t = note.get("text")
    return t if isinstance(t, str) else ""


def _votes(note: Mapping[str, Any]) -> int:
    total = 0
    for v in _dict(note.get("votes")).values():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            total += int(v)
    return total


def round_dots(rounds: Mapping[str, Any]) -> dict[str, int]:
    """Note id -> dots from closed vote rounds (root ``rounds``: a round's ``tally`` is written
    by the server when it closes; an open round's ballots are never in the document)."""
    out: dict[str, int] = {}
    for r in rounds.values():
        if not isinstance(r, dict) or r.get("status") != "closed":
            continue
        for row in _dict(r.get("tally")).get("ranking") or []:
            total = row.get("total") if isinstance(row, dict) else None
            if isinstance(row, dict) and isinstance(row.get("note"), str):
                if isinstance(total, int) and not isinstance(total, bool) and total > 0:
                    out[row["note"]] = out.get(row["note"], 0) + total
    return out


def _block(blocks: Mapping[str, Any], block: Any) -> dict[str, Any]:
    return _dict(blocks.get(block)) if isinstance(block, str) else {}


def _order(blocks: Mapping[str, Any], nid: str, note: Mapping[str, Any]) -> tuple[Any, ...]:
    block = _block(blocks, note.get("block"))
    order = block.get("order")
    created = note.get("created_at")
    return (
        order if isinstance(order, (int, float)) else 1e9,
        created if isinstance(created, (int, float)) else 0.0,
        nid,
    )


def contributor(note: Mapping[str, Any], blocks: Mapping[str, Any], orgs: Mapping[str, Any]) -> str:
    """The organization whose offer this note is ("" for none of the canvas's)."""
    block = _block(blocks, note.get("block"))
    named = note.get(fit.PARTNER_ORG)
    if block.get("kind") == fit.KEY_PARTNERS and isinstance(named, str) and named in orgs:
        return named
    org = note.get("org")
    org = org if isinstance(org, str) and org in orgs else ""
    owner = block.get("org")
    if isinstance(owner, str) and owner in orgs and org in ("", owner):
        return owner
    return org


def _plural(n: int, label: str) -> str:
    return f"{n} {label if n != 1 else SINGULAR.get(label, label)}"


def contribution_map(canvas: Mapping[str, Any]) -> dict[str, Any]:
    """The whole map as plain JSON; see the module docstring for what each part means."""
    blocks = _dict(canvas.get("blocks"))
    notes = _dict(canvas.get("notes"))
    orgs = _dict(canvas.get("orgs"))
    marks = _dict(canvas.get("overlaps"))
    dots = round_dots(_dict(canvas.get("rounds")))

    def kind_of(nid: Any) -> str | None:
        note = notes.get(nid) if isinstance(nid, str) else None
        return fit.block_kind(blocks, note.get("block")) if isinstance(note, dict) else None

    # Valid links, one per (from, to): an essential link wins over a nice-to-have one.
    strongest: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for lid in sorted(_dict(canvas.get("links"))):
        link = _dict(canvas["links"][lid])
        frm, to = link.get("from"), link.get("to")
        if not isinstance(frm, str) or not isinstance(to, str):
            continue
        if fit.link_kind(kind_of(frm), kind_of(to)) is None:
            continue
        have = strongest.get((frm, to))
        if have is None or (
            have[1].get("strength") != "essential" and link.get("strength") == "essential"
        ):
            strongest[(frm, to)] = (lid, link)

    columns = sorted(orgs, key=lambda o: (str(_dict(orgs[o]).get("name", o)), o))
    used_columns = set(columns)
    cells_by_row: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for (frm, to), (lid, link) in strongest.items():
        source = notes[frm]
        org = contributor(source, blocks, orgs)
        used_columns.add(org)
        cells_by_row.setdefault(to, {}).setdefault(org, []).append(
            {
                "note": frm,
                "text": _text(source),
                "link": lid,
                "kind": fit.link_kind(kind_of(frm), kind_of(to)),
                "strength": link.get("strength")
                if link.get("strength") in fit.STRENGTHS
                else fit.DEFAULT_STRENGTH,
            }
        )
    if "" in used_columns and "" not in columns:
        columns.append("")
    organizations = [
        {
            "id": o,
            "name": str(_dict(orgs.get(o)).get("name", o)) if o else NO_ORG_NAME,
            "color": str(_dict(orgs.get(o)).get("color", "")),
        }
        for o in columns
    ]
    names = {o["id"]: o["name"] for o in organizations}

    row_ids = sorted(
        (nid for nid in notes if kind_of(nid) in fit.ROW_KINDS),
        key=lambda nid: _order(blocks, nid, _dict(notes[nid])),
    )
    rows: list[dict[str, Any]] = []
    for nid in row_ids:
        by_org = cells_by_row.get(nid, {})
        cells = {o: sorted(by_org.get(o, []), key=lambda c: c["note"]) for o in columns}
        addressing = [o for o in columns if cells[o]]
        mark = marks.get(nid)
        rows.append(
            {
                "note": nid,
                "kind": kind_of(nid),
                "block": notes[nid].get("block"),
                "text": _text(notes[nid]),
                # the note's free votes plus its dots from closed rounds: gaps most-voted first
                "votes": _votes(notes[nid]) + dots.get(nid, 0),
                "cells": cells,
                "orgs": addressing,
                "essential": any(c["strength"] == "essential" for o in columns for c in cells[o]),
                "status": "gap"
                if not addressing
                else ("single" if len(addressing) == 1 else "overlap"),
                "overlap": mark if len(addressing) > 1 and mark in fit.OVERLAP_MARKS else None,
            }
        )
    position = {r["note"]: i for i, r in enumerate(rows)}
    gaps = sorted(
        (r for r in rows if r["status"] == "gap"), key=lambda r: (-r["votes"], position[r["note"]])
    )
    overlaps = [
        {"note": r["note"], "orgs": r["orgs"], "mark": r["overlap"]}
        for r in rows
        if r["status"] == "overlap"
    ]

    present = {fit.block_kind(blocks, b) for b in blocks}
    coverage = []
    for kind, (label, verb) in fit.ROW_KINDS.items():
        if kind not in present:
            continue
        of_kind = [r for r in rows if r["kind"] == kind]
        addressed = [r for r in of_kind if r["orgs"]]
        fragile = [r for r in addressed if r["essential"] and len(r["orgs"]) == 1]
        sentence = f"{len(addressed)} of {_plural(len(of_kind), label)} {verb}"
        if fragile:
            ones = "one" if len(fragile) == 1 else "ones"
            sentence += f", {len(fragile)} essential {ones} by only one partner"
        coverage.append(
            {
                "kind": kind,
                "total": len(of_kind),
                "addressed": len(addressed),
                "essential_single": len(fragile),
                "sentence": sentence,
            }
        )

    partners = []
    for o in columns:
        addressed_rows = [r for r in rows if o in r["orgs"]]
        linked = sorted({c["note"] for r in addressed_rows for c in r["cells"][o]})
        sole = [r for r in addressed_rows if r["orgs"] == [o]]
        partners.append(
            {
                "org": o,
                "name": names[o],
                "rows": [r["note"] for r in addressed_rows],
                "notes": linked,
                "essential": sum(
                    1 for r in addressed_rows for c in r["cells"][o] if c["strength"] == "essential"
                ),
                "sole": [r["note"] for r in sole],
                "sentence": _partner_sentence(names[o], addressed_rows, linked, sole),
            }
        )

    exchange = []
    for aid in sorted(_dict(canvas.get("exchange"))):
        arrow = _dict(canvas["exchange"][aid])
        if fit.exchange_problem(arrow, orgs) is None:
            exchange.append(
                {
                    "id": aid,
                    "from_org": arrow["from_org"],
                    "to": arrow["to"],
                    "kind": arrow["kind"],
                    "note": arrow.get("note") or "",
                }
            )
    exchange.sort(key=lambda a: (a["from_org"], a["to"], a["kind"], a["id"]))

    return {
        "organizations": organizations,
        "rows": rows,
        "gaps": [r["note"] for r in gaps],
        "overlaps": overlaps,
        "coverage": coverage,
        "partners": partners,
        "exchange": exchange,
    }


def _by_kind(rows: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    parts = [_plural(n, fit.ROW_KINDS[k][0]) for k, n in counts.items()]
    return " and ".join(parts) if len(parts) <= 2 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _partner_sentence(
    name: str, addressed: list[dict[str, Any]], linked: list[str], sole: list[dict[str, Any]]
) -> str:
    if not addressed:
        return f"{name} addresses nothing yet."
    notes = "1 note" if len(linked) == 1 else f"{len(linked)} notes"
    lost = (
        f"without it {_by_kind(sole)} would go unaddressed"
        if sole
        else "every row it addresses is addressed by another partner too"
    )
    return f"{name} addresses {_by_kind(addressed)} with {notes}; {lost}."
