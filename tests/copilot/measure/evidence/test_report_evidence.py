"""The report carries each holdout's evidence: SRM as a blocking warning, the anytime interval, CUPED."""

from __future__ import annotations

from sqlalchemy import Engine

from copilot.measure.report.build import build_report
from copilot.measure.report.html import render_html
from tests.support.measure import NOW, OUTCOMES, seed


def test_a_holdout_of_the_configured_size_passes_and_gets_both_intervals(engine: Engine) -> None:
    seed(engine, subjects=600)  # 20% held out, treated reply more; some replied before their run
    report = build_report(engine, tenant="acme", outcomes=OUTCOMES, outcome="replied",
                          window_days=14, allocations={"next_actions": 0.2}, horizon=500,
                          clock=lambda: NOW)  # fmt: skip
    [e] = report.evidence
    assert (e.kind, e.name, e.treated + e.holdout) == ("workflow", "next_actions", report.subjects)
    assert not e.srm.mismatch and e.srm.causes == []
    assert "sample_ratio_mismatch" not in {w.code for w in report.warnings}
    # The anytime-valid interval is the wider one, around the same estimate
    assert e.lift is not None and e.anytime is not None
    assert e.anytime.difference == e.lift.difference
    assert e.anytime.low < e.lift.low and e.anytime.high > e.lift.high
    # CUPED on the outcome's own pre-period (replies before the run) applied or said why not
    assert e.cuped is not None and e.cuped.covariate == "pre:replied"
    assert e.cuped.applied or e.cuped.reason in ("constant_covariate", "no_covariate")
    assert "the fixed-horizon interval" in e.trust  # 500 planned, all in


def test_a_wrong_allocation_is_a_blocking_sample_ratio_mismatch_on_the_report_and_page(
    engine: Engine,
) -> None:
    seed(engine, subjects=600)
    report = build_report(engine, tenant="acme", outcomes=OUTCOMES, outcome="replied",
                          allocations={"next_actions": 0.5}, clock=lambda: NOW)  # fmt: skip
    [e] = report.evidence
    assert e.srm.mismatch and e.srm.p_value < 0.001 and e.trust.startswith("neither")
    first = report.warnings[0]
    assert first.code == "sample_ratio_mismatch" and first.details["blocking"] is True
    assert first.message.startswith("BLOCKING") and "Likely causes" in first.message
    page = render_html(report)
    assert 'data-warning="sample_ratio_mismatch"' in page
