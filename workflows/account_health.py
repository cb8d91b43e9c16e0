"""Account-health summary: a score with its drivers, a grounded narrative, a note on the record.

The score is rules, always: each declared signal the account has contributes a component
in [-1, 1] times its weight, and the drivers are the components that moved the score
most. The narrative comes from the model when one is configured and the context is rich
enough (checked for grounding: every number it states must be in the data it was given),
else from a template. Either way the run says what it did not know.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from copilot import ActionKind, Level, Risk, Schedule, StepContext, Subjects, Workflow
from workflows.signals import HEALTH, SIGNALS, need

__all__ = ["SIGNALS", "POST_HEALTH_NOTE", "WEEKLY", "account_health", "compute_health"]

PROMPT_VERSION = "account_health.narrative@1"
Band = Literal["healthy", "watch", "at_risk"]
FULL_WEIGHT = 100  # the weights of all eight factors
BAND_TEXT = {"healthy": "healthy", "watch": "on watch", "at_risk": "at risk"}
_SEVERITY = {"none": 0.0, "low": -0.2, "medium": -0.5, "high": -1.0}
_BILLING = {"current": 0.4, "overdue": -0.6, "failed": -1.0}


class AccountRef(BaseModel):
    """Which account to look at."""

    subject_id: str = Field(min_length=1, max_length=200)


class Driver(BaseModel):
    """One factor of the score: which way it pushed and by how many points."""

    factor: str
    signal: str
    direction: Literal["up", "down", "neutral"]
    points: float
    weight: float
    detail: str


class Health(BaseModel):
    """The rules' assessment."""

    subject_id: str
    account: str
    score: int = Field(ge=0, le=100)
    band: Band
    drivers: list[Driver]
    missing: list[str]
    factors: int = Field(description="how many of the score's eight factors had a signal")


class HealthNote(BaseModel):
    """The payload of `post_health_note`: what lands on the account record."""

    account_id: str = Field(min_length=1, max_length=200)
    score: int = Field(ge=0, le=100)
    band: Band
    note: str = Field(min_length=1, max_length=2000)


class Summary(BaseModel):
    """The health plus its narrative and how it was written."""

    health: Health
    summary: str
    method: Literal["model", "rules"]
    confidence: float
    why: str


class HealthReport(Summary):
    """The run's result: the summary and whether the note was posted."""

    posted: bool
    decision: str | None = None


class Narrative(BaseModel):
    """What the model is asked for."""

    summary: str = Field(min_length=20, max_length=1200)


POST_HEALTH_NOTE = ActionKind(
    name="post_health_note",
    payload=HealthNote,
    risk=lambda note: Risk.LOW,  # an internal note on the account record
    description="Post the health summary to the account record (internal)",
    subject_fields=("account_id",),
)

account_health = Workflow(
    HEALTH,
    "1",
    input=AccountRef,
    description="Account-health score with drivers, a grounded summary, a note on the record",
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
        need("renewal_date", 1, 365),
        need("account_name", 0.5, 730),
        need("last_ticket_text", 0.5, 30),
    ],
    actions=[POST_HEALTH_NOTE.name],
    holdout=0.05,
)

# Every active account (any usage signal in the last 30 days) gets a health summary each
# week, Monday 00:00-06:00 UTC, each account at its own moment in those six hours.
WEEKLY = Schedule(
    name="weekly_account_health",
    workflow=HEALTH,
    every=timedelta(days=7),
    jitter=timedelta(hours=6),
    subjects=Subjects(
        having=("usage_trend", "active_seats", "days_since_login"),
        seen_within=timedelta(days=30),
    ),
)


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _clamp(x: float) -> float:
    return max(-1.0, min(1.0, x))


def _components(v: dict[str, Any], today: date) -> list[tuple[str, str, float, float, str]]:
    """(factor, signal, component in [-1, 1], weight, detail) for each signal present."""
    out: list[tuple[str, str, float, float, str]] = []
    if (trend := v.get("usage_trend")) is not None:
        out.append(
            (
                "usage trend",
                "usage_trend",
                _clamp(trend / 30),
                20,
                f"usage {trend:+g}% week over week",
            )
        )
    seats, bought = v.get("active_seats"), v.get("purchased_seats")
    if seats is not None and bought:
        util = seats / bought
        out.append(
            (
                "seat utilization",
                "active_seats",
                _clamp((util - 0.6) / 0.4),
                15,
                f"{seats} of {bought} seats active",
            )
        )
    if (days := v.get("days_since_login")) is not None:
        out.append(
            (
                "login recency",
                "days_since_login",
                _clamp(1 - (days - 3) / 13.5),
                15,
                f"last sign-in {_days(days)} ago",
            )
        )
    severity = v.get("ticket_severity")
    tickets = v.get("open_tickets")
    if severity is not None or tickets is not None:
        comp = _SEVERITY.get(severity or "none", -0.5) - (0.3 if (tickets or 0) > 5 else 0)
        out.append(
            (
                "support load",
                "ticket_severity",
                _clamp(comp + (0.2 if not tickets else 0)),
                15,
                f"{tickets or 0} open tickets, highest severity {severity or 'none'}",
            )
        )
    if (nps := v.get("nps")) is not None:
        out.append(("NPS", "nps", _clamp((nps - 7) / 3), 10, f"NPS answer {nps}"))
    if (csat := v.get("csat")) is not None:
        out.append(("CSAT", "csat", _clamp((csat - 3.5) / 1.5), 5, f"CSAT {csat:g} of 5"))
    if (billing := v.get("billing_status")) is not None:
        out.append(
            ("billing", "billing_status", _BILLING.get(billing, -0.3), 15, f"billing {billing}")
        )
    if (renewal := v.get("renewal_date")) is not None:
        days_left = (date.fromisoformat(renewal) - today).days
        comp = -0.5 if 0 <= days_left <= 30 else 0.0
        out.append(("renewal window", "renewal_date", comp, 5, f"renewal in {_days(days_left)}"))
    return out


def compute_health(
    subject_id: str, values: dict[str, Any], today: date, needs: list[str]
) -> Health:
    """The score (0-100) from whichever signals are present, with the top drivers."""
    comps = _components(values, today)
    total = sum(w for *_, w, _ in comps) or 1.0
    # Few signals, weak claim: the score shrinks toward neutral (50) below 60% of the weight.
    certainty = min(1.0, total / (0.6 * FULL_WEIGHT))
    raw = 50 * sum(c * w for _, _, c, w, _ in comps) / total
    score = round(50 + raw * certainty)
    drivers = [
        Driver(
            factor=factor,
            signal=signal,
            direction="up" if c > 0 else "down" if c < 0 else "neutral",
            points=round(50 * c * w * certainty / total, 1),
            weight=round(w / total, 3),
            detail=detail,
        )
        for factor, signal, c, w, detail in comps
    ]
    drivers.sort(key=lambda d: -abs(d.points))
    band: Band = "healthy" if score >= 70 else "watch" if score >= 40 else "at_risk"
    missing = [n for n in needs if values.get(n) is None and n != "last_ticket_text"]
    return Health(
        subject_id=subject_id,
        account=values.get("account_name") or subject_id,
        score=max(0, min(100, score)),
        band=band,
        drivers=drivers[:3],
        missing=missing,
        factors=len(comps),
    )


@account_health.step
def score(ctx: StepContext, inp: AccountRef) -> Health:
    """Score the account from its signals."""
    values = ctx.values()
    today = date.fromtimestamp(ctx.run.created_at)
    return compute_health(inp.subject_id, values, today, [n.name for n in ctx.workflow.signals])


def template_summary(health: Health) -> str:
    """The rules path's narrative."""
    phrases = [f"{d.detail} ({d.points:+g})" for d in health.drivers if d.direction != "neutral"]
    text = (
        f"{health.account} is {BAND_TEXT[health.band]} with a health score of {health.score}/100 "
        f"({health.factors} of 8 factors known)."
    )
    if phrases:
        text += " Main drivers: " + "; ".join(phrases) + "."
    if health.missing:
        text += " Not known: " + ", ".join(m.replace("_", " ") for m in health.missing) + "."
    return text


_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?")


def ungrounded_numbers(text: str, data: Any) -> list[str]:
    """Numbers stated in `text` that appear nowhere in `data` (a hallucination check)."""
    known = set(_NUMBER.findall(str(data).replace("+", "")))
    known |= {k.lstrip("-") for k in known} | {"100", "0"}
    return [n for n in _NUMBER.findall(text) if n.lstrip("+-") not in known]


@account_health.step
def summarize(ctx: StepContext, health: Health) -> Summary:
    """Write the narrative (model, checked for grounding; else the template) and propose the note."""
    coverage = ctx.degradation.coverage
    method: Literal["model", "rules"] = "rules"
    text = template_summary(health)
    if ctx.model.available and ctx.level in (Level.FULL, Level.PARTIAL):
        present = [n.name for n in ctx.workflow.signals if ctx.value(n.name) is not None]
        facts = health.model_dump(exclude={"subject_id"})
        call = ctx.ask(
            Narrative,
            "Write a two- or three-sentence account-health summary for the internal account "
            "record. Use only the signals and facts in the data; state the score and the main "
            "drivers; say plainly what is not known. Do not invent numbers.",
            signals=present,
            facts=facts,
            prompt_version=PROMPT_VERSION,
        )
        if call.value is not None:
            stray = ungrounded_numbers(
                call.value.summary, {**facts, "s": [ctx.value(n) for n in present]}
            )
            if stray:
                ctx.degrade(Level.PARTIAL, "model_ungrounded")
            else:
                text, method = call.value.summary, "model"
    confidence = ctx.degradation.cap(0.5 + 0.5 * coverage)
    top = health.drivers[0].detail if health.drivers else "too few signals to name a driver"
    why = f"Health {health.score}/100 ({BAND_TEXT[health.band]}); the biggest factor: {top}."
    ctx.propose(
        POST_HEALTH_NOTE.name,
        {"account_id": health.subject_id, "score": health.score, "band": health.band, "note": text},
        confidence=confidence,
        why=why,
    )
    return Summary(health=health, summary=text, method=method, confidence=confidence, why=why)


@account_health.step
def record(ctx: StepContext, summary: Summary) -> HealthReport:
    """Report whether the note reached the account record."""
    outcomes = (ctx.decision or {}).get("approvals", [])
    first = outcomes[0] if outcomes else {}
    return HealthReport(
        **summary.model_dump(), posted=bool(first.get("executed")), decision=first.get("status")
    )
