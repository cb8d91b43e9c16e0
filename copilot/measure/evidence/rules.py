"""Stop rules: the guardrails a workflow declares that pause it when breached (see copilot.measure.rollout)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StopRule(BaseModel):
    """Pause when the outcome's increase over the holdout is confirmed past `max_increase`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: str
    max_increase: float = Field(ge=0, le=1)  # rate points (0.005 = half a point)
    alpha: float = Field(default=0.05, gt=0, lt=1)
