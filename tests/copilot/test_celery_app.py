"""`celery -A copilot.celery_app ...`: Celery's own tools against a live `copilot worker`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from copilot.settings import Settings
from copilot.worker import make_celery
from tests.support.cli import ROOT
from tests.support.services import redis_url


def test_celery_inspect_ping_reaches_a_live_copilot_worker_on_redis(tmp_path: Path) -> None:
    """Given a `copilot worker` on Redis, `celery -A copilot.celery_app inspect ping`, run
    with the same COPILOT_* settings, gets its answer; it consumes its deployment's queue."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")}
    env.update(
        COPILOT_HOME=str(tmp_path),
        COPILOT_DATABASE_URL=f"sqlite:///{tmp_path}/copilot.db",
        COPILOT_BROKER_URL=redis_url(),
        COPILOT_QUEUE=f"q-{uuid.uuid4().hex[:8]}",
        COPILOT_BUILTIN_WORKFLOWS="false",
    )
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "copilot", "worker", "--concurrency", "1", "--no-beat"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        # Wait in-process until the worker answers (a CLI call per try costs an interpreter).
        app = make_celery(Settings(database_url=env["COPILOT_DATABASE_URL"],
                                   broker_url=env["COPILOT_BROKER_URL"], queue=env["COPILOT_QUEUE"]))  # fmt: skip
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=0.5) and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
        ping = _celery(env, "inspect", "ping", "--timeout", "5")
        assert ping.returncode == 0 and "pong" in ping.stdout, ping.stdout + ping.stderr
        assert "copilot-" in ping.stdout  # the worker's node name, as `copilot worker` sets it
        queues = app.control.inspect(timeout=2).active_queues() or {}
        assert [q["name"] for qs in queues.values() for q in qs] == [env["COPILOT_QUEUE"]]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        log.close()


def _celery(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "copilot.celery_app", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
