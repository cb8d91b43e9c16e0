"""The docs' examples that need a live deployment: `copilot api` and `copilot worker` on the
embedded defaults (SQLite, Celery's SQLite broker) with the tutorial's onboarding workflow.

Runs docs/examples/api/client.py (docs/how-to/http-api.md) as a reader would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from audit import Actor
from copilot.db.engines import upgrade
from copilot.runtime import Runtime
from copilot.settings import Settings
from tests.support.live import ROOT, LiveServer
from tests.test_docs_examples import example_env

ONBOARDING = ROOT / "docs" / "examples" / "onboarding"


def test_the_client_example_triggers_approves_and_audits_over_http(tmp_path: Path) -> None:
    env = {"COPILOT_HOME": str(tmp_path), "COPILOT_WORKFLOW_MODULES": "onboarding",
           "PYTHONPATH": f"{ONBOARDING}:{ROOT}"}  # fmt: skip
    runtime = Runtime(Settings(home=tmp_path, database_url=None, broker_url=None))
    try:
        upgrade(runtime.engine)
        keys = {role: runtime.keys.create(tenant="default", roles=[role], name=f"docs-{role}",
                                          actor=Actor.system("test"))[1]
                for role in ("app", "reviewer", "auditor")}  # fmt: skip
    finally:
        runtime.close()
    # The signing key exists where beat runs; on this fresh home, make it as an operator would
    # (without it the export is unsigned and its verification fails: `unsigned`).
    signed = subprocess.run([sys.executable, "-m", "copilot", "audit", "checkpoint"], cwd=ROOT,
                            env=example_env(tmp_path), capture_output=True, text=True, check=False)  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    server = LiveServer(env, tmp_path / "api.log").start()
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "copilot", "worker", "--concurrency", "1", "--no-beat"],
            cwd=ROOT, env={**example_env(tmp_path), **env}, start_new_session=True,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "docs" / "examples" / "api" / "client.py")],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
            env={**example_env(tmp_path), "COPILOT_URL": server.url,
                 "COPILOT_APP_KEY": keys["app"], "COPILOT_REVIEWER_KEY": keys["reviewer"],
                 "COPILOT_AUDITOR_KEY": keys["auditor"]},
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "approving send_welcome_email to ada@example.com" in done.stdout
        assert "\ncompleted {" in done.stdout and "'emailed': True" in done.stdout, done.stdout
        verified = subprocess.run(
            [sys.executable, "-m", "copilot", "audit", "verify", "--bundle",
             str(tmp_path / "audit-export" / "bundle")],
            cwd=ROOT, env=example_env(tmp_path), capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert verified.returncode == 0 and verified.stdout.startswith("OK"), verified.stdout
    finally:  # SIGKILL: see tests.support.cluster.Cluster.stop (a warm shutdown here hangs)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        server.stop()
