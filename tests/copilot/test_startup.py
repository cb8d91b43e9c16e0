"""Start-up refuses what cannot work and names the parts in use (issue 19, points 4 and 5)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from copilot import broker
from copilot.errors import ConfigError, DatabaseConfigError
from copilot.runtime import Runtime
from copilot.server import create_app
from copilot.settings import Settings
from copilot.worker import make_celery
from tests.support.cli import ROOT
from tests.support.runtime import build_runtime

BUILTIN = {"account_health", "next_actions", "tone_draft", "save_plan"}


def test_point4_builtin_workflows_and_what_they_declare_can_be_turned_off(tmp_path: Path) -> None:
    """COPILOT_BUILTIN_WORKFLOWS=false: no built-in workflow, kind, signal, schedule or event
    trigger is registered; the deployment's own modules still are."""
    on = Runtime(Settings(home=tmp_path)).registry
    assert {wf.name for wf in on} >= BUILTIN and on.triggers.items()
    assert "send_email" in on.catalog.names() and on.signals.specs()
    os.environ["COPILOT_BUILTIN_WORKFLOWS"] = "false"
    off = Runtime(Settings(home=tmp_path, workflow_modules="tests.support.flows")).registry
    assert not BUILTIN & {wf.name for wf in off} and "five_steps" in {wf.name for wf in off}
    assert "send_email" not in off.catalog.names() and not off.triggers.items()
    assert not {s.name for s in off.signals.specs()} & {"contact_email", "recent_messages"}


def test_point5_parts_that_cannot_meet_are_refused_unless_asked(pg_url: str, tmp_path: Path) -> None:
    """PostgreSQL with the embedded broker, or a shared broker with no database URL (which
    quietly created SQLite in the working folder), are refused; COPILOT_ALLOW_EMBEDDED=true
    says the mix is meant. Both embedded (one host, the demo) passes and says so."""
    from copilot import startup  # imported here: the other tests here need no new module
    with pytest.raises(ConfigError, match="COPILOT_BROKER_URL") as info:
        startup.check_parts(Settings(home=tmp_path, database_url=pg_url))
    assert "embedded SQLite" in info.value.message
    with pytest.raises(DatabaseConfigError, match="COPILOT_DATABASE_URL is unset") as db:
        startup.check_parts(Settings(home=tmp_path, broker_url="redis://127.0.0.1:6379/8"))
    assert db.value.code == "config.database" and not (tmp_path / "copilot.db").exists()
    allowed = startup.check_parts(Settings(home=tmp_path, database_url=pg_url, allow_embedded=True))
    assert allowed[0].startswith("database: postgresql+psycopg://") and allowed[1].startswith("broker: sqla+")
    alone = startup.check_parts(Settings(home=tmp_path))
    assert "(embedded; set COPILOT_DATABASE_URL" in alone[0]


def test_point5_a_worker_with_its_database_down_refuses_to_start_and_never_says_ready(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")}
    env.update(COPILOT_HOME=str(tmp_path), COPILOT_DATABASE_URL="postgresql://app@127.0.0.1:1/x",
               COPILOT_BROKER_URL="redis://127.0.0.1:6379/8")  # fmt: skip
    worker = subprocess.run(
        [sys.executable, "-m", "copilot", "worker", "--no-beat"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert worker.returncode == 2, worker.stdout + worker.stderr
    assert "error [config.database]: cannot reach the database at postgresql+psycopg://app@127.0.0.1:1/x" in worker.stderr
    assert "ready" not in worker.stdout + worker.stderr and "Traceback" not in worker.stderr


def test_point5_each_deployment_has_its_own_queue_and_healthz_names_broker_and_queue(
    sqlite_url: str, pg_url: str, tmp_path: Path
) -> None:
    """Two deployments on one broker no longer share `copilot`: the default queue follows
    the database, so one's workers never take the other's copilot.sweep or advance tasks."""
    one, two = Settings(database_url=sqlite_url), Settings(database_url=pg_url)
    assert one.queue_resolved != two.queue_resolved and one.queue_resolved.startswith("copilot.")
    same = Settings(database_url=pg_url.replace("postgres@", "postgres:secret@"))
    assert same.queue_resolved == two.queue_resolved  # a password does not make a deployment
    assert Settings(database_url=pg_url, queue="crm").queue_resolved == "crm"
    rt = build_runtime(sqlite_url, tmp_path, woken=[])
    with TestClient(create_app(rt.settings, runtime=rt)) as client:
        health = client.get("/healthz").json()
    rt.close()
    assert health["broker_url"].startswith("sqla+sqlite:///") and health["queue"] == rt.settings.queue_resolved


def test_point5_a_beat_sweep_with_the_database_away_logs_one_line_not_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(home=tmp_path, database_url="postgresql://app@127.0.0.1:1/x",
                        broker_url="redis://127.0.0.1:6379/8")  # fmt: skip
    sweep = make_celery(settings).tasks[broker.SWEEP]
    with caplog.at_level(logging.WARNING, logger="copilot.worker"):
        assert sweep() is None  # the task returns; beat tries again at the next tick
    (record,) = [r for r in caplog.records if r.name == "copilot.worker"]
    assert record.getMessage().startswith("sweep skipped: the database is not reachable (")
    assert record.exc_info is None
