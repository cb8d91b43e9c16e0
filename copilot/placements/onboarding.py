"""The built-in onboarding journey: the first five minutes of a SaaS product.

Enable it with `COPILOT_PLACEMENT_MODULES=copilot.placements.onboarding` (`copilot demo`
does). Its signals are declared here, each for the placements that read it; the app sends
them with `POST /v1/signals` or in a decide's `context`.
"""

from __future__ import annotations

from datetime import timedelta

from copilot.governance.signals import Sensitivity, SignalRegistry, SignalSpec
from copilot.measure.outcomes import OutcomeSpec
from copilot.placements.model import Caps, placement
from copilot.placements.registry import PlacementRegistry

NEXT_STEP = "onboarding.next_step"
BILLING_TIP = "tooltip.billing"
TOUR = "tour.first_session"
SECURITY = "notice.security"


def _signal(name: str, type_: str, description: str, placements: list[str]) -> SignalSpec:
    return SignalSpec.model_validate({
        "name": name, "description": description, "purpose": "in-app onboarding guidance",
        "type": type_, "sensitivity": Sensitivity.INTERNAL, "retention": timedelta(days=90),
        "source": "product analytics", "workflows": placements,
    })  # fmt: skip


signals = SignalRegistry([
    _signal("onboarding.steps_done", "integer", "Setup steps completed (0-5)", [NEXT_STEP]),
    _signal("onboarding.has_data", "boolean", "A data source is connected", [NEXT_STEP]),
    _signal("onboarding.teammates", "integer", "Teammates invited", [NEXT_STEP]),
    _signal("onboarding.plan", "string", "Plan: trial, team or enterprise", [NEXT_STEP, BILLING_TIP]),
    _signal("onboarding.trial_days_left", "integer", "Days left in the trial", [BILLING_TIP]),
    _signal("onboarding.sessions", "integer", "Sessions since sign-up", [TOUR]),
    _signal("onboarding.mfa", "boolean", "Two-factor sign-in is on", [SECURITY]),
])  # fmt: skip

next_step = placement(
    name=NEXT_STEP,
    description="The one next setup step on the home page",
    signals=[{"name": "onboarding.steps_done", "required": True, "freshness": timedelta(days=1)},
             {"name": "onboarding.has_data", "freshness": timedelta(days=1)},
             {"name": "onboarding.teammates", "freshness": timedelta(days=7)},
             {"name": "onboarding.plan", "freshness": timedelta(days=30)}],
    holdout=0.1,
    thin_default="take_the_tour",
    segment_by="onboarding.plan",
    dismiss_for=timedelta(days=7),
    candidates=[
        {"id": "connect_data", "rule": "no data source yet", "when": ["onboarding.has_data == false"],
         "content": {"title": "Connect your first data source", "body": "Dashboards fill in "
                     "as soon as data arrives.", "action_label": "Connect", "action_url": "/sources/new"}},
        {"id": "invite_team", "rule": "working alone", "when": ["onboarding.teammates < 1"],
         "content": {"title": "Invite a teammate", "body": "Share dashboards and alerts.",
                     "action_label": "Invite", "action_url": "/team/invite"}},
        {"id": "first_dashboard", "rule": "setup under way", "when": ["onboarding.steps_done < 3"],
         "content": {"title": "Build your first dashboard", "action_label": "Start",
                     "action_url": "/dashboards/new"}},
        {"id": "take_the_tour", "rule": "the generic first step",
         "content": {"title": "Take the two-minute tour", "action_label": "Start the tour",
                     "action_url": "/tour"}},
    ],
)  # fmt: skip

billing_tip = placement(
    name=BILLING_TIP,
    description="A tooltip beside the billing menu",
    signals=["onboarding.plan", "onboarding.trial_days_left"],
    cooldown=timedelta(days=1),
    segment_by="onboarding.plan",
    candidates=[{"id": "trial_ending", "priority": "important", "rule": "trial ends within 3 days",
                 "when": ['onboarding.plan == "trial"', "onboarding.trial_days_left <= 3"],
                 "content": {"title": "Your trial ends soon", "body": "Pick a plan to keep your "
                             "dashboards.", "action_label": "See plans", "action_url": "/billing"}}],
)  # fmt: skip

tour = placement(
    name=TOUR,
    description="The product tour on a first session",
    signals=["onboarding.sessions"],
    dismiss_for=timedelta(days=365),
    candidates=[{"id": "product_tour", "rule": "first session", "when": ["onboarding.sessions <= 1"],
                 "content": {"title": "Welcome! Here is the tour", "action_label": "Begin"}}],
)  # fmt: skip

security = placement(
    name=SECURITY,
    description="Security notices; they bypass the daily cap",
    signals=["onboarding.mfa"],
    candidates=[{"id": "enable_mfa", "priority": "security", "rule": "two-factor sign-in is off",
                 "when": ["onboarding.mfa == false"],
                 "content": {"title": "Turn on two-factor sign-in", "action_url": "/security"}}],
)  # fmt: skip

# What the journey is for, measured against each placement's holdout (`copilot report
# --outcome onboarding.activated`): the account reached its first value.
activated = OutcomeSpec(
    name="onboarding.activated",
    description="The account reached first value (a dashboard viewed by two people)",
    polarity="good",
)

journey = PlacementRegistry([next_step, billing_tip, tour, security], caps=Caps(per_day=5))

__all__ = ["activated", "journey", "signals"]
