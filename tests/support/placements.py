"""Placements the tests declare: a capped slot, a cooled-down one, a bypassing security notice,
a held-out one and a thin-context one, over three declared signals."""

from __future__ import annotations

from datetime import timedelta

from audit import Actor
from copilot.governance.signals import Sensitivity, SignalRegistry, SignalSpec
from copilot.placements import Caps, PlacementRegistry, placement

MODULE = "tests.support.placements"
ACTOR = Actor.system("tests")
ALL = ["t.daily", "t.cool", "t.secure", "t.held", "t.steps"]


def _spec(name: str, type_: str, readers: list[str]) -> SignalSpec:
    return SignalSpec.model_validate({
        "name": name, "description": name, "purpose": "tests", "type": type_,
        "sensitivity": Sensitivity.INTERNAL, "retention": timedelta(days=30),
        "source": "tests", "workflows": readers,
    })  # fmt: skip


# Each declared for the placements that read it, no more (start-up checks both halves agree).
signals = SignalRegistry([
    _spec("t.level", "integer", ["t.steps"]),
    _spec("t.plan", "string", ["t.held"]),
    _spec("t.flag", "boolean", ["t.steps"]),
])  # fmt: skip

_NUDGE = {"title": "A nudge"}

declared = PlacementRegistry(
    [
        placement(name="t.daily", candidates=[
            {"id": "first", "content": {"title": "First"}},
            {"id": "second", "content": {"title": "Second"}}]),
        placement(name="t.cool", cooldown=timedelta(hours=1), candidates=[
            {"id": "cool", "content": _NUDGE}]),
        placement(name="t.secure", candidates=[
            {"id": "mfa", "priority": "security", "content": {"title": "Turn on MFA"}}]),
        placement(name="t.held", holdout=0.5, signals=["t.plan"], segment_by="t.plan",
                  candidates=[{"id": "held_item", "content": _NUDGE}]),
        placement(name="t.steps", signals=[{"name": "t.level", "required": True}, "t.flag"],
                  client_signals=["t.flag"], thin_default="generic", dismiss_for=timedelta(days=3), candidates=[
            {"id": "step_one", "rule": "new here", "when": ["t.level < 1"], "content": {"title": "Step one"}},
            {"id": "step_two", "when": ["t.level < 2"], "content": {"title": "Step two"}},
            {"id": "step_flag", "when": ["t.flag == true"], "content": {"title": "Flagged"}},
            {"id": "generic", "content": {"title": "Generic"}}]),
    ],
    caps=Caps(per_day=3),
)  # fmt: skip
