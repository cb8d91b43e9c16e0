"""Welcome a new account: a person approves the welcome email; the owner hears of the rest.

Everything a workflow needs is declared here, at module level, where copilot collects it:
the signals it reads (SignalSpec), the actions it may propose (ActionKind), and the
Workflow with its steps.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field

from copilot import (
    ActionKind,
    Level,
    Risk,
    Sensitivity,
    SignalNeed,
    SignalRegistry,
    SignalSpec,
    StepContext,
    Workflow,
)

NAME = "onboarding"

# 1. The signals: what each is, why it is kept, how sensitive, for how long, and which
#    workflows may read it. Ingestion refuses anything undeclared.
DAYS_SINCE_SIGNUP = SignalSpec(
    name="days_since_signup",
    description="Days since the account signed up",
    purpose="welcome new accounts at the right moment",
    type="integer",
    sensitivity=Sensitivity.INTERNAL,
    retention=timedelta(days=365),
    source="billing",
    workflows=(NAME,),
)
SETUP_STEPS_DONE = SignalSpec(
    name="setup_steps_done",
    description="How many of the 5 setup steps the account has finished",
    purpose="say what is left to set up",
    type="integer",
    sensitivity=Sensitivity.INTERNAL,
    retention=timedelta(days=365),
    source="product analytics",
    workflows=(NAME,),
)
ADMIN_EMAIL = SignalSpec(
    name="admin_email",
    description="The email address of the account's administrator",
    purpose="address the welcome email",
    type="string",
    sensitivity=Sensitivity.PERSONAL,
    retention=timedelta(days=730),
    source="CRM",
    workflows=(NAME,),
)
# The same specs as one registry (collected too; declaring a spec twice, identically, is
# fine): `SIGNALS.specs()` is what `copilot signals list` prints, `SIGNALS.ingest(...)` writes.
SIGNALS = SignalRegistry([DAYS_SINCE_SIGNUP, SETUP_STEPS_DONE, ADMIN_EMAIL])


# 2. The actions: a payload schema, a risk computed from the payload, whom it reaches.
class WelcomeEmail(BaseModel):
    account_id: str
    to: str
    subject: str = Field(max_length=200)
    body: str = Field(max_length=5000)


class OwnerNote(BaseModel):
    account_id: str
    note: str = Field(max_length=2000)


SEND_WELCOME = ActionKind(
    name="send_welcome_email",
    payload=WelcomeEmail,
    risk=lambda email: Risk.MEDIUM,
    reaches_customer=True,
    requires_person=True,  # whatever the policy says, a person approves it
    subject_fields=("account_id",),  # must be the run's subject
    locked_fields=("to",),  # a reviewer may edit the body, never the recipient
    description="Email the account's administrator a welcome with the next setup step",
)
NOTE_OWNER = ActionKind(
    name="note_account_owner",
    payload=OwnerNote,
    risk=lambda note: Risk.LOW,  # internal and low risk: the default policy auto-approves it
    subject_fields=("account_id",),
    description="Tell the account owner what the onboarding run found",
)


# 3. The workflow: its input, the signals it reads (weight, freshness), what it may propose.
class Account(BaseModel):
    subject_id: str


class Proposed(BaseModel):
    subject_id: str
    kinds: list[str]


class Welcomed(BaseModel):
    subject_id: str
    emailed: bool
    outcomes: dict[str, str]  # kind -> approved, rejected, expired...


onboarding = Workflow(
    NAME,
    "1",
    input=Account,
    description="Welcome a new account with its next setup step",
    signals=[
        SignalNeed(name=DAYS_SINCE_SIGNUP.name, weight=2, required=True,
                   freshness=timedelta(days=2)),
        SignalNeed(name=SETUP_STEPS_DONE.name, weight=2, freshness=timedelta(days=2)),
        SignalNeed(name=ADMIN_EMAIL.name, weight=1, freshness=timedelta(days=365)),
    ],
    actions=[SEND_WELCOME.name, NOTE_OWNER.name],
)


@onboarding.step
def propose(ctx: StepContext, inp: Account) -> Proposed:
    """Propose the welcome email (at full or partial context) and a note for the owner."""
    done = ctx.value("setup_steps_done", 0)
    email = ctx.value("admin_email")
    kinds = []
    # A customer-facing action at `thin` would fail the run: guard on the level.
    if ctx.level in (Level.FULL, Level.PARTIAL) and email:
        ctx.propose(
            SEND_WELCOME.name,
            {"account_id": inp.subject_id, "to": email,
             "subject": "Welcome aboard",
             "body": f"You have finished {done} of 5 setup steps; next: invite your team."},
            confidence=0.8,
            why=f"Signed up {ctx.value('days_since_signup')} days ago, {done} of 5 steps done.",
        )  # fmt: skip
        kinds.append(SEND_WELCOME.name)
    ctx.propose(
        NOTE_OWNER.name,
        {"account_id": inp.subject_id, "note": f"Onboarding: {done} of 5 setup steps done."},
        confidence=0.9,
        why="Every new account's owner hears how setup is going.",
    )
    kinds.append(NOTE_OWNER.name)
    return Proposed(subject_id=inp.subject_id, kinds=kinds)


@onboarding.step
def report(ctx: StepContext, inp: Proposed) -> Welcomed:
    """Runs once every proposal is decided and the approved ones are carried out."""
    outcomes = (ctx.decision or {}).get("approvals", [])
    by_kind = {o["kind"]: o["status"] for o in outcomes}
    emailed = any(o["kind"] == SEND_WELCOME.name and o.get("executed") for o in outcomes)
    return Welcomed(subject_id=inp.subject_id, emailed=emailed, outcomes=by_kind)

