"""A worker's lease calls from a process whose clock libfaketime shifted (the clock-skew test).

`python -m tests.support.skewed take RUN_ID` takes the run's lease as a worker does, `due`
lists what this host's sweeper would re-enqueue; both print one JSON line with this
process's clock, so the test can show the skew was real. The environment is the worker's
(`COPILOT_DATABASE_URL`, `COPILOT_WORKFLOW_MODULES`, ...).
"""

from __future__ import annotations

import json
import sys
import time

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
    else:
        out["due"] = rt.runs.due(queued_before=time.time() - 3600)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
