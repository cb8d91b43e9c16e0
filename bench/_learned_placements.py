"""Two placements alike but for their policy, for bench/learn.py's decide comparison: one
ranked by the learned policy (`policy: learned`, promoted in the bench), one by the rules."""

from __future__ import annotations

from datetime import timedelta

from copilot.governance.signals import Sensitivity, SignalRegistry, SignalSpec
from copilot.placements import PlacementRegistry, placement

LEARNED, RULES = "b.learned", "b.rules"
CANDIDATES = [{"id": "alpha", "content": {"title": "Alpha"}},
              {"id": "beta", "content": {"title": "Beta"}},
              {"id": "gamma", "content": {"title": "Gamma"}}]  # fmt: skip

signals = SignalRegistry([SignalSpec.model_validate({
    "name": "b.stage", "description": "setup stage", "purpose": "bench", "type": "integer",
    "sensitivity": Sensitivity.INTERNAL, "retention": timedelta(days=30), "source": "bench",
    "workflows": [LEARNED, RULES],
})])  # fmt: skip

declared = PlacementRegistry([
    placement(name=LEARNED, policy="learned", signals=["b.stage"], candidates=CANDIDATES),
    placement(name=RULES, signals=["b.stage"], candidates=CANDIDATES),
])
