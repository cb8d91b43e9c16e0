"""`celery -A copilot.celery_app ...`: Celery's own tools against a live `copilot worker`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from copilot import broker
from tests.support.cli import ROOT
from tests.support.services import redis_url


def test_celery_inspect_ping_reaches_a_live_copilot_worker_on_redis(tmp_path: Path) -> None:
    """Given a `copilot worker` on Redis, `celery -A copilot.celery_app inspect ping` (and
    `inspect active_queues`), run with the same COPILOT_* settings, get its answer: it
    consumes its deployment's queue and nothing else."""
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
        app = broker.celery_app(env["COPILOT_BROKER_URL"], queue=env["COPILOT_QUEUE"],
                                home=tmp_path, visibility_timeout=60)  # sends, runs no task  # fmt: skip
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=0.5) and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
        # docs/celery.md's example, as written: inspect ping, then the queues consumed.
        shown = subprocess.run(
            ["/bin/bash", "-e", "docs/examples/celery/inspect.sh"], cwd=ROOT, capture_output=True,
            text=True, timeout=120, check=False,
            env={**env, "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}"},
        )  # fmt: skip
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "pong" in shown.stdout and "copilot-" in shown.stdout  # the node `copilot worker` names
        assert env["COPILOT_QUEUE"] in shown.stdout
        queues = app.control.inspect(timeout=2).active_queues() or {}
        assert [q["name"] for qs in queues.values() for q in qs] == [env["COPILOT_QUEUE"]]
    finally:  # SIGKILL: see tests.support.cluster.Cluster.stop
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        log.close()

