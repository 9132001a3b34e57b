"""Canvas templates and the document schema they write.

The document (one Yjs doc per canvas) has four top-level maps:

* ``meta``   – title, template, created_at, protect_notes
* ``blocks`` – block id -> Y.Map {title, hint, order, section, kind, org, locked_by}
* ``notes``  – note id -> Y.Map {block, text (Y.Text), org, author, author_name, color, x, y,
  created_at, votes: Y.Map {user id: n}}; x and y are fractions (0..1) of the block's box
* ``orgs``   – org id -> Y.Map {name, color, initials}

Notes are keyed by id in a Map (not an Array) so moves and edits stay cheap and conflict-free.
The server writes template content with a 32-bit client id: y-py 0.6 clients mis-decode larger ids.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from pycrdt import Doc, Map

from .schema import server_client_id

TEMPLATES = ("business-model", "value-proposition", "partner-co-creation")

ORG_PALETTE = ("#2f6fdb", "#d9480f", "#2b8a3e", "#ae3ec9", "#e67700", "#0c8599", "#c2255c")


@dataclass(frozen=True, slots=True)
class BlockSpec:
    id: str
    title: str
    hint: str
    section: str
    kind: str
    org: str = ""


BUSINESS_MODEL = (
    BlockSpec(
        "key-partners",
        "Key Partners",
        "Who are our key partners and suppliers?",
        "bmc",
        "key-partners",
    ),
    BlockSpec(
        "key-activities",
        "Key Activities",
        "What key activities does our value proposition require?",
        "bmc",
        "key-activities",
    ),
    BlockSpec(
        "key-resources",
        "Key Resources",
        "What key resources does our value proposition require?",
        "bmc",
        "key-resources",
    ),
    BlockSpec(
        "value-propositions",
        "Value Propositions",
        "What value do we deliver to the customer?",
        "bmc",
        "value-propositions",
    ),
    BlockSpec(
        "customer-relationships",
        "Customer Relationships",
        "What relationship does each segment expect?",
        "bmc",
        "customer-relationships",
    ),
    BlockSpec(
        "channels",
        "Channels",
        "Through which channels do our segments want to be reached?",
        "bmc",
        "channels",
    ),
    BlockSpec(
        "customer-segments",
        "Customer Segments",
        "For whom are we creating value?",
        "bmc",
        "customer-segments",
    ),
    BlockSpec(
        "cost-structure",
        "Cost Structure",
        "What are the most important costs in our model?",
        "bmc",
        "cost-structure",
    ),
    BlockSpec(
        "revenue-streams",
        "Revenue Streams",
        "For what value are our customers willing to pay?",
        "bmc",
        "revenue-streams",
    ),
)

CUSTOMER_PROFILE = (
    BlockSpec(
        "customer-jobs",
        "Customer Jobs",
        "What jobs is the customer trying to get done?",
        "customer-profile",
        "jobs",
    ),
    BlockSpec(
        "pains",
        "Pains",
        "What annoys the customer before, during and after the job?",
        "customer-profile",
        "pains",
    ),
    BlockSpec(
        "gains",
        "Gains",
        "What outcomes and benefits does the customer want?",
        "customer-profile",
        "gains",
    ),
)

VALUE_MAP = (
    BlockSpec(
        "products-services",
        "Products & Services",
        "What do we offer to get the job done?",
        "value-map",
        "products",
    ),
    BlockSpec(
        "pain-relievers",
        "Pain Relievers",
        "How do we relieve the customer's pains?",
        "value-map",
        "relievers",
    ),
    BlockSpec(
        "gain-creators",
        "Gain Creators",
        "How do we create the gains the customer wants?",
        "value-map",
        "creators",
    ),
)


def partner_value_map(org_id: str, org_name: str) -> tuple[BlockSpec, ...]:
    """One value map per partner organization, so complementary offers stand side by side."""
    return tuple(
        BlockSpec(
            f"{org_id}:{b.id}", f"{b.title} — {org_name}", b.hint, "value-map", b.kind, org_id
        )
        for b in VALUE_MAP
    )


def initials(name: str) -> str:
    words = [w for w in re.split(r"[\s\-_.]+", name) if w]
    if not words:
        return "?"
    if len(words) == 1:
        return words[0][:2].upper()
    return (words[0][0] + words[1][0]).upper()


def slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return s[:32] or "org"


@dataclass(frozen=True, slots=True)
class OrgSpec:
    id: str
    name: str
    color: str


def make_orgs(raw: list[tuple[str, str | None]]) -> list[OrgSpec]:
    """Give each org a unique id (from its name) and a colour from the palette when none is set."""
    out: list[OrgSpec] = []
    seen: set[str] = set()
    for i, (name, color) in enumerate(raw):
        base = slug(name)
        oid = base
        n = 2
        while oid in seen:
            oid = f"{base}-{n}"
            n += 1
        seen.add(oid)
        out.append(OrgSpec(oid, name, color or ORG_PALETTE[i % len(ORG_PALETTE)]))
    return out


def blocks_for(template: str, orgs: list[OrgSpec]) -> tuple[BlockSpec, ...]:
    if template == "business-model":
        return BUSINESS_MODEL
    if template == "value-proposition":
        return CUSTOMER_PROFILE + VALUE_MAP
    if template == "partner-co-creation":
        maps: tuple[BlockSpec, ...] = ()
        for org in orgs:
            maps += partner_value_map(org.id, org.name)
        return CUSTOMER_PROFILE + maps
    raise ValueError(f"unknown template {template!r}")


def default_orgs(template: str) -> list[tuple[str, str | None]]:
    if template == "partner-co-creation":
        return [("Partner A", None), ("Partner B", None)]
    return []


def write_block(blocks: Map, spec: BlockSpec, order: int) -> None:
    blocks[spec.id] = Map(
        {
            "title": spec.title,
            "hint": spec.hint,
            "order": order,
            "section": spec.section,
            "kind": spec.kind,
            "org": spec.org,
            "locked_by": "",
        }
    )


def write_org(orgs: Map, org: OrgSpec) -> None:
    orgs[org.id] = Map({"name": org.name, "color": org.color, "initials": initials(org.name)})


def initial_update(
    title: str,
    template: str,
    orgs: list[OrgSpec],
    protect_notes: bool,
    created_at: float | None = None,
) -> bytes:
    """The whole template as one Yjs update, written by a 32-bit server client id."""
    doc: Doc = Doc(client_id=server_client_id())
    meta = doc.get("meta", type=Map)
    blocks = doc.get("blocks", type=Map)
    doc.get("notes", type=Map)
    org_map = doc.get("orgs", type=Map)
    with doc.transaction(origin="template"):
        meta["title"] = title
        meta["template"] = template
        meta["created_at"] = created_at if created_at is not None else time.time()
        meta["protect_notes"] = protect_notes
        for org in orgs:
            write_org(org_map, org)
        for order, spec in enumerate(blocks_for(template, orgs)):
            write_block(blocks, spec, order)
    return doc.get_update()
