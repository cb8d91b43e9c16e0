"""A step that never returns: interrupted at its workflow's limit, then quarantined.

Run from the repository root: `python docs/examples/liveness/step_timeout.py`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

from copilot import Settings, StepContext, Workflow, upgrade
from copilot.runtime import Runtime
from copilot.workflow.registry import Registry


class Account(BaseModel):
    subject_id: str


# At most 0.5 s per step for this workflow (COPILOT_STEP_TIMEOUT is the default for others).
stuck = Workflow("stuck", "1", input=Account, step_timeout=0.5)


@stuck.step
def wait_for_godot(ctx: StepContext, inp: Account) -> Account:
    while True:
        time.sleep(3600)


registry = Registry()
registry.register(stuck)
home = Path(tempfile.mkdtemp())
rt = Runtime(Settings(home=home, step_timeouts_max=2), registry=registry, enqueue=lambda *_: None)
upgrade(rt.engine)

run, _ = rt.runner.trigger("stuck", "acct-1", tenant="default")
run = rt.runner.run_inline(run.id)  # two attempts, each interrupted after 0.5 s
print(run.state.value, run.error["code"] if run.error else None)  # failed run.step_timeout
rt.close()
