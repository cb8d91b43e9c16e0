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
from typing import Any

import pytest
from sqlalchemy import select

from audit import SqlAuditStore
from audit.db import create_engine
from copilot.db.engines import upgrade
from copilot.db.tables import runs
from copilot.engine.runs import RunState
from tests.support import triggered
from tests.support.services import redis_url
from tests.support.triggered_beat import FAST

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
    def scheduled() -> tuple[list[Any], dict[str, list[str]]]:
        """The scheduled runs so far, and each subject's periods (one entry per run)."""
        with engine.connect() as conn:
            rows = conn.execute(
                select(runs.c.subject_id, runs.c.idempotency_key, runs.c.state).where(
                    runs.c.triggered_by == "schedule:every_six_seconds"
                )
            ).all()
        periods: dict[str, list[str]] = defaultdict(list)
        for subject_id, key, _ in rows:
            periods[subject_id].append(key.split(":", 2)[2].rsplit(":", 1)[0])
        return list(rows), periods

    def until(periods_each: int, *, restarted_in: str | None = None) -> None:
        """Poll until every subject's runs span `periods_each` periods (one of them after
        `restarted_in`, when given) and all but the last period's are completed."""
        deadline = time.monotonic() + (periods_each + 4) * PERIOD + 60
        while time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            rows, periods = scheduled()
            spans = [sorted(set(p)) for p in periods.values()]
            if (len(periods) == len(subjects)
                    and all(len(p) >= periods_each for p in spans)
                    and (restarted_in is None or all(p[-1] > restarted_in for p in spans))
                    and sum(st != RunState.COMPLETED.value for *_, st in rows) <= len(subjects)):  # fmt: skip
                return
            time.sleep(0.2)

    began = time.time()
    worker = start(env, tmp_path / "worker.log")
    try:
        # Polled, not slept: two periods begun and run, then worker and beat die mid-period
        # (the second one just started), no goodbye; a restarted beat comes back in that
        # same period and must not start it again; the test ends once a third has begun.
        until(2)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        killed_in = max(max(p) for p in scheduled()[1].values())
        worker = start(env, tmp_path / "worker.log")  # a restarted beat, same period
        until(3, restarted_in=killed_in)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
    ended = time.time()
    rows, periods = scheduled()
    engine.dispose()
    # The periods the test touched, exactly: each one whose start lies between the start of
    # the period it began in and its end (polled, it ends soon after a period begins, so
    # "elapsed periods + 1" would be one short of a correct beat).
    first, last = FAST.period_start(began), FAST.period_start(ended)
    touched = {FAST.key(first + i * PERIOD, "").split(":", 2)[2].rsplit(":", 1)[0]
               for i in range(round((last - first) / PERIOD) + 1)}  # fmt: skip
    assert sorted(periods) == subjects, (tmp_path / "worker.log").read_text()[-3000:]
    for subject_id, starts in periods.items():
        assert len(starts) == len(set(starts)), f"{subject_id} ran a period twice"
        assert set(starts) <= touched, (subject_id, starts, touched)  # a period a real start
        assert 3 <= len(starts) <= len(touched), (subject_id, starts)
    done = sum(state == RunState.COMPLETED.value for *_, state in rows)
    assert done >= len(rows) - len(subjects), "the worker advanced the scheduled runs"
