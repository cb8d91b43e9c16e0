"""The report's learning section on SQLite and PostgreSQL: versions, evidence with
intervals, shadow agreement, live vs holdout, in the JSON, the text and the page."""

from __future__ import annotations

import math
import time
from pathlib import Path

from fastapi.testclient import TestClient

from copilot.cli.measure_cmd import _print as print_report
from copilot.cli.measure_cmd import out
from copilot.learn.rewards import Feedback
from copilot.measure.report.build import build_report
from copilot.measure.report.html import render_body
from copilot.ranking import LoggedDecision, PolicyInput
from copilot.server import create_app
from tests.copilot.web.test_delivery_page import sign_in
from tests.support.api import Api, make_keys
from tests.support.learn_world import SURFACE, learn_file, seed
from tests.support.runtime import build_runtime
from tests.support.simulator import CANDIDATES, candidates


def _arm(version: str, holdout: bool, approved: int, n: int) -> tuple[list[LoggedDecision], list[Feedback]]:
    at = time.time() - 3 * 86400
    tag = "h" if holdout else "l"
    decisions = [LoggedDecision(
        decision_id=f"{tag}{i}", tenant="acme", surface=SURFACE, subject_id=f"{tag}s{i}",
        decided_at=at + i, features={"segment": "majority"}, candidates=list(CANDIDATES),
        chosen="tour", propensity=1.0, policy="rules" if holdout else "learned",
        version="1" if holdout else version, holdout=holdout, segment="majority",
    ) for i in range(n)]  # fmt: skip
    feedback = [Feedback(decision_id=d.decision_id, source="reviewer", at=d.decided_at + 60,
                         event="approve" if i < approved else "reject",
                         reason=None if i < approved else "not relevant")
                for i, d in enumerate(decisions)]  # fmt: skip
    return decisions, feedback


def test_the_report_shows_versions_evidence_shadow_and_live_vs_holdout(
    db_url: str, tmp_path: Path
) -> None:
    rt = build_runtime(db_url, tmp_path, woken=[], learn_path=learn_file(tmp_path))
    assert build_report(rt.engine, tenant="acme", outcomes=rt.registry.outcomes).learning == []
    seed(rt.learning.store, "acme", 1200)
    version = rt.learning.train("acme", SURFACE).version
    for i in range(40):  # the shadow scores beside the rules
        rt.learning.decide("acme", PolicyInput(surface=SURFACE, subject_id=f"n{i}",
                           features={"segment": "majority", "usage": float(i % 5), "seats": 3.0, "mobile": False},
                           eligible=candidates()), decision_id=f"n{i:05d}", draw=(i % 10) / 10)  # fmt: skip
    request = rt.learning.request_promotion("acme", SURFACE, version, requested_by="alice")

    (before,) = build_report(rt.engine, tenant="acme", outcomes=rt.registry.outcomes,
                             learning=rt.learning_provider).learning  # fmt: skip
    assert before.serving == "rules" and [v.state for v in before.versions] == ["shadow"]
    assert before.shadow is not None and before.shadow.version == version
    assert before.shadow.scored == 40 and 0 <= before.shadow.agreed <= 40
    e = before.evidence
    assert e is not None and e.evidence_hash == request.payload["evidence_hash"]
    stored = rt.learning.store.evidence("acme", e.evidence_hash)
    assert set(e.candidate) == {"ips", "snips", "dr"} and e.verdict == "ok"
    for name, x in e.candidate.items():
        assert x.value == stored["candidate"]["estimates"][name]["value"]
        assert x.low <= x.value <= x.high
    assert e.difference.low == stored["difference"]["low"] > 0

    for admin in ("carol", "dave"):
        rt.learning.promotions.decide(request.id, admin=admin, roles={"admin"}, approve=True)
    for decisions, feedback in (_arm(version, False, 80, 100), _arm(version, True, 40, 100)):
        rt.learning.store.log_decisions(decisions)
        rt.learning.store.add_feedback("acme", feedback)
    report = build_report(rt.engine, tenant="acme", outcomes=rt.registry.outcomes,
                          learning=rt.learning_provider)  # fmt: skip
    (after,) = report.learning
    assert after.serving == f"learned@{version}" and [v.state for v in after.versions] == ["live"]
    lh = after.live_vs_holdout
    assert (lh.live.n, lh.holdout.n) == (100, 100)
    assert math.isclose(lh.live.mean or 0, 0.8) and math.isclose(lh.holdout.mean or 0, 0.4)
    se = math.sqrt(0.8 * 0.2 / 99 + 0.4 * 0.6 / 99)  # Welch, by hand
    assert lh.difference is not None and math.isclose(lh.difference.value, 0.4)
    assert math.isclose(lh.difference.low, 0.4 - 1.959963984540054 * se)
    assert '"learning"' in report.model_dump_json() and report.model_dump()["learning"][0]["surface"] == SURFACE
    page = render_body(report)
    assert f"Learned policy: {SURFACE}" in page and f"serving learned@{version}" in page
    with out.capture() as printed:  # what `copilot report` prints
        print_report(report)
    text = printed.get()
    assert f"{SURFACE}: serving learned@{version}" in text
    assert f"live learned@{version} n=100 vs holdout n=100: +0.4000" in text
    assert "OPE candidate dr" in text and f"version {version} live" in text
    rt.close()
    if db_url.startswith("sqlite"):  # the page draws what was read: once is enough
        _the_page_shows_it(db_url, tmp_path, version)


def _the_page_shows_it(db_url: str, tmp_path: Path, version: str) -> None:
    """The web report page draws the same section for a signed-in reader of the tenant."""
    rt = build_runtime(db_url, tmp_path, woken=[], learn_path=learn_file(tmp_path))
    with TestClient(create_app(rt.settings, runtime=rt), follow_redirects=False) as client:
        web = Api(rt=rt, client=client, tokens=make_keys(rt))
        sign_in(web, web.tokens["acme", "auditor"])
        shown = client.get("/ui/report").text
        assert f"Learned policy: {SURFACE}" in shown and f"serving learned@{version}" in shown
        sign_in(web, web.tokens["globex", "auditor"])
        theirs = client.get("/ui/report").text  # the same surface, globex's own (empty) side
        assert "onboarding: serving rules" in theirs and version not in theirs
    rt.close()
