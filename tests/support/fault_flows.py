"""Workflows the liveness tests freeze, hang or starve, in real worker processes and in-process.

`freezing`: its first step's checkpoint transaction runs an effect that, for the run
whose input names a token file (claimed once, by an atomic rename), stops its own process
with SIGSTOP: inside the checkpoint transaction (`mode="checkpoint"`, holding the run's
row lock) or also holding the stream's audit chain lock (`mode="chain"`). The pid goes
to `<token>.pid` so the test can SIGCONT it. `hanging`: a step that never returns, under
a 1 s workflow step limit. `noting_slow`: proposes one auto-approved note, and its second
step waits on an in-process gate (the freeze point after an execution was recorded).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import Connection

from audit import Actor, AuditEvent, SqlAuditStore
from copilot import StepContext
from copilot.workflow.definition import Workflow


class Job(BaseModel):
    subject_id: str
    token: str = ""
    mode: str = "plain"


def _claim(token: str) -> bool:
    """Whether this process is the first to take the token (an atomic rename)."""
    try:
        Path(token).rename(token + ".taken")
    except FileNotFoundError:
        return False
    return True


def _freeze(conn: Connection, tenant: str, run_id: str, inp: Job) -> None:
    if not inp.token or not Path(inp.token).exists():
        return
    if inp.mode == "chain":  # take the chain lock as a waiting appender does, then freeze
        event = AuditEvent(event_type="test.frozen", actor=Actor.system("test"), run_id=run_id)
        SqlAuditStore(conn.engine).append_in(conn, tenant, [event], wait=True)
    if not _claim(inp.token):
        return
    Path(inp.token + ".pid").write_text(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGSTOP)


freezing = Workflow("freezing", "1", input=Job)


@freezing.step
def hold(ctx: StepContext, inp: Job) -> Job:
    tenant, run_id = ctx.run.tenant, ctx.run.id
    ctx.on_commit(lambda conn: _freeze(conn, tenant, run_id, inp))
    return inp


@freezing.step
def release(ctx: StepContext, inp: Job) -> Job:
    return inp


hanging = Workflow("hanging", "1", input=Job, step_timeout=1.0)


@hanging.step
def forever(ctx: StepContext, inp: Job) -> Job:
    while True:
        time.sleep(3600)


@hanging.step
def never(ctx: StepContext, inp: Job) -> Job:
    return inp


class Noted(BaseModel):
    subject_id: str
    executed: list[bool] = []


# In-process freeze points (threads): a test sets a run's gate; the step waits on it.
after_record: dict[str, tuple[threading.Event, threading.Event]] = {}

noting_slow = Workflow("noting_slow", "1", input=Job, actions=["post_note"])


@noting_slow.step
def propose(ctx: StepContext, inp: Job) -> Job:
    ctx.propose("post_note", {"account": inp.subject_id, "text": "a note"}, confidence=0.9)
    return inp


@noting_slow.step
def after(ctx: StepContext, inp: Job) -> Noted:
    gate = after_record.get(ctx.run.id)
    if gate is not None and not gate[0].is_set():
        gate[0].set()  # arrived: the execution is recorded, the checkpoint not yet written
        gate[1].wait(30)
    done = [bool(a.get("executed")) for a in (ctx.decision or {}).get("approvals", [])]
    return Noted(subject_id=inp.subject_id, executed=done)
