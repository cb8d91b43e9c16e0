"""The review as beat and the CLI build it: stored, a signed notifier message with the headline
and the link, and `copilot review prune --json` printing the review's pruning list."""

from __future__ import annotations

import json
import time
from pathlib import Path

from audit.db import create_engine
from copilot.db.engines import upgrade
from copilot.measure.review.store import load
from copilot.worker import make_celery
from tests.support.cli import cli
from tests.support.receiver import SECRET, Receiver
from tests.support.review import seed_weeks
from tests.support.runtime import build_runtime


def test_beat_builds_each_tenant_s_review_and_the_notifier_hears_its_headline(
    tmp_path: Path,
) -> None:
    r = Receiver()
    try:
        rt = build_runtime(f"sqlite:///{tmp_path}/copilot.db", tmp_path, woken=[],
                           notify_url=r.url, notify_secret=SECRET.decode(),
                           holdouts="next_actions=0.2", public_url="https://copilot.example")  # fmt: skip
        seed_weeks(rt.engine, per_week=60, now=time.time())
        app = make_celery(rt.settings)
        assert app.conf.beat_schedule["copilot-review"]["task"] == "copilot.review"
        assert app.conf.beat_schedule["copilot-guard"]["task"] == "copilot.guard"
        review = rt.build_review("acme")
        assert load(rt.engine, "acme") == review
        [seen] = r.seen
        assert seen["valid"] and seen["body"] == {
            "event": "review.ready", "tenant": "acme", "week": review.week,
            "headline": review.headline,
            "link": f"https://copilot.example/ui/review?week={review.week}"}  # fmt: skip
        assert review.headline.startswith(f"Week of {review.week}: ")
    finally:
        r.server.shutdown()
        r.server.server_close()


def test_copilot_review_prune_json_prints_the_stored_review_s_prune_list(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/copilot.db")
    upgrade(engine)
    seed_weeks(engine, tenant="default", per_week=60, now=time.time())
    outcomes = tmp_path / "outcomes.yaml"
    outcomes.write_text(
        "outcomes:\n  - {name: replied, description: Replied to our message, polarity: good}\n"
    )
    env = {"COPILOT_HOLDOUTS": "next_actions=0.2", "COPILOT_OUTCOMES_PATH": str(outcomes)}
    done = cli(tmp_path, "review", "prune", "--json", **env)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    stored = load(engine, "default")  # the command stored the review it printed from
    assert stored is not None and printed == [i.model_dump(mode="json") for i in stored.prune]
    [wf] = [i for i in printed if i["kind"] == "workflow"]
    assert wf["name"] == "next_actions" and wf["verdict"] in ("keep", "prune", "undecided")
    assert len(wf["weeks"]) == 6
