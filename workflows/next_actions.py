"""Suggested next actions: rules rank a catalog of actions, the model may re-rank within it.

Every action kind has a payload schema and a risk function of its payload. Rules score
candidates from the signals, each with the reason it was suggested; with a model and a
rich enough context, the model may reorder or drop candidates and justify its choice,
but never add a kind or write a payload. The top k (3 at `full`, 2 at `partial`, 1
internal action at `thin`) go to the gate, each saying why it is there.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from copilot import ActionKind, Catalog, EventTrigger, Level, Risk, StepContext, Workflow
from workflows.account_health import compute_health
from workflows.signals import ACTIONS, SIGNALS, need

__all__ = ["AT_RISK", "CATALOG", "SIGNALS", "next_actions", "rank_candidates"]

PROMPT_VERSION = "next_actions.rerank@1"
TOP_K = {Level.FULL: 3, Level.PARTIAL: 2, Level.THIN: 1}


class Account(BaseModel):
    """Payload fields every action carries."""

    account_id: str = Field(min_length=1, max_length=200)


class CheckinCall(Account):
    contact: str = Field(min_length=1, max_length=200)
    when: Literal["this_week", "next_week"]
    agenda: str = Field(min_length=1, max_length=500)


class OnboardingGuide(Account):
    contact_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)
    guide: Literal["getting_started", "admin_setup", "integrations"]


class Training(Account):
    contact_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)
    topic: str = Field(min_length=1, max_length=200)
    seats: int = Field(ge=1, le=10_000)


class BillingReminder(Account):
    contact_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)
    amount: float = Field(ge=0, le=10_000_000)
    tone: Literal["gentle", "firm"]


class Escalation(Account):
    reason: str = Field(min_length=1, max_length=500)
    severity: Literal["medium", "high"]


class ReviewRequest(Account):
    contact_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)
    channel: Literal["g2", "capterra", "referral"]


class InAppTip(Account):
    feature: str = Field(min_length=1, max_length=100)
    tip: str = Field(min_length=1, max_length=300)


# Every action names its account; an edit may change neither it nor whom it reaches.
SUBJECT = ("account_id",)
CONTACT = ("contact_email",)


def _billing_risk(p: BillingReminder) -> Risk:
    return Risk.HIGH if p.amount > 10_000 or p.tone == "firm" else Risk.MEDIUM


CATALOG = Catalog(
    [
        ActionKind(
            "schedule_checkin_call",
            CheckinCall,
            lambda p: Risk.LOW,
            reaches_customer=True,
            description="Invite the contact to a check-in call",
            subject_fields=SUBJECT,
            locked_fields=("contact",),
        ),
        ActionKind(
            "send_onboarding_guide",
            OnboardingGuide,
            lambda p: Risk.LOW,
            reaches_customer=True,
            description="Email an onboarding guide",
            subject_fields=SUBJECT,
            locked_fields=CONTACT,
        ),
        ActionKind(
            "offer_training",
            Training,
            lambda p: Risk.MEDIUM if p.seats > 50 else Risk.LOW,
            reaches_customer=True,
            description="Offer a training session",
            subject_fields=SUBJECT,
            locked_fields=CONTACT,
        ),
        ActionKind(
            "billing_reminder",
            BillingReminder,
            _billing_risk,
            reaches_customer=True,
            description="Remind the contact of an overdue payment",
            subject_fields=SUBJECT,
            locked_fields=CONTACT,
        ),
        ActionKind(
            "escalate_to_owner",
            Escalation,
            lambda p: Risk.MEDIUM if p.severity == "high" else Risk.LOW,
            description="Escalate the account to its owner (internal)",
            subject_fields=SUBJECT,
        ),
        ActionKind(
            "request_review",
            ReviewRequest,
            lambda p: Risk.MEDIUM,
            reaches_customer=True,
            description="Ask a happy customer for a review or referral",
            subject_fields=SUBJECT,
            locked_fields=CONTACT,
        ),
        ActionKind(
            "show_in_app_tip",
            InAppTip,
            lambda p: Risk.LOW,
            reaches_customer=True,
            description="Show an in-app tooltip or tour step",
            subject_fields=SUBJECT,
        ),
    ]
)


class AccountRef(BaseModel):
    """Which account to suggest actions for."""

    subject_id: str = Field(min_length=1, max_length=200)


class Candidate(BaseModel):
    """An action the rules suggest, with its payload and why."""

    kind: str
    score: float
    why: str
    payload: dict[str, Any]


class Candidates(BaseModel):
    """The rules' ranking."""

    subject_id: str
    candidates: list[Candidate]


class Choice(BaseModel):
    """One item of the model's re-ranking."""

    kind: str
    why: str = Field(min_length=1, max_length=300)


class Rerank(BaseModel):
    """What the model is asked for: the candidates it keeps, best first."""

    ranking: list[Choice] = Field(max_length=7)


class Plan(BaseModel):
    """The proposals sent to the gate."""

    subject_id: str
    proposed: list[Candidate]
    method: Literal["model", "rules"]
    level: str
    dropped_by_model: list[str] = []


class Outcome(BaseModel):
    """What became of one proposal."""

    kind: str
    status: str
    executed: bool
    reason: str | None = None


class NextActions(Plan):
    """The run's result."""

    outcomes: list[Outcome]


next_actions = Workflow(
    ACTIONS,
    "1",
    input=AccountRef,
    description="Ranked next actions from a catalog, each gated and explained",
    signals=[
        need("usage_trend", 3, 14),
        need("active_seats", 2, 30),
        need("purchased_seats", 1, 365),
        need("days_since_login", 2, 14),
        need("open_tickets", 1, 30),
        need("ticket_severity", 1, 30),
        need("nps", 1, 180),
        need("csat", 1, 90),
        need("billing_status", 2, 30),
        need("overdue_amount", 0.5, 30, conditional=True),
        need("renewal_date", 1, 365),
        need("onboarding_complete", 1, 365),
        need("features_adopted", 1, 90),
        need("account_name", 0.5, 730),
        need("contact_name", 0.5, 730),
        need("contact_email", 1, 730),
    ],
    actions=CATALOG.names(),
    holdout=0.1,
)

# Suggest next actions as soon as an account turns risky: a payment failed, usage fell 30%
# or more week over week, or a high-severity ticket opened; at most once a day per account.
AT_RISK = EventTrigger(
    name="next_actions_at_risk",
    workflow=ACTIONS,
    when=(
        'billing_status becomes "failed"',
        "usage_trend <= -30",
        'ticket_severity becomes "high"',
    ),
    debounce=timedelta(days=1),
)


def rank_candidates(subject_id: str, v: dict[str, Any], today: date) -> list[Candidate]:
    """Score every action the signals justify, best first (deterministic)."""
    health = compute_health(subject_id, v, today, [])
    email, name = v.get("contact_email"), v.get("contact_name") or "the account's contact"
    out: list[Candidate] = []

    def add(kind: str, score: float, why: str, **payload: Any) -> None:
        out.append(
            Candidate(
                kind=kind, score=score, why=why, payload={"account_id": subject_id, **payload}
            )
        )

    billing = v.get("billing_status")
    if billing in ("overdue", "failed") and email:
        amount = float(v.get("overdue_amount") or 0)
        add(
            "billing_reminder",
            0.9,
            f"Billing is {billing} with {amount:g} outstanding.",
            contact_email=email,
            amount=amount,
            tone="firm" if billing == "failed" else "gentle",
        )
    severity = v.get("ticket_severity")
    if health.score < 40 or severity == "high":
        add(
            "escalate_to_owner",
            0.85 if severity == "high" else 0.8,
            f"Health is {health.score}/100"
            + (" with a high-severity ticket open." if severity == "high" else "."),
            reason=f"health {health.score}/100, {v.get('open_tickets') or 0} open tickets",
            severity="high" if severity == "high" or health.score < 25 else "medium",
        )
    days, trend = v.get("days_since_login"), v.get("usage_trend")
    if (days is not None and days > 14) or (trend is not None and trend < -15):
        why = (
            f"Last sign-in {days} days ago."
            if days and days > 14
            else f"Usage fell {trend:g}% week over week."
        )
        add(
            "schedule_checkin_call",
            0.7,
            why,
            contact=name,
            when="this_week" if health.score < 40 else "next_week",
            agenda="Review how the team is using the product and what is in the way",
        )
    if v.get("onboarding_complete") is False and email:
        add(
            "send_onboarding_guide",
            0.75,
            "Onboarding milestones are not complete.",
            contact_email=email,
            guide="getting_started",
        )
    adopted = v.get("features_adopted")
    if adopted is not None and adopted < 0.4:
        if email:
            add(
                "offer_training",
                0.6,
                f"Only {adopted:.0%} of key features are in use.",
                contact_email=email,
                topic="Getting more from key features",
                seats=max(1, int(v.get("active_seats") or 1)),
            )
        add(
            "show_in_app_tip",
            0.5,
            f"Only {adopted:.0%} of key features are in use.",
            feature="reports",
            tip="Build a weekly report in two clicks",
        )
    seats, bought = v.get("active_seats"), v.get("purchased_seats")
    if seats is not None and bought and seats / bought < 0.5:
        add(
            "show_in_app_tip",
            0.45,
            f"{seats} of {bought} seats are active.",
            feature="invite",
            tip="Invite teammates to the seats you already have",
        )
    nps = v.get("nps")
    if nps is not None and nps >= 9 and health.score >= 70 and severity != "high" and email:
        add(
            "request_review",
            0.65,
            f"Promoter (NPS {nps}) on a healthy account ({health.score}/100).",
            contact_email=email,
            channel="g2",
        )
    best: dict[str, Candidate] = {}
    for c in out:  # one candidate per kind: the better-scored one
        if c.kind not in best or c.score > best[c.kind].score:
            best[c.kind] = c
    return sorted(best.values(), key=lambda c: (-c.score, c.kind))


@next_actions.step
def rank(ctx: StepContext, inp: AccountRef) -> Candidates:
    """The rules' candidates from the signals."""
    values = ctx.values()
    today = date.fromtimestamp(ctx.run.created_at)
    return Candidates(
        subject_id=inp.subject_id, candidates=rank_candidates(inp.subject_id, values, today)
    )


def _rerank(ctx: StepContext, cands: list[Candidate]) -> tuple[list[Candidate], list[str]] | None:
    """The model's order of the candidates (kinds outside them are dropped and flagged)."""
    present = [n.name for n in ctx.workflow.signals if ctx.value(n.name) is not None]
    call = ctx.ask(
        Rerank,
        "You help a customer-success team choose what to do next for an account. Re-rank the "
        "candidate actions in the data, best first, with a one-sentence reason grounded in the "
        "signals. You may drop candidates; you may not add kinds that are not candidates.",
        signals=[n for n in present if n not in ("contact_email",)],
        facts={"candidates": [{"kind": c.kind, "why": c.why} for c in cands]},
        prompt_version=PROMPT_VERSION,
    )
    if call.value is None:
        return None
    by_kind = {c.kind: c for c in cands}
    chosen: list[Candidate] = []
    invented: list[str] = []
    for item in call.value.ranking:
        if item.kind in by_kind and all(c.kind != item.kind for c in chosen):
            chosen.append(by_kind[item.kind].model_copy(update={"why": item.why}))
        elif item.kind not in by_kind:
            invented.append(item.kind)
    if invented:
        ctx.degrade(Level.PARTIAL, "model_unknown_kind")
    kept = {c.kind for c in chosen}
    return chosen, [c.kind for c in cands if c.kind not in kept]


@next_actions.step
def choose(ctx: StepContext, inp: Candidates) -> Plan:
    """Pick the top k (re-ranked by the model when there is one), and propose them."""
    ranked, method = inp.candidates, "rules"
    dropped: list[str] = []
    if ctx.model.available and ctx.level in (Level.FULL, Level.PARTIAL) and ranked:
        reranked = _rerank(ctx, ranked)
        if reranked is not None:
            (ranked, dropped), method = reranked, "model"
    allowed = [
        c for c in ranked if ctx.level != Level.THIN or not CATALOG.get(c.kind).reaches_customer
    ]
    top = allowed[: TOP_K.get(ctx.level, 0)]
    for c in top:
        ctx.propose(c.kind, c.payload, confidence=c.score, why=c.why)
    return Plan(
        subject_id=inp.subject_id,
        proposed=top,
        method=method,
        level=ctx.level.value,
        dropped_by_model=dropped,
    )


@next_actions.step
def report(ctx: StepContext, plan: Plan) -> NextActions:
    """What became of each proposal."""
    outcomes = [
        Outcome(
            kind=o["kind"],
            status=o["status"],
            executed=bool(o.get("executed")),
            reason=o.get("reason"),
        )
        for o in (ctx.decision or {}).get("approvals", [])
    ]
    return NextActions(**plan.model_dump(), outcomes=outcomes)
