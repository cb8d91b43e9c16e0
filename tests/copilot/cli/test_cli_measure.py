"""`copilot experiment plan` and `copilot report` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from audit.db import create_engine
from copilot.db.engines import upgrade
from copilot.measure.experiments import plan
from tests.support.cli import cli
from tests.support.measure import seed

OUTCOMES_YAML = """
outcomes:
  - {name: replied, description: Replied to our message, polarity: good}
  - {name: complained, description: Complained about a message, polarity: bad,
     guardrail: {max_increase: 0.01}}
"""


def test_experiment_plan_prints_subjects_and_days(tmp_path: Path) -> None:
    out = cli(tmp_path, "experiment", "plan", "--baseline", "0.1", "--mde", "0.02",
              "--holdout", "0.1", "--daily", "800", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(
        plan(0.1, 0.02, holdout=0.1, daily=800).model_dump_json()
    )
    text = cli(tmp_path, "experiment", "plan", "--baseline", "0.1", "--mde", "0.02")
    assert text.stdout.startswith("19173 treated + 2131 holdout = 21304 subjects to detect")
    bad = cli(tmp_path, "experiment", "plan", "--baseline", "0.1", "--mde", "0.95")
    assert bad.returncode == 2 and "experiment.invalid" in bad.stderr
    assert cli(tmp_path, "experiment", "plan", "--baseline", "0.1").returncode == 2


def test_report_writes_json_and_a_page_with_plots(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/copilot.db")
    upgrade(engine)
    seed(engine, subjects=600)
    engine.dispose()
    (tmp_path / "outcomes.yaml").write_text(OUTCOMES_YAML)
    env = {"COPILOT_OUTCOMES_PATH": str(tmp_path / "outcomes.yaml"), "COPILOT_TENANT": "acme"}
    page = tmp_path / "report.html"
    out = cli(tmp_path, "report", "--outcome", "replied", "--segment", "plan_tier",
              "--html", str(page), "--json", **env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["outcome"] == "replied" and doc["subjects"] == 600
    assert doc["lift"]["lift"]["treated"]["n"] + doc["lift"]["lift"]["holdout"]["n"] == 600
    assert {s["value"] for s in doc["segments"]} == {"enterprise", "pro", "free"}
    html = page.read_text()
    assert html.count("data:image/png;base64,") == len(doc["figures"]) == 5
    text = cli(tmp_path, "report", "--outcome", "replied", **env)
    assert text.returncode == 0 and "lift on replied:" in text.stdout
    assert "rejection_rate" in text.stdout and "next_actions" in text.stdout
    unknown = cli(tmp_path, "report", "--outcome", "nps", **env)
    assert unknown.returncode == 2 and "outcome.undeclared" in unknown.stderr
    assert "declared: complained, replied" in unknown.stderr
    bad_yaml = cli(tmp_path, "report", COPILOT_OUTCOMES_PATH=str(tmp_path / "missing.yaml"))
    assert bad_yaml.returncode == 2 and "COPILOT_OUTCOMES_PATH" in bad_yaml.stderr
