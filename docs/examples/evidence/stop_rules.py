"""A workflow with a stop rule: complaints may not rise more than half a point over its holdout."""

from pydantic import BaseModel

from copilot import Workflow
from copilot.measure.evidence.rules import StopRule


class Start(BaseModel):
    subject_id: str


guarded = Workflow(
    "guarded_outreach",
    "1",
    input=Start,
    holdout=0.1,
    stop_rules=[StopRule(outcome="complained", max_increase=0.005)],
)
print([r.model_dump() for r in guarded.stop_rules])
