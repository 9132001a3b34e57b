"""Edits the server makes to a canvas document, in one place (the HTTP API calls these inside
``Room.apply_server_change``; the policy and the validator read the same schema).

Each edit takes the room's document and returns what it did, so routers never touch pycrdt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pycrdt import Doc, Map

from . import templates


@dataclass(slots=True)
class AddedOrg:
    id: str
    name: str
    color: str
    initials: str
    blocks: list[str] = field(default_factory=list)  # value-map blocks added for it


def org_ids(doc: Doc) -> set[str]:
    return set(doc.get("orgs", type=Map).keys())


def unique_org_id(name: str, taken: set[str]) -> str:
    base = templates.slug(name)
    oid, n = base, 2
    while oid in taken:
        oid = f"{base}-{n}"
        n += 1
    return oid


def add_org(doc: Doc, name: str, color: str | None, template: str) -> AddedOrg:
    """A new partner organization; on a partner co-creation canvas also its value map."""
    orgs = doc.get("orgs", type=Map)
    blocks = doc.get("blocks", type=Map)
    oid = unique_org_id(name, set(orgs.keys()))
    color = color or templates.ORG_PALETTE[len(orgs) % len(templates.ORG_PALETTE)]
    templates.write_org(orgs, templates.OrgSpec(oid, name, color))
    added = AddedOrg(oid, name, color, templates.initials(name))
    if template == "partner-co-creation":
        order = len(blocks)
        for block in templates.partner_value_map(oid, name):
            if block.id not in blocks:
                templates.write_block(blocks, block, order)
                order += 1
                added.blocks.append(block.id)
    return added


def lock_all(doc: Doc, locked_by: str) -> None:
    """Lock every block (``locked_by`` the facilitator's name), or unlock all with ``""``."""
    for block in doc.get("blocks", type=Map).values():
        if isinstance(block, Map) and block.get("locked_by") != locked_by:
            block["locked_by"] = locked_by
