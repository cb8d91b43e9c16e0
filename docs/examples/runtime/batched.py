"""A workflow of plain steps, declared durability="batched": one commit for the whole run.

Run from the repository root: `python docs/examples/runtime/batched.py`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import BaseModel

from copilot import Settings, StepContext, Workflow, upgrade
from copilot.runtime import Runtime
from copilot.workflow.registry import Registry


class Health(BaseModel):
    subject_id: str
    score: int = 0


# Rules only, no effects: a lost worker would just run these steps again.
scoring = Workflow("scoring", "1", input=Health, durability="batched")


@scoring.step
def usage(ctx: StepContext, inp: Health) -> Health:
    return Health(subject_id=inp.subject_id, score=inp.score + 40)


@scoring.step
def support(ctx: StepContext, inp: Health) -> Health:
    return Health(subject_id=inp.subject_id, score=inp.score + 25)


@scoring.step
def renewal(ctx: StepContext, inp: Health) -> Health:
    return Health(subject_id=inp.subject_id, score=inp.score + 20)


registry = Registry()
registry.register(scoring)
rt = Runtime(Settings(home=Path(tempfile.mkdtemp())), registry=registry, enqueue=lambda *_: None)
upgrade(rt.engine)

run, _ = rt.runner.trigger("scoring", "acct-1", tenant="default")
run = rt.runner.run_inline(run.id)  # the three steps commit with the completion
print(run.state.value, run.result)  # completed {'score': 85, 'subject_id': 'acct-1'}
print([s.name for s in rt.runs.steps(run.id)])  # ['usage', 'support', 'renewal']
assert run.result == {"subject_id": "acct-1", "score": 85}
assert [s.name for s in rt.runs.steps(run.id)] == ["usage", "support", "renewal"]
rt.close()
