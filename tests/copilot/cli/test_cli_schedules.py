"""`copilot schedules list|tick` as a user runs them, with declarations in code and YAML."""

from __future__ import annotations

import json
from pathlib import Path

from audit import SqlAuditStore
from audit.db import create_engine
from copilot.db.engines import upgrade
from tests.support import triggered
from tests.support.cli import cli

YAML = """
schedules:
  - name: daily_pulse
    workflow: pulse
    every: P1D
    subjects: {having: [pulse_usage]}
events:
  - name: pulse_failed
    workflow: pulse
    when: 'pulse_billing becomes "failed"'
    debounce: PT6H
"""
MODULES = {"COPILOT_WORKFLOW_MODULES": "tests.support.triggered"}


def test_schedules_list_shows_code_and_yaml_declarations_with_the_next_period(
    tmp_path: Path,
) -> None:
    (tmp_path / "triggers.yaml").write_text(YAML)
    env = {**MODULES, "COPILOT_TRIGGERS_PATH": str(tmp_path / "triggers.yaml")}
    result = cli(tmp_path, "schedules", "list", "--json", **env)
    assert result.returncode == 0, result.stderr
    docs = {d["name"]: d for d in json.loads(result.stdout)}
    assert {"weekly_account_health", "next_actions_at_risk", "daily_pulse", "pulse_failed"} <= set(
        docs
    )
    daily = docs["daily_pulse"]
    assert daily["kind"] == "schedule" and daily["next_period_start"].endswith("T00:00:00Z")
    assert docs["pulse_failed"]["when"] == ['pulse_billing becomes "failed"']
    table = cli(tmp_path, "schedules", "list", **env)
    assert table.returncode == 0 and "daily_pulse" in table.stdout and "debounce 6h" in table.stdout


def test_a_wrong_declaration_file_exits_2_with_a_stable_code(tmp_path: Path) -> None:
    (tmp_path / "triggers.yaml").write_text(YAML.replace("pulse_billing", "pulse_bill"))
    env = {**MODULES, "COPILOT_TRIGGERS_PATH": str(tmp_path / "triggers.yaml")}
    result = cli(tmp_path, "schedules", "list", **env)
    assert result.returncode == 2
    assert (
        "error [trigger.invalid]" in result.stderr
        and "'pulse_bill' is not declared" in result.stderr
    )
    missing = cli(tmp_path, "schedules", "list", COPILOT_TRIGGERS_PATH=str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "COPILOT_TRIGGERS_PATH" in missing.stderr


def test_schedules_tick_starts_the_due_runs_once(tmp_path: Path) -> None:
    (tmp_path / "triggers.yaml").write_text(YAML)
    env = {**MODULES, "COPILOT_TRIGGERS_PATH": str(tmp_path / "triggers.yaml")}
    engine = create_engine(f"sqlite:///{tmp_path / 'copilot.db'}")
    upgrade(engine)
    triggered.SIGNALS.ingest(engine, SqlAuditStore(engine), tenant="default", subject_id="a-1",
                             values={"pulse_usage": 1.0}, source="crm")  # fmt: skip
    engine.dispose()
    first = cli(tmp_path, "schedules", "tick", "--json", **env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"due": {"daily_pulse": 1}, "batches": 1}
    again = cli(tmp_path, "schedules", "tick", **env)
    assert again.returncode == 0 and again.stdout.strip() == "due nothing; 0 batches run"
