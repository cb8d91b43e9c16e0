"""A worker's lease calls from a process whose clock libfaketime shifted (the clock-skew test).

`python -m tests.support.skewed take RUN_ID` takes the run's lease as a worker does and
lists what this host's sweeper would then re-enqueue (`due`: only the latter); `advance
SECONDS` is a worker's task body (`Runner.advance`, what `copilot worker` runs for each
message) offered every live run of the database, over and over, for that long. Each prints one JSON line with this
process's clock, so the test can show the skew was real. The environment is the worker's
(`COPILOT_DATABASE_URL`, `COPILOT_WORKFLOW_MODULES`, ...).

Not Celery itself: under libfaketime, Python's timed lock waits (`threading.Event.wait`,
`Lock.acquire(timeout=...)`, which Celery's threads use) hang, because libfaketime 0.9.10
shifts the CLOCK_MONOTONIC deadline of `sem_clockwait`; with the monotonic clock left
alone (`FAKETIME_DONT_FAKE_MONOTONIC=1`) `time.sleep` fails with EINVAL instead.
"""

from __future__ import annotations

import json
import sys
import time

from sqlalchemy import select

from copilot.db.tables import runs
from copilot.errors import TransientError
from copilot.runtime import Runtime
from copilot.settings import Settings


def main(argv: list[str]) -> None:
    rt = Runtime(Settings(), enqueue=lambda run_id, countdown: None)
    out: dict[str, object] = {"clock": time.time()}
    if argv[0] == "take":
        runner = rt.runner
        taken = runner.lease.take(argv[1], rt.registry, runner.context, max_attempts=25)
        out["taken"] = taken is not None
        out["owner"] = runner.owner
        out["due"] = rt.runs.due(queued_before=time.time() - 3600)  # after the take
    elif argv[0] == "due":
        out["due"] = rt.runs.due(queued_before=time.time() - 3600)
    else:
        out["owner"], out["took"] = rt.runner.owner, _advance_all(rt, float(argv[1]))
    out["clock"] = time.time()  # this process's clock as it answers
    print(json.dumps(out), flush=True)


def _advance_all(rt: Runtime, seconds: float) -> int:
    """Offer every queued or running run to `Runner.advance` until `seconds` have passed;
    how many it took (the rest were someone else's: leased, or finished meanwhile)."""
    took = 0
    deadline = time.monotonic() + seconds
    live = select(runs.c.id).where(runs.c.state.in_(["queued", "running"]))
    while time.monotonic() < deadline:
        with rt.engine.connect() as conn:
            ids = list(conn.execute(live).scalars())
        for run_id in ids:
            try:
                took += rt.runner.advance(run_id) is not None
            except TransientError:
                rt.runner.requeue(run_id, "transient")
        time.sleep(0.2)
    return took


if __name__ == "__main__":
    main(sys.argv[1:])
