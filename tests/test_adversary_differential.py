"""Differential adversary test: whatever two adversaries send, the canvas is what it would be
without them.

Room A holds the facilitator, an editor of org a, an editor of org b and a viewer of org b, plus
two adversaries: a viewer of org c and a second editor of org b. Room B, the reference, holds the
same honest participants only (the harness is tests/adversary.py). Honest steps run in both rooms;
adversary steps run in room A only. After every step the canvas a fresh client loads from room
A's store, and room A's document, must equal room B's, and every honest client's document must
equal its room's.

An adversary's update is either structurally invalid (a client id it does not own, a delete of
items that do not exist, anything left pending, a type or shape outside the schema, too many
structs): refused whole, nothing applied, stored or relayed, the sender closed with 1008 (it
reconnects and goes on); or it breaks a rule an honest client may break (a viewer typing, an
edit to another organization's note, a vote for someone else): applied, then reverted by the
policy, the sender told why. Either way it leaves no trace but the allowed rest of a partly
refused change, which room B gets too.

Knobs for exploring (CI uses the defaults): ``COCANVAS_ADVERSARY_CLASSES=pending-origin,array``
draws only those classes; ``COCANVAS_ADVERSARY_EXAMPLES=N`` runs N examples;
``COCANVAS_ADVERSARY_RANDOM=1`` draws new examples each run (CI replays the same ones);
``COCANVAS_ADVERSARY_MIN_STEPS=1`` lets the shrinker reach the shortest failing list (by default a
list has at least 15 steps; in a failure report the steps after the failing one never ran, the
transcript in the message lists what did).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.adversary import (
    ADV_CLASSES,
    HONEST_OPS,
    Harness,
    Step,
    World,
    run_adversary,
    run_step,
)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """One event loop and two SQLite stores (A and B) for the module; a canvas per run."""
    h = Harness(Path(tmp_path_factory.mktemp("adversary")))
    try:
        yield h
    finally:
        h.close()


# -- the differential, over random step lists ---------------------------------------------------

_wanted = [c for c in os.environ.get("COCANVAS_ADVERSARY_CLASSES", "").split(",") if c]
FUZZ_CLASSES = sorted(_wanted or [name for name, cls in ADV_CLASSES.items() if cls.fuzz])
assert set(FUZZ_CLASSES) <= set(ADV_CLASSES), (
    f"unknown classes: {set(FUZZ_CLASSES) - set(ADV_CLASSES)}"
)
EXAMPLES = int(os.environ.get("COCANVAS_ADVERSARY_EXAMPLES", "110"))
# Long runs find compound effects; exploring one class, MIN_STEPS=1 gives the shortest examples.
MIN_STEPS = int(os.environ.get("COCANVAS_ADVERSARY_MIN_STEPS", "15"))

choice = st.integers(0, 30)
facilitator_steps = st.builds(
    Step, st.just("fac"), st.sampled_from(HONEST_OPS), choice, choice, choice
)
editor_steps = st.builds(
    Step,
    st.sampled_from(("ea", "eb")),
    st.sampled_from(("add", "add", "edit", "move", "delete", "vote", "link", "arrow")),
    choice,
    choice,
    choice,
)
adversary_steps = st.sampled_from(FUZZ_CLASSES).flatmap(
    lambda name: st.builds(
        Step, st.sampled_from(ADV_CLASSES[name].actors), st.just(name), choice, choice, choice
    )
)
steps_strategy = st.lists(
    st.one_of(facilitator_steps, editor_steps, editor_steps, adversary_steps, adversary_steps),
    min_size=MIN_STEPS,
    max_size=max(MIN_STEPS, 60),
)


async def replay(harness: Harness, steps: list[Step]) -> World:
    world = harness.world()
    await world.start()
    try:
        await world.check("setup", full=True)
        for k, step in enumerate(steps, 1):
            await run_step(world, step, k)
            await world.check(f"step {k}: {world.log[-1]}", full=k % 10 == 0)
        await world.check("the last step", full=True)
    finally:
        await world.stop()
    return world


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("COCANVAS_ADVERSARY_RANDOM"),
    database=None,
    # no "explain" phase: it replays the failing case many more times to say little more
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(steps=steps_strategy)
def test_adversaries_leave_no_trace(harness: Harness, steps: list[Step]) -> None:
    """Random honest work in rooms A and B, random adversary moves in A: A equals B throughout."""
    harness.run(replay(harness, steps))


# -- one documented case per crafted class --------------------------------------------------------

# Before every case: the facilitator adds n1 (customer-jobs), editor a adds n2 (a's value map),
# editor b adds n3 (pains). For b2 (a second editor of org b) n3 is its organization's note and
# n1, n2 are protected; the viewer may change none of them.
SETUP = (Step("fac", "add", 9), Step("ea", "add", 2), Step("eb", "add", 11))


@dataclass(frozen=True)
class Case:
    id: str
    expectation: str
    attack: Step
    after: tuple[Step, ...] = ()  # honest steps that reveal a delayed effect
    before: tuple[Step, ...] = ()  # honest steps after SETUP that give the attack its target


FAC_ADDS = Step("fac", "add", 10, 1)  # the facilitator's next note, n5, in gains
FAC_TYPES = Step("fac", "edit", 0, 0, 1)  # the facilitator types into n1
EA_ADDS = Step("ea", "add", 10, 2)
EA_TYPES = Step("ea", "edit", 0, 0, 1)  # editor a types into n2
EB_ADDS = Step("eb", "add", 10, 3)
EB_TYPES = Step("eb", "edit", 0, 0, 1)  # editor b types into n3

CASES = (
    # rules: applied, reverted by the policy, the sender told why, not closed
    Case(
        "viewer-types",
        "a viewer's typing in a partner's note is reverted for everyone and the viewer is told why",
        Step("vc", "viewer-types", 1, 0, 0),
        (EA_TYPES,),
    ),
    Case(
        "viewer-adds-note",
        "a viewer's new note disappears for everyone",
        Step("vc", "viewer-adds-note", 10),
    ),
    Case(
        "viewer-deletes-note",
        "a viewer's deletion of the facilitator's note is undone",
        Step("vc", "deletes-protected-note", 0, 0),
        (FAC_TYPES,),
    ),
    Case(
        "editor-raw-deletes-protected-note",
        "an editor's raw delete set naming another organization's note (n2) is undone",
        Step("b2", "deletes-protected-note", 1, 1),
        (EA_TYPES,),
    ),
    Case(
        "editor-moves-protected-note",
        "an editor's move of another organization's note is put back",
        Step("b2", "moves-protected-note", 1, 9, 4),
    ),
    Case(
        "editor-edits-protected-text",
        "an editor's typing in another organization's note is reverted",
        Step("b2", "edits-protected-text", 1, 2, 0),
        (EA_TYPES,),
    ),
    Case(
        "editor-restamps-note",
        "an editor cannot re-stamp its organization's note as org a's",
        Step("b2", "restamps-note", 2, 0),
    ),
    Case(
        "editor-links-from-protected-note",
        "an editor's link from another organization's product (n2) to the job (n1) is removed",
        Step("b2", "links-from-protected", 0),
    ),
    Case(
        "viewer-links",
        "a viewer's link is removed for everyone",
        Step("vc", "links-from-protected", 0),
    ),
    Case(
        "editor-deletes-protected-link",
        "an editor's deletion of another organization's link is undone; the link still goes "
        "with its note",
        Step("b2", "tampers-link", 0, 0, 0),
        (Step("ea", "delete", 0),),
        (Step("ea", "link", 0),),
    ),
    Case(
        "editor-re-points-link",
        "a link's ends never change, not even an own organization's link",
        Step("b2", "tampers-link", 0, 1, 2),
        (),
        (Step("eb", "add", 5), Step("eb", "link", 1)),
    ),
    Case(
        "editor-rewrites-protected-arrow",
        "an editor cannot rewrite another organization's value-exchange arrow",
        Step("b2", "tampers-arrow", 0, 0),
        (),
        (Step("ea", "arrow", 0, 0, 3),),
    ),
    Case(
        "viewer-draws-arrow",
        "a viewer's arrow disappears for everyone",
        Step("vc", "tampers-arrow", 0),
    ),
    Case(
        "editor-marks-overlap",
        "only the facilitator marks an overlap",
        Step("b2", "marks-overlap", 0),
    ),
    Case(
        "editor-edits-settings",
        "an editor cannot turn protect_notes off",
        Step("b2", "edits-settings", 0, 1),
    ),
    Case(
        "viewer-raw-delete-existing",
        "a viewer's raw delete of existing items (editor a's note) is undone",
        Step("vc", "viewer-raw-delete", 1, 0, 3),
        (EA_TYPES,),
    ),
    Case(
        "vote-for-other-existing-note",
        "an editor's vote for someone else on an existing note is withdrawn",
        Step("b2", "votes-for-other", 1, 1, 0),
    ),
    Case(
        "vote-for-other-in-new-note",
        "an editor may add a note with its own vote, but the vote it casts for the facilitator "
        "inside that new note is removed",
        Step("b2", "votes-for-other-in-new-note", 10, 0, 0),
    ),
    # structure: refused whole, sender closed with 1008, nothing stored or relayed
    Case(
        "delete-future-clocks",
        "a viewer's delete of the facilitator's future clocks does not delete the facilitator's "
        "next note",
        Step("vc", "delete-future", 0, 0, 4),
        (FAC_ADDS, FAC_TYPES),
    ),
    Case(
        "delete-straddling-clocks",
        "an editor's delete of editor b's last clock and the next ones does not touch n3 or "
        "editor b's next note",
        Step("b2", "delete-straddle", 2, 0, 2),
        (EB_ADDS,),
    ),
    Case(
        "delete-server-future-clocks",
        "a delete of the server's own future clocks does not eat the policy's next correction "
        "(n1 re-created after a viewer deleted it)",
        Step("b2", "delete-future", 5, 0, 4),
        (Step("vc", "deletes-protected-note", 0, 0), FAC_TYPES),
    ),
    Case(
        "pending-origin",
        "a value parked on the facilitator's next item does not land when the facilitator "
        "writes it",
        Step("vc", "pending-origin", 0, 0, 0),
        (FAC_ADDS,),
    ),
    Case(
        "pending-right-origin",
        "a string whose right origin is editor a's next item does not appear in editor a's text",
        Step("b2", "pending-right-origin", 1, 0, 1),
        (EA_TYPES,),
    ),
    Case(
        "pending-parent",
        "a field whose parent is the facilitator's next item does not appear in the "
        "facilitator's next note",
        Step("vc", "pending-parent", 0, 0, 1),
        (FAC_ADDS,),
    ),
    Case(
        "foreign-id-of-editor",
        "an editor cannot write a note with editor a's client id",
        Step("b2", "foreign-client-id", 1, 10),
        (EA_ADDS,),
    ),
    Case(
        "foreign-id-of-server",
        "an editor cannot write a note with the room's (server's) client id",
        Step("b2", "foreign-client-id", 5, 10),
        (Step("vc", "viewer-types", 0, 0, 0),),
    ),
    Case(
        "foreign-id-of-template",
        "an editor cannot write a note with the client id the template was written with",
        Step("b2", "foreign-client-id", 6, 10),
    ),
    Case(
        "foreign-id-of-viewer",
        "a viewer's presence id (never used for an update) is not free for an editor to write with",
        Step("b2", "foreign-client-id", 3, 10),
    ),
    Case(
        "nested-map-in-note",
        "Maps nested inside a note (a field that is a Map of Maps) are refused whole",
        Step("b2", "nested-map", 0, 0),
    ),
    Case(
        "map-where-text-belongs",
        "a note's text replaced by a Map is refused whole",
        Step("b2", "nested-map", 0, 2),
        (EB_TYPES,),
    ),
    Case(
        "xml-element-in-note",
        "an XmlElement as a field of a note is refused whole",
        Step("b2", "xml-type", 0, 0, 0),
        (EB_TYPES,),
    ),
    Case(
        "xml-text-as-note-text",
        "an XmlText in place of a note's Text is refused whole",
        Step("b2", "xml-type", 0, 2, 1),
        (EB_TYPES,),
    ),
    Case(
        "xml-fragment-as-note",
        "an XmlFragment as a note (by a viewer) is refused whole",
        Step("vc", "xml-type", 0, 1, 2),
        (FAC_ADDS,),
    ),
    Case(
        "array-in-note",
        "an Array as a field of a note is refused whole",
        Step("b2", "array", 0, 1),
    ),
    Case(
        "embed-in-text",
        "an embed in a note's text is refused whole",
        Step("b2", "embed-binary-subdoc", 0, 0),
        (EB_TYPES,),
    ),
    Case(
        "binary-in-note",
        "binary content as a field of a note is refused whole",
        Step("b2", "embed-binary-subdoc", 0, 1),
    ),
    Case(
        "subdocument-in-note",
        "a subdocument as a field of a note is refused whole",
        Step("b2", "embed-binary-subdoc", 0, 2),
    ),
    Case(
        "text-where-votes-map-belongs",
        "a note's votes replaced by a Text is refused whole",
        Step("b2", "text-where-map", 0, 1),
    ),
    Case(
        "text-as-note",
        "a Text where a note (a Map) belongs is refused whole",
        Step("b2", "text-where-map", 0, 0),
    ),
    Case(
        "new-root",
        "a root outside meta, blocks, notes and orgs is refused whole",
        Step("b2", "new-root", 0, 0, 0),
    ),
    Case(
        "sequence-under-notes-root",
        "a keyless (sequence) item under the notes map, invisible to every Map view, is refused "
        "whole and never stored",
        Step("b2", "new-root", 0, 4),
    ),
    Case(
        "too-many-structs",
        f"an editor's update of {50_000} structs (no browser tab's) is refused whole",
        Step("b2", "too-many-structs", 0),
        (EB_TYPES,),
    ),
)


async def run_case(harness: Harness, case: Case) -> list[str]:
    world = harness.world()
    await world.start()
    findings: list[str] = []
    try:
        for k, step in enumerate(SETUP + case.before, 1):
            await run_step(world, step, k)
        await world.check("setup", full=True)
        k = len(SETUP) + len(case.before) + 1
        cls = ADV_CLASSES[case.attack.op]
        out = await run_adversary(world, case.attack, k)
        assert out.plan is not None and out.plan.update is not None, "harness: attack did nothing"
        if cls.kind == "structure":
            if out.closed is None or out.closed[0] != 1008:
                findings.append(
                    f"the sender was not closed with 1008 (got {out.closed or 'no close'})"
                )
            if out.stored:
                findings.append(f"{out.stored} row(s) of it were stored")
            if out.relayed:
                findings.append(f"{out.relayed} document frame(s) were relayed to honest sessions")
        else:
            if out.closed is not None:
                findings.append(f"an honest client's mistake closed the sender: {out.closed}")
            if not out.denied:
                findings.append("the sender was not told why (no permission-denied message)")
        try:
            await world.check("the attack")
            for i, step in enumerate(case.after, k + 1):
                await run_step(world, step, i)
                await world.check(f"step {i}: {world.log[-1]}")
            await world.check("the last step", full=True)
        except AssertionError as exc:
            findings.append(str(exc).split("\n\nsteps:")[0])
        if findings:
            findings.append("steps:\n" + world.transcript())
    finally:
        await world.stop()
    return findings


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_crafted_class(harness: Harness, case: Case) -> None:
    findings = harness.run(run_case(harness, case))
    if findings:
        pytest.fail(f"expected: {case.expectation}\n" + "\n".join(findings), pytrace=False)


def test_every_class_has_a_case() -> None:
    assert {c.attack.op for c in CASES} == set(ADV_CLASSES)
