"""Worker processes (`copilot worker`) plus a runtime in the test process that triggers and sweeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from copilot.db.tables import runs
from copilot.engine.runs import RunState
from tests.support.runtime import build_runtime

ROOT = Path(__file__).resolve().parents[2]


class Cluster:
    """Worker processes plus a runtime in the test process that triggers and sweeps."""

    def __init__(
        self, db_url: str, broker: str, home: Path, env: dict[str, str] | None = None
    ) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")},
            "COPILOT_DATABASE_URL": db_url,
            "COPILOT_BROKER_URL": broker,
            "COPILOT_HOME": str(home),
            "COPILOT_QUEUE": f"q-{uuid.uuid4().hex[:8]}",
            "COPILOT_WORKFLOW_MODULES": "tests.support.flows",
            "COPILOT_LEASE_SECONDS": "4",
            "COPILOT_SWEEP_GRACE": "3",
            "COPILOT_BROKER_VISIBILITY_TIMEOUT": "6",
            "COPILOT_CHECKPOINT_EVERY": "0",
            # One host on purpose (the sqla broker beside PostgreSQL is a parameter).
            "COPILOT_ALLOW_EMBEDDED": "true",
            **(env or {}),  # a test's own settings (the fault tests' bounds)
        }
        self.home = home
        settings = {
            k.removeprefix("COPILOT_").lower(): v
            for k, v in self.env.items()
            if k.startswith("COPILOT_") and k not in ("COPILOT_DATABASE_URL", "COPILOT_HOME")
        }
        self.rt = build_runtime(db_url, home, **settings)  # wake-ups go to the real broker
        self.workers: dict[int, subprocess.Popen[bytes]] = {}
        self.logs = home / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def start(self, n: int) -> None:
        with (self.logs / f"worker-{n}.log").open("ab") as log:
            self.workers[n] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "copilot",
                    "worker",
                    "--concurrency",
                    "1",
                    "--no-beat",
                    "--loglevel",
                    "WARNING",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def kill(self, n: int) -> None:
        os.killpg(self.workers[n].pid, signal.SIGKILL)
        self.workers[n].wait()

    def stop(self) -> None:
        """SIGKILL every worker's session (its pool child too), as `kill` does.

        Teardown only: the test has asserted what it checks, and a worker killed at any
        instant losing nothing is what these tests prove. A warm shutdown (SIGTERM) took
        about 5 s per worker on the embedded SQLite broker, and a SIGTERM to the whole
        session hung it until the 20 s timeout's SIGKILL (its pool child killed under it).
        """
        for p in self.workers.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        for p in self.workers.values():
            p.wait()

    def states(self, ids: list[str]) -> Counter[str]:
        with self.rt.engine.connect() as conn:
            rows = conn.execute(select(runs.c.state).where(runs.c.id.in_(ids)))
            return Counter(rows.scalars())

    def wait_until_settled(
        self, ids: list[str], timeout: float, on_tick: object = None
    ) -> Counter[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.rt.sweeper.sweep()  # what beat does every few seconds
            states = self.states(ids)
            if states[RunState.COMPLETED.value] == len(ids):
                return states
            if callable(on_tick):
                on_tick()
            time.sleep(0.5)
        return self.states(ids)


def wait_for(
    cluster: Cluster, ids: list[str], states: set[str], timeout: float = 120
) -> Counter[str]:
    """Sweep until every run is in one of `states` (or the timeout); the states found."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = cluster.states(ids)
        if set(found) <= states:
            return found
        cluster.rt.sweeper.sweep()
        time.sleep(0.3)
    return cluster.states(ids)
