"""`copilot approvals ...` against runs that propose actions, on the embedded defaults."""

from __future__ import annotations

import json
import re
from pathlib import Path

from copilot.cli.output import until
from tests.support.cli import FLOWS as RUN_FLOWS
from tests.support.cli import cli, prepared

POLICY = """
version: cli-test@1
rules:
  - id: low-internal
    when: {risk_at_most: low, reaches_customer: false}
    then: {action: auto_approve}
"""


def pending(home: Path, env: dict[str, str]) -> list[dict[str, object]]:
    return json.loads(cli(home, "approvals", "list", "--json", **env).stdout)


def test_a_reviewer_works_the_queue_from_the_cli(tmp_path: Path) -> None:
    home = prepared(tmp_path)
    (home / "policy.yaml").write_text(POLICY)
    env = {**RUN_FLOWS, "COPILOT_POLICY_PATH": str(home / "policy.yaml")}
    for subject in ("acct-1", "acct-2", "acct-3"):
        run = cli(home, "run", "proposing", "--subject", subject, "--inline", **env)
        assert run.stdout.split()[2] == "waiting", run.stdout + run.stderr
    queue = pending(home, env)
    assert [q["kind"] for q in queue] == ["email_customer"] * 3
    first, second, third = (str(q["id"]) for q in queue)
    piped = cli(home, "approvals", "list", COLUMNS="", **env).stdout  # a pipe, no width given
    for q in queue:
        row = next(line for line in piped.splitlines() if str(q["id"]) in line)
        assert str(q["run_id"]) in row and "email_customer v1" in row and "pending" in row, piped
        assert re.search(r"│ in (\d+h \d\dm|\d+d \d+h|\d+m) +│", row), row
        assert "…" not in row
    shown = json.loads(cli(home, "approvals", "show", first, "--json", **env).stdout)
    assert shown["payload"]["to"] in {"acct-1", "acct-2", "acct-3"} and shown["explanation"]["why"]
    ok = cli(home, "approvals", "approve", first, "--as", "maya", "--json", **env)
    assert json.loads(ok.stdout)["status"] == "approved", ok.stderr
    no = cli(home, "approvals", "reject", second, "--as", "maya", "--reason", "too soon", **env)
    assert no.returncode == 0, no.stderr
    edited = cli(
        home,
        "approvals",
        "edit",
        third,
        "--as",
        "li",
        "--set",
        "subject=Quick call?",
        "--json",
        **env,
    )
    assert (
        json.loads(edited.stdout)["status"] == "approved"
        and json.loads(edited.stdout)["version"] == 2
    )
    again = cli(home, "approvals", "approve", first, "--as", "li", **env)
    assert again.returncode == 1 and "approval.conflict" in again.stderr
    bad = cli(home, "approvals", "edit", third, "--as", "li", "--set", "attachments=-1", **env)
    assert bad.returncode != 0
    assert pending(home, env) == []
    figures = json.loads(cli(home, "approvals", "shadow", "--json", **env).stdout)
    assert figures == []  # this policy has no shadow rules
    # The decisions queued the runs; an inline pass (or a worker) finishes them.
    runs = json.loads(cli(home, "runs", "list", "--state", "queued", "--json", **env).stdout)
    assert len(runs) == 3
    assert cli(home, "audit", "verify").stdout.startswith("OK ")


def test_subject_preferences_from_the_cli_stop_runs(tmp_path: Path) -> None:
    home = prepared(tmp_path)
    out = cli(home, "subjects", "prefs", "acct-1", "--opt-out", "five_steps", "--json", **RUN_FLOWS)
    assert json.loads(out.stdout)["opt_out_workflows"] == ["five_steps"], out.stderr
    skipped = cli(home, "run", "five_steps", "--subject", "acct-1", "--json", **RUN_FLOWS)
    doc = json.loads(skipped.stdout)
    assert (doc["state"], doc["reasons"]) == ("skipped", ["opted_out:five_steps"])
    cli(home, "subjects", "prefs", "acct-1", "--opt-in", "five_steps", **RUN_FLOWS)
    snoozed = cli(
        home, "subjects", "prefs", "acct-1", "--snooze-until", "2999-01-01T00:00:00Z", **RUN_FLOWS
    )
    assert "snooze_until=" in snoozed.stdout
    again = json.loads(
        cli(home, "run", "five_steps", "--subject", "acct-1", "--json", **RUN_FLOWS).stdout
    )
    assert again["reasons"][0].startswith("snoozed_until:2999-01-01")
    bad = cli(home, "subjects", "prefs", "acct-1", "--snooze-until", "tomorrow", **RUN_FLOWS)
    assert bad.returncode == 2 and "ISO time" in bad.stderr


def test_the_time_left_reads_as_people_say_it() -> None:
    assert until(1000 + 45, 1000) == "in 45s"
    assert until(1000 + 12 * 60 + 5, 1000) == "in 12m"
    assert until(1000 + 3 * 3600 + 5 * 60, 1000) == "in 3h 05m"
    assert until(1000, 1000 + 2 * 86400 + 4 * 3600) == "2d 4h ago"
