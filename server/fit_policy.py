"""The server's rules for fit links and value-exchange arrows (``server/canvas/fit.py`` says what
they are; ``server/policy.py`` hands them the changes of each update).

Links and arrows are judged like notes, but *after* the update's note corrections, inside the
same correction transaction: whether a link's ends exist depends on which new notes the policy
removes and which deleted notes it restores. So the whole judgment is one fix, run last:

* **links**: viewers change none. A new link needs both ends to exist, with block kinds that fit
  (:data:`fit.LINK_KINDS`); from editors, neither end in a locked block, and with protected notes
  its "from" note must be their organization's (by attribution). Its organization and author
  follow from the client id that created it, like a note's (``canvas/attribution.py``: nothing
  is rewritten, the fields count only where the server or a facilitator wrote them); its
  ``kind`` is stamped from the blocks, whatever the client wrote; a strength outside
  :data:`fit.STRENGTHS` is put back. Its ends never change (delete it and link anew). Editors
  change or delete only their organization's links (by attribution) when notes are protected, none in locked
  blocks; facilitators any. A link whose note is deleted, or moved to a block it no longer fits,
  is removed in the same transaction, for everyone.
* **arrows**: viewers change none; an editor's arrow always starts at its own organization
  (``from_org`` stamped), and editors change or delete only their organization's arrows, whether
  notes are protected or not; every arrow (the facilitator's too) must be valid
  (:func:`fit.exchange_problem`), else it is refused.

A cross-node race (a link accepted on one node while its note is deleted on another) leaves a
link with a missing end in both nodes' documents, since updates from other nodes are not judged
again. :class:`DanglingSweep` removes it: the gate pokes it when a change it did not judge itself
(another node's, a heal) deletes a note or brings a link, and it removes the links whose ends are
gone as a server change; both nodes may do so, and deleting twice is harmless. Until then every
reader (the contribution map, the board) ignores such a link.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pycrdt import Doc, Map

from .canvas import attribution, fit
from .canvas.attribution import Author
from .room import Room, spawn
from .session import ROLE_FACILITATOR, Identity
from .store.base import AuditEntry
from .yread import RawMap, Read, raw

log = logging.getLogger("cocanvas.fit")


class Decision(Protocol):
    refusals: list[str]
    audit: list[tuple[str, str, str]]

    def refuse(self, target: str, reason: str, fix: Callable[[], None]) -> None: ...


def _plain_entry(v: Any) -> dict[str, Any] | None:
    if isinstance(v, Map):
        out = v.to_py()
        return out if isinstance(out, dict) else {}
    return None


class FitRules:
    """Collects one update's changes to ``links`` and ``exchange`` and to notes links depend on;
    :meth:`fix` judges them against the document as the other corrections leave it."""

    def __init__(
        self,
        *,
        roots: Mapping[str, Map],
        mirror: Mapping[str, dict[str, Any]],
        identity: Identity,
        decision: Decision,
        protect: bool,
        locked: Callable[[Any], bool],
        now: float,
        note_org: Callable[[str], str] | None = None,
        link_author: Callable[[str, dict[str, Any]], Author] | None = None,
    ) -> None:
        self.roots = roots
        self.mirror = mirror
        self.me = identity
        self.d = decision
        self.protect = protect
        self.locked = locked
        self.now = now
        # A note's organization by the attribution rule (canvas/attribution.py), not its field.
        self.note_org = note_org or (lambda nid: str((self._note(nid) or {}).get("org", "")))
        # An existing link's attribution (its creating client id), from its fields as they were.
        self.link_author = link_author or (
            lambda lid, before: attribution.attribute(before, None, self._orgs_now)
        )
        self.facilitator = identity.role == ROLE_FACILITATOR
        self.writer = identity.can_write
        self.touched: dict[str, set[str]] = {"links": set(), "exchange": set()}
        self.notes: set[str] = set()  # notes deleted, replaced or moved
        # Read once per fix (an update may bring thousands of links): blocks and organizations
        # as the fix starts (only facilitators change them, and are never refused), and the
        # (from, to) pairs already linked, so a duplicate is found without a scan.
        self._blocks_now: dict[str, Any] = {}
        self._orgs_now: dict[str, Any] = {}
        self._claimed: dict[tuple[Any, Any], str] = {}

    # -- collecting ---------------------------------------------------------------------------

    def record(self, root: str, path: tuple[str | int, ...], keys: dict[str, str] | None) -> None:
        ids = self.touched[root]
        if path:
            ids.add(str(path[0]))
        else:
            ids.update((keys or {}).keys())

    def note_changed(self, nid: str) -> None:
        self.notes.add(nid)

    def pending(self) -> bool:
        if self.touched["links"] or self.touched["exchange"]:
            return True
        if not self.notes:
            return False
        notes = self.roots["notes"]
        with Read(notes.doc) as r:  # asked for every note an update sets: no wrappers
            raw_notes = raw(notes)
            for nid in self.notes:
                note = r.get(raw_notes, nid)
                if isinstance(note, RawMap) and r.has(note, fit.PARTNER_ORG):
                    return True
        return any(
            isinstance(link, dict)
            and (link.get("from") in self.notes or link.get("to") in self.notes)
            for link in self.mirror["links"].values()
        )

    # -- judging (inside the correction transaction) ------------------------------------------

    def fix(self) -> None:
        self._blocks_now = (
            self.mirror["blocks"] if not self.facilitator else self._current("blocks")
        )
        self._orgs_now = self._current("orgs")
        links_now = self.roots["links"]
        self._claimed = {
            (link.get("from"), link.get("to")): lid
            for lid, link in self.mirror["links"].items()
            if isinstance(link, dict) and lid in links_now
        }
        for nid in sorted(self.notes):
            self._partner_org(nid)
        for lid in sorted(self.touched["links"]):
            self._link(lid)
        for aid in sorted(self.touched["exchange"]):
            self._arrow(aid)
        self._sweep_links()

    def _partner_org(self, nid: str) -> None:
        """A key partner note may name one of the canvas's organizations, nothing else."""
        note = self.roots["notes"].get(nid)
        if not isinstance(note, Map) or fit.PARTNER_ORG not in note:
            return
        value = note.get(fit.PARTNER_ORG)
        if value == "" or (isinstance(value, str) and value in self._orgs_now):
            return
        self._refuse(nid, f"{fit.PARTNER_ORG} names one of the canvas's organizations")
        old = (self.mirror["notes"].get(nid) or {}).get(fit.PARTNER_ORG)
        if isinstance(old, str) and (old == "" or old in self._orgs_now):
            note[fit.PARTNER_ORG] = old
        else:
            del note[fit.PARTNER_ORG]

    def _refuse(self, target: str, reason: str) -> None:
        self.d.refusals.append(reason)
        self.d.audit.append(("refused", target, reason))

    def _restore(self, root: str, key: str, before: dict[str, Any] | None) -> None:
        container = self.roots[root]
        if before is None:
            if key in container:
                del container[key]
        elif root == "links":
            # Re-created by the server, whose fields are trusted: write who created the link.
            container[key] = Map(attribution.stamped(before, self.link_author(key, before)))
        else:
            container[key] = Map(dict(before))

    # links

    def _note(self, nid: Any) -> dict[str, Any] | None:
        return _plain_entry(self.roots["notes"].get(nid)) if isinstance(nid, str) else None

    def _kind_of(self, note: dict[str, Any] | None) -> str | None:
        if note is None:
            return None
        return fit.block_kind(self._blocks(), note.get("block"))

    def _blocks(self) -> dict[str, Any]:
        return self._blocks_now

    def _current(self, root: str) -> dict[str, Any]:
        out = self.roots[root].to_py()
        return out if isinstance(out, dict) else {}

    def _may_touch_link(self, lid: str, link: dict[str, Any]) -> str | None:
        """Why this session may not change or delete an existing link (None: it may)."""
        if not self.writer:
            return "viewers cannot change the canvas"
        if self.facilitator:
            return None
        for end in fit.LINK_ENDS:
            block = (self._note(link.get(end)) or {}).get("block")
            if self.locked(block):
                return f"block {block} is locked"
        if self.protect and self.link_author(lid, link).org != self.me.org_id:
            return "this link belongs to another organization"
        return None

    def _link_problem(self, lid: str, link: dict[str, Any]) -> str | None:
        """Why these ends may not be linked by this session (None: they may)."""
        if not self.writer:
            return "viewers cannot change the canvas"
        source, target = (self._note(link.get(end)) for end in fit.LINK_ENDS)
        if source is None or target is None:
            return "both ends of a link must be notes of the canvas"
        kinds = self._kind_of(source), self._kind_of(target)
        if fit.link_kind(*kinds) is None:
            return fit.wrong_ends(*kinds)
        if not self.facilitator:
            for n in (source, target):
                if self.locked(n.get("block")):
                    return f"block {n.get('block')} is locked"
            if self.protect and self.note_org(str(link.get("from"))) != self.me.org_id:
                return "a link starts at one of your organization's notes"
        if self._claimed.get((link.get("from"), link.get("to")), lid) != lid:
            return "these notes are already linked"
        return None

    def _link(self, lid: str) -> None:
        before = self.mirror["links"].get(lid)
        before = before if isinstance(before, dict) else None
        current = self.roots["links"].get(lid)
        now = _plain_entry(current)
        if now is None:  # deleted
            if before is None:
                return
            why = self._may_touch_link(lid, before)
            if why is not None:
                self._refuse(lid, why)
                self._restore("links", lid, before)
                self._claimed.setdefault((before.get("from"), before.get("to")), lid)
            else:
                self.d.audit.append(("unlink", lid, ""))
            return
        assert isinstance(current, Map)
        if before is not None:
            why = self._may_touch_link(lid, before)
            if why is not None:
                self._refuse(lid, why)
                self._restore("links", lid, before)
                return
            moved = [e for e in fit.LINK_ENDS if now.get(e) != before.get(e)]
            if moved:
                self._refuse(lid, "a link's ends do not change: delete it and link anew")
                for e in moved:
                    current[e] = before.get(e)
                now.update({e: before.get(e) for e in moved})
        why = self._link_problem(lid, now)
        if why is not None:
            self._refuse(lid, why)
            self._restore("links", lid, before)
            return
        self._claimed[(now.get("from"), now.get("to"))] = lid
        self._stamp_link(lid, current, now, before)

    def _stamp_link(
        self, lid: str, current: Map, now: dict[str, Any], before: dict[str, Any] | None
    ) -> None:
        ends = [self._note(now.get(e)) for e in fit.LINK_ENDS]
        want: dict[str, Any] = {
            "kind": fit.link_kind(self._kind_of(ends[0]), self._kind_of(ends[1]))
        }
        if before is not None:
            want.update({k: before.get(k) for k in fit.LINK_STAMPS})
            if not self.facilitator or not isinstance(now.get("created_at"), (int, float)):
                want["created_at"] = before.get("created_at")
        else:
            # Its organization and author are not written: they follow from the client id that
            # created it (canvas/attribution.py), as a note's do.
            if not isinstance(now.get("created_at"), (int, float)) or isinstance(
                now.get("created_at"), bool
            ):
                want["created_at"] = self.now
        strength = now.get("strength")
        if strength not in fit.STRENGTHS:
            if strength is not None:
                self._refuse(lid, f"a link's strength is one of {', '.join(fit.STRENGTHS)}")
            old = (before or {}).get("strength")
            want["strength"] = old if old in fit.STRENGTHS else fit.DEFAULT_STRENGTH
        for k, v in want.items():
            if now.get(k) != v:
                current[k] = v
        self.d.audit.append(("link" if before is None else "edit-link", lid, str(want["kind"])))

    def _sweep_links(self) -> None:
        """Remove every link a changed note no longer supports (deleted, or moved to a block its
        link does not fit), whoever made the link: a link never outlives its note."""
        if not self.notes:
            return
        links = self.roots["links"]
        for lid, link in self._current("links").items():
            if not isinstance(link, dict):
                continue
            if link.get("from") not in self.notes and link.get("to") not in self.notes:
                continue
            ends = [self._note(link.get(e)) for e in fit.LINK_ENDS]
            if ends[0] is None or ends[1] is None:
                gone = "a linked note was deleted"
            elif fit.link_kind(self._kind_of(ends[0]), self._kind_of(ends[1])) is None:
                gone = "a linked note moved to a block the link does not fit"
            else:
                continue
            del links[lid]
            self.d.audit.append(("unlink", lid, gone))

    # arrows

    def _arrow(self, aid: str) -> None:
        before = self.mirror["exchange"].get(aid)
        before = before if isinstance(before, dict) else None
        current = self.roots["exchange"].get(aid)
        now = _plain_entry(current)
        mine = self.facilitator or (before is not None and before.get("from_org") == self.me.org_id)
        if not self.writer:
            why: str | None = "viewers cannot change the canvas"
        elif before is not None and not mine:
            why = "this arrow belongs to another organization"
        else:
            why = None
        if why is None and now is None:
            if before is not None:
                self.d.audit.append(("delete-arrow", aid, ""))
            return
        if why is None:
            assert isinstance(current, Map) and now is not None
            want: dict[str, Any] = {}
            if before is not None:
                want.update(author=before.get("author"), author_name=before.get("author_name"))
                if not self.facilitator:
                    want["from_org"] = before.get("from_org")
            else:
                want.update(author=self.me.user_id, author_name=self.me.name)
                if not self.facilitator:
                    want["from_org"] = self.me.org_id
            why = fit.exchange_problem({**now, **want}, self._orgs_now)
            if why is None:
                for k, v in want.items():
                    if now.get(k) != v:
                        current[k] = v
                self.d.audit.append(("arrow" if before is None else "edit-arrow", aid, ""))
                return
        assert why is not None
        self._refuse(aid, why)
        self._restore("exchange", aid, before)


def dangling_links(doc: Doc) -> list[str]:
    """Links whose notes are gone, or whose blocks no longer fit."""
    notes = doc.get("notes", type=Map)
    blocks = doc.get("blocks", type=Map)
    out = []
    for lid, link in doc.get("links", type=Map).items():
        if not isinstance(link, Map):
            continue
        kinds = []
        for end in fit.LINK_ENDS:
            nid = link.get(end)
            note = notes.get(nid) if isinstance(nid, str) else None
            block = note.get("block") if isinstance(note, Map) else None
            info = blocks.get(block) if isinstance(block, str) else None
            kind = info.get("kind") if isinstance(info, Map) else None
            kinds.append(kind if isinstance(kind, str) else None)
        if fit.link_kind(kinds[0], kinds[1]) is None:
            out.append(str(lid))
    return out


class DanglingSweep:
    """Removes links left dangling by changes no gate judged (another node's, a heal)."""

    def __init__(self, canvas_id: str) -> None:
        self.canvas_id = canvas_id
        self.room: Room | None = None
        self._pending = False

    def poke(self) -> None:
        """Called from the gate's observer, inside the transaction: look once it is over."""
        if self._pending or self.room is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._pending = True
        loop.call_soon(self._start)

    def _start(self) -> None:
        self._pending = False
        room = self.room
        if room is not None and not room.closed and dangling_links(room.doc):
            spawn(self._sweep(room))

    async def _sweep(self, room: Room) -> None:
        gone = dangling_links(room.doc)
        if not gone or room.closed:
            return

        def change(doc: Doc) -> None:
            links = doc.get("links", type=Map)
            for lid in dangling_links(doc):
                del links[lid]

        now = time.time()
        audit = [
            AuditEntry(
                self.canvas_id, now, "server", "Server", "", "unlink", lid, "a linked note is gone"
            )
            for lid in gone
        ]
        try:
            await room.apply_server_change(change, audit)
        except Exception:  # the room closes or heals on its own; the next poke tries again
            log.exception("could not remove dangling links on %s", self.canvas_id)
