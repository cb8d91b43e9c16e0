"""`copilot run|runs|worker|sweep` as separate processes on the embedded defaults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.cli import FLOWS, cli, prepared

ROOT = Path(__file__).resolve().parents[3]


def test_run_inline_show_and_list(tmp_path: Path) -> None:
    home = prepared(tmp_path)
    done = cli(home, "run", "five_steps", "--subject", "acct-1", "--inline", "--json", **FLOWS)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["state"] == "completed" and doc["result"]["n"] == 5 and doc["created"]
    shown = json.loads(cli(home, "runs", "show", doc["id"], "--json", **FLOWS).stdout)
    assert [s["name"] for s in shown["steps"]] == ["s1", "s2", "s3", "s4", "s5"]
    listed = json.loads(cli(home, "runs", "list", "--json", **FLOWS).stdout)
    assert [r["id"] for r in listed] == [doc["id"]]
    waiting = cli(home, "run", "pausing", "--subject", "acct-2", "--inline", **FLOWS)
    assert waiting.stdout.split()[2] == "waiting"
    again = cli(
        home,
        "run",
        "five_steps",
        "--subject",
        "acct-3",
        "--idempotency-key",
        "k",
        "--inline",
        **FLOWS,
    )
    same = cli(
        home,
        "run",
        "five_steps",
        "--subject",
        "acct-3",
        "--idempotency-key",
        "k",
        "--inline",
        **FLOWS,
    )
    assert again.stdout.split()[0] == same.stdout.split()[0]
    assert "existing run" in same.stdout
    # newest first; --workflow keeps one workflow's runs (any version)
    newest = json.loads(cli(home, "runs", "list", "--json", **FLOWS).stdout)
    assert [r["subject_id"] for r in newest] == ["acct-3", "acct-2", "acct-1"]
    only = json.loads(
        cli(home, "runs", "list", "--workflow", "five_steps", "--json", **FLOWS).stdout
    )
    assert [r["subject_id"] for r in only] == ["acct-3", "acct-1"]
    assert cli(home, "audit", "verify").stdout.startswith("OK ")


def test_bad_run_requests_are_usage_errors(tmp_path: Path) -> None:
    home = prepared(tmp_path)
    bad = cli(home, "run", "five_steps", "--subject", "a", "--input", "delay_ms=soon", **FLOWS)
    assert bad.returncode == 2 and "run.invalid_inputs" in bad.stderr
    unknown = cli(home, "run", "nope", "--subject", "a", **FLOWS)
    assert unknown.returncode == 2 and "no workflow nope" in unknown.stderr


def test_a_worker_process_on_the_sqlite_broker_runs_what_the_cli_triggers(tmp_path: Path) -> None:
    home = prepared(tmp_path)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")},
        "COPILOT_HOME": str(home),
        **FLOWS,
    }
    queued = cli(home, "run", "five_steps", "--subject", "early", **FLOWS)
    assert queued.stdout.split()[2] == "queued"  # no worker yet: the message waits in the broker
    worker = subprocess.Popen(
        [sys.executable, "-m", "copilot", "worker", "--concurrency", "1", "--loglevel", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        waited = cli(
            home,
            "run",
            "five_steps",
            "--subject",
            "late",
            "--wait",
            "--timeout",
            "90",
            "--json",
            **FLOWS,
        )
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert json.loads(waited.stdout)["state"] == "completed"
        early = json.loads(
            cli(home, "runs", "list", "--subject", "early", "--json", **FLOWS).stdout
        )[0]
        for _ in range(60):
            if early["state"] == "completed":
                break
            time.sleep(0.5)
            early = json.loads(
                cli(home, "runs", "list", "--subject", "early", "--json", **FLOWS).stdout
            )[0]
        assert early["state"] == "completed"
    finally:  # SIGKILL: see tests.support.cluster.Cluster.stop (a warm shutdown here hangs)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    swept = cli(home, "sweep", **FLOWS)
    assert swept.returncode == 0 and swept.stdout.startswith("requeued 0 runs")
