"""The weekly review page in Chromium: its plots decode, and every number on it is the stored JSON's.

The screenshot is saved to docs/screenshots/review.png.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audit import Actor
from copilot.measure.evidence.holdouts import WorkflowHoldouts
from copilot.measure.evidence.rules import Paused
from copilot.measure.review.build import build_review
from copilot.measure.review.store import save
from copilot.measure.review.weeks import WEEK
from copilot.measure.rollout import Guard
from tests.copilot.web.test_pages import shot, sign_in
from tests.support.live import LiveServer
from tests.support.review import NOW, OUTCOMES, seed_placements, seed_weeks
from tests.support.runtime import build_runtime
from tests.support.services import pg_sqlalchemy_url
from tests.support.site import Site


@pytest.fixture(scope="module")
def site(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A real `copilot api` on a fresh PostgreSQL schema with six seeded weeks and an auditor's key
    (lighter than the page tests' site: no built-in runs, which the review does not need)."""
    import psycopg

    home: Path = tmp_path_factory.mktemp("review")
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = pg_sqlalchemy_url(schema)
    env = {"COPILOT_DATABASE_URL": url, "COPILOT_HOME": str(home),
           "COPILOT_BROKER_URL": f"sqla+sqlite:///{home / 'broker.db'}"}  # fmt: skip
    rt = build_runtime(url, home, woken=[], with_flows=False)
    server: LiveServer | None = None
    try:
        seed_weeks(rt.engine, per_week=80)
        seed_placements(rt.engine, per_week=40)
        tokens = {name: rt.keys.create(tenant="acme", roles=[role], name=name,
                                       actor=Actor.system("test"))[1]
                  for name, role in (("ada-auditor", "auditor"), ("ana-reviewer", "reviewer"))}  # fmt: skip
        server = LiveServer(env, home / "api.log").start()
        yield Site(server.url, rt, tokens)
    finally:
        if server is not None:
            server.stop()
        rt.close()
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def same(cell: str | None, value: float | int | None) -> bool:
    return (
        value is not None
        and cell is not None
        and math.isclose(float(cell), value, rel_tol=0, abs_tol=0)
    )


def test_the_weekly_review_page_renders_its_plots_and_the_json_s_numbers(
    chromium: Any, site: Site
) -> None:
    rt = site.rt
    src = [WorkflowHoldouts({"next_actions": 0.2})]
    old = build_review(rt.engine, tenant="acme", outcomes=OUTCOMES, outcome="replied",
                       sources=src, now=NOW - WEEK)  # fmt: skip
    review = build_review(rt.engine, tenant="acme", outcomes=OUTCOMES, outcome="replied",
                          sources=src, signals=["plan_tier"], now=NOW,
                          paused=[Paused(kind="workflow", target="next_actions"),
                                  Paused(kind="placement", target="t.home"),
                                  Paused(kind="policy", target="t.home")])  # fmt: skip
    save(rt.engine, rt.audit, old)
    save(rt.engine, rt.audit, review)

    ada = sign_in(chromium, site, "ada-auditor")
    ada.goto(site.url + "/ui/review")
    assert ada.get_by_test_id("headline").inner_text() == review.headline
    banners = ada.locator('[data-banner="paused"]')
    assert [banners.nth(i).get_attribute("data-paused") for i in range(banners.count())] == [
        f"{p.kind}:{p.target}" for p in review.paused]  # fmt: skip
    assert [p.kind for p in review.paused] == ["placement", "policy", "workflow"]
    figures = ada.locator("figure img")
    assert figures.count() >= 4  # lift, guardrail, reviewers, levels, retention
    assert all(figures.nth(i).evaluate("img => img.naturalWidth > 0")
               for i in range(figures.count()))  # fmt: skip
    # Every trend number on the page is the JSON's value, exactly
    [trend] = review.trends
    for p in trend.points:
        cells = ada.locator(f'tr[data-trend="next_actions"][data-week="{p.week}"] td[data-value]')
        values = [cells.nth(i).get_attribute("data-value") for i in range(cells.count())]
        expected = [p.treated, p.holdout, p.difference, p.low, p.high, p.anytime_low,
                    p.anytime_high, p.srm_p]  # fmt: skip
        assert len(values) == len(expected)
        assert all(same(v, e) for v, e in zip(values, expected, strict=True)), (values, expected)
    for o in review.ops:
        row = ada.locator(f'tr[data-ops="{o.week}"] td[data-value]')
        got = [row.nth(i).get_attribute("data-value") for i in range(row.count())]
        want = [v for v in (o.approved, o.edited, o.rejected, o.acceptance_rate, o.edit_rate,
                            o.rejection_rate, o.deliveries_failed) if v is not None]  # fmt: skip
        assert all(same(v, e) for v, e in zip(got, want, strict=True)) and len(got) == len(want)
    for c in review.cohorts:
        size = ada.locator(f'tr[data-cohort="{c.name}:{c.week}:{c.arm}"] td[data-value]')
        assert same(size.first.get_attribute("data-value"), c.size)
    # The placement funnel per placement and segment: every number is the JSON's
    assert len(review.placement_funnel) == 3
    for f in review.placement_funnel:
        row = ada.locator(f'tr[data-placement-funnel="{f.placement}:{f.segment or "all"}"] '
                          "td[data-value]")  # fmt: skip
        got = [row.nth(i).get_attribute("data-value") for i in range(row.count())]
        want = [f.subjects, f.treated, f.holdout, f.decisions, f.shown, f.impressions,
                f.accepts, f.completes, f.impression_rate, f.accept_rate, f.complete_rate]  # fmt: skip
        assert len(got) == len(want) and all(same(v, e) for v, e in zip(got, want, strict=True))
    verdicts = {i.name: i.verdict for i in review.prune}
    for key, verdict in verdicts.items():
        assert verdict in ada.locator(f'tr[data-prune$=":{key}"]').first.inner_text()
    shot(ada, "review")
    # Old reviews stay readable, by their week
    ada.get_by_test_id("weeks").get_by_role("link", name=old.week).click()
    assert ada.get_by_test_id("headline").inner_text() == old.headline
    missing = ada.goto(site.url + "/ui/review?week=1999-01-04")
    assert missing is not None and missing.status == 404
    assert "No review is stored" in ada.get_by_test_id("no-review").inner_text()


def test_a_paused_workflow_is_a_banner_in_the_inbox_and_the_report(
    chromium: Any, site: Site
) -> None:
    reason = {"rule": {"outcome": "complained", "max_increase": 0.005, "alpha": 0.05},
              "increase": 0.02, "low": 0.01, "high": 0.03}  # fmt: skip
    assert Guard(site.rt.engine, site.rt.audit, site.rt.gate).pause(
        "acme", "workflow", "next_actions", reason) is not None  # fmt: skip
    ana = sign_in(chromium, site, "ana-reviewer")
    assert "next_actions" in ana.get_by_test_id("paused").inner_text()
    ana.goto(site.url + "/ui/report")
    assert ana.locator('[data-warning="rollout_paused"]').count() == 1
