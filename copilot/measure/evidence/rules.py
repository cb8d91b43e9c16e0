"""Stop rules (the guardrails that pause a workflow, placement or learned policy when breached)
and what a pause is called (see copilot.measure.rollout)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StopRule(BaseModel):
    """Pause when the outcome's increase over the holdout is confirmed past `max_increase`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: str
    max_increase: float = Field(ge=0, le=1)  # rate points (0.005 = half a point)
    alpha: float = Field(default=0.05, gt=0, lt=1)


PAUSE_EFFECT = {
    "workflow": "every proposal it makes needs a person",
    "placement": "it serves control, as to its holdout,",
    "policy": "the rules serve instead of the learned policy",
}
PAUSE_NOUN = {"workflow": "Workflow", "placement": "Placement", "policy": "The learned policy of"}


class Paused(BaseModel):
    """One thing a stop rule paused (a row of `rollout_pauses`): a workflow, placement or policy."""

    model_config = ConfigDict(frozen=True)

    kind: str  # workflow, placement or policy (a learned policy's target is its surface)
    target: str

    @property
    def sentence(self) -> str:
        """The banner's sentence: what is paused and what that means until an admin resumes it."""
        noun = PAUSE_NOUN.get(self.kind, self.kind.capitalize())
        effect = PAUSE_EFFECT.get(self.kind, "it stays paused")
        return (f"{noun} {self.target} is paused by a stop rule: {effect} until an admin "
                "approves its resume request.")  # fmt: skip


def as_paused(value: object) -> object:
    """A stored review or report named paused workflows by name alone: read those as workflows."""
    return {"kind": "workflow", "target": value} if isinstance(value, str) else value
