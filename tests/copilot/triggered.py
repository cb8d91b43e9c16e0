"""A one-step workflow and the signals the proactive-trigger tests declare and ingest."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

from copilot.runner import StepContext
from copilot.signals import Sensitivity, SignalRegistry, SignalSpec
from copilot.workflow import SignalNeed, Workflow


class Account(BaseModel):
    subject_id: str


class Pulse(BaseModel):
    subject_id: str
    usage_trend: float | None


def _signal(name: str, type_: str) -> SignalSpec:
    return SignalSpec.model_validate(
        {"name": name, "description": name, "purpose": "tests", "type": type_,
         "sensitivity": Sensitivity.INTERNAL, "retention": timedelta(days=90),
         "source": "tests", "workflows": ["pulse"]}
    )  # fmt: skip


SIGNALS = SignalRegistry(
    [_signal("usage_trend", "number"), _signal("billing_status", "string"),
     _signal("plan_tier", "string")]
)  # fmt: skip

pulse = Workflow(
    "pulse",
    "1",
    input=Account,
    signals=[SignalNeed(name="usage_trend", freshness=timedelta(days=3650))],
)


@pulse.step
def read(ctx: StepContext, inp: Account) -> Pulse:
    return Pulse(subject_id=inp.subject_id, usage_trend=ctx.value("usage_trend"))
