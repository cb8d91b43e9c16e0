"""A one-step workflow and the signals the proactive-trigger tests declare and ingest."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

from copilot import StepContext
from copilot.governance.signals import Sensitivity, SignalRegistry, SignalSpec
from copilot.workflow.definition import SignalNeed, Workflow


class Account(BaseModel):
    subject_id: str


class Pulse(BaseModel):
    subject_id: str
    pulse_usage: float | None


def _signal(name: str, type_: str, workflows: tuple[str, ...] = ()) -> SignalSpec:
    return SignalSpec.model_validate(
        {"name": name, "description": name, "purpose": "tests", "type": type_,
         "sensitivity": Sensitivity.INTERNAL, "retention": timedelta(days=90),
         "source": "tests", "workflows": workflows}
    )  # fmt: skip


# pulse reads pulse_usage; the others only feed triggers, which need them declared, not granted
# (a trigger that watches one for pulse counts as pulse reading it, see Registry.check_signals).
SIGNALS = SignalRegistry(
    [_signal("pulse_usage", "number", ("pulse",)), _signal("pulse_billing", "string"),
     _signal("pulse_tier", "string")]
)  # fmt: skip

pulse = Workflow(
    "pulse",
    "1",
    input=Account,
    signals=[SignalNeed(name="pulse_usage", freshness=timedelta(days=3650))],
)


@pulse.step
def read(ctx: StepContext, inp: Account) -> Pulse:
    return Pulse(subject_id=inp.subject_id, pulse_usage=ctx.value("pulse_usage"))
