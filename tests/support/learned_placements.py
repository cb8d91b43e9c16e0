"""A placement served by the learned policy (`policy: learned`), over one declared signal, and a
guarded one whose stop rule (complaints over its holdout) pauses it."""

from __future__ import annotations

from datetime import timedelta

from copilot.governance.signals import Sensitivity, SignalRegistry, SignalSpec
from copilot.measure.evidence.rules import StopRule
from copilot.measure.outcomes import OutcomeSpec
from copilot.placements import PlacementRegistry, placement

MODULE = "tests.support.learned_placements"
NAME = "t.learn"
GUARDED = "t.guarded"
COMPLAINED = OutcomeSpec(name="t.complained", description="The user complained", polarity="bad")

signals = SignalRegistry([SignalSpec.model_validate({
    "name": "t.stage", "description": "setup stage", "purpose": "tests", "type": "integer",
    "sensitivity": Sensitivity.INTERNAL, "retention": timedelta(days=30), "source": "tests",
    "workflows": [NAME],
})])  # fmt: skip

declared = PlacementRegistry([
    placement(name=NAME, policy="learned", signals=["t.stage"], holdout=0.1, candidates=[
        {"id": "alpha", "content": {"title": "Alpha"}},
        {"id": "beta", "content": {"title": "Beta"}},
        {"id": "never", "when": ["t.stage < 0"], "content": {"title": "Never eligible"}}]),
    placement(name=GUARDED, holdout=0.5, candidates=[{"id": "promo", "content": {"title": "Promo"}}],
              stop_rules=[StopRule(outcome="t.complained", max_increase=0.01)]),
])  # fmt: skip
