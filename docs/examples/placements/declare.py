"""Declare placements in code and in YAML, check them against the signals, name a policy."""

from __future__ import annotations

from datetime import timedelta

from copilot import SignalRegistry, SignalSpec
from copilot.placements import PlacementRegistry, placement
from copilot.ranking import Choice, PolicyInput

signals = SignalRegistry([
    SignalSpec(name="billing.plan", description="Plan", purpose="in-app guidance", type="string",
               sensitivity="internal", retention=timedelta(days=90), source="billing",
               workflows=["tooltip.upgrade"]),
])  # fmt: skip

upgrade = placement(
    name="tooltip.upgrade",
    signals=["billing.plan"],
    holdout=0.1,
    cooldown=timedelta(days=1),
    candidates=[
        {"id": "see_plans", "when": ['billing.plan == "free"'], "rule": "on the free plan",
         "content": {"title": "More seats on Team", "action_url": "/billing"}},
    ],
)  # fmt: skip

from_yaml = PlacementRegistry.from_yaml("""
caps: {per_day: 3}
priority_classes:
  - {name: urgent, rank: 50, bypass_caps: true}
placements:
  - name: notice.outage
    candidates:
      - {id: status, priority: urgent, content: {title: "We are fixing an outage"}}
""")


class LastEligible:
    """Any RankingPolicy (a learned one, later) plugs in by name."""

    name, version = "last_eligible", "1"

    def choose(self, request: PolicyInput, draw: float) -> Choice:
        pick = request.eligible[-1].id if request.eligible else None
        return Choice(candidate_id=pick, probability=1.0, policy=self.name, version=self.version)


registry = PlacementRegistry([upgrade]).merge(from_yaml)
registry.policies.register(LastEligible())
registry.check(signals)  # start-up: refuses a signal not declared for the placement
print([p.name for p in registry], registry.caps.per_day, registry.policies.names())
