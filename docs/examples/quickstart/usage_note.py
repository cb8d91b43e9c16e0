from datetime import timedelta

from pydantic import BaseModel

from copilot import ActionKind, Risk, Sensitivity, SignalNeed, SignalSpec, StepContext, Workflow
from copilot.testing import StaticContext, WorkflowHarness


class Account(BaseModel):
    subject_id: str


class Note(BaseModel):
    account_id: str
    text: str


class Done(BaseModel):
    posted: bool


USERS = SignalSpec(name="weekly_users", description="Active users this week", type="integer",
                   purpose="notice usage drops", sensitivity=Sensitivity.INTERNAL,
                   retention=timedelta(days=90), source="analytics", workflows=("usage_note",))
POST_NOTE = ActionKind(name="post_note", payload=Note, risk=lambda note: Risk.MEDIUM,
                       subject_fields=("account_id",))
flow = Workflow("usage_note", "1", input=Account, actions=["post_note"], signals=[
    SignalNeed(name="weekly_users", required=True, freshness=timedelta(days=7))])


@flow.step
def propose(ctx: StepContext, inp: Account) -> Account:
    users = ctx.value("weekly_users")
    ctx.propose("post_note", {"account_id": inp.subject_id, "text": f"{users} active users"},
                confidence=0.9, why="Weekly usage summary")  # filed with the gate; the run waits
    return inp


@flow.step
def record(ctx: StepContext, inp: Account) -> Done:
    (outcome,) = ctx.decision["approvals"]  # what the reviewer decided, and whether it ran
    return Done(posted=outcome["executed"])


with WorkflowHarness(__name__, context=StaticContext({"acct-1": {"weekly_users": 42}})) as h:
    run = h.run("usage_note", "acct-1")  # waiting: the default policy leaves medium risk to a person
    (request,) = h.pending(run)
    print(request.kind, request.payload)  # post_note {'account_id': 'acct-1', 'text': '42 active users'}
    print(h.approve(request).result)  # {'posted': True}
