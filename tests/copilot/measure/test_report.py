"""The evaluation report over a seeded database, and the report's lift over 200 seeded trials."""

from __future__ import annotations

import base64
import json
import math
import random
import re
import statistics
import struct
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from copilot.db.tables import runs
from copilot.measure.experiments import arm, lift
from copilot.measure.report.build import Exposure, build_report, converted_subjects, subject_lift
from copilot.measure.report.html import render_html
from tests.support.measure import DAY, NOW, OUTCOMES, T0, seed


def test_the_report_measures_a_seeded_database(engine: Engine) -> None:
    seeded = seed(engine)
    report = build_report(engine, tenant="acme", outcomes=OUTCOMES, outcome="replied",
                          segment="plan_tier", window_days=14, clock=lambda: NOW)  # fmt: skip
    # The lift is the one computed from the seed's own counts (pre-exposure and late replies
    # are not effects, so they are not counted)
    (ht, hx), (tt, tx) = seeded.replied[True], seeded.replied[False]
    assert report.lift is not None and report.lift.lift == lift(arm(tx, tt), arm(hx, ht))
    assert (report.treated, report.holdout) == (tt, ht)
    assert report.lift.improved and report.lift.lift.significant
    # Reviewer feedback per workflow, segment and level adds up to what the reviewers did
    for tier, counts in seeded.decisions.items():
        groups = [g for g in report.groups if g.segment == tier]
        assert {k: sum(getattr(g, k) for g in groups) for k in counts} == counts
        assert {g.level for g in groups} <= {"full", "partial"}
    decided = [g for g in report.groups if g.decided]
    assert all(g.median_seconds_to_decision == 120 for g in decided)
    assert all(
        math.isclose((g.acceptance_rate or 0) + (g.edit_rate or 0) + (g.rejection_rate or 0), 1)
        for g in decided
    )
    edited = [g for g in decided if g.edited]
    assert edited and all(0 < (g.mean_edit_distance or 0) < 0.2 for g in edited)
    reasons: dict[str, int] = {}
    for g in report.groups:
        for k, v in g.rejection_reasons.items():
            reasons[k] = reasons.get(k, 0) + v
    assert reasons == seeded.reasons
    # The shadow rule would have auto-approved every email: it agrees with each acceptance
    for g in decided:
        assert (g.shadow_decided, g.shadow_agreed) == (g.decided, g.approved + g.edited)
    # A guardrail breach on the small enterprise segment is flagged while the total improves
    breached = [c for s in report.segments for c in s.guardrails if c.status == "breach"]
    assert [(c.metric, c.scope) for c in breached] == [("rejection_rate", "plan_tier=enterprise")]
    overall = {(c.metric, c.rule): c.status for c in report.guardrails}
    assert overall[("rejection_rate", "ceiling")] == "ok"
    harmed = [w for w in report.warnings if w.code == "segment_harmed"]
    assert [w.details["value"] for w in harmed] == ["enterprise"]
    assert next(s for s in report.segments if s.value == "enterprise").share < 0.1
    # Every figure is data in the JSON, and a picture on the page
    doc = json.loads(report.model_dump_json())
    names = [f["name"] for f in doc["figures"]]
    assert names == ["lift", "outcome_rates", "guardrails", "reviewer_feedback", "time_to_decision"]
    lift_fig = doc["figures"][0]["series"][0]["points"]
    assert lift_fig[0]["value"] == report.lift.lift.difference
    assert [p["label"] for p in lift_fig[1:]] == [
        f"plan_tier={t}" for t in sorted(seeded.decisions)
    ]
    page = render_html(report)
    images = re.findall(
        r'data-figure="(\w+)"><img alt="[^"]*" src="data:image/png;base64,([^"]+)"', page
    )
    assert [n for n, _ in images] == names
    for _, data in images:
        png = base64.b64decode(data)
        width, height = struct.unpack(">II", png[16:24])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and width >= 800 and height >= 200
    assert 'data-warning="segment_harmed"' in page


def test_without_a_holdout_the_report_says_there_is_nothing_to_compare(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(runs), [{
            "id": uuid.uuid4().hex, "tenant": "acme", "workflow": "w", "version": "1",
            "subject_id": f"s{i}", "state": "completed", "inputs": "{}", "triggered_by": "app",
            "created_at": T0, "updated_at": T0, "attempts": 1, "step_index": 1, "level": "thin",
        } for i in range(5)])  # fmt: skip
    report = build_report(engine, tenant="acme", outcomes=OUTCOMES, outcome="replied")
    assert report.lift is None and report.holdout == 0
    assert [w.code for w in report.warnings] == ["no_comparison"]
    assert [(g.workflow, g.level, g.runs) for g in report.groups] == [("w", "thin", 5)]
    assert "no_comparison" in render_html(report)


def simulate(
    seed: int, truth: float, n: int = 4000
) -> tuple[list[Exposure], dict[str, list[float]]]:
    """Subjects exposed over 10 days, 20% held out; outcomes at random times, some before exposure."""
    rng = random.Random(seed)
    exposures, seen = [], {}
    for i in range(n):
        held = rng.random() < 0.2
        at = T0 + rng.random() * 10 * DAY
        exposures.append(Exposure(subject_id=str(i), exposed_at=at, holdout=held, segment="-"))
        p = 0.10 + (0 if held else truth)
        times = [at + rng.random() * 7 * DAY] if rng.random() < p else []
        if rng.random() < 0.05:
            times.append(at - rng.random() * DAY)  # before exposure: never an effect
        seen[str(i)] = times
    return exposures, seen


def test_the_reports_interval_covers_a_known_lift_in_200_seeded_trials() -> None:
    truth = 0.03
    results = []
    for trial in range(200):
        exposures, seen = simulate(trial, truth)
        found = subject_lift(exposures, converted_subjects(exposures, seen, 7 * DAY))
        assert found is not None
        results.append(found)
    covered = sum(r.low <= truth <= r.high for r in results) / 200
    estimates = [r.difference for r in results]
    se = statistics.stdev(estimates) / math.sqrt(200)
    print(f"coverage {covered:.1%}, mean estimate {statistics.mean(estimates):.4f} ± {se:.4f}")
    assert covered >= 0.90  # nominal 95%; 90% is 3.2 binomial sd (3.1 trials) below
    assert abs(statistics.mean(estimates) - truth) < 3 * se  # unbiased


def test_with_zero_lift_the_report_flags_about_alpha_of_trials() -> None:
    # 1000 trials: the false-positive rate's binomial sd is √(0.05·0.95/1000) = 0.69 points;
    # ±2.1 points is ±3 sd.
    flagged = 0
    for trial in range(1000):
        exposures, seen = simulate(10_000 + trial, 0.0, n=1500)
        found = subject_lift(exposures, converted_subjects(exposures, seen, 7 * DAY))
        assert found is not None
        flagged += found.significant
    print(f"false-positive rate {flagged / 1000:.1%}")
    assert abs(flagged / 1000 - 0.05) < 0.021


@pytest.mark.parametrize("method", ["wald", "bootstrap"])
def test_the_interval_method_is_the_callers_choice(engine: Engine, method: Any) -> None:
    seed(engine, subjects=400)
    report = build_report(engine, tenant="acme", outcomes=OUTCOMES, outcome="replied",
                          method=method, clock=lambda: NOW)  # fmt: skip
    assert report.lift is not None and report.lift.lift.method == method
