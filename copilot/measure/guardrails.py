"""Guardrails and segments: what must not get worse, and where a total can hide a loss.

A guardrail is a rate that must not rise (complaints, opt-outs, rejections): by more than
`max_increase` over the holdout, or past `max_rate`. It flags a `breach` when the
interval's lower bound is past the threshold (confidently worse than tolerated) and
`watch` when only the point estimate is (the data cannot tell yet). Segment effects warn
where a segment is harmed while the total improves.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from copilot.measure.experiments import Arm, Lift, check_alpha, newcombe, wilson

Status = Literal["ok", "watch", "breach"]


class Guardrail(BaseModel):
    """A metric that must not get worse: by more than `max_increase` over holdout, or past `max_rate`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    max_increase: float | None = None  # absolute rate points over the holdout (0.01 = 1 point)
    max_rate: float | None = None  # an absolute ceiling on the treated rate


class GuardrailCheck(BaseModel):
    """One guardrail in one scope: the figures and the verdict."""

    model_config = ConfigDict(frozen=True)

    metric: str
    scope: str  # "overall" or "<segment>=<value>"
    rule: str  # "increase" or "ceiling"
    threshold: float
    treated: Arm
    holdout: Arm | None
    value: float  # the increase (rule increase) or the treated rate (rule ceiling)
    low: float
    high: float
    status: Status


def check_guardrail(
    guardrail: Guardrail,
    treated: Arm,
    holdout: Arm | None = None,
    *,
    scope: str = "overall",
    alpha: float = 0.05,
) -> list[GuardrailCheck]:
    """Each of the guardrail's rules that can be checked with these arms.

    `breach`: the interval's lower bound is past the threshold (confidently worse than
    tolerated). `watch`: only the point estimate is (the data cannot tell yet). An
    increase needs a holdout arm with subjects; a ceiling needs treated subjects.
    """
    check_alpha(alpha)
    checks = []
    if guardrail.max_increase is not None and holdout is not None and treated.n and holdout.n:
        low, high = newcombe(treated, holdout, alpha=alpha)
        value = treated.rate - holdout.rate
        checks.append(
            _verdict(
                guardrail,
                scope,
                "increase",
                guardrail.max_increase,
                treated,
                holdout,
                value,
                low,
                high,
            )
        )
    if guardrail.max_rate is not None and treated.n:
        low, high = wilson(treated.successes, treated.n, alpha=alpha)
        checks.append(
            _verdict(
                guardrail,
                scope,
                "ceiling",
                guardrail.max_rate,
                treated,
                holdout,
                treated.rate,
                low,
                high,
            )
        )
    return checks


def _verdict(
    g: Guardrail,
    scope: str,
    rule: str,
    threshold: float,
    treated: Arm,
    holdout: Arm | None,
    value: float,
    low: float,
    high: float,
) -> GuardrailCheck:
    status: Status = "breach" if low > threshold else "watch" if value > threshold else "ok"
    return GuardrailCheck(
        metric=g.metric,
        scope=scope,
        rule=rule,
        threshold=threshold,
        treated=treated,
        holdout=holdout,
        value=value,
        low=low,
        high=high,
        status=status,
    )


# -- segments ------------------------------------------------------------------------------


class SegmentEffect(BaseModel):
    """The primary outcome's lift and the guardrails within one segment."""

    model_config = ConfigDict(frozen=True)

    segment: str  # what segments were cut by, e.g. "plan_tier"
    value: str
    subjects: int
    share: float  # of all subjects in the experiment
    lift: Lift | None  # None when an arm is empty in this segment
    guardrails: list[GuardrailCheck]


class Finding(BaseModel):
    """A warning the report raises, with a stable code."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    details: dict[str, object] = {}


def segment_findings(
    overall: Lift | None, segments: list[SegmentEffect], *, polarity: int = 1
) -> list[Finding]:
    """Warn where a segment is harmed while the total improves (a total can hide a small loss).

    A segment is harmed when one of its guardrails is breached, or when its primary lift's
    whole interval lies on the harmful side (`polarity` 1: higher is better, -1: lower).
    """
    if overall is None or polarity * overall.difference <= 0:
        return []
    found = []
    for seg in segments:
        reasons = [f"{g.metric} {g.rule} breached" for g in seg.guardrails if g.status == "breach"]
        if seg.lift is not None and (
            polarity * seg.lift.high < 0 if polarity > 0 else polarity * seg.lift.low < 0
        ):
            reasons.append("primary outcome significantly worse")
        if reasons:
            found.append(
                Finding(
                    code="segment_harmed",
                    message=(
                        f"{seg.segment}={seg.value} ({seg.subjects} subjects, "
                        f"{seg.share:.0%} of the total) is harmed while the total improves: "
                        + "; ".join(reasons)
                    ),
                    details={
                        "segment": seg.segment,
                        "value": seg.value,
                        "subjects": seg.subjects,
                        "share": seg.share,
                        "reasons": reasons,
                    },
                )
            )
    return found
