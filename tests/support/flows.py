"""Workflows the runtime tests run, in-process and in real Celery worker processes.

Each step's committed effect is a row in `flow_effects` written in its checkpoint
transaction: the tests count them to prove no step executes twice.
"""

from __future__ import annotations

import time
from datetime import timedelta

from pydantic import BaseModel
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert

from copilot import StepContext
from copilot.governance.signals import Sensitivity, SignalRegistry, SignalSpec
from copilot.llm import ModelCall
from copilot.workflow.definition import Await, SignalNeed, Workflow

test_metadata = MetaData()
flow_effects = Table(
    "flow_effects",
    test_metadata,
    Column("run_id", String(32), nullable=False),
    Column("step", String(50), nullable=False),
    Column("n", Integer, nullable=False),
)


def create_tables(engine: Engine) -> None:
    """The effects table the flows write to."""
    test_metadata.create_all(engine)


class Start(BaseModel):
    subject_id: str
    delay_ms: int = 0


class Count(BaseModel):
    subject_id: str
    n: int
    delay_ms: int = 0


def _effect(ctx: StepContext, n: int) -> None:
    ctx.on_commit(
        lambda conn: conn.execute(
            insert(flow_effects).values(run_id=ctx.run.id, step=ctx.step.name, n=n)
        )
    )


def _tick(ctx: StepContext, inp: Start | Count) -> Count:
    n = inp.n + 1 if isinstance(inp, Count) else 1
    if inp.delay_ms:
        time.sleep(inp.delay_ms / 1000)
    _effect(ctx, n)
    return Count(subject_id=inp.subject_id, n=n, delay_ms=inp.delay_ms)


five_steps = Workflow("five_steps", "1", input=Start, actions=["post_note"])


@five_steps.step
def s1(ctx: StepContext, inp: Start) -> Count:
    return _tick(ctx, inp)


@five_steps.step
def s2(ctx: StepContext, inp: Count) -> Count:
    return _tick(ctx, inp)


@five_steps.step
def s3(ctx: StepContext, inp: Count) -> Count:
    out = _tick(ctx, inp)
    ctx.execute("post_note", {"subject_id": inp.subject_id, "note": f"reached step {out.n}"})
    return out


@five_steps.step
def s4(ctx: StepContext, inp: Count) -> Count:
    return _tick(ctx, inp)


@five_steps.step
def s5(ctx: StepContext, inp: Count) -> Count:
    return _tick(ctx, inp)


class Proposal(BaseModel):
    subject_id: str
    text: str


class Done(BaseModel):
    subject_id: str
    executed: bool
    note: str


pausing = Workflow("pausing", "1", input=Start, actions=["email_customer"])


@pausing.step
def propose(ctx: StepContext, inp: Start) -> Await[Proposal]:
    _effect(ctx, 1)
    proposal = Proposal(subject_id=inp.subject_id, text="Hi! Shall we book a check-in?")
    return Await(proposal, {"kind": "approval", "action": "email_customer"})


@pausing.step
def apply(ctx: StepContext, inp: Proposal) -> Done:
    _effect(ctx, 2)
    decision = ctx.decision or {}
    if decision.get("approved"):
        text = decision.get("text", inp.text)
        ctx.execute("email_customer", {"to": inp.subject_id, "text": text})
        return Done(subject_id=inp.subject_id, executed=True, note=text)
    return Done(subject_id=inp.subject_id, executed=False, note=decision.get("reason", "rejected"))


class Summary(BaseModel):
    headline: str
    score: int


class Explained(BaseModel):
    headline: str
    score: int
    method: str
    confidence: float
    level: str
    reasons: list[str]


SIGNALS = SignalRegistry(
    [
        SignalSpec(
            name="trial_usage",
            description="Week-over-week change in active usage, percent",
            purpose="account health",
            type="number",
            sensitivity=Sensitivity.INTERNAL,
            retention=timedelta(days=90),
            source="product analytics",
            workflows=("summarize",),
        ),
        SignalSpec(
            name="trial_nps",
            description="Latest NPS answer",
            purpose="account health",
            type="integer",
            sensitivity=Sensitivity.PERSONAL,
            retention=timedelta(days=365),
            source="survey tool",
            workflows=("summarize",),
        ),
        SignalSpec(
            name="trial_tickets",
            description="Open support tickets",
            purpose="account health",
            type="integer",
            sensitivity=Sensitivity.INTERNAL,
            retention=timedelta(days=30),
            source="helpdesk",
            workflows=("summarize",),
        ),
    ]
)


summarize = Workflow(
    "summarize",
    "1",
    input=Start,
    signals=[
        SignalNeed(name="trial_usage", weight=2, required=True, freshness=timedelta(days=7)),
        SignalNeed(name="trial_nps", weight=1, freshness=timedelta(days=90)),
        SignalNeed(name="trial_tickets", weight=1, freshness=timedelta(days=7)),
    ],
)


@summarize.step
def summarize_account(ctx: StepContext, inp: Start) -> Explained:
    data = {
        k: ctx.value(k) for k in ("trial_usage", "trial_nps", "trial_tickets") if k in ctx.signals
    }
    call: ModelCall[Summary] = ctx.model.structured(
        Summary,
        "Summarize the account's health in one headline and a 0-100 score.",
        data,
        prompt_version="summarize@1",
    )
    ctx.used(call)
    if call.value is not None:
        summary = call.value
    else:  # the rules path
        trend = float(ctx.value("trial_usage", 0))
        summary = Summary(
            headline=f"Usage {'up' if trend >= 0 else 'down'} {abs(trend):.0f}%",
            score=int(50 + trend),
        )
    why = ctx.explain("Based on usage trend and satisfaction signals.", confidence=0.9)
    return Explained(
        headline=summary.headline,
        score=summary.score,
        method=why.method,
        confidence=why.confidence,
        level=why.level.value,
        reasons=list(why.reasons),
    )


failing = Workflow("failing", "1", input=Start)


@failing.step
def explode(ctx: StepContext, inp: Start) -> Count:
    raise ValueError("the upstream CRM returned garbage")


# -- proposals through the approval gate -------------------------------------------------

from tests.support.kinds import CATALOG  # noqa: E402,F401 - registered with these flows


class Plan(BaseModel):
    subject_id: str
    proposals: int


class Report(BaseModel):
    subject_id: str
    outcomes: list[dict[str, object]]


proposing = Workflow("proposing", "1", input=Start, actions=["post_note", "email_customer"])


@proposing.step
def plan(ctx: StepContext, inp: Start) -> Plan:
    ctx.propose(
        "post_note", {"account": inp.subject_id, "text": "Usage up 12% this month"}, confidence=0.9
    )
    ctx.propose(
        "email_customer",
        {"to": inp.subject_id, "subject": "Check-in", "body": "Hi Ana, a quick call?"},
        confidence=0.8,
        why="Usage dropped after the last release.",
    )
    return Plan(subject_id=inp.subject_id, proposals=2)


@proposing.step
def report(ctx: StepContext, inp: Plan) -> Report:
    outcomes = [
        {k: a[k] for k in ("kind", "status", "executed", "version", "payload")}
        for a in (ctx.decision or {}).get("approvals", [])
    ]
    return Report(subject_id=inp.subject_id, outcomes=outcomes)


# One auto-approved action per run (post_note is low-risk and internal): the delivery
# tests route it to a webhook receiver or an app's Celery task and count what arrives.
noting = Workflow("noting", "1", input=Start, actions=["post_note"])


@noting.step
def note(ctx: StepContext, inp: Start) -> Plan:
    ctx.propose(
        "post_note", {"account": inp.subject_id, "text": f"Note for {inp.subject_id}"},
        confidence=0.9,
    )  # fmt: skip
    return Plan(subject_id=inp.subject_id, proposals=1)


@noting.step
def noted(ctx: StepContext, inp: Plan) -> Report:
    outcomes = [{k: a[k] for k in ("kind", "status", "executed")}
                for a in (ctx.decision or {}).get("approvals", [])]  # fmt: skip
    return Report(subject_id=inp.subject_id, outcomes=outcomes)


# An outcome the API's tests record (`POST /v1/outcomes`).
from copilot.measure.outcomes import OutcomeSpec  # noqa: E402

REPLIED = OutcomeSpec(name="replied", description="The customer replied", polarity="good")


# Five trivial steps, and the same with a pause at the third: what the round-trip pins
# measure (rules only, no effects: the floor of a run's cost, as bench/_flows.py runs).
class Tick(BaseModel):
    subject_id: str
    n: int = 0


def _next(inp: Tick) -> Tick:
    return Tick(subject_id=inp.subject_id, n=inp.n + 1)


plain = Workflow("plain", "1", input=Tick)


@plain.step
def t1(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


@plain.step
def t2(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


@plain.step
def t3(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


@plain.step
def t4(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


@plain.step
def t5(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


plain_paused = Workflow("plain_paused", "1", input=Tick)


@plain_paused.step
def u1(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


@plain_paused.step
def u2(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


@plain_paused.step
def u3(ctx: StepContext, inp: Tick) -> Await[Tick]:
    return Await(_next(inp), {"kind": "approval"})


@plain_paused.step
def u4(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


@plain_paused.step
def u5(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


plain_three = Workflow("plain_three", "1", input=Tick)
for _fn in (t1, t2, t5):
    plain_three.step(_fn)

# The same five steps and pause, declared durability="batched": the plain steps commit with
# the next checkpoint that commits anyway (the completion, the pause).
plain_batched = Workflow("plain_batched", "1", input=Tick, durability="batched")
for _fn in (t1, t2, t3, t4, t5):
    plain_batched.step(_fn)

paused_batched = Workflow("paused_batched", "1", input=Tick, durability="batched")
for _fn in (u1, u2, u3, u4, u5):
    paused_batched.step(_fn)
