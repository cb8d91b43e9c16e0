"""Guardrail verdicts and the warning for a segment harmed while the total improves."""

from __future__ import annotations

from copilot.measure.experiments import arm, lift
from copilot.measure.guardrails import Guardrail, SegmentEffect, check_guardrail, segment_findings

COMPLAINTS = Guardrail(metric="complained_rate", max_increase=0.01, max_rate=0.05)


def test_a_guardrail_breaches_only_when_confidently_past_its_threshold() -> None:
    clear = check_guardrail(COMPLAINTS, arm(120, 1000), arm(10, 1000))
    assert [(c.rule, c.status) for c in clear] == [("increase", "breach"), ("ceiling", "breach")]
    unsure = check_guardrail(COMPLAINTS, arm(3, 40), arm(0, 10))  # 7.5% vs 0, tiny arms
    assert [(c.rule, c.status) for c in unsure] == [("increase", "watch"), ("ceiling", "watch")]
    fine = check_guardrail(COMPLAINTS, arm(10, 1000), arm(10, 1000))
    assert [c.status for c in fine] == ["ok", "ok"]
    assert check_guardrail(COMPLAINTS, arm(0, 0), arm(0, 0)) == []  # nothing to check
    ceiling_only = check_guardrail(COMPLAINTS, arm(120, 1000), None, scope="tier=free")
    assert [(c.rule, c.scope) for c in ceiling_only] == [("ceiling", "tier=free")]


def test_a_small_harmed_segment_is_flagged_while_the_total_improves() -> None:
    # Given a total that improves (replies 14% vs 10%) over three segments, the smallest of
    # which complains far more when treated
    overall = lift(arm(700, 5000), arm(500, 5000))
    segments = [
        SegmentEffect(segment="tier", value="free", subjects=6000, share=0.6,
                      lift=lift(arm(420, 3000), arm(300, 3000)),
                      guardrails=check_guardrail(COMPLAINTS, arm(30, 3000), arm(30, 3000))),
        SegmentEffect(segment="tier", value="pro", subjects=3400, share=0.34,
                      lift=lift(arm(250, 1700), arm(170, 1700)),
                      guardrails=check_guardrail(COMPLAINTS, arm(17, 1700), arm(17, 1700))),
        SegmentEffect(segment="tier", value="enterprise", subjects=600, share=0.06,
                      lift=lift(arm(30, 300), arm(30, 300)),
                      guardrails=check_guardrail(COMPLAINTS, arm(36, 300), arm(3, 300),
                                                 scope="tier=enterprise")),
    ]  # fmt: skip
    found = segment_findings(overall, segments, polarity=1)
    assert [(f.code, f.details["value"]) for f in found] == [("segment_harmed", "enterprise")]
    assert "6% of the total" in found[0].message and "complained_rate" in found[0].message
    # When the total does not improve there is no such warning (the total itself is the news)
    assert segment_findings(lift(arm(500, 5000), arm(700, 5000)), segments, polarity=1) == []


def test_a_segment_significantly_worse_on_the_primary_outcome_is_harmed_too() -> None:
    overall = lift(arm(300, 5000), arm(500, 5000))  # churn fell: good, polarity -1
    worse = SegmentEffect(segment="tier", value="smb", subjects=800, share=0.08,
                          lift=lift(arm(100, 400), arm(40, 400)), guardrails=[])  # fmt: skip
    found = segment_findings(overall, [worse], polarity=-1)
    assert found[0].details["reasons"] == ["primary outcome significantly worse"]
    assert segment_findings(overall, [worse], polarity=1) == []  # the total got worse
