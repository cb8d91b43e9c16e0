"""Leases go by the database's clock: a worker whose clock is minutes off cannot steal a live
lease or keep one past its time.

The skewed workers are real processes under libfaketime (Debian's `faketime`), which shifts
every clock call the process makes (Python's `time.time()`, libpq's) without the code
knowing. PostgreSQL only: SQLite is one host's file, and its clock is computed inside the
(skewed) process that opens it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from copilot.db.tables import runs
from copilot.engine.lease import Lease
from copilot.runtime import Runtime
from tests.support.runtime import build_runtime
from tests.support.services import unavailable

ROOT = Path(__file__).resolve().parents[3]
SKEW = 600  # ten minutes, ten times the lease


@pytest.fixture
def rt(pg_url: str, tmp_path: Path) -> Iterator[Runtime]:
    if shutil.which("faketime") is None:
        unavailable("faketime (apt-get install faketime)", FileNotFoundError("faketime"))
    runtime = build_runtime(pg_url, tmp_path, woken=[])
    yield runtime
    runtime.close()


def skewed(rt: Runtime, offset: int, *args: str) -> dict[str, object]:
    """Run tests.support.skewed under a clock `offset` seconds off; its JSON answer."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")},
        "COPILOT_DATABASE_URL": rt.settings.database_url,
        "COPILOT_HOME": str(rt.settings.home),
        "COPILOT_WORKFLOW_MODULES": "tests.support.flows",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    cmd = ["faketime", "-f", f"{offset:+d}", sys.executable, "-m", "tests.support.skewed", *args]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    assert abs(float(str(answer["clock"])) - time.time() - offset) < 30  # the skew was real
    return answer


def lease_of(rt: Runtime, run_id: str) -> tuple[str | None, float | None]:
    with rt.engine.connect() as conn:
        row = conn.execute(
            select(runs.c.lease_owner, runs.c.lease_expires_at).where(runs.c.id == run_id)
        ).one()
    return row.lease_owner, row.lease_expires_at


def test_a_worker_clock_minutes_ahead_cannot_steal_a_live_lease(rt: Runtime) -> None:
    run, _ = rt.runner.trigger("five_steps", "acct-1", tenant="acme")
    held = Lease(rt.runs, "worker-a", 60).take(run.id, rt.registry, rt.runner.context,
                                               max_attempts=25)  # fmt: skip
    assert held is not None
    answer = skewed(rt, +SKEW, "take", run.id)
    assert answer["taken"] is False
    assert lease_of(rt, run.id)[0] == "worker-a"
    # Its sweeper does not take the live lease for a stranded run either.
    assert isinstance(answer["due"], list) and run.id not in answer["due"]


def test_a_worker_clock_minutes_behind_keeps_a_lease_only_as_long_as_the_lease(
    rt: Runtime,
) -> None:
    run, _ = rt.runner.trigger("five_steps", "acct-2", tenant="acme")
    answer = skewed(rt, -SKEW, "take", run.id)
    assert answer["taken"] is True
    owner, expires = lease_of(rt, run.id)
    assert owner == answer["owner"]
    # The deadline is the database's now + the lease, not the skewed clock's: neither in the
    # past (others would steal a live run at once) nor stretched.
    assert expires is not None and abs(expires - (time.time() + rt.settings.lease_seconds)) < 15
    assert Lease(rt.runs, "worker-a", 60).take(run.id, rt.registry, rt.runner.context,
                                               max_attempts=25) is None  # fmt: skip
    assert lease_of(rt, run.id)[0] == owner
