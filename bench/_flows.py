"""Workflows the runtime bench runs: five trivial steps, and the same with a pause at step 3."""

from __future__ import annotations

from pydantic import BaseModel

from copilot import StepContext
from copilot.workflow.definition import Await, Workflow


class Tick(BaseModel):
    subject_id: str
    n: int = 0


def _next(inp: Tick) -> Tick:
    return Tick(subject_id=inp.subject_id, n=inp.n + 1)


five = Workflow("bench_five", "1", input=Tick)


@five.step
def s1(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


@five.step
def s2(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


@five.step
def s3(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


@five.step
def s4(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


@five.step
def s5(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


# The same five steps, declared durability="batched": they commit with the completion.
batched = Workflow("bench_five_batched", "1", input=Tick, durability="batched")
for _fn in (s1, s2, s3, s4, s5):
    batched.step(_fn)

paused = Workflow("bench_paused", "1", input=Tick)


@paused.step
def p1(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


@paused.step
def p2(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


@paused.step
def p3(ctx: StepContext, inp: Tick) -> Await[Tick]:
    return Await(_next(inp), {"kind": "approval"})


@paused.step
def p4(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


@paused.step
def p5(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)


# -- a proposing workflow for bench/approvals.py ---------------------------------------

from datetime import timedelta  # noqa: E402

from approvals import ActionKind, Risk  # noqa: E402


class Email(BaseModel):
    to: str
    body: str


email_customer = ActionKind(
    "email_customer",
    Email,
    lambda e: Risk.MEDIUM,
    reaches_customer=True,
    expires_after=timedelta(days=3),
)

proposing = Workflow("bench_proposing", "1", input=Tick, actions=["email_customer"])


@proposing.step
def propose(ctx: StepContext, inp: Tick) -> Tick:
    ctx.propose(
        "email_customer", {"to": inp.subject_id, "body": "Hi, a quick call?"}, confidence=0.9
    )
    return _next(inp)


@proposing.step
def after(ctx: StepContext, inp: Tick) -> Tick:
    return _next(inp)
