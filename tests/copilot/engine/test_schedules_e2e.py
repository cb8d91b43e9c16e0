"""A real worker with Celery beat on Redis and PostgreSQL: killed and restarted mid-period, no period runs twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

from audit import SqlAuditStore
from audit.db import create_engine
from copilot.db.engines import upgrade
from copilot.db.tables import runs
from copilot.engine.runs import RunState
from tests.support import triggered
from tests.support.services import redis_url

ROOT = Path(__file__).resolve().parents[3]
PERIOD = 6.0


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "copilot", "worker", "--concurrency", "1", "--beat",
             "--loglevel", "WARNING"],
            cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip


@pytest.mark.slow
def test_a_worker_and_beat_killed_and_restarted_never_run_a_period_twice(
    pg_url: str, tmp_path: Path
) -> None:
    broker = redis_url()
    engine = create_engine(pg_url)
    upgrade(engine)
    subjects = [f"acct-{i}" for i in range(5)]
    for s in subjects:
        triggered.SIGNALS.ingest(engine, SqlAuditStore(engine), tenant="default", subject_id=s,
                                 values={"pulse_usage": 2.0}, source="crm")  # fmt: skip
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")},
        "COPILOT_DATABASE_URL": pg_url,
        "COPILOT_BROKER_URL": broker,
        "COPILOT_HOME": str(tmp_path),
        "COPILOT_QUEUE": f"q-{uuid.uuid4().hex[:8]}",
        "COPILOT_WORKFLOW_MODULES": "tests.support.triggered_beat",
        "COPILOT_SCHEDULE_TICK": "0.5",
        "COPILOT_CHECKPOINT_EVERY": "0",
    }
    began = time.time()
    worker = start(env, tmp_path / "worker.log")
    try:
        time.sleep(3 * PERIOD)
        os.killpg(worker.pid, signal.SIGKILL)  # worker and beat die mid-period, no goodbye
        worker.wait()
        worker = start(env, tmp_path / "worker.log")  # a restarted beat, same period
        time.sleep(2 * PERIOD)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
    ended = time.time()
    with engine.connect() as conn:
        rows = conn.execute(
            select(runs.c.subject_id, runs.c.idempotency_key, runs.c.state).where(
                runs.c.triggered_by == "schedule:every_six_seconds"
            )
        ).all()
    engine.dispose()
    periods: dict[str, list[str]] = defaultdict(list)
    for subject_id, key, _ in rows:
        periods[subject_id].append(key.split(":", 2)[2].rsplit(":", 1)[0])
    elapsed = (ended - began) / PERIOD
    assert sorted(periods) == subjects, (tmp_path / "worker.log").read_text()[-3000:]
    for subject_id, starts in periods.items():
        assert len(starts) == len(set(starts)), f"{subject_id} ran a period twice"
        assert 3 <= len(starts) <= elapsed + 1, (subject_id, starts)
    done = sum(state == RunState.COMPLETED.value for *_, state in rows)
    assert done >= len(rows) - len(subjects), "the worker advanced the scheduled runs"
