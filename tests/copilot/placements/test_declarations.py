"""Declarations: code and YAML, checked at start-up against the signal registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from copilot.errors import WorkflowDefinitionError
from copilot.governance.signals import SignalRegistry
from copilot.placements import (
    PlacementDefinitionError,
    PlacementRegistry,
    UnknownPlacementError,
    onboarding,
    placement,
)
from copilot.ranking import Choice, PolicyInput
from tests.support.runtime import build_runtime

YAML = """
caps: {per_day: 2}
priority_classes:
  - {name: urgent, rank: 50, bypass_caps: true}
placements:
  - name: tooltip.hello
    signals: [onboarding.plan]
    holdout: 0.2
    candidates:
      - id: hello_trial
        priority: urgent
        when: ['onboarding.plan == "trial"']
        content: {title: Hello}
"""


def test_yaml_declares_placements_classes_and_caps() -> None:
    reg = PlacementRegistry.from_yaml(YAML)
    hello = reg.get("tooltip.hello")
    assert reg.caps.per_day == 2 and reg.classes["urgent"].bypass_caps
    assert hello.holdout == 0.2 and str(hello.candidates[0].when[0]) == 'onboarding.plan == "trial"'
    with pytest.raises(UnknownPlacementError) as err:
        reg.get("tooltip.nope")
    assert err.value.code == "placement.unknown"


def test_a_placement_reading_a_signal_not_declared_for_it_fails_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "placements.yaml"
    path.write_text(YAML.replace("onboarding.plan", "onboarding.secret_sauce"))
    rt = build_runtime(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, woken=[], with_flows=False,
                       placement_modules="copilot.placements.onboarding", placements_path=path)  # fmt: skip
    try:
        with pytest.raises(WorkflowDefinitionError, match=r"onboarding\.secret_sauce"):
            rt.prepare()  # what `copilot api` does before it serves
    finally:
        rt.close()


def test_a_signal_declared_only_for_other_readers_is_refused_too() -> None:
    reg = PlacementRegistry([placement(name="tooltip.x", signals=["onboarding.mfa"],
                                       candidates=[{"id": "a", "content": {"title": "A"}}])])  # fmt: skip
    with pytest.raises(WorkflowDefinitionError, match="declared only for"):
        reg.check(onboarding.signals)


@pytest.mark.parametrize(
    ("fields", "fix"),
    [
        ({"candidates": [{"id": "a", "content": {"body": "no title"}}]}, "content is invalid"),
        (
            {"candidates": [{"id": "a", "when": ["x.y < 1"], "content": {"title": "A"}}]},
            "does not read",
        ),
        (
            {"thin_default": "zzz", "candidates": [{"id": "a", "content": {"title": "A"}}]},
            "not a candidate",
        ),
        (
            {"candidates": [{"id": "a", "when": ["bad condition"], "content": {"title": "A"}}]},
            "signal op value",
        ),
    ],
)
def test_declaration_mistakes_are_named(fields: dict[str, object], fix: str) -> None:
    with pytest.raises(PlacementDefinitionError, match=fix):
        placement(name="tooltip.bad", **fields)


def test_when_conditions_follow_the_documented_grammar() -> None:
    """docs/placements.md "`when` conditions": JSON literals, six operators, no `becomes`."""
    for word, fix in ((["onboarding.plan == trial"], "is not JSON"),
                      (['onboarding.plan becomes "trial"'], "`becomes` is for event triggers"),
                      (["onboarding.plan==1"], "signal op value")):  # fmt: skip
        with pytest.raises(PlacementDefinitionError, match=fix):
            placement(name="tooltip.g", signals=["onboarding.plan"],
                      candidates=[{"id": "a", "when": word, "content": {"title": "A"}}])  # fmt: skip
    p = placement(name="tooltip.g", signals=["onboarding.plan", "onboarding.teammates"],
                  candidates=[{"id": "a", "content": {"title": "A"}, "when": [
                      'onboarding.plan == "trial"', "onboarding.teammates < 1.5"]}])  # fmt: skip
    plan, teammates = p.candidates[0].when
    assert plan.value == "trial" and teammates.value == 1.5
    assert teammates.holds(1) and not teammates.holds("1") and not teammates.holds(None)
    assert plan.holds("trial") and not plan.holds("Trial")


def test_undeclared_priority_classes_and_policies_are_refused() -> None:
    reg = PlacementRegistry([placement(name="tooltip.p", policy="learned",
                                       candidates=[{"id": "a", "content": {"title": "A"}}])])  # fmt: skip
    with pytest.raises(PlacementDefinitionError, match="no ranking policy 'learned'"):
        reg.check(SignalRegistry())
    reg = PlacementRegistry([placement(name="tooltip.q", candidates=[
        {"id": "a", "priority": "vip", "content": {"title": "A"}}])])  # fmt: skip
    with pytest.raises(PlacementDefinitionError, match="priority class 'vip'"):
        reg.check(SignalRegistry())


class FirstDeclaredButSure:
    """A policy of our own, resolvable by name like a learned one will be."""

    name = "mine"
    version = "7"

    def choose(self, request: PolicyInput, draw: float) -> Choice:
        pick = request.eligible[-1].id if request.eligible else None
        return Choice(candidate_id=pick, probability=0.5, policy=self.name, version=self.version)


def test_a_placement_names_its_policy_from_the_registry() -> None:
    reg = PlacementRegistry([placement(name="tooltip.m", policy="mine",
                                       candidates=[{"id": "a", "content": {"title": "A"}}])])  # fmt: skip
    reg.policies.register(FirstDeclaredButSure())
    reg.check(SignalRegistry())
    assert reg.policies.get("mine").version == "7" and "rules" in reg.policies.names()


def test_the_onboarding_journey_checks_against_its_own_signals() -> None:
    reg = PlacementRegistry()
    reg.register_module(onboarding)
    reg.check(onboarding.signals)
    assert [p.name for p in reg] == ["notice.security", "onboarding.next_step", "tooltip.billing",
                                     "tour.first_session"]  # fmt: skip
