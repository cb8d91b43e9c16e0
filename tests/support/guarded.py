"""A workflow whose customer-facing action names its subject (at the top and nested), the
event trigger and schedule that start it, and a workflow that proposes for another subject:
what the separation-of-duties and subject-binding tests attack."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field

from approvals import ActionKind, Catalog, Risk
from copilot import StepContext
from copilot.governance.signals import Sensitivity, SignalRegistry, SignalSpec
from copilot.workflow.definition import Workflow
from copilot.workflow.triggers import EventTrigger, Schedule


class Billing(BaseModel):
    account_id: str
    amount: int = Field(ge=0, le=1_000_000)


class Reminder(BaseModel):
    account_id: str
    to: str
    billing: Billing
    text: str = Field(max_length=500)


CATALOG = Catalog(
    [
        ActionKind(
            "guarded_reminder",
            Reminder,
            lambda r: Risk.HIGH,
            reaches_customer=True,
            subject_fields=("account_id", "billing.account_id"),
            locked_fields=("to",),
        )
    ]
)


def _signal(name: str, type_: str) -> SignalSpec:
    return SignalSpec.model_validate(
        {"name": name, "description": name, "purpose": "tests", "type": type_,
         "sensitivity": Sensitivity.INTERNAL, "retention": timedelta(days=90),
         "source": "tests", "workflows": ["guarded"]}
    )  # fmt: skip


SIGNALS = SignalRegistry([_signal("guard_usage", "number")])


class Target(BaseModel):
    subject_id: str
    target: str | None = None  # `misguided`: the subject its payload names instead


class Proposed(BaseModel):
    subject_id: str


guarded = Workflow("guarded", "1", input=Target, actions=["guarded_reminder"])


def reminder(subject: str, named: str | None = None) -> dict[str, object]:
    """The payload: every subject field names `named` (default: the run's subject)."""
    who = named or subject
    return {"account_id": who, "to": f"{who}@example.com",
            "billing": {"account_id": who, "amount": 120}, "text": "Your invoice is overdue."}  # fmt: skip


@guarded.step
def remind(ctx: StepContext, inp: Target) -> Proposed:
    ctx.propose("guarded_reminder", reminder(inp.subject_id, inp.target), confidence=0.9)
    return Proposed(subject_id=inp.subject_id)


@guarded.step
def done(ctx: StepContext, inp: Proposed) -> Proposed:
    return inp


GUARD_DROP = EventTrigger(
    name="guard_drop", workflow="guarded", when=("guard_usage <= -30",), debounce=timedelta(hours=1)
)
GUARD_WEEKLY = Schedule(
    name="guard_weekly",
    workflow="guarded",
    every=timedelta(days=7),
    subjects={"having": ["guard_usage"]},
)
