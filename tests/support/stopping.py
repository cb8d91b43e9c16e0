"""A workflow with a stop rule: complaints may not rise more than a point over its holdout."""

from __future__ import annotations

from copilot import StepContext
from copilot.measure.evidence.rules import StopRule
from copilot.measure.outcomes import OutcomeSpec
from copilot.workflow.definition import Workflow
from tests.support.flows import Plan, Start

COMPLAINED = OutcomeSpec(name="complained", description="The customer complained", polarity="bad")

stopping = Workflow(
    "stopping", "1", input=Start, actions=["post_note"], holdout=0.5,
    stop_rules=[StopRule(outcome="complained", max_increase=0.01)],
)  # fmt: skip


@stopping.step
def note(ctx: StepContext, inp: Start) -> Plan:
    """One low-risk internal note: the default policy auto-approves it, unless paused."""
    ctx.propose("post_note", {"account": inp.subject_id, "text": "Usage is up"}, confidence=0.9)
    return Plan(subject_id=inp.subject_id, proposals=1)
