"""`copilot report` carries the weekly review's cohorts and funnels, computed by the same code:
weekly cohorts by first exposure with retention curves (treated vs holdout), the workflows'
proposed → accepted → completed funnel and the placement funnel per segment; in its JSON, its
text and its page. On SQLite and PostgreSQL (the `engine` fixture)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from sqlalchemy import Engine

from audit.db import create_engine
from copilot.db.engines import upgrade
from copilot.measure.evidence.funnel import PlacementFunnel
from copilot.measure.evidence.holdouts import WorkflowHoldouts
from copilot.measure.report.build import build_report
from copilot.measure.report.html import render_body
from copilot.measure.review.build import build_review
from tests.support.cli import cli
from tests.support.review import NOW, OUTCOMES, PLACEMENT, seed_placements, seed_weeks


def test_the_report_has_the_review_s_cohorts_and_funnels(engine: Engine) -> None:
    seed_weeks(engine, per_week=60)
    seed_placements(engine, per_week=40)
    src = [WorkflowHoldouts({"next_actions": 0.2})]
    review = build_review(engine, tenant="acme", outcomes=OUTCOMES, outcome="replied",
                          sources=src, now=NOW)  # fmt: skip
    report = build_report(engine, tenant="acme", outcomes=OUTCOMES, outcome="replied",
                          allocations={"next_actions": 0.2}, clock=lambda: NOW)  # fmt: skip
    # Weekly cohorts by first exposure, treated and holdout, with their retention curves
    assert report.retention_outcome == "active"
    assert report.cohorts == review.cohorts and len(report.cohorts) == 12
    assert {c.arm for c in report.cohorts} == {"treated", "holdout"}
    assert all(0 <= v <= 1 for c in report.cohorts for v in c.retention)
    # The workflows' funnel and the placement funnel per segment: the review's numbers
    assert report.funnel == review.funnel and report.funnel
    rows = [PlacementFunnel.model_validate(r.model_dump(exclude={"lift"}))
            for r in report.placements]  # fmt: skip
    assert rows == review.placement_funnel
    assert {(r.placement, r.segment) for r in rows} == {
        (PLACEMENT, s) for s in (None, "team", "trial")
    }
    # In the JSON
    doc = json.loads(report.model_dump_json())
    assert doc["cohorts"][0]["retention"] == report.cohorts[0].retention
    assert doc["funnel"][0]["proposed"] == report.funnel[0].proposed
    assert doc["placements"][0]["impressions"] == report.placements[0].impressions
    # And on the page (/ui/report renders this body)
    page = render_body(report)
    for c in report.cohorts:
        assert (
            f'<tr data-cohort="{c.name}:{c.week}:{c.arm}"><td>{c.name}</td><td>{c.week}</td>'
            f"<td>{c.arm}</td><td>{c.size}</td><td>{c.curve}</td>" in page
        )
    for f in report.funnel:
        assert (
            f'<tr data-funnel="{f.segment}"><td>{f.segment}</td><td>{f.proposed}</td>'
            f"<td>{f.accepted}</td><td>{f.completed}</td></tr>"
        ) in page
    for r in report.placements:
        assert f'<tr data-placement="{r.placement}:{r.segment or "all"}">' in page


def test_no_retention_outcome_no_cohorts(engine: Engine) -> None:
    seed_weeks(engine, per_week=20)
    report = build_report(engine, tenant="acme", outcomes=OUTCOMES, outcome="replied",
                          retention="replied", allocations={"next_actions": 0.2},
                          clock=lambda: NOW)  # fmt: skip
    assert report.retention_outcome == "replied" and report.cohorts
    bare = build_report(engine, tenant="acme", outcomes=OUTCOMES, outcome="replied",
                        clock=lambda: NOW)  # fmt: skip
    assert bare.cohorts == [] and bare.retention_outcome == "active"  # no comparison to cut


def test_copilot_report_prints_the_cohorts_and_the_funnel(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/copilot.db")
    upgrade(engine)
    seed_weeks(engine, tenant="default", per_week=30, now=time.time())
    outcomes = tmp_path / "outcomes.yaml"
    outcomes.write_text(
        "outcomes:\n  - {name: replied, description: Replied to our message, polarity: good}\n"
        "  - {name: active, description: Used the product that week, polarity: good}\n"
    )
    env = {"COPILOT_HOLDOUTS": "next_actions=0.2", "COPILOT_OUTCOMES_PATH": str(outcomes),
           "COLUMNS": "200"}  # fmt: skip
    done = cli(tmp_path, "report", "--outcome", "replied", **env)
    assert done.returncode == 0, done.stderr
    assert "cohorts by first exposure (active)" in done.stdout
    assert "funnel per workflow / level" in done.stdout
    as_json = cli(tmp_path, "report", "--outcome", "replied", "--json", **env)
    doc = json.loads(as_json.stdout)
    assert doc["retention_outcome"] == "active" and len(doc["cohorts"]) == 12
    rows = re.findall(r"│ next_actions\s+│ (\d{4}-\d{2}-\d{2}) │", done.stdout)
    assert sorted(rows) == sorted(c["week"] for c in doc["cohorts"])  # one row per cohort
